//! Hop-by-hop requests of proxied transactions: the ACK of a non-2xx
//! final (absorbed or built by us) and CANCEL (RFC 3261 §9, §16.10, §17.1.1.3).

use bytes::Bytes;

use super::relay::apply_server;
use super::txn::Txn;
use super::{lock, BranchRole, Tm, TxnRef};
use crate::proxy::context::Current;
use crate::proxy::context::{Dest, OutKind, Outgoing};
use crate::proxy::{reply, stateless, ProxyError};
use crate::sip::Message;
use crate::transaction::client::Kind;
use crate::transaction::key::{our_client_key, server_key};
use crate::transaction::server;

/// The hop-by-hop ACK of a non-2xx final is absorbed by its INVITE
/// transaction; an ACK for a 2xx is end to end and forwarded statelessly.
pub(super) fn relay_ack(st: &Current) -> Result<bool, ProxyError> {
    if absorb_ack(st) {
        return Ok(true);
    }
    stateless::forward(st, None)
}

/// Feeds an ACK to its INVITE transaction; true when it belonged there.
pub fn absorb_ack(st: &Current) -> bool {
    let tm = &st.env.tm;
    let key = {
        let call = st.call.borrow();
        call.msg.as_ref().and_then(|m| server_key(m, None))
    };
    let Some(txn) = key.and_then(|k| tm.server.get(&k).map(|e| e.clone())) else {
        return false;
    };
    let mut t = lock(&txn);
    if t.server.state != server::State::Completed && t.server.state != server::State::Confirmed {
        return false;
    }
    let acts = t.server.on_ack();
    let mut call = st.call.borrow_mut();
    if apply_server(tm, &txn, &mut t, acts, None, &mut call.outbox) {
        tm.forget(&t);
    }
    true
}

/// RFC 3261 §16.10: a CANCEL is answered here (200) and sent on every
/// pending branch of its INVITE; 481 when there is no such INVITE.
pub(super) fn relay_cancel(st: &Current) -> Result<bool, ProxyError> {
    let tm = &st.env.tm;
    let key = {
        let call = st.call.borrow();
        call.msg
            .as_ref()
            .and_then(|m| server_key(m, Some("INVITE")))
    };
    let Some(txn) = key.and_then(|k| tm.server.get(&k).map(|e| e.clone())) else {
        reply::send_local_reply(st, 481, "Call/Transaction Does Not Exist");
        cancel_answered(st, 481);
        return Ok(false);
    };
    reply::send_local_reply(st, 200, "OK");
    cancel_answered(st, 200);
    let mut call = st.call.borrow_mut();
    let mut t = lock(&txn);
    t.cancelled = true;
    // OpenSIPS t_fwd.c get_cancel_reason: t_add_cancel_reason's line, the
    // CANCEL's own Reason with `pass-reason-hdr`, else 487.
    let own = || {
        let m = call.msg.as_ref()?;
        let mut s = String::new();
        lines_of(m, "Reason", &mut s);
        (!s.is_empty()).then_some(s)
    };
    let reason = call
        .tm
        .cancel_reason
        .clone()
        .or_else(|| t.relay_flags.pass_reason.then(own).flatten())
        .unwrap_or_else(|| REASON_487.to_string());
    t.cancel_reason = Some(reason);
    cancel_pending(tm, &txn, &mut t, None, &mut call.outbox);
    t.cancel_reason = None;
    // A transaction waiting in t_wait_for_new_branches: its phony branch
    // is cancelled too; with no branch left to answer, its 487 goes up.
    if std::mem::take(&mut t.wait_branches) && t.all_answered() && t.server.last_code < 200 {
        drop(t);
        drop(call);
        super::uas::reply_on(st, &txn, 487, "Request Terminated", "")?;
    }
    Ok(true)
}

/// Tells the observers a CANCEL got its answer, when a module attached
/// data to it.
fn cancel_answered(st: &Current, code: u16) {
    let call = st.call.borrow();
    if let (Some(m), false) = (call.msg.as_ref(), call.tm.data.is_empty()) {
        st.env
            .tm
            .notify(|o| o.cancel_answered(m, &call.tm.data, code));
    }
}

/// The Reason of a CANCEL the caller's CANCEL caused (RFC 3326).
pub const REASON_487: &str = "Reason: SIP;cause=487;text=\"ORIGINATOR_CANCEL\"\r\n";
/// The Reason of a CANCEL a branch's timeout caused.
pub const REASON_480: &str = "Reason: SIP;cause=480;text=\"NO_ANSWER\"\r\n";
/// The Reason of a CANCEL a 200 on another branch caused.
const REASON_200: &str = "Reason: SIP ;cause=200 ;text=\"Call completed elsewhere\"\r\n";

/// The extra header lines of a CANCEL sent now for `t` (OpenSIPS
/// t_cancel.c `build_cancel`): the 200 Reason once the INVITE got its
/// 200, else the Reason being sent; then `t_add_hdrs`'s lines.
pub fn cancel_extra(t: &Txn) -> String {
    let mut s = String::new();
    if t.server.kind == Kind::Invite && t.server.last_code == 200 {
        s.push_str(REASON_200);
    } else if let Some(r) = &t.cancel_reason {
        s.push_str(r);
    }
    if let Some(h) = &t.extra_hdrs {
        s.push_str(h);
    }
    s
}

/// Sends CANCEL on every branch still pending (but `except`).
pub fn cancel_pending(
    tm: &Tm,
    txn: &TxnRef,
    t: &mut Txn,
    except: Option<usize>,
    outbox: &mut Vec<Outgoing>,
) {
    for i in 0..t.branches.len() {
        if Some(i) != except {
            cancel_one(tm, txn, t, i, outbox);
        }
    }
}

/// Sends CANCEL on branch `i` if it is an INVITE still pending.
pub fn cancel_one(tm: &Tm, txn: &TxnRef, t: &mut Txn, i: usize, outbox: &mut Vec<Outgoing>) {
    if t.server.kind != Kind::Invite {
        return;
    }
    let Some(b) = t.branches.get(i) else { return };
    if b.final_code.is_some() || b.cancel_sent {
        return;
    }
    if let Some(bytes) = build_cancel(&b.request, &cancel_extra(t)) {
        tm.client.insert(
            our_client_key(&b.branch_id, "CANCEL"),
            (txn.clone(), BranchRole::Cancel(i)),
        );
        outbox.push(Outgoing {
            bytes,
            proto: b.proto,
            dest: Dest::Addr(b.dest),
            socket: b.socket,
            kind: OutKind::Request,
        });
        t.branches[i].cancel_sent = true;
    }
}

/// Header lines of `m` named `name`, as written.
pub fn lines_of(m: &Message, name: &str, out: &mut String) {
    for h in m
        .headers()
        .filter(|h| crate::sip::header::same_name(h.name, name))
    {
        out.push_str(h.name);
        out.push_str(": ");
        out.push_str(h.value);
        out.push_str("\r\n");
    }
}

/// RFC 3261 §9.1: a CANCEL for a sent request: same R-URI, top Via, From,
/// To, Call-ID, CSeq number and Route set.
pub fn build_cancel(request: &Bytes, extra: &str) -> Option<Bytes> {
    build_hop(request, "CANCEL", None, extra)
}

/// RFC 3261 §17.1.1.3: the ACK for a non-2xx final: like the CANCEL, with
/// the To (and its tag) of the response.
pub fn build_ack(request: &Bytes, response: &Message) -> Option<Bytes> {
    build_hop(request, "ACK", response.header("To"), "")
}

fn build_hop(request: &Bytes, method: &str, to: Option<&str>, extra: &str) -> Option<Bytes> {
    let m = Message::parse(request.clone()).ok()?;
    let via = m.header_values("Via").first().map(|v| v.to_string())?;
    let cseq = m.cseq()?.num;
    let mut s = String::with_capacity(512);
    s.push_str(&format!("{method} {} SIP/2.0\r\nVia: {via}\r\n", m.ruri()));
    lines_of(&m, "Route", &mut s);
    lines_of(&m, "From", &mut s);
    match to {
        Some(to) => s.push_str(&format!("To: {to}\r\n")),
        None => lines_of(&m, "To", &mut s),
    }
    lines_of(&m, "Call-ID", &mut s);
    s.push_str(&format!("CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"));
    s.push_str(extra);
    s.push_str("Content-Length: 0\r\n\r\n");
    Some(Bytes::from(s))
}
