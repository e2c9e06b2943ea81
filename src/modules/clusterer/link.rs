//! The BIN links between this node and its neighbours (OpenSIPS
//! proto_bin: BIN packets over TCP). The listener and one sender task
//! per neighbour run on the first worker's runtime: a route hands a
//! packet over with a bounded `try_send` and never waits for the network.
//! A neighbour's link is Probe until a connection is tried, Up while one
//! is open, Down after one failed (tried again with the next packet).

use bytes::Bytes;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::bin::{announced_len, Builder, Packet};
use super::{conf, Node, CAPABILITIES};
use crate::proxy::worker::Worker;

/// Packets waiting for one neighbour's link; past this, sends fail.
const QUEUE: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A link's state as MI `clusterer_list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Probe = 0,
    Up = 1,
    Down = 2,
}

impl LinkState {
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Probe => "Probe",
            LinkState::Up => "Up",
            LinkState::Down => "Down",
        }
    }
}

/// One neighbour: where it is, its link's state, its queue.
pub struct NodeLink {
    pub node: Node,
    state: AtomicU8,
    tx: Mutex<Option<mpsc::Sender<Bytes>>>,
}

impl NodeLink {
    pub fn state(&self) -> LinkState {
        match self.state.load(Ordering::Relaxed) {
            1 => LinkState::Up,
            2 => LinkState::Down,
            _ => LinkState::Probe,
        }
    }

    fn set(&self, s: LinkState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }
}

/// Long-lived state: the listener bound at `init` (handed to the first
/// worker) and the neighbours' links.
#[derive(Default)]
pub struct Links {
    listener: Mutex<Option<std::net::TcpListener>>,
    pub nodes: Mutex<Vec<Arc<NodeLink>>>,
}

fn links() -> Arc<Links> {
    crate::state::state::<Links>()
}

/// The neighbours' links now.
pub fn all() -> Vec<Arc<NodeLink>> {
    links().nodes.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// OpenSIPS clusterer `enum clusterer_send_ret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRet {
    Success,
    /// This node takes part in no such cluster.
    CurrDisabled,
    /// Every destination's link is down.
    DestDown,
    /// Nothing could be queued.
    SendErr,
}

/// Binds this node's BIN listener (module `init`: a taken address stops
/// the start, as in OpenSIPS) and makes the neighbours' links.
pub fn init() -> Result<(), String> {
    let c = conf();
    let l = links();
    // One BIN listener serves every cluster of this node (OpenSIPS: one
    // `bin:` socket); `prepare` made sure the urls agree.
    if let Some(me) = c.me.first() {
        let sock = std::net::TcpListener::bind(me.addr)
            .map_err(|e| format!("clusterer: cannot listen on {}: {e}", me.url))?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        *l.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(sock);
    }
    let nodes = c
        .neighbors
        .iter()
        .map(|n| {
            Arc::new(NodeLink {
                node: n.clone(),
                state: AtomicU8::new(LinkState::Probe as u8),
                tx: Mutex::new(None),
            })
        })
        .collect();
    *l.nodes.lock().unwrap_or_else(|e| e.into_inner()) = nodes;
    Ok(())
}

/// In the first worker: accept BIN connections, start the senders.
pub fn child_init(rank: usize, worker: &Rc<Worker>) {
    if rank != 0 {
        return;
    }
    let l = links();
    if let Some(std) = l.listener.lock().unwrap_or_else(|e| e.into_inner()).take() {
        match tokio::net::TcpListener::from_std(std) {
            Ok(listener) => {
                tokio::task::spawn_local(accept(worker.clone(), listener));
            }
            Err(e) => tracing::error!("clusterer: BIN listener: {e}"),
        }
    }
    for link in all() {
        let (tx, rx) = mpsc::channel(QUEUE);
        *link.tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        tokio::task::spawn_local(sender(link, rx));
    }
}

async fn accept(worker: Rc<Worker>, listener: tokio::net::TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let _ = stream.set_nodelay(true);
                tokio::task::spawn_local(read_packets(worker.clone(), stream, from));
            }
            Err(e) => {
                tracing::warn!("clusterer: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads BIN packets from one peer connection until it closes or sends
/// something that is not one.
async fn read_packets(worker: Rc<Worker>, mut s: TcpStream, from: SocketAddr) {
    loop {
        let mut head = [0u8; 8];
        if s.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = match announced_len(&head) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("clusterer: from {from}: {e}; closing the connection");
                return;
            }
        };
        let mut buf = vec![0u8; len];
        buf[..8].copy_from_slice(&head);
        if s.read_exact(&mut buf[8..]).await.is_err() {
            return;
        }
        match Packet::parse(Bytes::from(buf)) {
            Ok(p) => {
                dispatch(&worker, p, from);
                worker.flush().await;
            }
            Err(e) => tracing::warn!("clusterer: from {from}: {e}"),
        }
    }
}

/// OpenSIPS clusterer.c `bin_rcv_mod_packets`: a module packet from a
/// known neighbour, addressed to this node, goes to its capability.
fn dispatch(worker: &Rc<Worker>, p: Packet, from: SocketAddr) {
    let c = conf();
    let Some(cap) = CAPABILITIES.iter().find(|k| k.name == p.capability) else {
        // clusterer-internal (pings, topology) and unknown capabilities.
        tracing::debug!("clusterer: ignored {} packet from {from}", p.capability);
        return;
    };
    if p.src == c.my_id {
        tracing::error!("clusterer: packet from {from} claims this node's id {}", p.src);
        return;
    }
    if !c.me.iter().any(|m| m.cluster == p.cluster) {
        tracing::warn!("clusterer: packet from unknown cluster {}", p.cluster);
        return;
    }
    let known = c
        .neighbors
        .iter()
        .find(|n| n.cluster == p.cluster && n.node_id == p.src);
    match known {
        None => {
            tracing::warn!("clusterer: packet from unknown node {} (cluster {})", p.src, p.cluster);
            return;
        }
        Some(n) if n.addr.ip() != from.ip() => {
            tracing::warn!("clusterer: packet of node {} from unknown source {from}", p.src);
            return;
        }
        Some(_) => {}
    }
    if p.dst != c.my_id {
        tracing::warn!(
            "clusterer: packet for node {} reached node {} (routing through nodes is not supported)",
            p.dst,
            c.my_id
        );
        return;
    }
    (cap.on_packet)(worker, p);
}

async fn sender(link: Arc<NodeLink>, mut rx: mpsc::Receiver<Bytes>) {
    let mut conn: Option<TcpStream> = None;
    while let Some(bytes) = rx.recv().await {
        if conn.is_none() {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(link.node.addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    conn = Some(s);
                }
                Ok(Err(e)) => {
                    fail(&link, &e.to_string());
                    continue;
                }
                Err(_) => {
                    fail(&link, "connect timed out");
                    continue;
                }
            }
        }
        let Some(s) = conn.as_mut() else { continue };
        match s.write_all(&bytes).await {
            Ok(()) => link.set(LinkState::Up),
            Err(e) => {
                conn = None;
                fail(&link, &e.to_string());
            }
        }
    }
}

fn fail(link: &NodeLink, why: &str) {
    if link.state() != LinkState::Down {
        tracing::warn!(
            "clusterer: node {} ({}) unreachable: {why}",
            link.node.node_id,
            link.node.url
        );
    }
    link.set(LinkState::Down);
}

/// OpenSIPS `cl_send_to` / `cl_send_all`: queues the packet, with the
/// clusterer's trailer, to node `to` (None: every neighbour) of
/// `cluster`. Never waits.
pub fn send(cluster: i32, to: Option<i32>, packet: &Builder) -> SendRet {
    let c = conf();
    if !c.me.iter().any(|m| m.cluster == cluster) {
        return SendRet::CurrDisabled;
    }
    let (mut matched, mut down, mut sent) = (false, true, false);
    for link in all() {
        let n = &link.node;
        if n.cluster != cluster || to.is_some_and(|id| id != n.node_id) {
            continue;
        }
        matched = true;
        if link.state() != LinkState::Down {
            down = false;
        }
        let tx = link.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(tx) = tx else { continue };
        if tx.try_send(packet.with_trailer(cluster, c.my_id, n.node_id)).is_ok() {
            sent = true;
        } else {
            tracing::warn!("clusterer: queue to node {} full; packet dropped", n.node_id);
        }
    }
    match (matched, down, sent) {
        (false, ..) if to.is_some() => SendRet::SendErr,
        (false, ..) => SendRet::Success,
        (true, true, _) => SendRet::DestDown,
        (true, false, true) => SendRet::Success,
        (true, false, false) => SendRet::SendErr,
    }
}
