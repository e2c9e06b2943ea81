//! Stateless forwarding (RFC 3261 §16.11): the proxy's Via with a branch
//! derived from the request, so a retransmission (and the CANCEL or
//! non-2xx ACK of an INVITE) gets the same branch; loop detection
//! (§16.3 step 4) from a second hash carried in the same branch.

use bytes::Bytes;
use std::net::IpAddr;

use super::ProxyError;
use super::{dest, hash, reply};
use crate::proxy::context::Current;
use crate::proxy::context::{Call, Dest, OutKind, Outgoing};
use crate::proxy::maxfwd::{self, MaxFwd};
use crate::sip::{Message, Method};
use crate::transport::{Proto, Sockets};

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
    let rport = (m.top_via_rport().is_some() || force).then_some(src.addr.port());
    if received.is_some() || rport.is_some() {
        m.set_top_via_received(received.as_deref(), rport, force);
    }
}

/// The transaction part of the branch: the client's branch when it is
/// RFC 3261 style, else the RFC 2543 transaction identity (§17.2.3).
fn txn_hash(m: &Message) -> u64 {
    let via = m.top_via();
    match m.top_via_branch().filter(|b| b.starts_with(MAGIC)) {
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
    if m.via_count() < 2 {
        return false;
    }
    let vias = m.vias();
    vias.iter()
        .any(|v| v.branch().is_some_and(ours) && sockets.is_myself(v.host, v.port))
}

/// The checks every forwarded request passes once (RFC 3261 §16.3 step 4,
/// §16.6 step 3): loop detection (482) and Max-Forwards (483). Ok(false)
/// when a reply was sent instead; Ok(true) with the loop hash otherwise.
pub fn precheck(st: &Current) -> Result<Option<u32>, ProxyError> {
    let sockets = &st.env.sockets;
    let (method, lhash) = {
        let call = st.call.borrow();
        let m = call
            .msg
            .as_ref()
            .filter(|m| m.is_request())
            .ok_or(ProxyError::NoRequest)?;
        let lhash = loop_hash(m);
        if looped(m, sockets, lhash) {
            drop(call);
            st.call.borrow_mut().last_error = Some((482, "Loop Detected"));
            reply::send_local_reply(st, 482, "Loop Detected");
            return Ok(None);
        }
        (m.method_kind(), lhash)
    };
    match maxfwd::process(&mut st.call.borrow_mut(), u32::MAX, DEFAULT_MAX_FORWARDS)? {
        MaxFwd::Ok => Ok(Some(lhash)),
        MaxFwd::Exhausted => {
            if method != Method::Ack {
                reply::send_local_reply(st, 483, "Too Many Hops");
            }
            Ok(None)
        }
        MaxFwd::Bad => Err(ProxyError::BadMaxForwards),
    }
}

/// One copy of the current request for a destination: the socket to send
/// from, our Via with `branch`, and the R-URI replaced when `ruri` is given.
pub fn build_copy(
    call: &mut Call,
    sockets: &Sockets,
    proto: Proto,
    dest: &Dest,
    branch: &str,
    ruri: Option<&str>,
    tm: Option<&crate::proxy::tm::Tm>,
) -> Result<(Bytes, usize), ProxyError> {
    prepare_top_via(call);
    let src = call.src;
    let towards = match dest {
        Dest::Addr(a) => a.ip(),
        Dest::Name(..) => src.addr.ip(),
    };
    let sock = sockets
        .choose(proto, towards, call.socket_out, Some(src.socket))
        .ok_or_else(|| ProxyError::NoSocket {
            proto: proto.as_str(),
            dest: towards.to_string(),
        })?;
    let host = match &call.adv_address {
        Some(h) => h.clone(),
        None => sockets.via_host(sock, towards),
    };
    let port = call.adv_port.unwrap_or(sock.adv_port);
    let rport = if call.add_local_rport { ";rport" } else { "" };
    let mark = call.msg.as_ref().ok_or(ProxyError::NoRequest)?.edit_count();
    for o in tm.map_or(&[][..], |tm| tm.observers()) {
        o.copy_out(call, sock);
    }
    crate::proxy::rr::apply(call, sockets, sock, towards);
    let m = call.msg.as_mut().ok_or(ProxyError::NoRequest)?;
    let via = format!(
        "SIP/2.0/{} {}:{};branch={branch}{rport}",
        proto.via_name(),
        host,
        port
    );
    // Record-Route, Via (and R-URI) are for this copy only: a second copy adds its own.
    let old_ruri = ruri.map(|_| m.ruri().to_string());
    if let Some(r) = ruri {
        m.set_ruri(r);
    }
    m.prepend_header("Via", &via);
    // write_to reserves exactly the edited length: a guess here that fell
    // short would double the buffer, and a transaction keeps this copy.
    let mut out = Vec::new();
    m.write_to(&mut out);
    m.truncate_edits(mark);
    if let Some(r) = old_ruri {
        m.set_ruri(&r);
    }
    Ok((out.into(), sock.id))
}

/// The blacklists a call's copies are checked against (the `default`
/// ones unless the script called `use_blacklist`/`unuse_blacklist`).
pub fn blacklists(call: &Call) -> u32 {
    call.slot_ref::<crate::transport::blacklist::Marker>()
        .map_or_else(crate::transport::blacklist::default_marker, |m| m.bits())
}

/// `forward([uri])`: queues the request for `uri`, else `$du`, else the
/// R-URI. Ok(false) when a reply (482/483) was sent instead.
pub fn forward(st: &Current, target: Option<&str>) -> Result<bool, ProxyError> {
    let uri = {
        let call = st.call.borrow();
        let m = call
            .msg
            .as_ref()
            .filter(|m| m.is_request())
            .ok_or(ProxyError::NoRequest)?;
        match (target, &call.du) {
            (Some(t), _) => t.to_string(),
            (None, Some(du)) => du.clone(),
            (None, None) => m.ruri().to_string(),
        }
    };
    let forced = st.call.borrow().forced_proto();
    let (proto, mut dest) = dest::next_hop_forced(&uri, forced)?;
    // A name with a cached answer goes to its first address now; others
    // are located by the worker after the route (RFC 3263).
    if let (Dest::Name(hop), Some(dns)) = (&dest, crate::transport::dns::current()) {
        let v4 = st.call.borrow().src.addr.is_ipv4();
        if let Some(t) = dns.cached(hop).and_then(|ts| {
            ts.iter()
                .find(|t| t.addr.is_ipv4() == v4 && t.proto == proto)
                .copied()
        }) {
            dest = Dest::Addr(t.addr);
        }
    }
    let Some(lhash) = precheck(st)? else {
        return Ok(false);
    };
    let mut call = st.call.borrow_mut();
    let call = &mut *call;
    let m = call.msg.as_ref().ok_or(ProxyError::NoRequest)?;
    let branch = format!("{MAGIC}{:016x}.{lhash:08x}", txn_hash(m));
    let (bytes, socket) = build_copy(
        call,
        &st.env.sockets,
        proto,
        &dest,
        &branch,
        None,
        Some(&st.env.tm),
    )?;
    // OpenSIPS forward.c: a blacklisted destination is not sent to. A name
    // located after the route is not checked (lunasip: known limitation).
    if let Dest::Addr(a) = &dest {
        let marker = blacklists(call);
        if let Some(l) = crate::transport::blacklist::blocked(marker, proto, *a, &bytes) {
            tracing::info!("forward: {a} is on blacklist {l}");
            return Err(ProxyError::Blocked(uri));
        }
    }
    call.outbox.push(Outgoing {
        bytes,
        proto,
        dest,
        socket,
        kind: OutKind::Request,
    });
    Ok(true)
}
