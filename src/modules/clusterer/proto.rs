//! The clusterer's own protocol (OpenSIPS 3.4 clusterer.c
//! `bin_rcv_cl_packets`, topology.c): the handlers of pings, pongs,
//! link-state and full-topology updates, node descriptions and
//! capability updates; the heartbeat timer that pings the other nodes
//! is in [`super::heartbeat`]. All state is behind one
//! lock ([`Topology`]); packets to send and node events are collected
//! under it and acted on after it is released ([`Effects`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::bin::{BinError, Packet};
use super::topo::{fresh, msg, now_us, Cluster, Ls, NodeSt, Out};
use super::{conf, nodes};

/// Every cluster of this node (long-lived state).
#[derive(Default)]
pub struct Topology {
    pub clusters: Mutex<Vec<Cluster>>,
}

pub fn topology() -> Arc<Topology> {
    crate::state::state::<Topology>()
}

pub fn lock(t: &Topology) -> MutexGuard<'_, Vec<Cluster>> {
    t.clusters.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a step decided: packets to send, node events to report.
#[derive(Default)]
pub struct Effects {
    pub out: Vec<Out>,
    /// (cluster, node, reachable now).
    pub events: Vec<(i32, i32, bool)>,
    /// Replies on the connection a packet came in on.
    pub replies: Vec<bytes::Bytes>,
}

impl Effects {
    /// Collects the node events of `c` (after a change to it).
    pub fn collect(&mut self, c: &mut Cluster) {
        for (id, up) in c.node_events() {
            self.events.push((c.id, id, up));
        }
    }

    /// Sends what was queued and reports the events (the lock is
    /// released by now).
    pub fn apply(self, reply: Option<&tokio::sync::mpsc::Sender<super::link::Item>>) {
        for o in self.out {
            super::link::queue(o);
        }
        if let Some(r) = reply {
            for b in self.replies {
                let _ = r.try_send(super::link::Item { bytes: b, ping: false });
            }
        }
        for (cluster, node, up) in self.events {
            report_node_state(cluster, node, up);
        }
    }
}

/// clusterer.c `report_node_state` and `shtag_event_handler`: the
/// E_CLUSTERER_NODE_STATE_CHANGED event (new_state 1 up, 0 down), and
/// the sharing tags this node holds active told to a node coming up.
fn report_node_state(cluster: i32, node: i32, up: bool) {
    tracing::info!(
        "clusterer: node [{node}], cluster [{cluster}] is {}",
        if up { "UP" } else { "DOWN" }
    );
    let mut m = serde_json::Map::new();
    m.insert("cluster_id".into(), cluster.into());
    m.insert("node_id".into(), node.into());
    m.insert("new_state".into(), i32::from(up).into());
    crate::event::raise_declared("E_CLUSTERER_NODE_STATE_CHANGED", m);
    if up {
        super::shtag::flush_state(cluster, node);
    }
}

/// Builds the clusters from the settings (module `init`).
pub fn init() {
    let c = conf();
    let mut clusters = Vec::new();
    for me in &c.me {
        let mut cl = Cluster::new(me.clone());
        for n in c.neighbors.iter().filter(|n| n.cluster == me.cluster) {
            cl.nodes.push(NodeSt::new(n.clone(), -1, None, true));
        }
        for (n, db_id, descr, enabled) in c.db_nodes.iter().filter(|x| x.0.cluster == me.cluster) {
            cl.nodes.push(NodeSt::new(n.clone(), *db_id, descr.clone(), *enabled));
        }
        cl.enabled = c.me_enabled.get(&me.cluster).copied().unwrap_or(true);
        cl.caps = super::CAPABILITIES
            .iter()
            .filter(|k| (k.cluster)() == me.cluster)
            .map(|k| k.name.to_string())
            .collect();
        clusters.push(cl);
    }
    *lock(&topology()) = clusters;
}

/// Whether `from` is the address of a node of `cl` (clusterer.c
/// `su_ip_cmp` against the sender, then `ip_check` against any node).
pub fn known_source(cl: &Cluster, node: &NodeSt, from: SocketAddr) -> bool {
    node.node.addr.ip() == from.ip()
        || cl.nodes.iter().any(|n| n.node.addr.ip() == from.ip())
}

/// clusterer.c `bin_rcv_cl_packets`: a clusterer-internal packet.
pub fn on_internal(mut p: Packet, from: SocketAddr) -> Effects {
    let mut fx = Effects::default();
    let r = (|| -> Result<(), BinError> {
        let cl_id = p.int("cluster id")?;
        let src = p.int("source id")?;
        let t = topology();
        let mut clusters = lock(&t);
        let Some(cl) = clusters.iter_mut().find(|c| c.id == cl_id) else {
            tracing::warn!("clusterer: message from unknown cluster id [{cl_id}]");
            return Ok(());
        };
        if src == cl.my_id() {
            tracing::error!("clusterer: message with bad source - same node id as this instance");
            return Ok(());
        }
        if !cl.enabled {
            tracing::info!("clusterer: current node disabled, ignoring received clusterer bin packet");
            return Ok(());
        }
        let now = now_us();
        let Some(node) = cl.node(src) else {
            tracing::info!("clusterer: message with unknown source id [{src}]");
            return on_unknown(cl, &mut p, src, &mut fx);
        };
        if !known_source(cl, node, from) {
            tracing::warn!("clusterer: message from unknown source, addr: {from}");
            return Ok(());
        }
        let enabled = node.enabled;
        if let Some(n) = cl.node_mut(src) {
            if p.ptype != msg::PONG {
                n.last_recv = now;
            }
        }
        if !enabled {
            return Ok(());
        }
        match p.ptype {
            msg::PING => handle_ping(cl, &mut p, src, &mut fx)?,
            msg::PONG => handle_pong(cl, &mut p, src, now, &mut fx)?,
            msg::LS_UPDATE => handle_ls_update(cl, &mut p, src, &mut fx)?,
            msg::FULL_TOP_UPDATE => handle_full_top_update(cl, &mut p, src, &mut fx)?,
            msg::UNKNOWN_ID => handle_unknown_id(cl, src, &mut fx),
            msg::NODE_DESCRIPTION => {}
            msg::CAP_UPDATE => handle_cap_update(cl, &mut p, src, &mut fx)?,
            other => tracing::warn!("clusterer: invalid clusterer binary packet command [{other}] from node: {src}"),
        }
        fx.collect(cl);
        Ok(())
    })();
    if let Err(e) = r {
        tracing::warn!("clusterer: bad packet from {from}: {e}");
    }
    fx
}

/// topology.c `handle_internal_msg_unknown`: a ping from a node not
/// known is answered UNKNOWN_ID (on its connection); its description
/// adds it (with `db_mode = 0`).
fn on_unknown(cl: &mut Cluster, p: &mut Packet, src: i32, fx: &mut Effects) -> Result<(), BinError> {
    if conf().db_mode != 0 {
        return Ok(());
    }
    match p.ptype {
        msg::PING => {
            let _req = p.int("req list")?;
            fx.replies.push(cl.internal(msg::UNKNOWN_ID, 32).finish());
        }
        msg::NODE_DESCRIPTION => {
            let d = pop_description(p)?;
            add_node(cl, src, &d);
            cl.flood(p, false, &mut fx.out)?;
            fx.collect(cl);
        }
        _ => {}
    }
    Ok(())
}

/// A node's description in an update: url, sip_addr, priority,
/// no_ping_retries (topology.c `bin_push_node_info`).
pub struct Descr {
    url: String,
    sip_addr: String,
    priority: i32,
    retries: i32,
}

fn pop_description(p: &mut Packet) -> Result<Descr, BinError> {
    Ok(Descr {
        url: String::from_utf8_lossy(&p.str("url")?).into_owned(),
        sip_addr: String::from_utf8_lossy(&p.str("sip_addr")?).into_owned(),
        priority: p.int("priority")?,
        retries: p.int("no_ping_retries")?,
    })
}

/// topology.c `add_node`: a node learned from another's update.
fn add_node(cl: &mut Cluster, id: i32, d: &Descr) -> bool {
    if cl.node(id).is_some() || id == cl.my_id() {
        return true;
    }
    let addr = match nodes::parse_url(&d.url) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("clusterer: node [{id}] described with {e}");
            return false;
        }
    };
    let node = nodes::Node {
        cluster: cl.id,
        node_id: id,
        url: d.url.clone(),
        addr,
        priority: d.priority,
        no_ping_retries: d.retries,
        sip_addr: (!d.sip_addr.is_empty()).then(|| d.sip_addr.clone()),
        flags: None,
    };
    let mut n = NodeSt::new(node, -1, None, true);
    n.learned = true;
    cl.nodes.push(n);
    tracing::info!("clusterer: added info about node [{id}] ({})", d.url);
    true
}

/// topology.c `handle_ping`: answered with a pong (listing the nodes
/// known when asked); a ping from a node thought down restarts pinging.
fn handle_ping(cl: &mut Cluster, p: &mut Packet, src: i32, fx: &mut Effects) -> Result<(), BinError> {
    let req_list = p.int("req list")?;
    let mut b = cl.internal(msg::PONG, 300);
    if req_list != 0 {
        let others: Vec<i32> = cl.nodes.iter().map(NodeSt::id).filter(|i| *i != src).collect();
        b.int(others.len() as i32);
        for i in others {
            b.int(i);
        }
    } else {
        b.int(0);
    }
    fx.out.push(Out {
        cluster: cl.id,
        node: src,
        bytes: b.finish(),
        ping: false,
    });
    if cl.node(src).is_some_and(|n| n.ls == Ls::Down) {
        cl.send_ping(src, true, &mut fx.out);
        cl.set_link_w_neigh_adv(Ls::Restarted, src, &mut fx.out);
    }
    Ok(())
}

/// topology.c `handle_pong`: a node answering in time is Up.
fn handle_pong(cl: &mut Cluster, p: &mut Packet, src: i32, now: i64, fx: &mut Effects) -> Result<(), BinError> {
    let count = p.int("node count")?;
    let mut known = Vec::new();
    for _ in 0..count.clamp(0, 128) {
        known.push(p.int("node id")?);
    }
    let pt = i64::from(conf().ping_timeout) * 1000;
    let Some(n) = cl.node_mut(src) else { return Ok(()) };
    let last_recv_int = now - n.last_recv;
    n.last_pong = now;
    n.last_recv = now;
    if matches!(n.ls, Ls::RestartPinging | Ls::RetrySendFail | Ls::Down)
        && n.last_ping_ok
        && now - n.last_ping < pt
    {
        n.ls = Ls::Temp;
    }
    let reply_int = n.last_pong - n.last_ping;
    if matches!(n.ls, Ls::Restarted | Ls::Retrying | Ls::Temp)
        && ((reply_int > 0 && reply_int < pt) || last_recv_int <= 0 || last_recv_int < pt)
    {
        cl.set_link_w_neigh_up(src, &known, &mut fx.out);
        tracing::info!("clusterer: node [{src}] is UP");
    }
    Ok(())
}

/// topology.c `handle_ls_update`.
fn handle_ls_update(cl: &mut Cluster, p: &mut Packet, src: i32, fx: &mut Effects) -> Result<(), BinError> {
    let seq = p.int("seq")?;
    let ts = p.int("timestamp")?;
    let Some(n) = cl.node_mut(src) else { return Ok(()) };
    if !fresh(n.ls_seq, seq, n.ls_ts, ts) {
        return Ok(());
    }
    n.ls_seq = seq;
    n.ls_ts = ts;
    let src_ls = n.ls;
    let neigh = p.int("neighbour")?;
    let new = if p.int("state")? == Ls::Up as i32 { Ls::Up } else { Ls::Down };
    if neigh == cl.my_id() {
        if (new == Ls::Up && src_ls == Ls::Down) || (new == Ls::Down && src_ls == Ls::Up) {
            cl.set_link_w_neigh_adv(Ls::RestartPinging, src, &mut fx.out);
        }
    } else if cl.node(neigh).is_none() {
        tracing::warn!("clusterer: link state update about unknown node id [{neigh}]");
        return Ok(());
    } else {
        cl.set_link(new, src, neigh);
    }
    cl.flood(p, false, &mut fx.out)
}

/// One node's entry of a full topology update.
struct TopEntry {
    id: i32,
    descr: Option<Descr>,
    ls_seq: i32,
    ls_ts: i32,
    neigh: Vec<i32>,
}

/// topology.c `handle_full_top_update`: every adjacency list the source
/// knows; unknown nodes it describes are added (and pinged).
fn handle_full_top_update(cl: &mut Cluster, p: &mut Packet, src: i32, fx: &mut Effects) -> Result<(), BinError> {
    let seq = p.int("seq")?;
    let ts = p.int("timestamp")?;
    let Some(n) = cl.node_mut(src) else { return Ok(()) };
    if !fresh(n.top_seq, seq, n.top_ts, ts) {
        return Ok(());
    }
    n.top_seq = seq;
    n.top_ts = ts;
    let count = p.int("node count")?;
    let mut entries = Vec::new();
    for _ in 0..count.clamp(0, 128) {
        let id = p.int("node id")?;
        let descr = if p.int("has description")? != 0 { Some(pop_description(p)?) } else { None };
        let ls_seq = p.int("ls seq")?;
        let ls_ts = p.int("ls timestamp")?;
        let nn = p.int("neighbour count")?;
        let mut neigh = Vec::new();
        for _ in 0..nn.clamp(0, 128) {
            neigh.push(p.int("neighbour")?);
        }
        entries.push(TopEntry { id, descr, ls_seq, ls_ts, neigh });
    }
    let me = cl.my_id();
    let db_mode = conf().db_mode;
    for (i, e) in entries.iter().enumerate() {
        if e.id == me {
            continue;
        }
        if cl.node(e.id).is_none() {
            match (&e.descr, db_mode) {
                (Some(d), 0) => {
                    if !add_node(cl, e.id, d) {
                        continue;
                    }
                }
                (None, 0) => {
                    tracing::warn!("clusterer: unknown node id [{}] in topology update with source [{src}]", e.id);
                    continue;
                }
                _ => continue,
            }
        }
        let Some(n) = cl.node_mut(e.id) else { continue };
        if i > 0 && !fresh(n.ls_seq, e.ls_seq, n.ls_ts, e.ls_ts) {
            continue;
        }
        n.ls_seq = e.ls_seq;
        n.ls_ts = e.ls_ts;
        let mut present = Vec::new();
        for &nb in &e.neigh {
            if nb == me {
                let restart = cl.node(e.id).is_some_and(|n| n.ls == Ls::Down && n.enabled);
                if restart {
                    cl.set_link_w_neigh(Ls::RestartPinging, e.id);
                }
                continue;
            }
            if cl.node(nb).is_none() {
                let d = entries.iter().find(|x| x.id == nb).and_then(|x| x.descr.as_ref());
                match (d, db_mode) {
                    (Some(d), 0) => {
                        if !add_node(cl, nb, d) {
                            continue;
                        }
                    }
                    _ => {
                        tracing::warn!("clusterer: unknown neighbour id [{nb}] in topology update about node [{}] with source [{src}]", e.id);
                        continue;
                    }
                }
            }
            cl.set_link(Ls::Up, e.id, nb);
            present.push(nb);
        }
        // The links of this node not listed any more are down (a node
        // knows nothing of its neighbours' links to itself).
        let gone: Vec<i32> = cl
            .nodes
            .iter()
            .map(NodeSt::id)
            .filter(|x| *x != e.id && *x != src && !present.contains(x))
            .collect();
        for x in gone {
            cl.set_link(Ls::Down, e.id, x);
        }
    }
    cl.flood(p, false, &mut fx.out)
}

/// topology.c `handle_unknown_id`: the node does not know this one:
/// describe it, and ping again.
fn handle_unknown_id(cl: &mut Cluster, src: i32, fx: &mut Effects) {
    let mut b = cl.internal(msg::NODE_DESCRIPTION, 300);
    let _ = b.str(cl.me.url.as_bytes());
    let _ = b.str(cl.me.sip_addr.as_deref().unwrap_or("").as_bytes());
    b.int(cl.me.priority);
    b.int(cl.me.no_ping_retries);
    b.int(1);
    b.int(cl.my_id());
    fx.out.push(Out {
        cluster: cl.id,
        node: src,
        bytes: b.finish(),
        ping: false,
    });
    cl.set_link_w_neigh_adv(Ls::RestartPinging, src, &mut fx.out);
}

/// clusterer.c `handle_cap_update`: which capabilities the nodes have.
fn handle_cap_update(cl: &mut Cluster, p: &mut Packet, src: i32, fx: &mut Effects) -> Result<(), BinError> {
    let seq = p.int("seq")?;
    let ts = p.int("timestamp")?;
    let Some(n) = cl.node_mut(src) else { return Ok(()) };
    if !fresh(n.cap_seq, seq, n.cap_ts, ts) {
        return Ok(());
    }
    n.cap_seq = seq;
    n.cap_ts = ts;
    let count = p.int("node count")?;
    for _ in 0..count.clamp(0, 128) {
        let id = p.int("node id")?;
        let nc = p.int("capability count")?;
        let mut caps = Vec::new();
        for _ in 0..nc.clamp(0, 64) {
            let name = String::from_utf8_lossy(&p.str("capability")?).into_owned();
            let state = p.int("capability state")?;
            caps.push((name, state == 1));
        }
        if id == cl.my_id() {
            continue;
        }
        let Some(n) = cl.node_mut(id) else {
            tracing::error!("clusterer: unknown id [{id}] in capability update from node [{src}]");
            return Ok(());
        };
        for (name, ok) in caps {
            match n.caps.iter_mut().find(|(c, _)| *c == name) {
                Some(c) => c.1 = ok,
                None => n.caps.push((name, ok)),
            }
        }
    }
    let require_reply = p.int("require reply")? != 0;
    if require_reply {
        cl.send_cap_update(src, false, &mut fx.out);
    }
    cl.flood(p, require_reply, &mut fx.out)
}
