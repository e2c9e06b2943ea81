//! SIP-shaped transformations: `{uri.*}`, `{via.*}`, `{param.*}`,
//! `{nameaddr.*}`, `{csv.*}` and `{sdp.*}` (OpenSIPS 3.4). A part that is
//! absent is null; input that does not parse is an error.

use super::{arg_int, arg_str, or_null, text, Arg, TrDef};
use crate::proxy::context::Call;
use crate::pv::Value;
use crate::sip::{NameAddr, Uri, Via};

type R = Result<Value, String>;

fn with_uri(v: &Value, f: impl FnOnce(&Uri) -> Value) -> R {
    let t = text(v);
    let u = Uri::parse(t.trim()).map_err(|_| format!("invalid URI '{t}'"))?;
    Ok(f(&u))
}

fn uri_param_of<'a>(u: &Uri<'a>, name: &str) -> Option<&'a str> {
    u.param(name).map(|v| v.unwrap_or(""))
}

fn uri_user(_: &Call, _: &[Arg], v: Value) -> R {
    with_uri(&v, |u| or_null(u.user))
}
fn uri_host(_: &Call, _: &[Arg], v: Value) -> R {
    with_uri(&v, |u| or_null(Some(u.host)))
}
fn uri_passwd(_: &Call, _: &[Arg], v: Value) -> R {
    with_uri(&v, |u| or_null(u.password))
}
fn uri_port(_: &Call, _: &[Arg], v: Value) -> R {
    with_uri(&v, |u| u.port.map_or(Value::Null, |p| Value::Int(p as i64)))
}
fn uri_params(_: &Call, _: &[Arg], v: Value) -> R {
    with_uri(&v, |u| or_null(Some(u.params)))
}
fn uri_headers(_: &Call, _: &[Arg], v: Value) -> R {
    with_uri(&v, |u| or_null(u.headers))
}
fn uri_param_named(v: &Value, name: &str) -> R {
    with_uri(v, |u| or_null(u.param(name).flatten()))
}
fn uri_param(c: &Call, a: &[Arg], v: Value) -> R {
    let name = arg_str(c, a, 0)?;
    // A parameter without a value is "" (present), absent is null.
    with_uri(&v, |u| {
        uri_param_of(u, &name).map_or(Value::Null, |p| Value::Str(p.to_string()))
    })
}
fn uri_transport(_: &Call, _: &[Arg], v: Value) -> R {
    uri_param_named(&v, "transport")
}
fn uri_ttl(_: &Call, _: &[Arg], v: Value) -> R {
    uri_param_named(&v, "ttl")
}
fn uri_uparam(_: &Call, _: &[Arg], v: Value) -> R {
    uri_param_named(&v, "user")
}
fn uri_maddr(_: &Call, _: &[Arg], v: Value) -> R {
    uri_param_named(&v, "maddr")
}
fn uri_method(_: &Call, _: &[Arg], v: Value) -> R {
    uri_param_named(&v, "method")
}
fn uri_lr(_: &Call, _: &[Arg], v: Value) -> R {
    uri_param_named(&v, "lr")
}
fn uri_r2(_: &Call, _: &[Arg], v: Value) -> R {
    uri_param_named(&v, "r2")
}
fn uri_schema(_: &Call, _: &[Arg], v: Value) -> R {
    let t = text(&v);
    with_uri(&v, |_| or_null(t.trim().split(':').next()))
}

fn with_via(v: &Value, f: impl FnOnce(&Via) -> Value) -> R {
    let t = text(v);
    let via = Via::parse(&t).map_err(|_| format!("invalid Via '{t}'"))?;
    Ok(f(&via))
}

fn via_name(_: &Call, _: &[Arg], v: Value) -> R {
    with_via(&v, |_| Value::Str("SIP".into()))
}
fn via_version(_: &Call, _: &[Arg], v: Value) -> R {
    with_via(&v, |_| Value::Str("2.0".into()))
}
fn via_transport(_: &Call, _: &[Arg], v: Value) -> R {
    with_via(&v, |x| or_null(Some(x.transport)))
}
fn via_host(_: &Call, _: &[Arg], v: Value) -> R {
    with_via(&v, |x| or_null(Some(x.host)))
}
fn via_port(_: &Call, _: &[Arg], v: Value) -> R {
    with_via(&v, |x| x.port.map_or(Value::Null, |p| Value::Int(p as i64)))
}
fn via_params(_: &Call, _: &[Arg], v: Value) -> R {
    with_via(&v, |x| or_null(Some(x.params)))
}
fn via_comment(_: &Call, _: &[Arg], v: Value) -> R {
    // Via comments are not kept by the parser; OpenSIPS gives null too
    // when there is none, which is every real Via.
    with_via(&v, |_| Value::Null)
}
fn via_param(c: &Call, a: &[Arg], v: Value) -> R {
    let name = arg_str(c, a, 0)?;
    with_via(&v, |x| {
        x.param(&name)
            .map_or(Value::Null, |p| Value::Str(p.unwrap_or("").to_string()))
    })
}
fn via_branch(_: &Call, _: &[Arg], v: Value) -> R {
    with_via(&v, |x| or_null(x.branch()))
}
fn via_received(_: &Call, _: &[Arg], v: Value) -> R {
    with_via(&v, |x| or_null(x.received()))
}
fn via_rport(_: &Call, _: &[Arg], v: Value) -> R {
    with_via(&v, |x| or_null(x.param("rport").flatten()))
}

/// `name[=value]` pieces of a parameter list split on `sep` outside
/// double quotes; a leading separator is skipped.
fn params(list: &str, sep: char) -> Vec<(&str, Option<&str>)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut q = false;
    fn push<'a>(out: &mut Vec<(&'a str, Option<&'a str>)>, piece: &'a str) {
        let piece = piece.trim();
        if piece.is_empty() {
            return;
        }
        match piece.find('=') {
            Some(eq) => out.push((piece[..eq].trim(), Some(piece[eq + 1..].trim()))),
            None => out.push((piece, None)),
        }
    }
    for (i, ch) in list.char_indices() {
        if ch == '"' {
            q = !q;
        } else if ch == sep && !q {
            push(&mut out, &list[start..i]);
            start = i + ch.len_utf8();
        }
    }
    push(&mut out, &list[start..]);
    out
}

fn sep_arg(c: &Call, a: &[Arg], i: usize) -> Result<char, String> {
    if a.len() > i {
        arg_str(c, a, i)?
            .chars()
            .next()
            .ok_or_else(|| "empty separator".to_string())
    } else {
        Ok(';')
    }
}

fn param_value(c: &Call, a: &[Arg], v: Value) -> R {
    let name = arg_str(c, a, 0)?;
    let sep = sep_arg(c, a, 1)?;
    let t = text(&v);
    Ok(params(&t, sep)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(&name))
        .map_or(Value::Null, |(_, v)| {
            Value::Str(v.unwrap_or("").to_string())
        }))
}
fn param_exist(c: &Call, a: &[Arg], v: Value) -> R {
    let name = arg_str(c, a, 0)?;
    let sep = sep_arg(c, a, 1)?;
    let t = text(&v);
    Ok(Value::Int(
        params(&t, sep)
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(&name)) as i64,
    ))
}
fn nth<T: Copy>(list: &[T], i: i64) -> Option<T> {
    let i = if i < 0 { list.len() as i64 + i } else { i };
    usize::try_from(i).ok().and_then(|i| list.get(i).copied())
}
fn param_valueat(c: &Call, a: &[Arg], v: Value) -> R {
    let i = arg_int(c, a, 0)?;
    let sep = sep_arg(c, a, 1)?;
    let t = text(&v);
    let l = params(&t, sep);
    nth(&l, i)
        .map(|(_, v)| Value::Str(v.unwrap_or("").to_string()))
        .ok_or_else(|| format!("no parameter at index {i}"))
}
fn param_name(c: &Call, a: &[Arg], v: Value) -> R {
    let i = arg_int(c, a, 0)?;
    let sep = sep_arg(c, a, 1)?;
    let t = text(&v);
    let l = params(&t, sep);
    nth(&l, i)
        .map(|(n, _)| Value::Str(n.to_string()))
        .ok_or_else(|| format!("no parameter at index {i}"))
}
fn param_count(c: &Call, a: &[Arg], v: Value) -> R {
    let sep = sep_arg(c, a, 0)?;
    Ok(Value::Int(params(&text(&v), sep).len() as i64))
}

fn with_na(v: &Value, f: impl FnOnce(&NameAddr, &str) -> Value) -> R {
    let t = text(v);
    let na = NameAddr::parse(&t).map_err(|_| format!("invalid name-addr '{t}'"))?;
    Ok(f(&na, t.trim()))
}
fn na_name(_: &Call, _: &[Arg], v: Value) -> R {
    with_na(&v, |n, _| or_null(n.display))
}
fn na_uri(_: &Call, _: &[Arg], v: Value) -> R {
    with_na(&v, |n, _| or_null(Some(n.uri)))
}
fn na_len(_: &Call, _: &[Arg], v: Value) -> R {
    with_na(&v, |_, t| Value::Int(t.len() as i64))
}
fn na_params(_: &Call, _: &[Arg], v: Value) -> R {
    with_na(&v, |n, _| or_null(Some(n.params)))
}
fn na_param(c: &Call, a: &[Arg], v: Value) -> R {
    let name = arg_str(c, a, 0)?;
    with_na(&v, |n, _| {
        n.param(&name)
            .map_or(Value::Null, |p| Value::Str(p.unwrap_or("").to_string()))
    })
}

/// RFC 4180 fields of one record: commas outside double quotes split,
/// `""` inside quotes is a quote.
fn csv_fields(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut q = false;
    let mut it = t.chars().peekable();
    while let Some(ch) = it.next() {
        match ch {
            '"' if q && it.peek() == Some(&'"') => {
                cur.push('"');
                it.next();
            }
            '"' => q = !q,
            ',' if !q => out.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out
}
fn csv_count(_: &Call, _: &[Arg], v: Value) -> R {
    Ok(Value::Int(csv_fields(&text(&v)).len() as i64))
}
fn csv_value(c: &Call, a: &[Arg], v: Value) -> R {
    let i = arg_int(c, a, 0)?;
    let f = csv_fields(&text(&v));
    let i = if i < 0 { f.len() as i64 + i } else { i };
    usize::try_from(i)
        .ok()
        .and_then(|i| f.get(i))
        .map(|s| Value::Str(s.clone()))
        .ok_or_else(|| format!("index {i} out of bounds"))
}

/// The lines of an SDP body (CRLF or LF separated).
fn sdp_lines(t: &str) -> impl Iterator<Item = &str> {
    t.split('\n').map(|l| l.trim_end_matches('\r'))
}
fn sdp_line(c: &Call, a: &[Arg], v: Value) -> R {
    let ty = arg_str(c, a, 0)?;
    let ty = ty.chars().next().ok_or("empty line type")?;
    let i = if a.len() > 1 { arg_int(c, a, 1)? } else { 0 };
    if i < 0 {
        return Err("negative index".into());
    }
    let t = text(&v);
    let mut prefix = [0u8; 4];
    let prefix = ty.encode_utf8(&mut prefix).to_string() + "=";
    let found = sdp_lines(&t)
        .filter(|l| l.starts_with(&prefix))
        .nth(i as usize)
        .map_or(Value::Null, |l| Value::Str(l.to_string()));
    Ok(found)
}

/// Byte ranges of each `m=` section of an SDP body.
fn sdp_streams(t: &str) -> Vec<(usize, usize, &str)> {
    let mut starts = Vec::new();
    let mut pos = 0;
    for line in t.split_inclusive('\n') {
        if let Some(m) = line.strip_prefix("m=") {
            let media = m.split(' ').next().unwrap_or("").trim();
            starts.push((pos, media));
        }
        pos += line.len();
    }
    let mut out = Vec::new();
    for (k, (s, media)) in starts.iter().enumerate() {
        let e = starts.get(k + 1).map_or(t.len(), |n| n.0);
        out.push((*s, e, *media));
    }
    out
}
fn pick_stream(
    c: &Call,
    a: &[Arg],
    streams: &[(usize, usize, &str)],
) -> Result<Vec<usize>, String> {
    let sel = arg_str(c, a, 0)?;
    if let Ok(i) = sel.trim().parse::<i64>() {
        let i = if i < 0 { streams.len() as i64 + i } else { i };
        return Ok(usize::try_from(i)
            .ok()
            .filter(|i| *i < streams.len())
            .into_iter()
            .collect());
    }
    Ok(streams
        .iter()
        .enumerate()
        .filter(|(_, s)| s.2.eq_ignore_ascii_case(&sel))
        .map(|(i, _)| i)
        .collect())
}
fn sdp_stream(c: &Call, a: &[Arg], v: Value) -> R {
    let t = text(&v);
    let streams = sdp_streams(&t);
    let picked = pick_stream(c, a, &streams)?;
    let Some(&i) = picked.first() else {
        return Err("no such stream".into());
    };
    let (s, e, _) = streams[i];
    Ok(Value::Str(t[s..e].to_string()))
}
fn sdp_stream_delete(c: &Call, a: &[Arg], v: Value) -> R {
    let t = text(&v);
    let streams = sdp_streams(&t);
    let picked = pick_stream(c, a, &streams)?;
    if picked.is_empty() {
        return Err("no such stream".into());
    }
    let mut out = String::with_capacity(t.len());
    let mut at = 0;
    for i in picked {
        let (s, e, _) = streams[i];
        out.push_str(&t[at..s]);
        at = e;
    }
    out.push_str(&t[at..]);
    Ok(Value::Str(out))
}

pub(super) static DEFS: &[TrDef] = &[
    tr!("uri.user", uri_user, 0, 0, "", "user part"),
    tr!(
        "uri.host",
        uri_host,
        0,
        0,
        "",
        "host part (IPv6 with brackets)"
    ),
    tr!("uri.domain", uri_host, 0, 0, "", "alias of uri.host"),
    tr!("uri.passwd", uri_passwd, 0, 0, "", "password"),
    tr!(
        "uri.port",
        uri_port,
        0,
        0,
        "",
        "port as an integer, null if absent"
    ),
    tr!(
        "uri.params",
        uri_params,
        0,
        0,
        "",
        "all parameters (without the first ';')"
    ),
    tr!(
        "uri.param",
        uri_param,
        1,
        1,
        ",name",
        "a parameter's value; \"\" if it has none, null if absent"
    ),
    tr!("uri.headers", uri_headers, 0, 0, "", "headers after '?'"),
    tr!(
        "uri.transport",
        uri_transport,
        0,
        0,
        "",
        "transport parameter"
    ),
    tr!("uri.ttl", uri_ttl, 0, 0, "", "ttl parameter"),
    tr!("uri.uparam", uri_uparam, 0, 0, "", "user parameter"),
    tr!("uri.maddr", uri_maddr, 0, 0, "", "maddr parameter"),
    tr!("uri.method", uri_method, 0, 0, "", "method parameter"),
    tr!(
        "uri.lr",
        uri_lr,
        0,
        0,
        "",
        "lr parameter's value (null when it has none)"
    ),
    tr!("uri.r2", uri_r2, 0, 0, "", "r2 parameter"),
    tr!(
        "uri.schema",
        uri_schema,
        0,
        0,
        "",
        "scheme (sip, sips, tel)"
    ),
    tr!("via.name", via_name, 0, 0, "", "protocol name (SIP)"),
    tr!(
        "via.version",
        via_version,
        0,
        0,
        "",
        "protocol version (2.0)"
    ),
    tr!(
        "via.transport",
        via_transport,
        0,
        0,
        "",
        "transport (UDP, TCP, …)"
    ),
    tr!("via.host", via_host, 0, 0, "", "sent-by host"),
    tr!(
        "via.port",
        via_port,
        0,
        0,
        "",
        "sent-by port, null if absent"
    ),
    tr!(
        "via.comment",
        via_comment,
        0,
        0,
        "",
        "comment (always null in lunasip)"
    ),
    tr!("via.params", via_params, 0, 0, "", "all parameters"),
    tr!(
        "via.param",
        via_param,
        1,
        1,
        ",name",
        "a parameter's value; \"\" if it has none, null if absent"
    ),
    tr!("via.branch", via_branch, 0, 0, "", "branch parameter"),
    tr!("via.received", via_received, 0, 0, "", "received parameter"),
    tr!("via.rport", via_rport, 0, 0, "", "rport parameter's value"),
    tr!(
        "param.value",
        param_value,
        1,
        2,
        ",name[,sep]",
        "value of a parameter; null if absent"
    ),
    tr!(
        "param.exist",
        param_exist,
        1,
        2,
        ",name[,sep]",
        "1 if the parameter is present, else 0"
    ),
    tr!(
        "param.valueat",
        param_valueat,
        1,
        2,
        ",index[,sep]",
        "value of the index-th parameter"
    ),
    tr!(
        "param.name",
        param_name,
        1,
        2,
        ",index[,sep]",
        "name of the index-th parameter"
    ),
    tr!(
        "param.count",
        param_count,
        0,
        1,
        "[,sep]",
        "number of parameters"
    ),
    tr!(
        "nameaddr.name",
        na_name,
        0,
        0,
        "",
        "display name as written"
    ),
    tr!("nameaddr.uri", na_uri, 0, 0, "", "the URI"),
    tr!(
        "nameaddr.len",
        na_len,
        0,
        0,
        "",
        "length of the whole value"
    ),
    tr!(
        "nameaddr.params",
        na_params,
        0,
        0,
        "",
        "header parameters after the URI"
    ),
    tr!(
        "nameaddr.param",
        na_param,
        1,
        1,
        ",name",
        "a header parameter's value"
    ),
    tr!(
        "csv.count",
        csv_count,
        0,
        0,
        "",
        "number of comma-separated fields (RFC 4180)"
    ),
    tr!(
        "csv.value",
        csv_value,
        1,
        1,
        ",index",
        "the index-th field; negative from the end"
    ),
    tr!(
        "sdp.line",
        sdp_line,
        1,
        2,
        ",type[,index]",
        "the index-th SDP line of a type (`m`, `a`, …)"
    ),
    tr!(
        "sdp.stream",
        sdp_stream,
        1,
        1,
        ",index|media",
        "one m= section by index or media type"
    ),
    tr!(
        "sdp.stream-delete",
        sdp_stream_delete,
        1,
        1,
        ",index|media",
        "the body without that m= section (all of that media type)"
    ),
];
