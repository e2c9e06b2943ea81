//! tm's replication of anycast requests (OpenSIPS 3.4 modules/tm/cluster.c):
//! a CANCEL or ACK that reaches a node of an anycast address without its
//! transaction is sent to the other nodes of `tm_replication_cluster`
//! (capability `tm-repl`, clusterer BIN packets); the node holding the
//! transaction handles it. Packets keep OpenSIPS's layout: the protocol,
//! the receiving socket (its tag, or address and port), the source as
//! OpenSIPS's `struct ip_addr`, the message with a NUL; an auto-CANCEL
//! adds the Via offsets, the CANCEL's Reason and tm's hash index.

use mlua::{Lua, MultiValue};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use crate::modules::clusterer::bin::{BinError, Builder, Packet};
use crate::modules::clusterer::{self, SendRet};
use crate::modules::{cfg, registrar::coded};
use crate::proxy::context::{Current, Source};
use crate::proxy::phases::Phases;
use crate::proxy::tm::cluster::ClusterVia;
use crate::proxy::tm::relay;
use crate::proxy::worker::Worker;
use crate::script::exports::Args;
use crate::script::host::State;
use crate::sip::{Message, Method};
use crate::stats::TM;
use crate::transaction::key::server_key;
use crate::transport::myself::SocketInfo;
use crate::transport::{Incoming, Proto};
use vocab::route::RouteType;

/// tm's clusterer capability.
pub const CAPABILITY: &str = "tm-repl";
const REPLY: i32 = 1;
const REQUEST: i32 = 2;
const AUTO_CANCEL: i32 = 3;
/// OpenSIPS `TM_CLUSTER_VERSION`.
const VERSION: i16 = 0;
/// OpenSIPS `TM_TABLE_ENTRIES` (the hash index's range).
const TABLE_ENTRIES: u32 = 1 << 16;

/// tm's cluster settings in force.
#[derive(Debug, Clone)]
pub struct ClusterConf {
    /// `tm_replication_cluster` (0: none).
    pub cluster: i32,
    /// `cluster_param`.
    pub param: String,
    /// `cluster_auto_cancel`.
    pub auto_cancel: bool,
}

impl Default for ClusterConf {
    fn default() -> ClusterConf {
        ClusterConf {
            cluster: 0,
            param: "cid".into(),
            auto_cancel: true,
        }
    }
}

pub fn conf() -> Arc<ClusterConf> {
    crate::state::module::<ClusterConf>()
}

/// tm's cluster keys of `config.modules.tm`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    conf: ClusterConf,
    via: ClusterVia,
}

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let mut c = ClusterConf::default();
    let Some(t) = cfg::table(modules, "tm")? else {
        return Ok(Prepared {
            conf: c,
            via: ClusterVia::default(),
        });
    };
    if let Some(n) = cfg::int(&t, "tm", "tm_replication_cluster")? {
        if n < 0 || n > i64::from(i32::MAX) {
            return Err(format!("config.modules.tm.tm_replication_cluster: {n} is not a cluster id"));
        }
        c.cluster = n as i32;
    }
    if let Some(p) = cfg::str(&t, "tm", "cluster_param")? {
        c.param = p;
    }
    if let Some(b) = cfg::bool(&t, "tm", "cluster_auto_cancel")? {
        c.auto_cancel = b;
    }
    let mut via = ClusterVia::default();
    if c.cluster > 0 {
        let cl = clusterer::prepare(modules)?;
        if cl.clusters().is_some_and(|cs| !cs.contains(&c.cluster)) {
            // OpenSIPS tm.c: tm then runs without cluster support
            // (`t_anycast_replicate` answers -3).
            tracing::warn!(
                "config.modules.tm.tm_replication_cluster: this node is in no cluster {} (config.modules.clusterer: db_mode = 0 and my_node_info); running without cluster support for transactions",
                c.cluster
            );
            return Ok(Prepared { conf: c, via });
        }
        if c.param.is_empty()
            || !c.param.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "config.modules.tm.cluster_param: '{}' is not a Via parameter name",
                c.param
            ));
        }
        via = ClusterVia {
            via_param: format!(";{}={}", c.param, cl.my_id()),
            name: c.param.clone(),
            node: cl.my_id(),
            replicate: Some(replicate_reply),
        };
    }
    Ok(Prepared { conf: c, via })
}

impl Prepared {
    pub fn commit(self, staged: &mut crate::state::Staged) {
        staged.put(self.conf);
        staged.put(self.via);
    }
}
crate::modules::staged_settings!(Prepared);

/// `t_anycast_replicate()`.
pub fn t_anycast_replicate(lua: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    coded(lua, replicate(st))
}

/// OpenSIPS cluster.c `tm_anycast_replicate`: 1 replicated; -1 not to be
/// replicated (not a CANCEL/ACK, not on an anycast socket, or its
/// transaction is here); -2 it came from another node; -3 not sent.
fn replicate(st: &Current) -> i64 {
    let call = st.call.borrow();
    let Some(m) = call.msg.as_ref().filter(|m| m.is_request()) else {
        return -1;
    };
    let method = m.method_kind();
    if method != Method::Cancel && method != Method::Ack {
        return -1;
    }
    let Some(sock) = st.env.sockets.list.get(call.src.socket).filter(|s| s.anycast) else {
        return -1;
    };
    if call.replicated {
        return -2;
    }
    let tm = &st.env.tm;
    let here = |as_method| server_key(m, as_method).is_some_and(|k| tm.server.contains_key(&k));
    if method == Method::Cancel && here(Some("INVITE")) {
        return -1;
    }
    if method == Method::Ack && (call.tm.txn.is_some() || here(None)) {
        return -1;
    }
    let c = conf();
    if c.cluster == 0 {
        tracing::warn!("t_anycast_replicate: tm_replication_cluster is not set");
        return -3;
    }
    // OpenSIPS: auto-CANCEL only for CANCELs whose Via has a branch.
    let auto = c.auto_cancel
        && method == Method::Cancel
        && m.top_via().and_then(|v| v.branch()).is_some();
    let ptype = if auto { AUTO_CANCEL } else { REQUEST };
    let packet = match build(m, &call.src, sock, ptype, call.tm.cancel_reason.clone()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("t_anycast_replicate: {e}");
            return -3;
        }
    };
    match clusterer::send(c.cluster, None, &packet) {
        SendRet::Success => {
            if auto {
                TM.cluster_cancel_sent.inc();
            } else {
                TM.cluster_request_sent.inc();
            }
            1
        }
        other => {
            tracing::info!("t_anycast_replicate: cluster {}: {other:?}", c.cluster);
            -3
        }
    }
}

fn proto_num(p: Proto) -> i32 {
    match p {
        Proto::Udp => 1,
        Proto::Tcp => 2,
    }
}

/// OpenSIPS's `struct ip_addr` as it sits in memory: family, length, 16
/// address bytes.
fn ip_addr_bytes(ip: IpAddr) -> Vec<u8> {
    let (af, len, bytes): (u32, u32, [u8; 16]) = match ip {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            (2, 4, b)
        }
        IpAddr::V6(v6) => (10, 16, v6.octets()),
    };
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&af.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes);
    out
}

fn ip_from_bytes(b: &[u8]) -> Result<IpAddr, String> {
    let word = |i: usize| b.get(i..i + 4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    match (word(0), word(4), b.get(8..24)) {
        (Some(2), Some(4), Some(a)) => Ok(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
        (Some(10), Some(16), Some(a)) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(a);
            Ok(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => Err("bad source address".into()),
    }
}

/// Where `part` (text read from `m`) starts in the message; 0 when it is
/// not in it (OpenSIPS sends 0 for "absent").
fn offset(m: &Message, part: &str) -> i32 {
    m.offset_of(part)
        .and_then(|o| i32::try_from(o).ok())
        .unwrap_or(0)
}

/// OpenSIPS hash_func.h `core_hash` over Call-ID and CSeq number (tm's
/// `tm_hash`): a receiving OpenSIPS looks the INVITE up in that bucket.
fn tm_hash(callid: &[u8], cseq: &[u8]) -> u32 {
    let mut h: u32 = 0;
    let byte = |b: u8| b as i8 as i32 as u32; // C `char` is signed
    for s in [callid, cseq] {
        let mut chunks = s.chunks_exact(4);
        for c in &mut chunks {
            let v = (byte(c[0]) << 24)
                .wrapping_add(byte(c[1]) << 16)
                .wrapping_add(byte(c[2]) << 8)
                .wrapping_add(byte(c[3]));
            h = h.wrapping_add(v ^ (v >> 3));
        }
        let mut v: u32 = 0;
        for &b in chunks.remainder() {
            v = (v << 8).wrapping_add(byte(b));
        }
        h = h.wrapping_add(v ^ (v >> 3));
    }
    h = h.wrapping_add(h >> 11).wrapping_add((h >> 13).wrapping_add(h >> 23));
    h & (TABLE_ENTRIES - 1)
}

/// cluster.c `tm_replicate_packet` (and `tm_replicate_cancel`'s fields).
fn build(
    m: &Message,
    src: &Source,
    sock: &SocketInfo,
    ptype: i32,
    cancel_reason: Option<String>,
) -> Result<Builder, BinError> {
    let buf = m.as_bytes();
    let mut b = Builder::new(CAPABILITY, ptype, VERSION, buf.len() + 128);
    b.int(proto_num(src.proto));
    match &sock.tag {
        Some(tag) => {
            b.str(tag.as_bytes())?;
            b.int(0);
        }
        None => {
            b.str(sock.addr.ip().to_string().as_bytes())?;
            b.int(i32::from(sock.addr.port()));
        }
    }
    b.str(&ip_addr_bytes(src.addr.ip()))?;
    b.int(i32::from(src.addr.port()));
    let mut raw = Vec::with_capacity(buf.len() + 1);
    raw.extend_from_slice(buf);
    raw.push(0); // OpenSIPS's receive_msg wants it
    b.str(&raw)?;
    if ptype != AUTO_CANCEL {
        return Ok(b);
    }
    let via = m.top_via();
    for part in [
        via.as_ref().and_then(|v| v.branch()),
        via.as_ref().map(|v| v.host),
        via.as_ref().map(|v| v.transport),
    ] {
        match part.map(|p| (offset(m, p), p.len())) {
            Some((off, len)) if off != 0 => {
                b.int(off);
                b.int(len as i32);
            }
            _ => b.int(0),
        }
    }
    b.int(via.as_ref().and_then(|v| v.port).map_or(0, i32::from));
    // t_fwd.c get_cancel_reason: t_add_cancel_reason's, the CANCEL's own
    // Reason, or 487.
    let reason = cancel_reason.unwrap_or_else(|| {
        let mut s = String::new();
        relay::lines_of(m, "Reason", &mut s);
        if s.is_empty() {
            s = relay::REASON_487.to_string();
        }
        s
    });
    b.str(reason.as_bytes())?;
    let cseq = m.cseq().map(|c| c.num.to_string()).unwrap_or_default();
    b.int(tm_hash(m.call_id().unwrap_or("").as_bytes(), cseq.as_bytes()) as i32);
    Ok(b)
}

/// cluster.c `tm_replicate_reply`: a reply for node `node` (its Via's
/// `cluster_param`) goes there.
fn replicate_reply(m: &Message, src: &Source, sock: &SocketInfo, node: i32) {
    let c = conf();
    let sent = build(m, src, sock, REPLY, None)
        .map_err(|e| e.to_string())
        .map(|p| clusterer::send(c.cluster, Some(node), &p));
    match sent {
        Ok(SendRet::Success) => TM.cluster_reply_sent.inc(),
        Ok(other) => tracing::info!("tm: reply for node {node} in cluster {}: {other:?}", c.cluster),
        Err(e) => tracing::warn!("tm: reply for node {node}: {e}"),
    }
}

/// The capability's handler (cluster.c `receive_tm_repl`), on the first
/// worker: the message is handled as if it had arrived on the named
/// socket from its first source.
pub fn on_packet(worker: &Rc<Worker>, mut p: Packet) {
    if let Err(e) = receive(worker, &mut p) {
        tracing::warn!("tm: replicated packet from node {}: {e}", p.src);
    }
}

fn receive(worker: &Rc<Worker>, p: &mut Packet) -> Result<(), String> {
    let c = conf();
    if c.cluster == 0 || p.cluster != c.cluster {
        return Err(format!("cluster {} is not tm_replication_cluster", p.cluster));
    }
    if !matches!(p.ptype, REPLY | REQUEST | AUTO_CANCEL) {
        return Err(format!("invalid tm packet type {}", p.ptype));
    }
    let e = |e: BinError| e.to_string();
    let proto = match p.int("proto").map_err(e)? {
        1 => Proto::Udp,
        2 => Proto::Tcp,
        n => return Err(format!("protocol {n} is not udp or tcp")),
    };
    let host = p.str("dst host").map_err(e)?;
    let port = p.int("dst port").map_err(e)?;
    let host = String::from_utf8_lossy(&host);
    let phases = worker.host();
    let st = phases.current();
    let port = u16::try_from(port).map_err(|_| format!("bad port {port}"))?;
    let Some(sock) = st.env.sockets.find_internal(proto, &host, port) else {
        return Err(format!("message for an interface we don't know, {}:{host}:{port}; discarded", proto.as_str()));
    };
    if !sock.anycast {
        tracing::warn!("tm: replicated message for a non-anycast interface {}", sock.spec());
    }
    let ip = ip_from_bytes(&p.str("src host").map_err(e)?)?;
    let src_port = p.int("src port").map_err(e)?;
    let src_port = u16::try_from(src_port).map_err(|_| format!("bad source port {src_port}"))?;
    let mut msg = p.str("message").map_err(e)?;
    if msg.last() == Some(&0) {
        msg.truncate(msg.len() - 1);
    }
    let inc = Incoming {
        buf: msg,
        src: SocketAddr::new(ip, src_port),
        proto,
        socket: sock.id,
    };
    match p.ptype {
        AUTO_CANCEL => {
            TM.cluster_cancel_recv.inc();
            if c.auto_cancel {
                return repl_cancel(&phases, p, inc);
            }
            tracing::warn!("tm: auto-CANCEL handling is disabled, but got one auto-CANCEL here");
        }
        REQUEST => TM.cluster_request_recv.inc(),
        _ => TM.cluster_reply_recv.inc(),
    }
    worker.handle_replicated(inc);
    Ok(())
}

/// cluster.c `tm_repl_cancel`: the CANCEL of an INVITE held here is
/// relayed (200 to its sender, CANCEL on every pending branch) without
/// running the script; elsewhere it is ignored.
fn repl_cancel(host: &Rc<dyn Phases>, p: &mut Packet, inc: Incoming) -> Result<(), String> {
    let e = |e: BinError| e.to_string();
    // The Via's offsets spare OpenSIPS a parse; lunasip parses anyway.
    for what in ["via branch", "via host", "via transport"] {
        if p.int(what).map_err(e)? != 0 {
            p.int(what).map_err(e)?;
        }
    }
    p.int("via port").map_err(e)?;
    let reason = p.str("cancel reason").map_err(e)?;
    let _hash = p.int("hash index").map_err(e)?;
    let msg: Message = Message::parse(inc.buf.clone()).map_err(|e| format!("unparsable replicated CANCEL: {e}"))?;
    if msg.method_kind() != Method::Cancel || msg.validate_request().is_err() {
        return Err("replicated auto-CANCEL is not a well-formed CANCEL".into());
    }
    let st = host.current();
    let here = server_key(&msg, Some("INVITE")).is_some_and(|k| st.env.tm.server.contains_key(&k));
    if !here {
        tracing::debug!("tm: replicated CANCEL: original transaction not here");
        return Ok(());
    }
    {
        let mut call = st.call.borrow_mut();
        let src = Source {
            addr: inc.src,
            proto: inc.proto,
            socket: inc.socket,
        };
        call.reset(msg, src, RouteType::Request);
        call.replicated = true;
        if !reason.is_empty() {
            call.tm.cancel_reason = Some(String::from_utf8_lossy(&reason).into_owned());
        }
    }
    if let Err(err) = relay::t_relay(&**host) {
        tracing::error!("tm: cannot handle auto-CANCEL: {err}");
    }
    let slots = st.call.borrow_mut().take_slots();
    drop(slots);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_round_trip_as_opensips_ip_addr() {
        for ip in ["127.0.0.1", "::1", "2001:db8::5"] {
            let ip: IpAddr = ip.parse().unwrap();
            let b = ip_addr_bytes(ip);
            assert_eq!(b.len(), 24);
            assert_eq!(ip_from_bytes(&b).unwrap(), ip);
        }
        assert!(ip_from_bytes(&[1, 2, 3]).is_err());
        assert!(ip_from_bytes(&[7; 24]).is_err());
    }

    #[test]
    fn tm_hash_is_opensips_core_hash() {
        // core_hash("abcde", "1", 2^16) by hand: "abcd" = 0x61626364,
        // then the tail 'e' = 0x65, then "1" = 0x31.
        let mut h: u32 = 0;
        for v in [0x6162_6364u32, 0x65, 0x31] {
            h = h.wrapping_add(v ^ (v >> 3));
        }
        h = h.wrapping_add(h >> 11).wrapping_add((h >> 13).wrapping_add(h >> 23));
        assert_eq!(tm_hash(b"abcde", b"1"), h & 0xffff);
        assert!(tm_hash(b"x@y", b"4711") < TABLE_ENTRIES);
    }

    #[test]
    fn offsets_name_slices_of_the_message_only() {
        let m = Message::parse(bytes::Bytes::from_static(
            b"CANCEL sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bKc\r\nCall-ID: x\r\nCSeq: 1 CANCEL\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let via = m.top_via().unwrap();
        let branch = via.branch().unwrap();
        let at = offset(&m, branch) as usize;
        assert_eq!(&m.as_bytes()[at..at + branch.len()], b"z9hG4bKc");
        let host_at = m.as_bytes().windows(7).position(|w| w == b"UDP h:5").unwrap() + 4;
        assert_eq!(offset(&m, via.host), host_at as i32);
        assert_eq!(offset(&m, "sip:a"), 0);
    }
}
