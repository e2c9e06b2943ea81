//! Message-derived pseudo-variables beyond the core set: the original
//! R-URI, destination parts, display names, Contact, body and message,
//! flags, sockets, identity headers and digest credentials.

use std::borrow::Cow;

use super::core::{pick, want_str};
use super::{PvDef, Spec, Value};
use crate::proxy::context::Call;
use crate::sip::{Contacts, Message, NameAddr, Uri};
use crate::transport::myself::SocketInfo;

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}
fn opt(v: Option<&str>) -> Value {
    v.map_or(Value::Null, s)
}
fn int(v: impl TryInto<i64>) -> Value {
    v.try_into().map_or(Value::Null, Value::Int)
}
fn msg(c: &Call) -> Option<&Message> {
    c.msg.as_ref()
}
fn flag(b: bool) -> Value {
    Value::Int(b as i64)
}

fn uri_of(text: Option<&str>, f: fn(&Uri) -> Value) -> Value {
    match text.map(Uri::parse) {
        Some(Ok(u)) => f(&u),
        _ => Value::Null,
    }
}
fn u_user(u: &Uri) -> Value {
    opt(u.user)
}
fn u_host(u: &Uri) -> Value {
    s(u.host)
}
fn u_port(u: &Uri) -> Value {
    u.port.map_or(Value::Null, |p| Value::Int(p as i64))
}
fn u_proto(u: &Uri) -> Value {
    opt(u.param("transport").flatten())
}

fn oruri(c: &Call) -> Option<&str> {
    msg(c).filter(|m| m.is_request()).map(|m| m.original_ruri())
}
fn get_ou(c: &Call, _: &Spec) -> Value {
    opt(oruri(c))
}
fn get_ou_user(c: &Call, _: &Spec) -> Value {
    uri_of(oruri(c), u_user)
}
fn get_ou_host(c: &Call, _: &Spec) -> Value {
    uri_of(oruri(c), u_host)
}
fn get_ou_port(c: &Call, _: &Spec) -> Value {
    uri_of(oruri(c), u_port)
}
fn get_ou_proto(c: &Call, _: &Spec) -> Value {
    uri_of(oruri(c), u_proto)
}
fn ruri(c: &Call) -> Option<&str> {
    msg(c).filter(|m| m.is_request()).map(|m| m.ruri())
}
fn get_ru_proto(c: &Call, _: &Spec) -> Value {
    uri_of(ruri(c), u_proto)
}
fn get_ru_q(c: &Call, _: &Spec) -> Value {
    c.ru_q.map_or(Value::Null, Value::Int)
}
fn set_ru_q(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    c.ru_q = match v {
        Value::Null => None,
        v => Some(v.to_int().ok_or("$ru_q needs a number")?),
    };
    Ok(())
}
fn get_dd(c: &Call, _: &Spec) -> Value {
    uri_of(c.du.as_deref(), u_host)
}
fn get_dp(c: &Call, _: &Spec) -> Value {
    uri_of(c.du.as_deref(), u_port)
}
/// `$dd = host` / `$dp = port` (OpenSIPS msg_parser.c
/// `set_dst_host_port`): edits `$du`, which must be set.
fn splice_du(
    c: &mut Call,
    what: &str,
    v: &str,
    f: fn(&crate::sip::Uri, &str) -> String,
) -> Result<(), String> {
    let cur =
        c.du.clone()
            .ok_or_else(|| format!("${what}: $du is not set"))?;
    let u = crate::sip::Uri::parse(&cur).map_err(|_| format!("${what}: $du does not parse"))?;
    let new = f(&u, v);
    crate::sip::Uri::parse(&new).map_err(|_| format!("${what}: '{v}' makes an invalid URI"))?;
    c.du = Some(new);
    Ok(())
}
fn set_dd(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    let v = want_str(v, "dd")?;
    if v.is_empty() || v.contains(|ch: char| ch.is_whitespace() || "@;?<>".contains(ch)) {
        return Err(format!("$dd: '{v}' is not a host"));
    }
    splice_du(c, "dd", &v, super::core::splice_host)
}
fn set_dp(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    let v = match v {
        Value::Null => String::new(),
        Value::Int(n) => n.to_string(),
        other => want_str(other, "dp")?,
    };
    if !v.is_empty() && v.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("$dp: '{v}' is not a port"));
    }
    splice_du(c, "dp", &v, super::core::splice_port)
}
fn get_dproto(c: &Call, _: &Spec) -> Value {
    uri_of(c.du.as_deref(), u_proto)
}

/// The display name as written (quotes kept), as OpenSIPS gives it.
fn display(na: Option<NameAddr>) -> Value {
    opt(na.as_ref().and_then(|n| n.display))
}
fn get_fn(c: &Call, _: &Spec) -> Value {
    display(msg(c).and_then(|m| m.from()))
}
fn get_tn(c: &Call, _: &Spec) -> Value {
    display(msg(c).and_then(|m| m.to()))
}

fn get_cl(c: &Call, _: &Spec) -> Value {
    match msg(c).and_then(|m| m.header("Content-Length")) {
        Some(v) => v.trim().parse::<i64>().map_or(Value::Null, Value::Int),
        None => Value::Null,
    }
}
fn get_ct_type(c: &Call, _: &Spec) -> Value {
    opt(msg(c).and_then(|m| m.header("Content-Type")))
}
fn get_ct(c: &Call, spec: &Spec) -> Value {
    let Some(m) = msg(c) else {
        return Value::Null;
    };
    let vals = m.header_values("Contact");
    match spec.index(c) {
        None => opt(vals.first().copied()),
        Some(Err(())) if vals.is_empty() => Value::Null,
        Some(Err(())) => Value::Str(vals.join(", ")),
        Some(Ok(i)) => opt(pick(&vals, i)),
    }
}
/// `$ct.fields(uri|name|q|expires|methods|received|params)`.
fn get_ct_fields(c: &Call, spec: &Spec) -> Value {
    let (Some(m), Some(field)) = (msg(c), spec.name(c)) else {
        return Value::Null;
    };
    let Ok(Contacts::List(list)) = m.contacts() else {
        return Value::Null;
    };
    let i = match spec.index(c) {
        Some(Ok(i)) => i,
        _ => 0,
    };
    let i = if i < 0 { list.len() as i64 + i } else { i };
    let Some(ct) = usize::try_from(i).ok().and_then(|i| list.get(i)) else {
        return Value::Null;
    };
    match field.as_ref() {
        "uri" => s(ct.uri),
        "name" => opt(ct.display),
        "params" => opt(Some(ct.params).filter(|p| !p.is_empty())),
        p @ ("q" | "expires" | "methods" | "received") => opt(ct.param(p).flatten()),
        _ => Value::Null,
    }
}

fn get_hdr_name(c: &Call, spec: &Spec) -> Value {
    let Some(m) = msg(c) else {
        return Value::Null;
    };
    let names: Vec<&str> = m.headers().map(|h| h.name).collect();
    match spec.index(c) {
        None => opt(names.first().copied()),
        Some(Err(())) => Value::Str(names.join(", ")),
        Some(Ok(i)) => opt(pick(&names, i)),
    }
}

fn body_text(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(t) => s(t),
        Err(_) => Value::Str(String::from_utf8_lossy(b).into_owned()),
    }
}

/// The part of a multipart body whose Content-Type is `mime` (RFC 2046
/// §5.1); the whole body when it is of that type itself.
fn body_part<'a>(ctype: &str, body: &'a [u8], mime: &str) -> Option<&'a [u8]> {
    let main = ctype.split(';').next().unwrap_or("").trim();
    if main.eq_ignore_ascii_case(mime) {
        return Some(body);
    }
    if !main.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    let boundary = ctype.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"'))
    })?;
    let delim = format!("--{boundary}");
    let text = std::str::from_utf8(body).ok()?;
    for part in text.split(delim.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let (head, rest) = part
            .split_once("\r\n\r\n")
            .or_else(|| part.split_once("\n\n"))?;
        let pt = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-type")
                .then(|| v.trim())
        });
        if let Some(pt) = pt {
            if let Some(found) = body_part(pt, rest.as_bytes(), mime) {
                let found = std::str::from_utf8(found).ok()?;
                let found = found.strip_suffix("\r\n").unwrap_or(found);
                return Some(found.as_bytes());
            }
        }
    }
    None
}

fn get_rb(c: &Call, spec: &Spec) -> Value {
    let Some(m) = msg(c) else {
        return Value::Null;
    };
    let body = m.body();
    match spec.name(c) {
        None if body.is_empty() => Value::Null,
        None => body_text(body),
        Some(mime) => {
            let ct = m.header("Content-Type").unwrap_or("");
            body_part(ct, body, mime.trim()).map_or(Value::Null, body_text)
        }
    }
}
fn get_mb(c: &Call, _: &Spec) -> Value {
    msg(c).map_or(Value::Null, |m| body_text(m.as_bytes()))
}
fn get_ml(c: &Call, _: &Spec) -> Value {
    msg(c).map_or(Value::Null, |m| int(m.as_bytes().len()))
}
fn get_mi(c: &Call, _: &Spec) -> Value {
    int(c.msg_id)
}
fn get_mf(c: &Call, _: &Spec) -> Value {
    Value::Int(c.flags as i64)
}
fn set_mf(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    c.flags = v.to_int().unwrap_or(0) as u64;
    Ok(())
}
fn get_bf(c: &Call, _: &Spec) -> Value {
    Value::Int(c.bflags as i64)
}
fn set_bf(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    c.bflags = v.to_int().unwrap_or(0) as u64;
    Ok(())
}
fn flag_bit(c: &Call, spec: &Spec) -> Result<u32, String> {
    let n = spec.name(c).ok_or("flag number missing")?;
    match n.trim().parse::<u32>() {
        Ok(b) if b < 64 => Ok(b),
        _ => Err(format!("bad flag '{n}' (0..63)")),
    }
}
fn get_msg_flag(c: &Call, spec: &Spec) -> Value {
    flag_bit(c, spec).map_or(Value::Null, |b| flag(c.flags & (1 << b) != 0))
}
fn set_msg_flag(c: &mut Call, spec: &Spec, v: Value) -> Result<(), String> {
    let b = flag_bit(c, spec)?;
    if v.to_int().unwrap_or(0) != 0 {
        c.flags |= 1 << b;
    } else {
        c.flags &= !(1 << b);
    }
    Ok(())
}
fn get_branch_flag(c: &Call, spec: &Spec) -> Value {
    flag_bit(c, spec).map_or(Value::Null, |b| flag(c.bflags & (1 << b) != 0))
}
fn set_branch_flag(c: &mut Call, spec: &Spec, v: Value) -> Result<(), String> {
    let b = flag_bit(c, spec)?;
    if v.to_int().unwrap_or(0) != 0 {
        c.bflags |= 1 << b;
    } else {
        c.bflags &= !(1 << b);
    }
    Ok(())
}
fn get_is_request(c: &Call, _: &Spec) -> Value {
    msg(c).map_or(Value::Null, |m| flag(m.is_request()))
}
fn get_msg_type(c: &Call, _: &Spec) -> Value {
    msg(c).map_or(Value::Null, |m| {
        s(if m.is_request() { "request" } else { "reply" })
    })
}

/// `$rr_params` (OpenSIPS rr): the parameters of our Route entry.
fn get_rr_params(c: &Call, _: &Spec) -> Value {
    c.rr_params()
        .filter(|p| !p.is_empty())
        .map_or(Value::Null, Value::Str)
}

fn socket(c: &Call, idx: usize) -> Option<&SocketInfo> {
    c.sockets.as_ref()?.list.get(idx)
}
fn socket_field(sock: Option<&SocketInfo>, field: &str) -> Value {
    let Some(sk) = sock else {
        return Value::Null;
    };
    match field {
        "" => Value::Str(sk.spec()),
        "ip" => Value::Str(sk.addr.ip().to_string()),
        "port" => Value::Int(sk.addr.port() as i64),
        "proto" => s(sk.proto.as_str()),
        "advertised_ip" | "adv_ip" => Value::Str(sk.adv_host.clone()),
        "advertised_port" | "adv_port" => Value::Int(sk.adv_port as i64),
        "af" => s(if sk.addr.is_ipv4() { "INET" } else { "INET6" }),
        "name" | "tag" | "anycast" => Value::Null,
        _ => Value::Null,
    }
}
fn get_socket_in(c: &Call, spec: &Spec) -> Value {
    let f = spec.name(c).unwrap_or(Cow::Borrowed(""));
    socket_field(socket(c, c.src.socket), f.trim())
}
fn get_socket_out(c: &Call, spec: &Spec) -> Value {
    let f = spec.name(c).unwrap_or(Cow::Borrowed(""));
    match c.socket_out {
        Some(i) => socket_field(socket(c, i), f.trim()),
        None => Value::Null,
    }
}
/// `$socket_out = "udp:127.0.0.1:5060"`: forces the sending socket.
fn set_socket_out(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    if v == Value::Null {
        c.socket_out = None;
        return Ok(());
    }
    let want = want_str(v, "socket_out")?;
    let list = c.sockets.as_ref().ok_or("no sockets known")?;
    let found = list
        .by_spec(&want)
        .map(|sk| sk.id)
        .ok_or_else(|| format!("'{want}' is not a listening socket"))?;
    c.socket_out = Some(found);
    Ok(())
}
fn get_ri(c: &Call, _: &Spec) -> Value {
    socket_field(socket(c, c.src.socket), "ip")
}
fn get_rp_local(c: &Call, _: &Spec) -> Value {
    socket_field(socket(c, c.src.socket), "port")
}
fn get_af(c: &Call, _: &Spec) -> Value {
    s(if c.src.addr.is_ipv4() {
        "INET"
    } else {
        "INET6"
    })
}

fn header_na<'a>(c: &'a Call, name: &str) -> Option<NameAddr<'a>> {
    NameAddr::parse(msg(c)?.header_values(name).first()?).ok()
}
fn na_uri(c: &Call, name: &str) -> Value {
    header_na(c, name).map_or(Value::Null, |n| s(n.uri))
}
fn get_ai(c: &Call, _: &Spec) -> Value {
    na_uri(c, "P-Asserted-Identity")
}
fn get_re(c: &Call, _: &Spec) -> Value {
    na_uri(c, "Remote-Party-ID")
}
fn get_rt(c: &Call, _: &Spec) -> Value {
    na_uri(c, "Refer-To")
}
fn get_di(c: &Call, _: &Spec) -> Value {
    na_uri(c, "Diversion")
}
fn get_dir(c: &Call, _: &Spec) -> Value {
    header_na(c, "Diversion").map_or(Value::Null, |n| opt(n.param("reason").flatten()))
}
fn get_dip(c: &Call, _: &Spec) -> Value {
    header_na(c, "Diversion").map_or(Value::Null, |n| opt(n.param("privacy").flatten()))
}
fn get_pu(c: &Call, _: &Spec) -> Value {
    na_uri(c, "P-Preferred-Identity")
}
fn get_pu_user(c: &Call, _: &Spec) -> Value {
    uri_of(header_na(c, "P-Preferred-Identity").map(|n| n.uri), u_user)
}
fn get_pu_host(c: &Call, _: &Spec) -> Value {
    uri_of(header_na(c, "P-Preferred-Identity").map(|n| n.uri), u_host)
}
fn get_pn(c: &Call, _: &Spec) -> Value {
    display(header_na(c, "P-Preferred-Identity"))
}
fn get_path(c: &Call, _: &Spec) -> Value {
    match msg(c).map(|m| m.header_values("Path")) {
        Some(v) if !v.is_empty() => Value::Str(v.join(",")),
        _ => Value::Null,
    }
}

/// Digest credentials (RFC 2617 §3.2.2) of the first Proxy-Authorization,
/// else Authorization header: `name=value` pairs, quotes removed.
fn credentials(c: &Call) -> Option<Vec<(String, String)>> {
    let m = msg(c)?;
    let v = m
        .header("Proxy-Authorization")
        .or_else(|| m.header("Authorization"))?;
    let rest = v.trim();
    let sp = rest.find(char::is_whitespace)?;
    if !rest[..sp].eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut out = Vec::new();
    let mut q = false;
    let mut start = sp;
    let b = rest.as_bytes();
    let mut push = |piece: &str| {
        if let Some((k, v)) = piece.split_once('=') {
            out.push((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ));
        }
    };
    for (i, &ch) in b.iter().enumerate().skip(sp) {
        match ch {
            b'"' => q = !q,
            b',' if !q => {
                push(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&rest[start..]);
    Some(out)
}
fn cred(c: &Call, key: &str) -> Value {
    credentials(c)
        .and_then(|l| l.into_iter().find(|(k, _)| k == key))
        .map_or(Value::Null, |(_, v)| Value::Str(v))
}
fn get_au(c: &Call, _: &Spec) -> Value {
    cred(c, "username")
}
fn get_au_user(c: &Call, _: &Spec) -> Value {
    match cred(c, "username") {
        Value::Str(u) => Value::Str(u.split('@').next().unwrap_or("").to_string()),
        other => other,
    }
}
fn get_au_domain(c: &Call, _: &Spec) -> Value {
    match cred(c, "username") {
        Value::Str(u) => match u.split_once('@') {
            Some((_, d)) => s(d),
            None => cred(c, "realm"),
        },
        other => other,
    }
}
fn get_ar(c: &Call, _: &Spec) -> Value {
    cred(c, "realm")
}
fn get_adu(c: &Call, _: &Spec) -> Value {
    cred(c, "uri")
}
fn get_an(c: &Call, _: &Spec) -> Value {
    cred(c, "nonce")
}
/// `$auth.field`: any digest parameter; `resp` and `alg` are OpenSIPS's
/// short names for response and algorithm.
fn get_auth(c: &Call, spec: &Spec) -> Value {
    let Some(f) = spec.name(c) else {
        return Value::Null;
    };
    let key = match f.trim() {
        "resp" => "response",
        "alg" => "algorithm",
        "domain" => return get_au_domain(c, spec),
        "user" => return get_au_user(c, spec),
        other => other,
    };
    cred(c, &key.to_ascii_lowercase())
}

pub static DEFS: &[PvDef] = &[
    ro!("rP", get_ru_proto, "transport parameter of the request URI"),
    rw!("ru_q", get_ru_q, set_ru_q, false, "q value of the request URI branch (writable)"),
    ro!("ou", get_ou, "request URI as received"),
    ro!("ouri", get_ou, "long name of $ou"),
    ro!("oU", get_ou_user, "user of the received request URI"),
    ro!("od", get_ou_host, "host of the received request URI"),
    ro!("op", get_ou_port, "port of the received request URI"),
    ro!("oP", get_ou_proto, "transport parameter of the received request URI"),
    rw!("dd", get_dd, set_dd, false, "host of $du (writable when $du is set)"),
    rw!("dp", get_dp, set_dp, false, "port of $du (writable when $du is set; null or \"\" drops it)"),
    ro!("dP", get_dproto, "transport parameter of $du"),
    ro!("fn", get_fn, "From display name as written (quotes kept)"),
    ro!("tn", get_tn, "To display name as written (quotes kept)"),
    ro!("cl", get_cl, "Content-Length as an integer"),
    ro!("cT", get_ct_type, "Content-Type header"),
    ro!("ct", get_ct, "Contact value; [n] n-th, [*] all"),
    ro!("ct.fields", get_ct_fields, inner, "field of a Contact: uri, name, q, expires, methods, received, params; [n] picks the Contact"),
    ro!("hdr_name", get_hdr_name, "name of a header line as written; [n] n-th"),
    ro!("rb", get_rb, inner, "message body; $rb(mime) one part of a multipart body"),
    ro!("mb", get_mb, "the whole message as received"),
    ro!("ml", get_ml, "message length in bytes"),
    ro!("mi", get_mi, "message id (per-worker counter)"),
    rw!("mf", get_mf, set_mf, false, "message flags as an integer (writable)"),
    rw!("bf", get_bf, set_bf, false, "branch flags as an integer (writable)"),
    rw!("msg.flag", get_msg_flag, set_msg_flag, true, "1 if message flag n is set (writable)"),
    rw!("branch.flag", get_branch_flag, set_branch_flag, true, "1 if branch flag n is set (writable)"),
    ro!("msg.is_request", get_is_request, "1 for a request, 0 for a reply"),
    ro!("msg.type", get_msg_type, "\"request\" or \"reply\""),
    ro!("socket_in", get_socket_in, inner, "receiving socket (udp:ip:port); (ip|port|proto|af|advertised_ip|advertised_port) one field"),
    rw!("socket_out", get_socket_out, set_socket_out, true, "sending socket forced by the script, `force_send_socket`, `loose_route` or a dispatcher destination (writable: \"[proto:]ip[:port]\" of a listener, null clears); every send path leaves from it and a URI without `transport=` takes its transport"),
    ro!("Ri", get_ri, "IP of the receiving socket (2.x name)"),
    ro!("Rp", get_rp_local, "port of the receiving socket (2.x name)"),
    ro!("af", get_af, "address family of the source: INET or INET6"),
    ro!("ai", get_ai, "URI of P-Asserted-Identity"),
    ro!("re", get_re, "URI of Remote-Party-ID"),
    ro!("rt", get_rt, "URI of Refer-To"),
    ro!("di", get_di, "URI of Diversion"),
    ro!("dir", get_dir, "reason parameter of Diversion"),
    ro!("dip", get_dip, "privacy parameter of Diversion"),
    ro!("pu", get_pu, "URI of P-Preferred-Identity"),
    ro!("pU", get_pu_user, "user of P-Preferred-Identity"),
    ro!("pd", get_pu_host, "host of P-Preferred-Identity"),
    ro!("pn", get_pn, "display name of P-Preferred-Identity"),
    ro!("path", get_path, "Path header values"),
    ro!("au", get_au, "digest username (Proxy-Authorization, else Authorization)"),
    ro!("Au", get_au, "username for accounting (the digest username)"),
    ro!("aU", get_au_user, "user part of the digest username"),
    ro!("ad", get_au_domain, "domain of the digest username, else the realm"),
    ro!("ar", get_ar, "digest realm"),
    ro!("adu", get_adu, "digest URI"),
    ro!("an", get_an, "digest nonce"),
    ro!("rr_params", get_rr_params, "parameters of this proxy's Route entry (rr: `lr;ftag=…;…`), null without one"),
    ro!("auth", get_auth, inner, "any digest field: $auth(nonce), (resp), (alg), (cnonce), (opaque), (qop), (nc), (realm), (uri), (username)"),
];
