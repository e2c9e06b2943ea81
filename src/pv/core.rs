//! The core pseudo-variables: request line, From/To, Call-ID, CSeq,
//! source, destination URI, reply status, headers.

use super::{PvDef, Spec, Value};
use crate::proxy::context::Call;
use crate::sip::{Message, NameAddr, Uri};

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

fn msg(c: &Call) -> Option<&Message> {
    c.msg.as_ref()
}

fn opt(v: Option<&str>) -> Value {
    v.map_or(Value::Null, s)
}

fn ruri_part(c: &Call, f: fn(&Uri) -> Value) -> Value {
    match msg(c).filter(|m| m.is_request()).map(|m| m.ruri()) {
        Some(r) => Uri::parse(r).map_or(Value::Null, |u| f(&u)),
        None => Value::Null,
    }
}

fn uri_user(u: &Uri) -> Value {
    opt(u.user)
}
fn uri_host(u: &Uri) -> Value {
    s(u.host)
}
fn uri_port(u: &Uri) -> Value {
    // OpenSIPS $rp/$dp give 5060 when the URI has no port... for $rp it
    // returns the port as written or empty; we follow the written value.
    u.port.map_or(Value::Null, |p| Value::Int(p as i64))
}

fn addr_part(na: Option<NameAddr>, f: fn(&Uri) -> Value) -> Value {
    match na {
        Some(na) => Uri::parse(na.uri).map_or(Value::Null, |u| f(&u)),
        None => Value::Null,
    }
}

fn get_rm(c: &Call, _: &Spec) -> Value {
    msg(c).map_or(Value::Null, |m| s(m.method()))
}
fn get_ru(c: &Call, _: &Spec) -> Value {
    msg(c)
        .filter(|m| m.is_request())
        .map_or(Value::Null, |m| s(m.ruri()))
}
fn get_ru_user(c: &Call, _: &Spec) -> Value {
    ruri_part(c, uri_user)
}
fn get_ru_host(c: &Call, _: &Spec) -> Value {
    ruri_part(c, uri_host)
}
fn get_ru_port(c: &Call, _: &Spec) -> Value {
    ruri_part(c, uri_port)
}
fn get_fu(c: &Call, _: &Spec) -> Value {
    msg(c)
        .and_then(|m| m.from())
        .map_or(Value::Null, |f| s(f.uri))
}
fn get_fu_user(c: &Call, _: &Spec) -> Value {
    addr_part(msg(c).and_then(|m| m.from()), uri_user)
}
fn get_fu_host(c: &Call, _: &Spec) -> Value {
    addr_part(msg(c).and_then(|m| m.from()), uri_host)
}
fn get_tu(c: &Call, _: &Spec) -> Value {
    msg(c)
        .and_then(|m| m.to())
        .map_or(Value::Null, |t| s(t.uri))
}
fn get_tu_user(c: &Call, _: &Spec) -> Value {
    addr_part(msg(c).and_then(|m| m.to()), uri_user)
}
fn get_tu_host(c: &Call, _: &Spec) -> Value {
    addr_part(msg(c).and_then(|m| m.to()), uri_host)
}
fn get_ft(c: &Call, _: &Spec) -> Value {
    opt(msg(c).and_then(|m| m.from_tag()))
}
fn get_tt(c: &Call, _: &Spec) -> Value {
    opt(msg(c).and_then(|m| m.to_tag()))
}
fn get_ci(c: &Call, _: &Spec) -> Value {
    opt(msg(c).and_then(|m| m.call_id()))
}
fn get_cs(c: &Call, _: &Spec) -> Value {
    msg(c)
        .and_then(|m| m.cseq())
        .map_or(Value::Null, |cs| Value::Int(cs.num as i64))
}
fn get_si(c: &Call, _: &Spec) -> Value {
    Value::Str(c.src.addr.ip().to_string())
}
fn get_sp(c: &Call, _: &Spec) -> Value {
    Value::Int(c.src.addr.port() as i64)
}
fn get_pr(c: &Call, _: &Spec) -> Value {
    s(c.src.proto.as_str())
}
fn get_du(c: &Call, _: &Spec) -> Value {
    opt(c.du.as_deref())
}
fn get_rs(c: &Call, _: &Spec) -> Value {
    msg(c)
        .and_then(|m| m.status())
        .map_or(Value::Null, |v| Value::Int(v as i64))
}
fn get_rr(c: &Call, _: &Spec) -> Value {
    opt(msg(c).and_then(|m| m.reason()))
}
fn get_ua(c: &Call, _: &Spec) -> Value {
    opt(msg(c).and_then(|m| m.header("User-Agent")))
}

/// `$hdr(name)`: the first header's value; `[n]` the n-th value (negative
/// from the end); `[*]` every value joined by ", " (OpenSIPS semantics).
fn get_hdr(c: &Call, spec: &Spec) -> Value {
    let (Some(m), Some(name)) = (msg(c), spec.name(c)) else {
        return Value::Null;
    };
    match spec.index(c) {
        None => opt(m.header(&name)),
        Some(Err(())) => {
            let vals = m.header_values(&name);
            if vals.is_empty() {
                Value::Null
            } else {
                Value::Str(vals.join(", "))
            }
        }
        Some(Ok(i)) if i >= 0 => opt(nth_value(m, &name, i as usize)),
        Some(Ok(i)) => {
            let vals = m.header_values(&name);
            pick(&vals, i).map_or(Value::Null, s)
        }
    }
}

/// The i-th value of a header without collecting them all (`[0]` of a
/// message with many Via values stops at the first).
fn nth_value<'a>(m: &'a Message, name: &str, mut i: usize) -> Option<&'a str> {
    use crate::sip::header::{is_list, same_name};
    let list = is_list(name);
    for h in m.headers().filter(|h| same_name(h.name, name)) {
        if list {
            for v in crate::sip::split::CommaSplit::new(h.value) {
                if i == 0 {
                    return Some(v);
                }
                i -= 1;
            }
        } else if i == 0 {
            return Some(h.value);
        } else {
            i -= 1;
        }
    }
    None
}

/// The i-th element, negative from the end.
pub(crate) fn pick<'a>(vals: &[&'a str], i: i64) -> Option<&'a str> {
    let idx = if i < 0 { vals.len() as i64 + i } else { i };
    usize::try_from(idx).ok().and_then(|i| vals.get(i)).copied()
}

fn get_hdrcnt(c: &Call, spec: &Spec) -> Value {
    match (msg(c), spec.name(c)) {
        (Some(m), Some(n)) => Value::Int(m.header_values(&n).len() as i64),
        _ => Value::Int(0),
    }
}

pub(crate) fn want_str(v: Value, what: &str) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Int(i) => Ok(i.to_string()),
        Value::Null => Err(format!("${what} cannot be set to null")),
    }
}

pub(crate) fn request_mut<'a>(c: &'a mut Call, what: &str) -> Result<&'a mut Message, String> {
    match c.msg.as_mut() {
        Some(m) if m.is_request() => Ok(m),
        _ => Err(format!("${what} needs a request")),
    }
}

fn set_ru(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    let v = want_str(v, "ru")?;
    Uri::parse(&v).map_err(|_| format!("$ru: '{v}' is not a valid URI"))?;
    request_mut(c, "ru")?.set_ruri(&v);
    Ok(())
}

/// Rewrites one span of the R-URI (user, host or port).
pub(crate) fn splice_ruri(
    c: &mut Call,
    what: &str,
    f: impl Fn(&Uri, &str) -> String,
    v: Value,
) -> Result<(), String> {
    let v = match v {
        Value::Null => String::new(),
        other => want_str(other, what)?,
    };
    let m = request_mut(c, what)?;
    let cur = m.ruri().to_string();
    let u = Uri::parse(&cur).map_err(|_| format!("${what}: the R-URI does not parse"))?;
    let new = f(&u, &v);
    Uri::parse(&new).map_err(|_| format!("${what}: '{v}' makes an invalid URI"))?;
    m.set_ruri(&new);
    Ok(())
}

fn set_ru_user(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    splice_ruri(
        c,
        "rU",
        |u, v| match &u.user_span {
            Some(sp) if v.is_empty() => {
                // Drop "user[:pass]@".
                let at = u.host_span.start;
                format!("{}{}", &u.text[..sp.start], &u.text[at..])
            }
            Some(sp) => format!("{}{}{}", &u.text[..sp.start], v, &u.text[sp.end..]),
            None if v.is_empty() => u.text.to_string(),
            None => format!(
                "{}{}@{}",
                &u.text[..u.host_span.start],
                v,
                &u.text[u.host_span.start..]
            ),
        },
        v,
    )
}

/// `u` with its host replaced by `v`.
pub(super) fn splice_host(u: &Uri, v: &str) -> String {
    format!(
        "{}{}{}",
        &u.text[..u.host_span.start],
        v,
        &u.text[u.host_span.end..]
    )
}

/// `u` with its port replaced by `v` (an empty `v` drops it).
pub(super) fn splice_port(u: &Uri, v: &str) -> String {
    match &u.port_span {
        // port_span covers the digits; drop the ':' too when clearing.
        Some(sp) if v.is_empty() => format!(
            "{}{}",
            &u.text[..sp.start.saturating_sub(1)],
            &u.text[sp.end..]
        ),
        Some(sp) => format!("{}{}{}", &u.text[..sp.start], v, &u.text[sp.end..]),
        None if v.is_empty() => u.text.to_string(),
        None => format!(
            "{}:{}{}",
            &u.text[..u.host_span.end],
            v,
            &u.text[u.host_span.end..]
        ),
    }
}

fn set_ru_host(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    splice_ruri(c, "rd", splice_host, v)
}

fn set_ru_port(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    splice_ruri(c, "rp", splice_port, v)
}

fn set_du(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    match v {
        Value::Null => c.du = None,
        other => {
            let v = want_str(other, "du")?;
            if v.is_empty() {
                c.du = None;
            } else {
                Uri::parse(&v).map_err(|_| format!("$du: '{v}' is not a valid URI"))?;
                c.du = Some(v);
            }
        }
    }
    Ok(())
}

fn peek_rm<'a>(c: &'a Call, _: &Spec) -> Option<&'a str> {
    msg(c).map(|m| m.method())
}
fn peek_ru<'a>(c: &'a Call, _: &Spec) -> Option<&'a str> {
    msg(c).filter(|m| m.is_request()).map(|m| m.ruri())
}
fn peek_fu<'a>(c: &'a Call, _: &Spec) -> Option<&'a str> {
    msg(c).and_then(|m| m.from()).map(|f| f.uri)
}
fn peek_tu<'a>(c: &'a Call, _: &Spec) -> Option<&'a str> {
    msg(c).and_then(|m| m.to()).map(|t| t.uri)
}
fn peek_ft<'a>(c: &'a Call, _: &Spec) -> Option<&'a str> {
    msg(c).and_then(|m| m.from_tag())
}
fn peek_tt<'a>(c: &'a Call, _: &Spec) -> Option<&'a str> {
    msg(c).and_then(|m| m.to_tag())
}
fn peek_ci<'a>(c: &'a Call, _: &Spec) -> Option<&'a str> {
    msg(c).and_then(|m| m.call_id())
}
fn peek_du<'a>(c: &'a Call, _: &Spec) -> Option<&'a str> {
    c.du.as_deref()
}
fn peek_ua<'a>(c: &'a Call, _: &Spec) -> Option<&'a str> {
    msg(c).and_then(|m| m.header("User-Agent"))
}
/// Only called for a literal name (see `pv::peek`).
fn peek_hdr<'a>(c: &'a Call, spec: &Spec) -> Option<&'a str> {
    msg(c)?.header(spec.inner_lit()?)
}

/// Every pseudo-variable the core knows. Later modules append theirs.
pub static DEFS: &[PvDef] = &[
    ro!(
        "rm",
        get_rm,
        peek_rm,
        "request method (CSeq method for replies)"
    ),
    PvDef {
        name: "ru",
        get: get_ru,
        set: Some(set_ru),
        takes_inner: false,
        doc: "request URI (writable)",
        peek: Some(peek_ru),
    },
    PvDef {
        name: "rU",
        get: get_ru_user,
        set: Some(set_ru_user),
        takes_inner: false,
        doc: "user of the request URI (writable)",
        peek: None,
    },
    PvDef {
        name: "rd",
        get: get_ru_host,
        set: Some(set_ru_host),
        takes_inner: false,
        doc: "host of the request URI (writable)",
        peek: None,
    },
    PvDef {
        name: "rp",
        get: get_ru_port,
        set: Some(set_ru_port),
        takes_inner: false,
        doc: "port of the request URI (writable)",
        peek: None,
    },
    ro!("fu", get_fu, peek_fu, "URI of the From header"),
    ro!("fU", get_fu_user, "user of the From URI"),
    ro!("fd", get_fu_host, "host of the From URI"),
    ro!("ft", get_ft, peek_ft, "From tag"),
    ro!("tu", get_tu, peek_tu, "URI of the To header"),
    ro!("tU", get_tu_user, "user of the To URI"),
    ro!("td", get_tu_host, "host of the To URI"),
    ro!("tt", get_tt, peek_tt, "To tag"),
    ro!("ci", get_ci, peek_ci, "Call-ID"),
    ro!("cs", get_cs, "CSeq number"),
    ro!("si", get_si, "source IP of the message"),
    ro!("sp", get_sp, "source port of the message"),
    ro!("pr", get_pr, "transport the message came on (udp, tcp)"),
    ro!("proto", get_pr, "alias of $pr"),
    PvDef {
        name: "du",
        get: get_du,
        set: Some(set_du),
        takes_inner: false,
        doc: "destination URI, the next hop when set (writable; null clears)",
        peek: Some(peek_du),
    },
    ro!("rs", get_rs, "reply status code"),
    ro!("rr", get_rr, "reply reason phrase"),
    ro!("ua", get_ua, peek_ua, "User-Agent header"),
    PvDef {
        name: "hdr",
        get: get_hdr,
        set: None,
        takes_inner: true,
        doc: "header value by name; [n] n-th value, [-1] last, [*] all",
        peek: Some(peek_hdr),
    },
    PvDef {
        name: "hdrcnt",
        get: get_hdrcnt,
        set: None,
        takes_inner: true,
        doc: "number of values of a header",
        peek: None,
    },
    // OpenSIPS 3.4 pvar.c's long names for the same variables.
    PvDef {
        name: "ruri",
        get: get_ru,
        set: Some(set_ru),
        takes_inner: false,
        doc: "long name of $ru (writable)",
        peek: Some(peek_ru),
    },
    PvDef {
        name: "ruri.user",
        get: get_ru_user,
        set: Some(set_ru_user),
        takes_inner: false,
        doc: "long name of $rU (writable)",
        peek: None,
    },
    PvDef {
        name: "ruri.domain",
        get: get_ru_host,
        set: Some(set_ru_host),
        takes_inner: false,
        doc: "long name of $rd (writable)",
        peek: None,
    },
    PvDef {
        name: "duri",
        get: get_du,
        set: Some(set_du),
        takes_inner: false,
        doc: "long name of $du (writable; null clears)",
        peek: Some(peek_du),
    },
    ro!("from", get_fu, peek_fu, "long name of $fu"),
    ro!("from.user", get_fu_user, "long name of $fU"),
    ro!("from.domain", get_fu_host, "long name of $fd"),
    ro!("to", get_tu, peek_tu, "long name of $tu"),
    ro!("to.user", get_tu_user, "long name of $tU"),
    ro!("to.domain", get_tu_host, "long name of $td"),
    ro!("src_ip", get_si, "long name of $si"),
];
