//! The rest of tm's script functions (OpenSIPS 3.4 `modules/tm/tm.c`,
//! `t_reply.c`, `t_fwd.c`): `t_relay`'s arguments, `t_reply_with_body`,
//! `t_flush_flags`, `t_add_hdrs`, `t_add_cancel_reason`,
//! `t_reply_by_callid`, `t_replicate`.

use mlua::{IntoLua, Lua, MultiValue};

use crate::proxy::tm::txn::RelayFlags;
use crate::proxy::tm::{lock, relay};
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args};
use crate::script::host::State;

/// `t_relay([flags] [, proxy])`, also the 2.x order `(proxy [, flags])`:
/// an argument that reads as flags (named, `|`-separated, or 2.x's
/// number) is the flags, another one the proxy `[proto:]ip[:port]`,
/// which becomes the destination of this relay only.
pub(super) fn relay_args(a: &Args) -> mlua::Result<(RelayFlags, Option<String>)> {
    let mut flags = RelayFlags::default();
    let mut proxy = None;
    for i in 0..a.len().min(2) {
        let Some(s) = a.opt_str(i)? else { continue };
        if s.trim().is_empty() {
            continue;
        }
        if let Some(f) = RelayFlags::numeric(&s) {
            flags = flags.or(f);
            continue;
        }
        match RelayFlags::parse(&s) {
            Ok(f) => flags = flags.or(f),
            Err(why) => {
                let uri = proxy_uri(&s).map_err(|e| a.err(format!("{e}; as flags: {why}")))?;
                proxy = Some(uri);
            }
        }
    }
    Ok((flags, proxy))
}

/// `[proto:]ip[:port]` as a SIP URI. A name would need a lookup the
/// relay cannot wait for here: set `$du` to it instead.
fn proxy_uri(s: &str) -> Result<String, String> {
    let s = s.trim();
    let (proto, rest) = match s.split_once(':') {
        Some((p, r)) if crate::transport::Proto::parse(p).is_some() => (Some(p), r),
        _ => (None, s),
    };
    let (host, port) = crate::config::split_hostport(rest)
        .ok_or_else(|| format!("'{s}' is neither flags nor [proto:]host[:port]"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_err() {
        return Err(format!(
            "'{s}': the proxy must be an IP address (set $du to a name instead)"
        ));
    }
    let mut uri = format!("sip:{host}");
    if let Some(p) = port {
        uri.push_str(&format!(":{p}"));
    }
    if let Some(p) = proto {
        uri.push_str(&format!(";transport={}", p.to_ascii_lowercase()));
    }
    Ok(uri)
}

fn code_reason(a: &Args, lua: &Lua, st: &State) -> mlua::Result<(u16, String)> {
    let code = a.int(0)?;
    let reason = pv_fmt(lua, st, &a.str(1)?)?;
    if !(100..=699).contains(&code) || reason.contains(['\r', '\n']) {
        return Err(a.err("needs a status code 100-699 and a one-line reason"));
    }
    Ok((code as u16, reason))
}

/// `t_reply_with_body(code, reason, body)`.
pub(super) fn t_reply_with_body(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (code, reason) = code_reason(&a, lua, st)?;
    let body = pv_fmt(lua, st, &a.str(2)?)?;
    ret(
        lua,
        relay::t_reply_with_body(st, code, &reason, &body).map_err(|e| a.err(e))?,
    )
}

/// `t_flush_flags()` (tm.c): the message flags set since the
/// transaction was made become the transaction's (failure routes see
/// them). False without a transaction.
pub(super) fn t_flush_flags(lua: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    let call = st.call.borrow();
    let Some(txn) = call.tm.txn.as_ref() else {
        return ret(lua, false);
    };
    lock(txn).flags = call.flags;
    ret(lua, true)
}

/// Header text a script gives for a message we build: whole
/// `Name: value` lines, CRLF added at the end when missing.
fn header_lines(a: &Args, text: &str) -> mlua::Result<String> {
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let ok = line.split_once(':').is_some_and(|(n, _)| {
            !n.trim().is_empty()
                && n.trim()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b))
        }) && !line.contains(['\r', '\n']);
        if !ok {
            return Err(a.err(format!("'{line}' is not a Name: value header line")));
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    Ok(out)
}

/// `t_add_hdrs(hdrs)` (tm.c `w_t_add_hdrs`): header lines every CANCEL
/// this transaction sends carries; replaces earlier ones. False without
/// a transaction.
pub(super) fn t_add_hdrs(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let text = pv_fmt(lua, st, &a.str(0)?)?;
    let lines = header_lines(&a, &text)?;
    let call = st.call.borrow();
    let Some(txn) = call.tm.txn.as_ref() else {
        return ret(lua, false);
    };
    lock(txn).extra_hdrs = (!lines.is_empty()).then_some(lines);
    ret(lua, true)
}

/// `t_add_cancel_reason(reason)` (t_fwd.c `t_add_reason`): in a CANCEL's
/// route, the Reason header line the CANCELs it causes carry instead of
/// 487 ORIGINATOR_CANCEL.
pub(super) fn t_add_cancel_reason(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let text = pv_fmt(lua, st, &a.str(0)?)?;
    let lines = header_lines(&a, &text)?;
    st.call.borrow_mut().tm.cancel_reason = Some(lines);
    ret(lua, true)
}

/// `t_reply_by_callid(code, reason [, callid, cseq])` (tm.c): replies
/// through the INVITE transaction with that Call-ID and CSeq number (the
/// current message's when absent). true, 1 when sent; false with -2 (no
/// Call-ID), -3 (no CSeq), -4 (no such transaction), -1 (not sent).
pub(super) fn t_reply_by_callid(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (code, reason) = code_reason(&a, lua, st)?;
    let callid = match a.opt_str(2)? {
        Some(c) => Some(pv_fmt(lua, st, &c)?),
        None => None,
    };
    let cseq = match a.opt_str(3)? {
        Some(c) => Some(pv_fmt(lua, st, &c)?),
        None => None,
    };
    let rc = |ok: bool, n: i64| -> mlua::Result<MultiValue> {
        Ok(MultiValue::from_iter([ok.into_lua(lua)?, n.into_lua(lua)?]))
    };
    let (callid, cseq) = {
        let call = st.call.borrow();
        let m = call.msg.as_ref();
        let callid = callid.or_else(|| m.and_then(|m| m.call_id()).map(str::to_string));
        let cseq = cseq.or_else(|| m.and_then(|m| m.cseq()).map(|c| c.num.to_string()));
        (callid, cseq)
    };
    let Some(callid) = callid else { return rc(false, -2) };
    let Some(cseq) = cseq else { return rc(false, -3) };
    let Some(txn) = relay::find_by_callid(st, &callid, &cseq) else {
        return rc(false, -4);
    };
    match relay::reply_on(st, &txn, code, &reason, "").map_err(|e| a.err(e))? {
        true => rc(true, 1),
        false => rc(false, -1),
    }
}

/// `t_replicate(uri [, flags])` (t_fwd.c `t_replicate`): relays the
/// request as it is to `uri` (which becomes `$du`, an IP address: a name
/// would need a lookup this call cannot wait for) in a transaction whose
/// replies stay here; the route answers the caller itself.
pub(super) fn t_replicate(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let uri = pv_fmt(lua, st, &a.str(0)?)?;
    let u = crate::sip::Uri::parse(&uri).map_err(|_| a.err(format!("'{uri}' is not a URI")))?;
    let host = u.host_bare().trim_start_matches('[').trim_end_matches(']');
    if host.parse::<std::net::IpAddr>().is_err() {
        return Err(a.err(format!(
            "'{uri}': the destination must be an IP address (set $du to a name and t_relay instead)"
        )));
    }
    let mut flags = match a.opt_str(1)? {
        None => RelayFlags::default(),
        Some(f) => RelayFlags::numeric(&f)
            .map(Ok)
            .unwrap_or_else(|| RelayFlags::parse(&f))
            .map_err(|e| a.err(e))?,
    };
    flags.replicate = true;
    flags.no_100 = true;
    {
        let mut call = st.call.borrow_mut();
        if call.msg.as_ref().is_some_and(|m| m.method_kind() == crate::sip::Method::Ack) {
            return ret(lua, false);
        }
        call.du = Some(uri);
        call.tm.relay_flags = flags;
    }
    super::relay_now(lua, st, a.fname)
}
