//! `t_write_req(info, fifo)` / `t_write_unix(info, socket)` (OpenSIPS 3.4
//! `modules/tm/t_fifo.c`): the request's description, 20 lines in
//! t_fifo.c's order (version 0.3), written to a FIFO or a unix datagram
//! socket for an outside application (a voicemail server) that answers
//! later through MI `t_reply` with the `hash:label` of line 15. The
//! transaction stays waiting; when nobody answered within the final
//! response timeout, the caller gets 408 (t_fifo.c `add_blind_uac`).
//! `info` `action/name` adds the `title: value` lines of the `tw_append`
//! `name` after line 18's `P-MsgFlags` (tw_append.rs).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;

use mlua::{Lua, MultiValue};

use super::jobs::{self, Job, Reply};
use crate::proxy::context::Call;
use crate::proxy::tm::{hash_index, lock};
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args};
use crate::script::host::State;
use crate::sip::{Message, Method, NameAddr, Uri};

use super::tw_append::{TwAppend, TwAppends};

/// t_fifo.c `empty_param`: what stands for an empty line.
const EMPTY: &str = ".";

/// The URI of a name-addr or addr-spec header value.
fn uri_of(v: &str) -> &str {
    NameAddr::parse(v.trim()).map_or(v.trim(), |n| n.uri)
}

/// OpenSIPS `int2reverse_hex`: hex digits, least significant first.
fn reverse_hex(mut n: u64) -> String {
    let mut s = String::new();
    loop {
        s.push(char::from_digit((n & 15) as u32, 16).unwrap_or('0'));
        n >>= 4;
        if n == 0 {
            return s;
        }
    }
}

/// The route set and URIs of t_fifo.c `assemble_msg`: the caller's
/// Contact (else the From URI) is the R-URI of later requests; with
/// Record-Route, the first entry is the next hop when it is a loose
/// router, else it becomes that R-URI and the Contact ends the route.
fn routing(m: &Message) -> (String, String, String) {
    let contact = m
        .header_values("Contact")
        .first()
        .map(|c| uri_of(c).to_string())
        .or_else(|| m.header("From").map(|f| uri_of(f).to_string()))
        .unwrap_or_default();
    let rr: Vec<String> = m
        .header_values("Record-Route")
        .iter()
        .map(|r| uri_of(r).to_string())
        .collect();
    let Some(first) = rr.first() else {
        return (contact, EMPTY.into(), EMPTY.into());
    };
    let lr = Uri::parse(first).is_ok_and(|u| u.param("lr").is_some());
    let mut route: Vec<String> = if lr { rr.clone() } else { rr[1..].to_vec() };
    if lr {
        let route = route.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(",");
        return (contact, route, first.clone());
    }
    route.push(contact);
    let route = route.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(",");
    (first.clone(), route, EMPTY.into())
}

/// The 20 lines t_fifo.c writes, each ended by a newline; None when the
/// request lacks what they need.
/// `extra`: the `title: value` lines of a `tw_append`; `add_body`: its
/// `$rb` element (the body is written for any method).
fn lines(
    call: &Call,
    action: &str,
    (extra, add_body): (&str, bool),
    dst: (String, u16),
    id: u64,
) -> Option<String> {
    let m = call.msg.as_ref().filter(|m| m.is_request())?;
    let ruri = m.ruri();
    let u = Uri::parse(ruri).ok()?;
    let (next_uri, route, next_hop) = routing(m);
    let or_empty = |s: &str| if s.is_empty() { EMPTY.to_string() } else { s.to_string() };
    let body = if m.method_kind() == Method::Invite || add_body {
        String::from_utf8_lossy(m.body()).into_owned()
    } else {
        EMPTY.to_string()
    };
    let port = if dst.1 == 5060 { EMPTY.to_string() } else { dst.1.to_string() };
    let out = [
        "0.3".to_string(),
        format!("sip_request.{action}"),
        m.method().to_string(),
        u.user.unwrap_or_default().to_string(),
        u.host.to_string(),
        dst.0,
        port,
        ruri.to_string(),
        or_empty(&next_uri),
        m.header("From")?.trim().to_string(),
        m.header("To")?.trim().to_string(),
        m.call_id()?.to_string(),
        m.from_tag().unwrap_or_default().to_string(),
        m.to_tag().unwrap_or_default().to_string(),
        m.cseq()?.num.to_string(),
        format!("{}:{id}", hash_index(id)),
        route,
        next_hop,
        format!("P-MsgFlags: {}\n{extra}.", reverse_hex(call.flags)),
        body,
    ];
    Some(out.iter().map(|l| format!("{l}\n")).collect())
}

/// The `title: value` lines of `append` for the current call (t_fifo.c
/// `append2buf`: an element whose value is null is left out).
fn append_lines(st: &State, a: &Args, app: &TwAppend) -> mlua::Result<String> {
    let mut out = String::new();
    for (title, pv) in &app.elems {
        let spec = st.pv.borrow_mut().spec(pv).map_err(|e| a.err(e))?;
        let v = crate::pv::eval(&st.call.borrow(), &spec).unwrap_or_else(|e| {
            tracing::error!("{}: failed to get '{title}': {e}", a.fname);
            crate::pv::Value::Null
        });
        if let Some(v) = v.to_text() {
            // One line per element: a value cannot add lines of its own.
            let v = v.replace(['\r', '\n'], " ");
            out.push_str(&format!("{title}: {v}\n"));
        }
    }
    Ok(out)
}

/// Checks `info` (`action`, or `action/append` naming a `tw_append`) and
/// builds the lines for the current request's transaction; false (logged)
/// without one.
fn prepare(lua: &Lua, st: &State, a: &Args) -> mlua::Result<Option<(String, u64, bool)>> {
    let info = pv_fmt(lua, st, &a.str(0)?)?;
    let (action, extra) = match info.split_once('/') {
        None => (info.as_str(), (String::new(), false)),
        Some((action, name)) => {
            let conf = crate::state::module::<TwAppends>();
            let app = conf
                .0
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| a.err(format!("unknown append name '{name}' (see tm's tw_append)")))?;
            (action, (append_lines(st, a, app)?, app.add_body))
        }
    };
    if action.is_empty() || action.contains(['\n', '\r']) {
        return Err(a.err("needs an action name"));
    }
    let call = st.call.borrow();
    let Some(txn) = call.tm.txn.clone() else {
        tracing::error!("{}: no transaction (call t_newtran first)", a.fname);
        return Ok(None);
    };
    let id = lock(&txn).id;
    let dst = st
        .env
        .sockets
        .list
        .iter()
        .find(|s| s.id == call.src.socket)
        .map(|s| (s.adv_host.clone(), s.adv_port))
        .unwrap_or_default();
    let invite = call.msg.as_ref().is_some_and(|m| m.method_kind() == Method::Invite);
    match lines(&call, action, (&extra.0, extra.1), dst, id) {
        Some(l) => Ok(Some((l, id, invite))),
        None => {
            tracing::error!("{}: the request lacks From, To, Call-ID or CSeq", a.fname);
            Ok(None)
        }
    }
}

/// After the write: a 408 when nobody answered in time (the blind branch
/// of t_fifo.c, timed as a branch would be).
fn wait_reply(st: &State, id: u64, invite: bool) {
    let (fr, fr_inv) = {
        let call = st.call.borrow();
        (call.tm.fr, call.tm.fr_inv)
    };
    let timers = st.env.tm.timers;
    let after = if invite {
        fr_inv.unwrap_or(timers.fr_inv)
    } else {
        fr.unwrap_or(timers.fr)
    };
    let timeout = Reply {
        hash: hash_index(id),
        label: id,
        code: 408,
        reason: "Request Timeout".into(),
        headers: String::new(),
        body: String::new(),
        to_tag: None,
    };
    let (tx, _rx) = std::sync::mpsc::channel();
    jobs::push(Job::Later(after, Box::new(Job::Reply(Box::new(timeout), tx))));
}

pub(super) fn t_write_unix(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let path = pv_fmt(lua, st, &a.str(1)?)?;
    if path.is_empty() || path.len() > 107 {
        return Err(a.err("needs a socket path of 1-107 bytes"));
    }
    let Some((text, id, invite)) = prepare(lua, st, &a)? else {
        return ret(lua, false);
    };
    // Non-blocking: a reader that does not keep up costs this request,
    // never the worker.
    let sent = UnixDatagram::unbound()
        .and_then(|s| {
            s.set_nonblocking(true)?;
            s.send_to(text.as_bytes(), &path)
        })
        .map_err(|e| tracing::error!("{}: {path}: {e}", a.fname));
    if sent.is_err() {
        return ret(lua, false);
    }
    wait_reply(st, id, invite);
    ret(lua, true)
}

pub(super) fn t_write_req(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let path = pv_fmt(lua, st, &a.str(1)?)?;
    let Some((text, id, invite)) = prepare(lua, st, &a)? else {
        return ret(lua, false);
    };
    // As t_fifo.c: opened without waiting, so a FIFO nobody reads fails.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| tracing::error!("{}: {path}: {e}", a.fname));
    if written.is_err() {
        return ret(lua, false);
    }
    wait_reply(st, id, invite);
    ret(lua, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_hex_is_least_significant_first() {
        assert_eq!(reverse_hex(0), "0");
        assert_eq!(reverse_hex(0x12), "21");
    }

    #[test]
    fn record_route_decides_next_hop_and_route() {
        let msg = |rr: &str| {
            Message::parse(
                format!(
                    "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n\
                     To: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContact: <sip:a@10.0.0.1>\r\n{rr}Content-Length: 0\r\n\r\n"
                )
                .into_bytes()
                .into(),
            )
            .expect("parses")
        };
        assert_eq!(routing(&msg("")), ("sip:a@10.0.0.1".into(), ".".into(), ".".into()));
        assert_eq!(
            routing(&msg("Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n")),
            ("sip:a@10.0.0.1".into(), "<sip:p1;lr>,<sip:p2;lr>".into(), "sip:p1;lr".into())
        );
        assert_eq!(
            routing(&msg("Record-Route: <sip:p1>\r\n")),
            ("sip:p1".into(), "<sip:a@10.0.0.1>".into(), ".".into())
        );
    }
}
