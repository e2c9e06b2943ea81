//! Stateless forwarding (RFC 3261 §16.11): the proxy's Via with a branch
//! derived from the request, so a retransmission (and the CANCEL or
//! non-2xx ACK of an INVITE) gets the same branch; loop detection
//! (§16.3 step 4) from a second hash carried in the same branch.

use std::net::IpAddr;

use super::{dest, hash, reply};
use crate::modules::maxfwd::{self, MaxFwd};
use crate::script::call::{Call, Dest, OutKind, Outgoing};
use crate::script::host::State;
use crate::sip::{Message, Method};
use crate::transport::Sockets;

/// Max-Forwards added when a request has none (RFC 3261 §16.6 step 3).
pub const DEFAULT_MAX_FORWARDS: u32 = 70;
const MAGIC: &str = "z9hG4bK";

/// Writes received/rport into the top Via once per message
/// (RFC 3261 §18.2.1, RFC 3581). Stream transports always get both, so a
/// reply can find its way back over the same connection.
pub fn prepare_top_via(call: &mut Call) {
    if call.via_fixed {
        return;
    }
    call.via_fixed = true;
    let src = call.src;
    let force = call.force_rport || src.proto.is_stream();
    let Some(m) = call.msg.as_mut() else { return };
    let Some(via) = m.top_via() else { return };
    let ip = src.addr.ip();
    let host_ip: Option<IpAddr> = via.host_bare().parse().ok();
    let received = (src.proto.is_stream() || host_ip != Some(ip)).then(|| ip.to_string());
    let rport = (via.rport().is_some() || force).then_some(src.addr.port());
    if received.is_some() || rport.is_some() {
        m.set_top_via_received(received.as_deref(), rport, force);
    }
}

/// The transaction part of the branch: the client's branch when it is
/// RFC 3261 style, else the RFC 2543 transaction identity (§17.2.3).
fn txn_hash(m: &Message) -> u64 {
    let via = m.top_via();
    match via
        .as_ref()
        .and_then(|v| v.branch())
        .filter(|b| b.starts_with(MAGIC))
    {
        Some(b) => {
            let v = via.as_ref();
            hash(&[
                b.as_bytes(),
                v.map_or(b"".as_slice(), |v| v.host.as_bytes()),
            ])
        }
        None => {
            let cseq = m.cseq().map_or(0, |c| c.num).to_le_bytes();
            hash(&[
                m.call_id().unwrap_or("").as_bytes(),
                m.from_tag().unwrap_or("").as_bytes(),
                &cseq,
                m.original_ruri().as_bytes(),
                via.as_ref().map_or(b"".as_slice(), |v| v.host.as_bytes()),
            ])
        }
    }
}

/// The loop-detection part (§16.6 step 8): what stays the same when a
/// request comes back unchanged.
fn loop_hash(m: &Message) -> u32 {
    let cseq = m.cseq().map_or(0, |c| c.num).to_le_bytes();
    hash(&[
        m.original_ruri().as_bytes(),
        m.from_tag().unwrap_or("").as_bytes(),
        m.to_tag().unwrap_or("").as_bytes(),
        m.call_id().unwrap_or("").as_bytes(),
        &cseq,
    ]) as u32
}

/// Whether one of the request's Vias is ours and carries this loop hash.
fn looped(m: &Message, sockets: &Sockets, hash: u32) -> bool {
    let ours = |b: &str| {
        b.strip_prefix(MAGIC)
            .and_then(|b| b.rsplit_once('.'))
            .is_some_and(|(_, tail)| tail.len() == 8 && u32::from_str_radix(tail, 16) == Ok(hash))
    };
    // Our Via is never alone: a looped request carries the sender's too.
    let vias = m.vias();
    vias.len() > 1
        && vias
            .iter()
            .any(|v| v.branch().is_some_and(ours) && sockets.is_myself(v.host, v.port))
}

/// `forward([uri])`: queues the request for `uri`, else `$du`, else the
/// R-URI. Ok(false) when a reply (482/483) was sent instead.
pub fn forward(st: &State, target: Option<&str>) -> Result<bool, String> {
    let sockets = &st.env.sockets;
    let (uri, method, lhash) = {
        let call = st.call.borrow();
        let m = call
            .msg
            .as_ref()
            .filter(|m| m.is_request())
            .ok_or("forward needs a request")?;
        let uri = match (target, &call.du) {
            (Some(t), _) => t.to_string(),
            (None, Some(du)) => du.clone(),
            (None, None) => m.ruri().to_string(),
        };
        let lhash = loop_hash(m);
        if looped(m, sockets, lhash) {
            drop(call);
            st.call.borrow_mut().last_error = Some((482, "Loop Detected"));
            reply::send_local_reply(st, 482, "Loop Detected");
            return Ok(false);
        }
        (uri, m.method_kind(), lhash)
    };
    let (proto, dest) = dest::next_hop(&uri)
        .inspect_err(|_| st.call.borrow_mut().last_error = Some((400, "Bad Destination")))?;
    match maxfwd::process(st, u32::MAX, DEFAULT_MAX_FORWARDS)? {
        MaxFwd::Ok => {}
        MaxFwd::Exhausted => {
            if method != Method::Ack {
                reply::send_local_reply(st, 483, "Too Many Hops");
            }
            return Ok(false);
        }
        MaxFwd::Bad => return Err("bad Max-Forwards".into()),
    }
    let mut call = st.call.borrow_mut();
    let call = &mut *call;
    prepare_top_via(call);
    let src = call.src;
    let sock = match &dest {
        Dest::Addr(a) => sockets.pick(proto, a.ip(), Some(src.socket)),
        Dest::Name(..) => sockets.pick(proto, src.addr.ip(), Some(src.socket)),
    }
    .ok_or_else(|| format!("no {} socket to reach {uri}", proto.as_str()))?;
    let towards = match &dest {
        Dest::Addr(a) => a.ip(),
        Dest::Name(..) => src.addr.ip(),
    };
    let host = sockets.via_host(sock, towards);
    let m = call.msg.as_mut().ok_or("forward needs a request")?;
    let via = format!(
        "SIP/2.0/{} {}:{};branch={MAGIC}{:016x}.{:08x}{}",
        proto.via_name(),
        host,
        sock.adv_port,
        txn_hash(m),
        lhash,
        if call.add_local_rport { ";rport" } else { "" }
    );
    // The Via is for this copy only: a second forward() adds its own.
    let mark = m.edit_count();
    m.prepend_header("Via", &via);
    let mut out = Vec::with_capacity(m.as_bytes().len() + via.len() + 64);
    m.write_to(&mut out);
    m.truncate_edits(mark);
    call.outbox.push(Outgoing {
        bytes: out.into(),
        proto,
        dest,
        socket: sock.id,
        kind: OutKind::Request,
    });
    Ok(true)
}
