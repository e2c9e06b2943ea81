//! Delivery off the workers: one thread with its own runtime sends the
//! datagrams (event_datagram: `udp:` and `unix:`), appends flatstore
//! lines and runs the RabbitMQ publishers (`rabbit/`). Every hand-over
//! is a bounded queue tried without waiting: a full one drops the event
//! and counts it in `evi:dropped`, so a slow or dead peer never reaches a
//! route.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::flat::FlatFile;
use super::socket::UdpTo;
use super::{DROPPED, SENT};

/// Events waiting for the delivery thread.
const QUEUE: usize = 8192;
/// The largest datagram a UDP socket can send; a bigger event is dropped
/// and counted, never truncated.
pub const MAX_DATAGRAM: usize = 65_507;

/// One event for one subscriber, its payload already built.
pub enum Job {
    Udp(UdpTo, Bytes),
    Unix(PathBuf, Bytes),
    Flat(Arc<FlatFile>, Arc<str>),
}

struct Runner {
    handle: tokio::runtime::Handle,
    tx: mpsc::Sender<Job>,
}

static RUNNER: OnceLock<Option<Runner>> = OnceLock::new();

/// The delivery thread, started on first use.
fn runner() -> Option<&'static Runner> {
    RUNNER
        .get_or_init(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| tracing::error!("events: cannot build the delivery runtime: {e}"))
                .ok()?;
            let handle = rt.handle().clone();
            let (tx, rx) = mpsc::channel(QUEUE);
            std::thread::Builder::new()
                .name("evi-deliver".into())
                .spawn(move || rt.block_on(job_loop(rx)))
                .map_err(|e| tracing::error!("events: cannot start the delivery thread: {e}"))
                .ok()?;
            Some(Runner { handle, tx })
        })
        .as_ref()
}

/// The delivery thread's runtime, for the RabbitMQ publishers.
pub fn handle() -> Option<tokio::runtime::Handle> {
    runner().map(|r| r.handle.clone())
}

/// How long the delivery thread keeps the address of a `udp:` socket's
/// host name, and a failed lookup.
const NAME_HOLD: Duration = Duration::from_secs(60);
const NAME_FAILED_HOLD: Duration = Duration::from_secs(5);

/// Host names of `udp:` sockets, resolved on this thread (the system
/// resolver, /etc/hosts first, as OpenSIPS's event_datagram): never on a
/// worker, which only queues the event.
#[derive(Default)]
struct Names(HashMap<(Arc<str>, u16), (Option<SocketAddr>, Instant)>);

impl Names {
    async fn addr(&mut self, to: &UdpTo) -> Option<SocketAddr> {
        let (host, port) = match to {
            UdpTo::Addr(a) => return Some(*a),
            UdpTo::Name(h, p) => (h, *p),
        };
        let key = (host.clone(), port);
        if let Some((a, until)) = self.0.get(&key) {
            if *until > Instant::now() {
                return *a;
            }
        }
        let found = match tokio::net::lookup_host((&**host, port)).await {
            // IPv4 first, as event_datagram's resolvehost.
            Ok(addrs) => {
                let all: Vec<SocketAddr> = addrs.collect();
                all.iter().find(|a| a.is_ipv4()).or(all.first()).copied()
            }
            Err(e) => {
                tracing::warn!(
                    "events: udp:{host}:{port}: cannot resolve {host} ({e}); events dropped"
                );
                None
            }
        };
        let hold = if found.is_some() {
            NAME_HOLD
        } else {
            NAME_FAILED_HOLD
        };
        if self.0.len() >= 1024 {
            self.0.clear();
        }
        self.0.insert(key, (found, Instant::now() + hold));
        found
    }
}

async fn job_loop(mut rx: mpsc::Receiver<Job>) {
    let mut names = Names::default();
    let v4 = tokio::net::UdpSocket::bind("0.0.0.0:0").await.ok();
    let v6 = tokio::net::UdpSocket::bind("[::]:0").await.ok();
    // A plain non-blocking socket: tokio's `try_send_to` refuses until
    // the reactor saw the socket writable, which loses the first events.
    let unix = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .ok();
    while let Some(job) = rx.recv().await {
        let ok = match job {
            Job::Udp(to, body) => match names.addr(&to).await {
                Some(to) => {
                    let sock = if to.is_ipv4() { &v4 } else { &v6 };
                    match sock {
                        Some(s) => s.send_to(&body, to).await.is_ok(),
                        None => false,
                    }
                }
                None => false,
            },
            // A reader that stopped reading fills its buffer: the event is
            // dropped, never queued here.
            Job::Unix(path, body) => unix
                .as_ref()
                .is_some_and(|s| s.send_to(&body, &path).is_ok()),
            Job::Flat(file, line) => file.write(line.as_bytes()),
        };
        if ok {
            SENT.inc();
        } else {
            DROPPED.inc();
        }
    }
}

/// Hands `job` to the delivery thread; a full queue drops it (counted).
pub fn queue(job: Job) {
    let ok = match (&job, runner()) {
        (Job::Udp(_, b) | Job::Unix(_, b), _) if b.len() > MAX_DATAGRAM => {
            tracing::warn!(
                "events: a {}-byte event does not fit a datagram; dropped",
                b.len()
            );
            false
        }
        (_, Some(r)) => r.tx.try_send(job).is_ok(),
        (_, None) => false,
    };
    if !ok {
        DROPPED.inc();
    }
}
