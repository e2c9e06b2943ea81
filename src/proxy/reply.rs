//! Replies: those lunasip generates itself (sl, errors) and those it
//! routes back by Via (RFC 3261 §16.7 step 3 for the stateless case,
//! §18.2.2 for where a reply goes).

use std::net::SocketAddr;

use super::{dest, hash, stateless};
use crate::proxy::context::Current;
use crate::proxy::context::{Dest, OutKind, Outgoing, Source};
use crate::sip::{Message, Method};
use crate::stats::SL;
use crate::transport::Proto;

/// Header lines every local reply carries.
pub const SERVER: &str = concat!("Server: lunasip ", env!("CARGO_PKG_VERSION"), "\r\n");

/// The To tag of a local reply: derived from the request, so a
/// retransmission gets the same tag.
pub fn to_tag(m: &Message) -> String {
    let cseq = m.cseq().map_or(0, |c| c.num).to_le_bytes();
    let branch = m.top_via_branch().unwrap_or("");
    let h = hash(&[
        m.call_id().unwrap_or("").as_bytes(),
        m.from_tag().unwrap_or("").as_bytes(),
        &cseq,
        branch.as_bytes(),
    ]);
    crate::sip::hex(&h.to_be_bytes())
}

/// The current request is the ACK of a final reply this proxy sent
/// statelessly: its To tag is the one [`to_tag`] gave that reply (the ACK
/// of a non-2xx final keeps the INVITE's branch, CSeq number, Call-ID and
/// From tag, RFC 3261 §17.1.1.3) and no INVITE transaction of ours is
/// waiting for it (a reply sent through a transaction has the same tag,
/// and its ACK is the transaction's). OpenSIPS sl.c `sl_filter_ACK`.
pub fn is_local_ack(st: &Current) -> bool {
    let call = st.call.borrow();
    let Some(m) = call.msg.as_ref() else {
        return false;
    };
    // Our tags are 16 hex digits: most ACKs (of a 2xx, tagged by the
    // callee) are told apart here without hashing anything.
    match m.to_tag() {
        Some(tag) if tag.len() == 16 && tag == to_tag(m) => {}
        _ => return false,
    }
    !crate::transaction::key::server_key(m, Some("INVITE"))
        .is_some_and(|k| st.env.tm.server.contains_key(&k))
}

/// RFC 3261 §18.2.2 (with RFC 3581): a reply to a request goes back over the
/// connection on streams; on UDP to the source IP (the `received`), at the
/// source port when rport was asked for, else the Via port.
pub fn reply_dest(m: &Message, src: Source, force_rport: bool) -> SocketAddr {
    if src.proto.is_stream() {
        return src.addr;
    }
    let port = match m.top_via() {
        Some(v) if m.top_via_rport().is_none() && !force_rport => v.port.unwrap_or(5060),
        _ => src.addr.port(),
    };
    SocketAddr::new(src.addr.ip(), port)
}

/// Sends a reply to the current request. False for an ACK (never
/// answered), a reply, or a request whose Via cannot be answered.
pub fn send_local_reply(st: &Current, code: u16, reason: &str) -> bool {
    send_local_reply_with(st, code, reason, "")
}

/// [`send_local_reply`] with extra header lines (`extra`: raw lines, each
/// CRLF terminated, e.g. a registrar's Contact list).
pub fn send_local_reply_with(st: &Current, code: u16, reason: &str, extra: &str) -> bool {
    let mut call = st.call.borrow_mut();
    let call = &mut *call;
    match call.msg.as_ref() {
        Some(m) if m.is_request() && m.method_kind() != Method::Ack && m.top_via().is_some() => {}
        _ => return false,
    }
    stateless::prepare_top_via(call);
    let Some(m) = call.msg.as_ref() else {
        return false;
    };
    let tag = crate::sip::reply::adds_to_tag(code).then(|| to_tag(m));
    let to = reply_dest(m, call.src, call.force_rport);
    let mut out = Vec::with_capacity(512 + extra.len());
    crate::sip::reply::write_reply_parts(
        m,
        code,
        reason,
        tag.as_deref(),
        &[extra, SERVER],
        &mut out,
    );
    call.outbox.push(Outgoing {
        bytes: out.into(),
        proto: call.src.proto,
        dest: Dest::Addr(to),
        socket: call.src.socket,
        kind: OutKind::LocalReply,
    });
    call.replied = true;
    SL.count(code);
    true
}

/// Routes the current reply back by its second Via after removing ours.
/// Err says why it was dropped.
pub fn route_reply(st: &Current) -> Result<(), &'static str> {
    let sockets = &st.env.sockets;
    let mut call = st.call.borrow_mut();
    let call = &mut *call;
    let m = call.msg.as_mut().ok_or("no message")?;
    let (proto, to) = {
        let top = m.via(0).ok_or("no Via")?;
        if !sockets.is_myself(top.host, top.port) {
            return Err("top Via is not ours");
        }
        let next = m.via(1).ok_or("no Via after ours")?;
        let proto = Proto::parse(next.transport).ok_or("unsupported transport in Via")?;
        let host = next.received().unwrap_or_else(|| next.host_bare());
        let port = match next.rport() {
            Some(Some(p)) => p,
            _ => next.port.unwrap_or(5060),
        };
        (proto, dest::host_dest(host, port))
    };
    let prefer = Some(call.src.socket);
    let sock = match &to {
        Dest::Addr(a) => {
            if dest::is_forbidden(a) {
                return Err("Via names a broadcast or unusable address");
            }
            sockets.pick(proto, a.ip(), prefer)
        }
        Dest::Name(..) => sockets.pick(proto, call.src.addr.ip(), prefer),
    }
    .ok_or("no socket for the reply's transport")?;
    m.remove_first_value("Via");
    let mut out = Vec::new();
    m.write_to(&mut out);
    call.outbox.push(Outgoing {
        bytes: out.into(),
        proto,
        dest: to,
        socket: sock.id,
        kind: OutKind::Reply,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tag is the request's hash in 16 lower-case hex digits, zeros kept.
    #[test]
    fn to_tag_hex_of_the_hash() {
        let m = Message::parse(bytes::Bytes::from_static(
            b"REGISTER sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=9\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 7 REGISTER\r\nContent-Length: 0\r\n\r\n",
        ))
        .expect("parses");
        let h = hash(&[b"c", b"9", &7u32.to_le_bytes(), b"z9hG4bK1"]);
        assert_eq!(to_tag(&m), format!("{h:016x}"));
        let n = 0x0012_3400_0000_00ffu64;
        assert_eq!(crate::sip::hex(&n.to_be_bytes()), format!("{n:016x}"));
    }
}
