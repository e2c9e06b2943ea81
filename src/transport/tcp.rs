//! TCP: per-worker listeners, connections framed by Content-Length
//! (RFC 3261 §18.3), a table shared by all workers so any worker can send a
//! reply or a request over a connection another worker owns, an idle
//! timeout and a per-connection size limit. A peer that sends garbage is
//! cut off: after `max_bad` unparsable frames in a row, or when a message
//! it began is not complete within `read_timeout` (a trickle of bytes).

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Incoming, Proto};
use crate::sip::framing::{next_frame, Frame};
use crate::stats::CORE;

/// Frames queued to one connection before new ones are refused.
const QUEUE: usize = 1024;

/// What a connection does with each framed message.
pub trait Handler: 'static {
    /// Handles one frame; false when it was refused unparsed (the
    /// connection is closed after `TcpCtx::max_bad` of those in a row).
    fn on_message(self: Rc<Self>, msg: Incoming) -> impl Future<Output = bool>;
}

/// A connection as other workers see it: a queue to its writer task.
#[derive(Clone, Debug)]
pub struct Conn {
    tx: mpsc::Sender<Bytes>,
    id: u64,
    pub socket: usize,
    pub local: SocketAddr,
    pub outgoing: bool,
    /// Unix time (ms) until which the connection stays open however idle
    /// (0: the idle timeout alone), [`TcpTable::keep_open`].
    keep: Arc<AtomicU64>,
}

/// Every open connection by remote address, shared by all workers.
#[derive(Default, Debug)]
pub struct TcpTable {
    conns: DashMap<SocketAddr, Conn>,
    next_id: AtomicU64,
}

impl TcpTable {
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Keeps the connection with `peer` open `lifetime` from now, idle or
    /// not, in place of the idle timeout when that ends sooner (OpenSIPS
    /// `DST_FCNTL_SET_LIFETIME`, used by registrar's tcp_persistent_flag).
    /// False when no connection with `peer` is open.
    pub fn keep_open(&self, peer: &SocketAddr, lifetime: Duration) -> bool {
        let Some(c) = self.conns.get(peer) else {
            return false;
        };
        let until = unix_ms().saturating_add(lifetime.as_millis() as u64);
        c.keep.store(until, Ordering::Relaxed);
        true
    }

    /// (remote, local, id, outgoing) of each connection, for the MI.
    pub fn snapshot(&self) -> Vec<(SocketAddr, SocketAddr, u64, bool)> {
        self.conns
            .iter()
            .map(|e| (*e.key(), e.local, e.id, e.outgoing))
            .collect()
    }
}

/// Per-worker TCP settings and the shared table.
pub struct TcpCtx {
    pub table: Arc<TcpTable>,
    pub idle: Duration,
    pub max_msg: usize,
    /// A message begun must be complete within this (`tcp_read_timeout`).
    pub read_timeout: Duration,
    /// Refused frames in a row that close the connection (`tcp_max_bad_msgs`).
    pub max_bad: u32,
    pub connect_timeout: Duration,
}

/// Accepts connections on one listener until the task is dropped.
pub async fn accept_loop<H: Handler>(
    listener: TcpListener,
    socket: usize,
    ctx: Rc<TcpCtx>,
    handler: Rc<H>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr().unwrap_or(peer);
                tracing::debug!("tcp connection from {peer} accepted");
                tokio::task::spawn_local(serve(
                    stream,
                    peer,
                    local,
                    socket,
                    false,
                    ctx.clone(),
                    handler.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!("tcp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// When an idle connection closes: `idle` after its last activity, or
/// later when [`TcpTable::keep_open`] asked.
fn idle_deadline(last: Instant, idle: Duration, keep: &AtomicU64) -> Instant {
    let by_idle = last + idle;
    let until = keep.load(Ordering::Relaxed);
    if until == 0 {
        return by_idle;
    }
    let kept = Instant::now() + Duration::from_millis(until.saturating_sub(unix_ms()));
    by_idle.max(kept)
}

/// A connection's entry in the table, as its tasks hold it.
struct Registered {
    id: u64,
    rx: mpsc::Receiver<Bytes>,
    keep: Arc<AtomicU64>,
}

fn register(
    ctx: &TcpCtx,
    peer: SocketAddr,
    local: SocketAddr,
    socket: usize,
    outgoing: bool,
) -> Registered {
    let (tx, rx) = mpsc::channel(QUEUE);
    let id = ctx.table.next_id.fetch_add(1, Ordering::Relaxed);
    let keep = Arc::new(AtomicU64::new(0));
    ctx.table.conns.insert(
        peer,
        Conn {
            tx,
            id,
            socket,
            local,
            outgoing,
            keep: keep.clone(),
        },
    );
    Registered { id, rx, keep }
}

async fn serve<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    socket: usize,
    outgoing: bool,
    ctx: Rc<TcpCtx>,
    handler: Rc<H>,
) {
    let reg = register(&ctx, peer, local, socket, outgoing);
    run_conn(stream, peer, socket, reg, ctx, handler).await;
}

async fn run_conn<H: Handler>(
    stream: TcpStream,
    peer: SocketAddr,
    socket: usize,
    reg: Registered,
    ctx: Rc<TcpCtx>,
    handler: Rc<H>,
) {
    let Registered { id, rx, keep } = reg;
    let local = stream.local_addr().ok();
    let (rd, wr) = stream.into_split();
    let activity = Rc::new(Cell::new(Instant::now()));
    let writer = tokio::task::spawn_local(write_loop(wr, rx, activity.clone()));
    let conn = ConnRef {
        peer,
        socket,
        activity: &activity,
        keep: &keep,
    };
    read_loop(rd, conn, &ctx, &handler).await;
    ctx.table.conns.remove_if(&peer, |_, c| c.id == id);
    writer.abort();
    tracing::debug!("tcp connection {peer} closed");
    // OpenSIPS net_tcp.c: src is the peer, dst our end.
    crate::core_events::raise(crate::core_events::TCP_DISCONNECT, || {
        use serde_json::Value;
        crate::core_events::params([
            ("src_ip", Value::from(peer.ip().to_string())),
            ("src_port", Value::from(peer.port())),
            (
                "dst_ip",
                Value::from(local.map(|l| l.ip().to_string()).unwrap_or_default()),
            ),
            ("dst_port", Value::from(local.map_or(0, |l| l.port()))),
            ("proto", Value::from("tcp")),
        ])
    });
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Bytes>,
    activity: Rc<Cell<Instant>>,
) {
    while let Some(b) = rx.recv().await {
        if wr.write_all(&b).await.is_err() {
            break;
        }
        activity.set(Instant::now());
    }
    let _ = wr.shutdown().await;
}

/// What the read loop knows of its connection.
struct ConnRef<'a> {
    peer: SocketAddr,
    socket: usize,
    activity: &'a Cell<Instant>,
    keep: &'a AtomicU64,
}

async fn read_loop<H: Handler>(
    mut rd: OwnedReadHalf,
    conn: ConnRef<'_>,
    ctx: &TcpCtx,
    handler: &Rc<H>,
) {
    let ConnRef {
        peer,
        socket,
        activity,
        keep,
    } = conn;
    let mut buf = BytesMut::with_capacity(4096);
    // Refused frames in a row; when the message now buffered began.
    let mut bad = 0u32;
    let mut begun: Option<Instant> = None;
    let close = |why: std::fmt::Arguments<'_>| {
        CORE.bad_tcp_conns.inc();
        tracing::info!("tcp {peer}: {why}; closing");
    };
    loop {
        // Frame everything already buffered first.
        loop {
            match next_frame(&buf, ctx.max_msg) {
                Ok(Frame::Message { skip, len }) => {
                    let _ = buf.split_to(skip);
                    let msg = buf.split_to(len).freeze();
                    begun = None;
                    let ok = handler
                        .clone()
                        .on_message(Incoming {
                            buf: msg,
                            src: peer,
                            proto: Proto::Tcp,
                            socket,
                        })
                        .await;
                    bad = if ok { 0 } else { bad + 1 };
                    if bad >= ctx.max_bad {
                        return close(format_args!("{bad} unparsable messages in a row"));
                    }
                }
                Ok(Frame::KeepAlive { skip }) => {
                    let _ = buf.split_to(skip);
                }
                Ok(Frame::Incomplete) => break,
                Err(e) => {
                    // Framing cannot be trusted past a bad header block.
                    CORE.bad_msg_hdr.inc();
                    if matches!(e, crate::sip::ParseError::TooLarge) {
                        CORE.oversize_msgs.inc();
                    }
                    return close(format_args!("{e}"));
                }
            }
        }
        if buf.len() > ctx.max_msg {
            CORE.oversize_msgs.inc();
            return close(format_args!("message over {} bytes", ctx.max_msg));
        }
        if buf.is_empty() {
            begun = None;
        } else if begun.is_none() {
            begun = Some(Instant::now());
        }
        if buf.capacity() - buf.len() < 2048 {
            buf.reserve(4096);
        }
        let idle = idle_deadline(activity.get(), ctx.idle, keep);
        let deadline = begun.map_or(idle, |t| idle.min(t + ctx.read_timeout));
        match tokio::time::timeout_at(deadline, rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => activity.set(Instant::now()),
            Err(_) => {
                let now = Instant::now();
                if begun.is_some_and(|t| t + ctx.read_timeout <= now) {
                    return close(format_args!(
                        "no whole message within {} ms",
                        ctx.read_timeout.as_millis()
                    ));
                }
                if idle_deadline(activity.get(), ctx.idle, keep) <= now {
                    tracing::debug!("tcp {peer}: idle; closing");
                    return;
                }
            }
        }
    }
}

/// Sends `bytes` to `dest` over an open connection, or connects first from
/// `local` (the listen socket `socket` stands for).
pub async fn send<H: Handler>(
    ctx: &Rc<TcpCtx>,
    handler: &Rc<H>,
    dest: SocketAddr,
    local: SocketAddr,
    socket: usize,
    bytes: Bytes,
) -> io::Result<()> {
    if let Some(tx) = ctx.table.conns.get(&dest).map(|c| c.tx.clone()) {
        return tx
            .try_send(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::WouldBlock, e.to_string()));
    }
    let sock = if dest.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if !local.ip().is_unspecified() {
        sock.bind(SocketAddr::new(local.ip(), 0))?;
    }
    let stream = tokio::time::timeout(ctx.connect_timeout, sock.connect(dest))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "tcp connect timed out"))??;
    let _ = stream.set_nodelay(true);
    let local_addr = stream.local_addr()?;
    tracing::debug!("tcp connection to {dest} opened from {local_addr}");
    let reg = register(ctx, dest, local_addr, socket, true);
    let tx = ctx.table.conns.get(&dest).map(|c| c.tx.clone());
    tokio::task::spawn_local(run_conn(
        stream,
        dest,
        socket,
        reg,
        ctx.clone(),
        handler.clone(),
    ));
    match tx {
        Some(tx) => tx
            .try_send(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::WouldBlock, e.to_string())),
        None => Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "connection closed",
        )),
    }
}

/// Whether a connection to `dest` is open (replies must use it).
pub fn is_connected(ctx: &TcpCtx, dest: &SocketAddr) -> bool {
    ctx.table.conns.contains_key(dest)
}
