//! The server side a script drives: `t_check_trans`, `t_newtran`,
//! `t_reply`, and holding a request's transaction while its route waits.

use super::hop::absorb_ack;
use super::lock;
use super::relay::{absorb, apply_server, create};
use crate::proxy::context::Current;
use crate::proxy::ProxyError;
use crate::sip::Method;
use crate::transaction::key::server_key;
use crate::transaction::server;
use vocab::route::RouteType;

/// `t_check_trans()`: true when the request belongs to a transaction. A
/// retransmission gets the last response again; true then too (the caller
/// exits the script, as OpenSIPS does).
pub fn t_check_trans(st: &Current) -> (bool, bool) {
    let tm = &st.env.tm;
    let (method, key, cancel_key) = {
        let call = st.call.borrow();
        if call.tm.txn.is_some() {
            return (true, false);
        }
        let Some(m) = call.msg.as_ref().filter(|m| m.is_request()) else {
            return (false, false);
        };
        (
            m.method_kind(),
            server_key(m, None),
            server_key(m, Some("INVITE")),
        )
    };
    match method {
        Method::Cancel => (
            cancel_key.is_some_and(|k| tm.server.contains_key(&k)),
            false,
        ),
        Method::Ack => (absorb_ack(st), true),
        _ => match key.and_then(|k| tm.server.get(&k).map(|e| e.clone())) {
            Some(txn) => {
                let mut call = st.call.borrow_mut();
                let mut out = std::mem::take(&mut call.outbox);
                absorb(st, &txn, &mut out);
                call.outbox = out;
                (true, true)
            }
            None => (false, false),
        },
    }
}

/// `t_newtran()`: creates the transaction without relaying. With
/// `trying`, a new INVITE transaction answers 100 at once.
pub fn t_newtran(st: &Current, trying: bool) -> Result<bool, ProxyError> {
    let mut call = st.call.borrow_mut();
    if call.tm.txn.is_some() {
        return Ok(true);
    }
    match create(st, &mut call) {
        Ok(t) => {
            // OpenSIPS t_lookup.c `t_newtran`: a new INVITE transaction
            // answers 100 at once (`auto_100trying`), so the caller stops
            // retransmitting while the script works (RFC 3261 §16.2).
            if trying {
                super::relay::send_trying(st, &t, &mut call);
            }
            call.tm.txn = Some(t);
            Ok(true)
        }
        Err(Some(existing)) => {
            let mut out = std::mem::take(&mut call.outbox);
            absorb(st, &existing, &mut out);
            call.outbox = out;
            Ok(false)
        }
        Err(None) => Ok(false),
    }
}

/// What [`hold`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The request now has a transaction (made here or by the script).
    Held,
    /// The request is a retransmission of one whose transaction exists:
    /// its last response was queued again.
    Retransmission,
    /// The request has no transaction (an ACK, or no transaction identity).
    Without,
}

/// A request route is about to suspend: like OpenSIPS's `async()`, make
/// sure the request has a transaction, so that a retransmission arriving
/// meanwhile is absorbed instead of running the route again. A new INVITE
/// is answered 100 at once (async.c `t_handle_async` creates it with
/// `t_newtran`, whose `auto_100trying` replies), so the caller stops
/// retransmitting while the route waits.
pub fn hold(st: &Current) -> Held {
    let mut call = st.call.borrow_mut();
    if call.tm.txn.is_some() {
        return Held::Held;
    }
    let is_request = call
        .msg
        .as_ref()
        .is_some_and(|m| m.is_request() && m.method_kind() != Method::Ack);
    if !is_request || call.route != RouteType::Request {
        return Held::Without;
    }
    match create(st, &mut call) {
        Ok(t) => {
            super::relay::send_trying(st, &t, &mut call);
            call.tm.txn = Some(t);
            call.tm.held = true;
            Held::Held
        }
        Err(Some(existing)) => {
            let mut out = std::mem::take(&mut call.outbox);
            absorb(st, &existing, &mut out);
            call.outbox = out;
            Held::Retransmission
        }
        Err(None) => Held::Without,
    }
}

/// After a suspended route ended: a transaction [`hold`] made that the
/// route then used for nothing (no branch, no reply through it but the
/// automatic 100, as after a stateless `forward` or `sl_send_reply`) is
/// dropped.
pub fn release_held(st: &Current) {
    let call = st.call.borrow();
    let (true, Some(txn)) = (call.tm.held, call.tm.txn.as_ref()) else {
        return;
    };
    let t = lock(txn);
    if t.branches.is_empty() && t.server.last_code <= 100 {
        st.env.tm.forget(&t);
    }
}

/// `t_reply(code, reason)`: a response sent through the transaction
/// (created first when needed, as [`t_newtran`] does: a new INVITE is
/// answered 100 before it), so retransmissions are answered again.
pub fn t_reply(st: &Current, code: u16, reason: &str) -> Result<bool, ProxyError> {
    t_reply_with_body(st, code, reason, "")
}

/// `t_reply_with_body(code, reason, body)` (OpenSIPS t_reply.c
/// `w_t_reply_body`): [`t_reply`] with a body; its Content-Type comes
/// from `append_to_reply`, which the transaction's request takes over
/// from the route (`update_cloned_msg_from_msg`). An ACK is not replied.
pub fn t_reply_with_body(
    st: &Current,
    code: u16,
    reason: &str,
    body: &str,
) -> Result<bool, ProxyError> {
    let is_ack = st
        .call
        .borrow()
        .msg
        .as_ref()
        .is_some_and(|m| m.method_kind() == Method::Ack);
    if is_ack {
        return Ok(false);
    }
    // OpenSIPS tm.c `w_t_reply` and t_reply.c `w_t_reply_body` create a
    // missing transaction with `t_newtran`, whose `auto_100trying`
    // (t_lookup.c, on by default) answers a new INVITE 100 first: the
    // caller sees the 100, then this reply.
    if st.call.borrow().tm.txn.is_none() && !t_newtran(st, true)? {
        return Ok(false);
    }
    let Some(txn) = st.call.borrow().tm.txn.clone() else {
        return Ok(false);
    };
    {
        let call = st.call.borrow();
        if let Some(m) = call.msg.as_ref().filter(|m| m.is_request()) {
            lock(&txn).request.copy_reply_headers(m);
        }
    }
    reply_on(st, &txn, code, reason, body)
}

/// Sends a response through `txn` (the current message's, or one
/// `t_reply_by_callid` found). False when the transaction no longer
/// takes one (a final was sent).
pub fn reply_on(
    st: &Current,
    txn: &super::TxnRef,
    code: u16,
    reason: &str,
    body: &str,
) -> Result<bool, ProxyError> {
    reply_tagged(st, txn, code, reason, body, None)
}

/// [`reply_on`] with the To tag given (MI `t_reply`, mi.c passes its
/// `to_tag` to `t_reply_with_body`); the transaction's own when None.
pub fn reply_tagged(
    st: &Current,
    txn: &super::TxnRef,
    code: u16,
    reason: &str,
    body: &str,
    to_tag: Option<&str>,
) -> Result<bool, ProxyError> {
    let tm = &st.env.tm;
    let mut call = st.call.borrow_mut();
    let call = &mut *call;
    let mut t = lock(txn);
    let bytes = super::relay::local_response_tagged(&t, code, reason, body, to_tag);
    let acts = t.server.on_send(code);
    if !acts.contains(server::Action::Send) {
        return Ok(false);
    }
    if call.route == RouteType::Failure {
        t.replied_locally = true;
    }
    if code >= 200 {
        t.last_local = true;
        tm.notify(|o| o.completed(&t, code));
    }
    if apply_server(tm, txn, &mut t, acts, Some(&bytes), &mut call.outbox) {
        tm.forget(&t);
    }
    if call
        .tm
        .txn
        .as_ref()
        .is_some_and(|c| std::sync::Arc::ptr_eq(c, txn))
    {
        call.replied = true;
    }
    crate::stats::SL.count(code);
    Ok(true)
}

/// OpenSIPS t_lookup.c `t_lookup_callid`: the INVITE transaction with
/// this Call-ID and CSeq number, if it is still known.
pub fn find_by_callid(st: &Current, callid: &str, cseq: &str) -> Option<super::TxnRef> {
    let num: u32 = cseq.trim().parse().ok()?;
    st.env.tm.server.iter().find_map(|e| {
        let t = lock(e.value());
        let m = &t.request;
        let hit = m.method_kind() == Method::Invite
            && m.call_id() == Some(callid.trim())
            && m.cseq().is_some_and(|c| c.num == num);
        drop(t);
        hit.then(|| e.value().clone())
    })
}
