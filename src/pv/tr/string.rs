//! String transformations, `{s.*}` (OpenSIPS 3.4 "String Transformations").

use super::{arg_int, arg_str, text, Arg, TrDef};
use crate::proxy::context::Call;
use crate::pv::hash;
use crate::pv::Value;

type R = Result<Value, String>;

/// Longest string a transformation builds (OpenSIPS's buffer is 64 KiB).
const MAX_OUT: usize = 65_536;

fn s(v: String) -> R {
    Ok(Value::Str(v))
}

fn len(_: &Call, _: &[Arg], v: Value) -> R {
    Ok(Value::Int(text(&v).len() as i64))
}

/// Leading integer of a string, 0 when there is none (OpenSIPS `s.int`).
pub(crate) fn leading_int(t: &str) -> i64 {
    let t = t.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg {
        -n
    } else {
        n
    }
}

fn int(_: &Call, _: &[Arg], v: Value) -> R {
    Ok(match v {
        Value::Int(n) => Value::Int(n),
        other => Value::Int(leading_int(&text(&other))),
    })
}

fn digest(v: &Value, f: hash::Digest) -> R {
    s(hash::hex(&f(text(v).as_bytes())))
}

fn md5(_: &Call, _: &[Arg], v: Value) -> R {
    digest(&v, hash::md5)
}
fn sha1(_: &Call, _: &[Arg], v: Value) -> R {
    digest(&v, hash::sha1)
}
fn sha224(_: &Call, _: &[Arg], v: Value) -> R {
    digest(&v, hash::sha224)
}
fn sha256(_: &Call, _: &[Arg], v: Value) -> R {
    digest(&v, hash::sha256)
}
fn sha384(_: &Call, _: &[Arg], v: Value) -> R {
    digest(&v, hash::sha384)
}
fn sha512(_: &Call, _: &[Arg], v: Value) -> R {
    digest(&v, hash::sha512)
}

fn hmac(c: &Call, a: &[Arg], v: &Value, f: hash::Digest, block: usize) -> R {
    let key = arg_str(c, a, 0)?;
    s(hash::hex(&hash::hmac(
        f,
        block,
        key.as_bytes(),
        text(v).as_bytes(),
    )))
}
fn sha1_hmac(c: &Call, a: &[Arg], v: Value) -> R {
    hmac(c, a, &v, hash::sha1, 64)
}
fn sha224_hmac(c: &Call, a: &[Arg], v: Value) -> R {
    hmac(c, a, &v, hash::sha224, 64)
}
fn sha256_hmac(c: &Call, a: &[Arg], v: Value) -> R {
    hmac(c, a, &v, hash::sha256, 64)
}
fn sha384_hmac(c: &Call, a: &[Arg], v: Value) -> R {
    hmac(c, a, &v, hash::sha384, 128)
}
fn sha512_hmac(c: &Call, a: &[Arg], v: Value) -> R {
    hmac(c, a, &v, hash::sha512, 128)
}

fn crc32(_: &Call, _: &[Arg], v: Value) -> R {
    Ok(Value::Int(hash::crc32(text(&v).as_bytes()) as i64))
}

fn tolower(_: &Call, _: &[Arg], v: Value) -> R {
    match v {
        Value::Str(t) => s(t.to_ascii_lowercase()),
        other => Ok(other),
    }
}

fn toupper(_: &Call, _: &[Arg], v: Value) -> R {
    match v {
        Value::Str(t) => s(t.to_ascii_uppercase()),
        other => Ok(other),
    }
}

fn encode_hexa(_: &Call, _: &[Arg], v: Value) -> R {
    let t = text(&v);
    if t.len() > MAX_OUT / 2 {
        return Err("value too long".into());
    }
    s(hash::hex(t.as_bytes()))
}

fn hexval(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Bytes to a string value; bytes that are not UTF-8 are an error (values
/// are text in lunasip).
fn bytes(b: Vec<u8>) -> R {
    String::from_utf8(b)
        .map(Value::Str)
        .map_err(|_| "result is not valid UTF-8".to_string())
}

fn decode_hexa(_: &Call, _: &[Arg], v: Value) -> R {
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

fn hex2dec(_: &Call, _: &[Arg], v: Value) -> R {
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

fn dec2hex(_: &Call, _: &[Arg], v: Value) -> R {
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

fn escape_common(_: &Call, _: &[Arg], v: Value) -> R {
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

fn unescape_common(_: &Call, _: &[Arg], v: Value) -> R {
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

fn is_mark(b: u8) -> bool {
    matches!(
        b,
        b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
    )
}

/// RFC 3261 §25.1 `user` characters stay; the rest become %XX.
fn user_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || is_mark(b)
        || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

/// RFC 3261 §25.1 `paramchar` (param-unreserved, unreserved).
fn param_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || is_mark(b)
        || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

fn escape_with(v: &Value, ok: fn(u8) -> bool) -> R {
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

fn percent_decode(v: &Value) -> R {
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

fn escape_user(_: &Call, _: &[Arg], v: Value) -> R {
    escape_with(&v, user_ok)
}
fn unescape_user(_: &Call, _: &[Arg], v: Value) -> R {
    percent_decode(&v)
}
fn escape_param(_: &Call, _: &[Arg], v: Value) -> R {
    escape_with(&v, param_ok)
}
fn unescape_param(_: &Call, _: &[Arg], v: Value) -> R {
    percent_decode(&v)
}

/// Byte slice to a value; a cut inside a UTF-8 character is an error.
fn slice(t: &str, from: usize, to: usize) -> R {
    t.get(from..to)
        .map(|x| Value::Str(x.to_string()))
        .ok_or_else(|| "cut inside a UTF-8 character".to_string())
}

/// `{s.substr,offset,length}`: negative offset counts from the end; a
/// length of 0 means to the end, negative stops that many bytes before it.
fn substr(c: &Call, a: &[Arg], v: Value) -> R {
    let t = text(&v);
    let n = t.len() as i64;
    let mut i = arg_int(c, a, 0)?;
    let mut j = arg_int(c, a, 1)?;
    if i < 0 {
        if -i > n {
            return Err(format!("offset {i} out of range"));
        }
        i += n;
    }
    if i >= n {
        return Err(format!("offset {i} out of range"));
    }
    if j < 1 {
        j = n + j - i;
    }
    if i + j > n {
        j = n - i;
    }
    if j < 0 {
        return Err("negative length".into());
    }
    slice(&t, i as usize, (i + j) as usize)
}

/// `{s.select,index,sep}`: the index-th field split on one character;
/// negative counts from the end; null when there is no such field.
fn select(c: &Call, a: &[Arg], v: Value) -> R {
    let t = text(&v);
    let i = arg_int(c, a, 0)?;
    let sep = arg_str(c, a, 1)?;
    let Some(sep) = sep.chars().next() else {
        return Err("empty separator".into());
    };
    let field = if i >= 0 {
        t.split(sep).nth(i as usize)
    } else {
        t.rsplit(sep).nth((-i - 1) as usize)
    };
    Ok(field.map_or(Value::Null, |f| Value::Str(f.to_string())))
}

/// `{s.index,needle[,start]}` / `{s.rindex,…}`: byte position or null.
fn index_impl(c: &Call, a: &[Arg], v: Value, rev: bool) -> R {
    let t = text(&v);
    let needle = arg_str(c, a, 0)?;
    let n = t.len() as i64;
    let mut i = match a.len() {
        0 | 1 => {
            if rev {
                n - 1
            } else {
                0
            }
        }
        _ => arg_int(c, a, 1)?,
    };
    if i < 0 {
        i = if n > 0 {
            let r = (-i) % n;
            if r > 0 {
                n - r
            } else {
                0
            }
        } else {
            0
        };
    }
    let hay = t.as_bytes();
    let nb = needle.as_bytes();
    if nb.is_empty() || nb.len() as i64 > n {
        return Ok(Value::Null);
    }
    let found = if rev {
        let start = (i.min(n - nb.len() as i64)).max(0) as usize;
        (0..=start).rev().find(|&k| hay[k..].starts_with(nb))
    } else {
        if i >= n {
            return Ok(Value::Null);
        }
        (i as usize..=hay.len() - nb.len()).find(|&k| hay[k..].starts_with(nb))
    };
    Ok(found.map_or(Value::Null, |k| Value::Int(k as i64)))
}

fn index(c: &Call, a: &[Arg], v: Value) -> R {
    index_impl(c, a, v, false)
}
fn rindex(c: &Call, a: &[Arg], v: Value) -> R {
    index_impl(c, a, v, true)
}

fn fill(c: &Call, a: &[Arg], v: Value, left: bool) -> R {
    let pad = arg_str(c, a, 0)?;
    let want = arg_int(c, a, 1)?;
    let t = text(&v).into_owned();
    let missing = want - t.len() as i64;
    if missing <= 0 || pad.is_empty() {
        return s(t);
    }
    if want as usize > MAX_OUT {
        return Err(format!("length {want} too large"));
    }
    let missing = missing as usize;
    let p = pad.as_bytes();
    let mut fillb = Vec::with_capacity(missing);
    if left {
        // The first, partial copy of the pad takes its tail (OpenSIPS).
        let r = missing % p.len();
        fillb.extend_from_slice(&p[p.len() - r..]);
        while fillb.len() < missing {
            fillb.extend_from_slice(p);
        }
        let mut out = String::from_utf8(fillb).map_err(|_| "pad cut inside a character")?;
        out.push_str(&t);
        s(out)
    } else {
        while fillb.len() < missing {
            let r = (missing - fillb.len()).min(p.len());
            fillb.extend_from_slice(&p[..r]);
        }
        let fillb = String::from_utf8(fillb).map_err(|_| "pad cut inside a character")?;
        s(t + &fillb)
    }
}

fn fill_left(c: &Call, a: &[Arg], v: Value) -> R {
    fill(c, a, v, true)
}
fn fill_right(c: &Call, a: &[Arg], v: Value) -> R {
    fill(c, a, v, false)
}

fn width(c: &Call, a: &[Arg], v: Value) -> R {
    let w = arg_int(c, a, 0)?;
    if w <= 0 {
        return Err("width must be >= 1".into());
    }
    if w as usize > MAX_OUT {
        return Err(format!("width {w} too large"));
    }
    let t = text(&v);
    let w = w as usize;
    if w <= t.len() {
        slice(&t, 0, w)
    } else {
        s(format!("{t:<w$}"))
    }
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

fn b64encode(_: &Call, _: &[Arg], v: Value) -> R {
    s(b64encode_bytes(text(&v).as_bytes()))
}

fn b64decode(_: &Call, _: &[Arg], v: Value) -> R {
    let t = text(&v);
    let b = b64decode_bytes(t.trim()).ok_or_else(|| format!("'{t}' is not base64"))?;
    bytes(b)
}

fn xor(c: &Call, a: &[Arg], v: Value) -> R {
    let key = arg_str(c, a, 0)?;
    let k = key.as_bytes();
    if k.is_empty() {
        return Err("empty secret".into());
    }
    let out: Vec<u8> = text(&v)
        .bytes()
        .enumerate()
        .map(|(i, b)| b ^ k[i % k.len()])
        .collect();
    bytes(out)
}

fn ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn trim(_: &Call, _: &[Arg], v: Value) -> R {
    s(text(&v).trim_matches(ws).to_string())
}
fn trimr(_: &Call, _: &[Arg], v: Value) -> R {
    s(text(&v).trim_end_matches(ws).to_string())
}
fn triml(_: &Call, _: &[Arg], v: Value) -> R {
    s(text(&v).trim_start_matches(ws).to_string())
}

fn reverse(_: &Call, _: &[Arg], v: Value) -> R {
    s(text(&v).chars().rev().collect())
}

/// `{s.eval}`: expands the value as an xlog format.
fn eval(c: &Call, _: &[Arg], v: Value) -> R {
    let parts = crate::pv::parse_format(&text(&v))?;
    let mut out = String::new();
    crate::pv::format(c, &parts, &mut out);
    s(out)
}

pub(super) static DEFS: &[TrDef] = &[
    tr!("s.len", len, 0, 0, "", "length in bytes"),
    tr!(
        "s.int",
        int,
        0,
        0,
        "",
        "leading integer of the string (0 when none)"
    ),
    tr!("s.md5", md5, 0, 0, "", "MD5, lowercase hex"),
    tr!("s.crc32", crc32, 0, 0, "", "CRC-32 as an integer"),
    tr!("s.sha1", sha1, 0, 0, "", "SHA-1, lowercase hex"),
    tr!("s.sha224", sha224, 0, 0, "", "SHA-224, lowercase hex"),
    tr!("s.sha256", sha256, 0, 0, "", "SHA-256, lowercase hex"),
    tr!("s.sha384", sha384, 0, 0, "", "SHA-384, lowercase hex"),
    tr!("s.sha512", sha512, 0, 0, "", "SHA-512, lowercase hex"),
    tr!(
        "s.sha1_hmac",
        sha1_hmac,
        1,
        1,
        ",key",
        "HMAC-SHA1, lowercase hex"
    ),
    tr!(
        "s.sha224_hmac",
        sha224_hmac,
        1,
        1,
        ",key",
        "HMAC-SHA224, lowercase hex"
    ),
    tr!(
        "s.sha256_hmac",
        sha256_hmac,
        1,
        1,
        ",key",
        "HMAC-SHA256, lowercase hex"
    ),
    tr!(
        "s.sha384_hmac",
        sha384_hmac,
        1,
        1,
        ",key",
        "HMAC-SHA384, lowercase hex"
    ),
    tr!(
        "s.sha512_hmac",
        sha512_hmac,
        1,
        1,
        ",key",
        "HMAC-SHA512, lowercase hex"
    ),
    tr!("s.tolower", tolower, 0, 0, "", "ASCII lower case"),
    tr!("s.toupper", toupper, 0, 0, "", "ASCII upper case"),
    tr!(
        "s.encode.hexa",
        encode_hexa,
        0,
        0,
        "",
        "bytes as lowercase hex"
    ),
    tr!("s.decode.hexa", decode_hexa, 0, 0, "", "hex back to bytes"),
    tr!("s.hex2dec", hex2dec, 0, 0, "", "hex number to integer"),
    tr!("s.dec2hex", dec2hex, 0, 0, "", "integer to lowercase hex"),
    tr!(
        "s.escape.common",
        escape_common,
        0,
        0,
        "",
        "backslash-escape ' \" \\ and NUL (for SQL)"
    ),
    tr!(
        "s.unescape.common",
        unescape_common,
        0,
        0,
        "",
        "undo s.escape.common"
    ),
    tr!(
        "s.escape.user",
        escape_user,
        0,
        0,
        "",
        "%-escape for a URI user part"
    ),
    tr!(
        "s.unescape.user",
        unescape_user,
        0,
        0,
        "",
        "%-unescape a URI user part"
    ),
    tr!(
        "s.escape.param",
        escape_param,
        0,
        0,
        "",
        "%-escape for a URI parameter"
    ),
    tr!(
        "s.unescape.param",
        unescape_param,
        0,
        0,
        "",
        "%-unescape a URI parameter"
    ),
    tr!(
        "s.substr",
        substr,
        2,
        2,
        ",offset,length",
        "substring; negative offset from the end, length 0 to the end"
    ),
    tr!(
        "s.select",
        select,
        2,
        2,
        ",index,separator",
        "index-th field split on a character; negative from the end"
    ),
    tr!(
        "s.index",
        index,
        1,
        2,
        ",needle[,start]",
        "first position of needle, null if absent"
    ),
    tr!(
        "s.rindex",
        rindex,
        1,
        2,
        ",needle[,start]",
        "last position of needle, null if absent"
    ),
    tr!(
        "s.fill.left",
        fill_left,
        2,
        2,
        ",pad,length",
        "pad on the left to length"
    ),
    tr!(
        "s.fill.right",
        fill_right,
        2,
        2,
        ",pad,length",
        "pad on the right to length"
    ),
    tr!(
        "s.width",
        width,
        1,
        1,
        ",length",
        "cut or space-pad to exactly length"
    ),
    tr!("s.b64encode", b64encode, 0, 0, "", "base64 encode"),
    tr!("s.b64decode", b64decode, 0, 0, "", "base64 decode"),
    tr!("s.xor", xor, 1, 1, ",secret", "XOR with a repeating secret"),
    tr!("s.trim", trim, 0, 0, "", "strip whitespace both sides"),
    tr!("s.trimr", trimr, 0, 0, "", "strip trailing whitespace"),
    tr!("s.triml", triml, 0, 0, "", "strip leading whitespace"),
    tr!("s.reverse", reverse, 0, 0, "", "reverse the characters"),
    tr!(
        "s.eval",
        eval,
        0,
        0,
        "",
        "expand the value as an xlog format"
    ),
];
