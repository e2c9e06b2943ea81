//! The encoding transformations of `{s.*}`: hexadecimal (`encode.hexa`,
//! `decode.hexa`, `hex2dec`, `dec2hex`), URI escaping (`escape.common`,
//! `escape.user`, `escape.param` and their inverses, RFC 3261 §25.1
//! character classes) and base64 (`b64encode`, `b64decode`).

use super::*;

pub(super) fn encode_hexa(_: &Call, _: &[Arg], v: Value) -> R {
    let t = text(&v);
    if t.len() > MAX_OUT / 2 {
        return Err("value too long".into());
    }
    s(hash::hex(t.as_bytes()))
}

pub(super) fn hexval(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Bytes to a string value; bytes that are not UTF-8 are an error (values
/// are text in lunasip).
pub(super) fn bytes(b: Vec<u8>) -> R {
    String::from_utf8(b)
        .map(Value::Str)
        .map_err(|_| "result is not valid UTF-8".to_string())
}

pub(super) fn decode_hexa(_: &Call, _: &[Arg], v: Value) -> R {
    let t = text(&v);
    let b = t.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 2);
    for pair in b.chunks_exact(2) {
        match (hexval(pair[0]), hexval(pair[1])) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => return Err(format!("'{t}' is not hexadecimal")),
        }
    }
    bytes(out)
}

pub(super) fn hex2dec(_: &Call, _: &[Arg], v: Value) -> R {
    if let Value::Int(n) = v {
        return Ok(Value::Int(n));
    }
    let t = text(&v);
    let h = t.trim();
    let h = h
        .strip_prefix("0x")
        .or_else(|| h.strip_prefix("0X"))
        .unwrap_or(h);
    u32::from_str_radix(h, 16)
        .map(|n| Value::Int(n as i64))
        .map_err(|_| format!("'{t}' is not hexadecimal"))
}

pub(super) fn dec2hex(_: &Call, _: &[Arg], v: Value) -> R {
    let n = match v {
        Value::Int(n) => n,
        other => text(&other)
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("'{}' is not a number", text(&other)))?,
    };
    // C's %x of an int: two's complement on 32 bits.
    s(format!("{:x}", n as i32 as u32))
}

pub(super) fn escape_common(_: &Call, _: &[Arg], v: Value) -> R {
    let t = text(&v);
    let mut out = String::with_capacity(t.len() + 8);
    for ch in t.chars() {
        match ch {
            '\'' | '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            '\0' => out.push_str("\\0"),
            _ => out.push(ch),
        }
    }
    s(out)
}

pub(super) fn unescape_common(_: &Call, _: &[Arg], v: Value) -> R {
    let t = text(&v);
    let mut out = String::with_capacity(t.len());
    let mut it = t.chars().peekable();
    while let Some(ch) = it.next() {
        if ch == '\\' {
            match it.peek() {
                Some('\'') | Some('"') | Some('\\') => {
                    out.push(it.next().unwrap_or('\\'));
                    continue;
                }
                Some('0') => {
                    it.next();
                    out.push('\0');
                    continue;
                }
                _ => {}
            }
        }
        out.push(ch);
    }
    s(out)
}

pub(super) fn is_mark(b: u8) -> bool {
    matches!(
        b,
        b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
    )
}

/// RFC 3261 §25.1 `user` characters stay; the rest become %XX.
pub(super) fn user_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || is_mark(b)
        || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

/// RFC 3261 §25.1 `paramchar` (param-unreserved, unreserved).
pub(super) fn param_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || is_mark(b)
        || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

pub(super) fn escape_with(v: &Value, ok: fn(u8) -> bool) -> R {
    let t = text(v);
    let mut out = String::with_capacity(t.len() + 8);
    for &b in t.as_bytes() {
        if ok(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push_str(&format!("{b:02X}"));
        }
    }
    s(out)
}

pub(super) fn percent_decode(v: &Value) -> R {
    let t = text(v);
    let b = t.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match (
                b.get(i + 1).copied().and_then(hexval),
                b.get(i + 2).copied().and_then(hexval),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => return Err(format!("bad escape in '{t}'")),
            }
        }
        out.push(b[i]);
        i += 1;
    }
    bytes(out)
}

pub(super) fn escape_user(_: &Call, _: &[Arg], v: Value) -> R {
    escape_with(&v, user_ok)
}
pub(super) fn unescape_user(_: &Call, _: &[Arg], v: Value) -> R {
    percent_decode(&v)
}
pub(super) fn escape_param(_: &Call, _: &[Arg], v: Value) -> R {
    escape_with(&v, param_ok)
}
pub(super) fn unescape_param(_: &Call, _: &[Arg], v: Value) -> R {
    percent_decode(&v)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 (RFC 4648 §4, padded).
pub(crate) fn b64encode_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for ch in b.chunks(3) {
        let n = (ch[0] as u32) << 16
            | (*ch.get(1).unwrap_or(&0) as u32) << 8
            | *ch.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= ch.len() {
                out.push(B64[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn b64decode_bytes(t: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(t.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in t.trim_end_matches('=').as_bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

pub(super) fn b64encode(_: &Call, _: &[Arg], v: Value) -> R {
    s(b64encode_bytes(text(&v).as_bytes()))
}

pub(super) fn b64decode(_: &Call, _: &[Arg], v: Value) -> R {
    let t = text(&v);
    let b = b64decode_bytes(t.trim()).ok_or_else(|| format!("'{t}' is not base64"))?;
    bytes(b)
}
