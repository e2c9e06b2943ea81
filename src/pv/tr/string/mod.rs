//! String transformations, `{s.*}` (OpenSIPS 3.4 "String Transformations").

use super::{arg_int, arg_str, text, Arg, TrDef};
use crate::proxy::context::Call;
use crate::pv::hash;
use crate::pv::Value;

mod encode;
use encode::*;
pub(crate) use encode::{b64decode_bytes, b64encode_bytes};

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
