//! Module packets between nodes (OpenSIPS 3.4 clusterer.c `cl_send_to`,
//! `cl_send_all`, `msg_send_retry`, and the checks and routing of
//! `bin_rcv_mod_packets`): a packet for a node whose link is not Up goes
//! to the next hop towards it, which routes it on.

use bytes::Bytes;
use std::net::SocketAddr;

use super::bin::Builder;
use super::proto::{known_source, lock, topology};
use super::topo::{now_us, Cluster, Ls, Out};

/// OpenSIPS clusterer `enum clusterer_send_ret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRet {
    Success,
    /// This node takes part in no such cluster, or is disabled in it.
    CurrDisabled,
    /// No destination is reachable.
    DestDown,
    /// Nothing could be sent.
    SendErr,
}

/// clusterer.c `msg_send_retry`: to `dest` over its link when Up, else
/// through the next hop; false when it is unreachable.
fn send_retry(cl: &mut Cluster, dest: i32, bytes: Bytes, out: &mut Vec<Out>) -> bool {
    let hop = match cl.node(dest) {
        Some(n) if n.ls == Ls::Up => Some(dest),
        Some(_) => cl.next_hop_2(dest),
        None => None,
    };
    let Some(hop) = hop else { return false };
    if let Some(n) = cl.node_mut(hop) {
        // A packet sent directly delays the next ping.
        n.last_sent = now_us();
    }
    out.push(Out {
        cluster: cl.id,
        node: hop,
        bytes,
        ping: false,
    });
    true
}

/// OpenSIPS `cl_send_to` / `cl_send_all`: sends the packet, with the
/// clusterer's trailer, to node `to` (None: every node) of `cluster`.
/// Never waits.
pub fn send(cluster: i32, to: Option<i32>, packet: &Builder) -> SendRet {
    let t = topology();
    let mut out = Vec::new();
    let ret = {
        let mut clusters = lock(&t);
        let Some(cl) = clusters.iter_mut().find(|c| c.id == cluster) else {
            return SendRet::CurrDisabled;
        };
        if !cl.enabled {
            return SendRet::CurrDisabled;
        }
        let me = cl.my_id();
        match to {
            Some(id) => match cl.node(id) {
                None => {
                    tracing::error!("clusterer: node id [{id}] not found in cluster {cluster}");
                    SendRet::SendErr
                }
                Some(n) if !n.enabled => SendRet::Success,
                Some(_) => {
                    if send_retry(cl, id, packet.with_trailer(cluster, me, id), &mut out) {
                        SendRet::Success
                    } else {
                        SendRet::DestDown
                    }
                }
            },
            None => {
                let ids: Vec<i32> = cl.nodes.iter().filter(|n| n.enabled).map(|n| n.id()).collect();
                let mut sent = false;
                for id in &ids {
                    sent |= send_retry(cl, *id, packet.with_trailer(cluster, me, *id), &mut out);
                }
                match (ids.is_empty(), sent) {
                    (true, _) => SendRet::Success,
                    (false, true) => SendRet::Success,
                    (false, false) => SendRet::DestDown,
                }
            }
        }
    };
    for o in out {
        super::link::queue(o);
    }
    ret
}

/// The checks of a module or clusterer-extra packet (trailer popped):
/// from a known node of a cluster of this node; one for another node is
/// routed on. True: it is for this node.
pub fn receive(p: &super::bin::Packet, from: SocketAddr) -> bool {
    let t = topology();
    let mut out = Vec::new();
    let here = {
        let mut clusters = lock(&t);
        let Some(cl) = clusters.iter_mut().find(|c| c.id == p.cluster) else {
            tracing::warn!("clusterer: message from unknown cluster, id [{}]", p.cluster);
            return false;
        };
        if p.src == cl.my_id() {
            tracing::error!("clusterer: message with bad source - same node id as this instance");
            return false;
        }
        if !cl.enabled {
            tracing::info!("clusterer: current node disabled, ignoring received bin packet");
            return false;
        }
        let Some(node) = cl.node(p.src) else {
            tracing::warn!("clusterer: message with unknown source id [{}]", p.src);
            return false;
        };
        if !known_source(cl, node, from) {
            tracing::warn!("clusterer: message from unknown source, addr: {from}");
            return false;
        }
        let (enabled, down) = (node.enabled, node.ls == Ls::Down);
        if let Some(n) = cl.node_mut(p.src) {
            n.last_recv = now_us();
        }
        if !enabled {
            return false;
        }
        if down {
            cl.set_link_w_neigh(Ls::RestartPinging, p.src);
        }
        if p.dst == cl.my_id() {
            true
        } else {
            if cl.node(p.dst).is_none() {
                tracing::warn!("clusterer: message with unknown destination id [{}]", p.dst);
            } else if !send_retry(cl, p.dst, p.frame.clone(), &mut out) {
                tracing::error!(
                    "clusterer: failed to route message with source id [{}] and destination id [{}]",
                    p.src,
                    p.dst
                );
            }
            false
        }
    };
    for o in out {
        super::link::queue(o);
    }
    here
}
