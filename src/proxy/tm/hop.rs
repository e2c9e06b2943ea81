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
        return Ok(false);
    };
    reply::send_local_reply(st, 200, "OK");
    let mut call = st.call.borrow_mut();
    let mut t = lock(&txn);
    t.cancelled = true;
    cancel_pending(tm, &txn, &mut t, None, &mut call.outbox);
    Ok(true)
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
    if let Some(bytes) = build_cancel(&b.request) {
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
fn lines_of(m: &Message, name: &str, out: &mut String) {
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
pub fn build_cancel(request: &Bytes) -> Option<Bytes> {
    build_hop(request, "CANCEL", None)
}

/// RFC 3261 §17.1.1.3: the ACK for a non-2xx final: like the CANCEL, with
/// the To (and its tag) of the response.
pub fn build_ack(request: &Bytes, response: &Message) -> Option<Bytes> {
    build_hop(request, "ACK", response.header("To"))
}

fn build_hop(request: &Bytes, method: &str, to: Option<&str>) -> Option<Bytes> {
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
    s.push_str(&format!(
        "CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ));
    Some(Bytes::from(s))
}
