//! The BIN links between this node and the others (OpenSIPS proto_bin:
//! BIN packets over TCP). The listener, the heartbeat timer and one
//! sender task per node run on the first worker's runtime: anyone hands
//! a packet over with a bounded `try_send` and never waits for the
//! network. A packet that cannot be written is reported to the link
//! state machine ([`super::heartbeat::send_failed`]), as OpenSIPS learns it
//! from `msg_send`. Packets are read on both the accepted connections
//! and this node's own (a peer may answer on either).

use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::bin::{announced_len, Packet};
use super::topo::{Out, EXTRA_CAP, INTERNAL_CAP};
use super::{conf, heartbeat, proto, CAPABILITIES};
use crate::proxy::worker::Worker;

/// Packets waiting for one node's link; past this, sends fail.
const QUEUE: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One packet on a link's queue.
pub struct Item {
    pub bytes: Bytes,
    /// A ping: its failure moves the link's retry states.
    pub ping: bool,
}

/// A sender task to start on the first worker.
struct Spawn {
    cluster: i32,
    node: i32,
    addr: SocketAddr,
    tx: mpsc::Sender<Item>,
    rx: mpsc::Receiver<Item>,
}

/// Long-lived state: the listener bound at `init` (handed to the first
/// worker), each node's queue, and the way to start new senders.
#[derive(Default)]
pub struct Links {
    listener: Mutex<Option<std::net::TcpListener>>,
    senders: Mutex<HashMap<(i32, i32), mpsc::Sender<Item>>>,
    spawn: Mutex<Option<mpsc::UnboundedSender<Spawn>>>,
    pending: Mutex<Vec<Spawn>>,
}

fn links() -> Arc<Links> {
    crate::state::state::<Links>()
}

/// Binds this node's BIN listener (module `init`: a taken address stops
/// the start, as in OpenSIPS).
pub fn init() -> Result<(), String> {
    let c = conf();
    // One BIN listener serves every cluster of this node (OpenSIPS: one
    // `bin:` socket); `prepare` made sure the urls agree.
    if let Some(me) = c.me.first() {
        let sock = std::net::TcpListener::bind(me.addr)
            .map_err(|e| format!("clusterer: cannot listen on {}: {e}", me.url))?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        *links().listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(sock);
    }
    Ok(())
}

/// The heartbeat timer's period (clusterer_mod.c: the gcd of
/// ping_interval, ping_timeout and node_timeout), in ms.
fn tick_ms() -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let c = conf();
    let g = gcd(u64::from(c.ping_interval) * 1000, u64::from(c.ping_timeout));
    gcd(g, u64::from(c.node_timeout) * 1000).max(10)
}

/// In the first worker: accept BIN connections, start the senders and
/// the heartbeat timer.
pub fn child_init(rank: usize, worker: &Rc<Worker>) {
    if rank != 0 || conf().me.is_empty() {
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
    let (tx, mut rx) = mpsc::unbounded_channel::<Spawn>();
    let w = worker.clone();
    tokio::task::spawn_local(async move {
        while let Some(s) = rx.recv().await {
            tokio::task::spawn_local(sender(w.clone(), s));
        }
    });
    for s in l.pending.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        let _ = tx.send(s);
    }
    *l.spawn.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    let period = Duration::from_millis(tick_ms());
    tokio::task::spawn_local(async move {
        // The first pass at once: the links come up without waiting a
        // whole period after the start.
        let mut t = tokio::time::interval(period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            heartbeat::heartbeat();
        }
    });
}

/// Queues a packet on the link to its node (made on first use), never
/// waiting; a full queue drops it with a warning.
pub fn queue(o: Out) {
    let l = links();
    let key = (o.cluster, o.node);
    let tx = {
        let mut senders = l.senders.lock().unwrap_or_else(|e| e.into_inner());
        match senders.get(&key) {
            Some(tx) => tx.clone(),
            None => {
                let addr = {
                    let t = proto::topology();
                    let clusters = proto::lock(&t);
                    clusters
                        .iter()
                        .find(|c| c.id == o.cluster)
                        .and_then(|c| c.node(o.node))
                        .map(|n| n.node.addr)
                };
                let Some(addr) = addr else { return };
                let (tx, rx) = mpsc::channel(QUEUE);
                senders.insert(key, tx.clone());
                let s = Spawn {
                    cluster: o.cluster,
                    node: o.node,
                    addr,
                    tx: tx.clone(),
                    rx,
                };
                let spawn = l.spawn.lock().unwrap_or_else(|e| e.into_inner()).clone();
                match spawn {
                    Some(sp) => {
                        let _ = sp.send(s);
                    }
                    None => l.pending.lock().unwrap_or_else(|e| e.into_inner()).push(s),
                }
                tx
            }
        }
    };
    let item = Item {
        bytes: o.bytes,
        ping: o.ping,
    };
    if tx.try_send(item).is_err() {
        tracing::warn!("clusterer: queue to node {} full; packet dropped", o.node);
    }
}

async fn accept(worker: Rc<Worker>, listener: tokio::net::TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let _ = stream.set_nodelay(true);
                let (rd, mut wr) = stream.into_split();
                // Answers to a node that does not know us go back on its
                // connection (topology.c `handle_internal_msg_unknown`).
                let (tx, mut rx) = mpsc::channel::<Item>(16);
                tokio::task::spawn_local(async move {
                    while let Some(i) = rx.recv().await {
                        if wr.write_all(&i.bytes).await.is_err() {
                            return;
                        }
                    }
                });
                tokio::task::spawn_local(read_packets(worker.clone(), rd, from, tx));
            }
            Err(e) => {
                tracing::warn!("clusterer: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads BIN packets from one connection until it closes or sends
/// something that is not one.
async fn read_packets<R: AsyncRead + Unpin>(
    worker: Rc<Worker>,
    mut s: R,
    from: SocketAddr,
    reply: mpsc::Sender<Item>,
) {
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
                dispatch(&worker, p, from, &reply);
                worker.flush().await;
            }
            Err(e) => tracing::warn!("clusterer: from {from}: {e}"),
        }
    }
}

/// proto_bin's dispatch by capability: the clusterer's own packets, then
/// the modules' (clusterer.c `bin_rcv_mod_packets`), routed on when they
/// are for another node.
fn dispatch(worker: &Rc<Worker>, mut p: Packet, from: SocketAddr, reply: &mpsc::Sender<Item>) {
    if p.capability == INTERNAL_CAP {
        proto::on_internal(p, from).apply(Some(reply));
        return;
    }
    let cap = CAPABILITIES.iter().find(|k| k.name == p.capability);
    if cap.is_none() && p.capability != EXTRA_CAP {
        tracing::debug!("clusterer: ignored {} packet from {from}", p.capability);
        return;
    }
    if let Err(e) = p.pop_trailer() {
        tracing::warn!("clusterer: from {from}: {e}");
        return;
    }
    if !super::send::receive(&p, from) {
        return;
    }
    match cap {
        Some(cap) => (cap.on_packet)(worker, p),
        None => super::shtag::on_extra(p),
    }
}

async fn sender(worker: Rc<Worker>, s: Spawn) {
    let Spawn {
        cluster,
        node,
        addr,
        tx,
        mut rx,
    } = s;
    let mut conn: Option<tokio::net::tcp::OwnedWriteHalf> = None;
    while let Some(item) = rx.recv().await {
        if conn.is_none() {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    let (rd, wr) = s.into_split();
                    tokio::task::spawn_local(read_packets(worker.clone(), rd, addr, tx.clone()));
                    conn = Some(wr);
                }
                Ok(Err(e)) => {
                    failed(cluster, node, addr, item.ping, &e.to_string());
                    continue;
                }
                Err(_) => {
                    failed(cluster, node, addr, item.ping, "connect timed out");
                    continue;
                }
            }
        }
        let Some(s) = conn.as_mut() else { continue };
        if let Err(e) = s.write_all(&item.bytes).await {
            conn = None;
            failed(cluster, node, addr, item.ping, &e.to_string());
        }
    }
}

fn failed(cluster: i32, node: i32, addr: SocketAddr, ping: bool, why: &str) {
    tracing::debug!("clusterer: cannot send to node [{node}] ({addr}): {why}");
    heartbeat::send_failed(cluster, node, ping);
}
