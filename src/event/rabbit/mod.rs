//! Publishing to RabbitMQ off the workers: one task per broker
//! connection on the delivery thread (no thread of its own), fed through
//! a bounded queue tried without waiting. Used by `rabbitmq:` subscriber
//! sockets (event_rabbitmq) and by the rabbitmq module's
//! `rabbitmq_publish`. A broker that is down costs drops (counted), never
//! a wait.
//!
//! Cheap per message: the first message after a quiet spell is written
//! at once; then the task lingers [`LINGER`] (the workers find it asleep
//! and do not wake it, the broker's acks arrive) and takes acks and the
//! queued messages in one wake-up, without waiting. Under load it wakes
//! once per [`LINGER`], writes each batch in one write (frames encoded by
//! hand, `encode.rs`) and counts publisher confirms by delivery tag (acks
//! with `multiple`), with no task or future per message.

mod amqp;
mod encode;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::stats::Counter;
use amqp::{Conn, Reply};

/// Messages waiting for a publisher.
const QUEUE: usize = 8192;
/// Messages published and not yet confirmed by the broker.
const IN_FLIGHT: usize = 1024;
/// How long one write to the broker may take before it is taken as down.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long the publisher gathers messages after the first of a batch.
const LINGER: Duration = Duration::from_millis(5);

/// Where and how a publisher publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// `amqp://user:password@host:port/vhost[?heartbeat=…&frame_max=…]`.
    pub uri: String,
    pub exchange: String,
    /// Delivery mode 2 (the broker keeps the message over a restart).
    pub persistent: bool,
    pub mandatory: bool,
    pub immediate: bool,
    /// Attempts after a failed publish before the message is dropped
    /// (OpenSIPS rabbitmq `retries`).
    pub retries: u32,
    /// How long connecting may take (event_rabbitmq `connect_timeout`).
    pub connect_timeout: Duration,
}

/// event_rabbitmq's settings for `rabbitmq:` subscriber sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketSettings {
    /// Seconds between heartbeats; 0: off (`heartbeat`).
    pub heartbeat: u16,
    /// `connect_timeout` (OpenSIPS default 500 ms).
    pub connect_timeout: Duration,
}

impl Default for SocketSettings {
    fn default() -> Self {
        SocketSettings {
            heartbeat: 0,
            connect_timeout: Duration::from_millis(500),
        }
    }
}

static SOCKET_SETTINGS: std::sync::RwLock<Option<SocketSettings>> = std::sync::RwLock::new(None);

/// Installs event_rabbitmq's settings (subscriptions made later use them).
pub fn configure_sockets(s: SocketSettings) {
    *SOCKET_SETTINGS.write().unwrap_or_else(|e| e.into_inner()) = Some(s);
}

pub fn socket_settings() -> SocketSettings {
    SOCKET_SETTINGS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_default()
}

/// An AMQP header value (OpenSIPS sends AVP strings as UTF-8, integers as
/// 32-bit integers).
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    Str(String),
    Int(i32),
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Message {
    pub routing_key: Arc<str>,
    pub body: Bytes,
    pub content_type: Option<Cow<'static, str>>,
    pub headers: Vec<(String, HeaderValue)>,
}

/// A broker connection's queue and state.
pub struct Publisher {
    pub broker: Broker,
    tx: mpsc::Sender<Message>,
    /// The last connection attempt succeeded and no publish failed since.
    up: Arc<AtomicBool>,
    dropped: &'static Counter,
}

impl Publisher {
    /// Starts the publishing task; `sent`/`dropped` count its messages.
    pub fn start(
        broker: Broker,
        sent: &'static Counter,
        dropped: &'static Counter,
    ) -> Arc<Publisher> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let up = Arc::new(AtomicBool::new(false));
        match super::deliver::handle() {
            Some(h) => {
                let counts = Counts { sent, dropped };
                h.spawn(publish_loop(broker.clone(), rx, up.clone(), counts));
            }
            None => drop(rx),
        }
        Arc::new(Publisher {
            broker,
            tx,
            up,
            dropped,
        })
    }

    /// True while the broker is connected.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Queues `m`; false (and counted as dropped) when the queue is full
    /// or the publishing task is gone.
    pub fn publish(&self, m: Message) -> bool {
        let ok = self.tx.try_send(m).is_ok();
        if !ok {
            self.dropped.inc();
        }
        ok
    }
}

#[derive(Clone, Copy)]
struct Counts {
    sent: &'static Counter,
    dropped: &'static Counter,
}

impl Counts {
    fn dropped(&self, n: usize) {
        self.dropped.add(n as u64);
    }
}

/// Messages written and not yet confirmed, by delivery tag (ascending:
/// tags are given in order and settled from the front).
struct Confirms {
    next_tag: u64,
    waiting: VecDeque<u64>,
    /// basic.return seen whose ack has not come yet: those acks count as
    /// dropped (unroutable), as lapin's `Ack(Some(returned))` did.
    returned: usize,
}

impl Confirms {
    fn new() -> Confirms {
        Confirms {
            next_tag: 1,
            waiting: VecDeque::new(),
            returned: 0,
        }
    }

    /// The tags settled by an ack/nack of `tag` (`multiple`: and all
    /// before it).
    fn settle(&mut self, tag: u64, multiple: bool) -> usize {
        if multiple {
            let n = self.waiting.partition_point(|t| *t <= tag);
            self.waiting.drain(..n);
            n
        } else {
            match self.waiting.binary_search(&tag) {
                Ok(i) => usize::from(self.waiting.remove(i).is_some()),
                Err(_) => 0,
            }
        }
    }

    fn apply(&mut self, r: Reply, c: Counts) {
        match r {
            Reply::Ack { tag, multiple } => {
                let n = self.settle(tag, multiple);
                let back = self.returned.min(n);
                self.returned -= back;
                c.dropped(back);
                c.sent.add((n - back) as u64);
            }
            Reply::Nack { tag, multiple } => c.dropped(self.settle(tag, multiple)),
            Reply::Return => self.returned += 1,
            Reply::Other => {}
        }
    }
}

/// Why [`serve`] returned.
enum End {
    /// The queue's senders are gone: the publisher was dropped.
    Done,
    Failed(String),
}

/// Publishes what arrives on one connection until it fails. `pending`
/// holds messages whose write failed with their attempts so far; they
/// go first and, on failure, stay there while they have retries left.
async fn serve(
    mut conn: Conn,
    b: &Broker,
    rx: &mut mpsc::Receiver<Message>,
    pending: &mut Vec<(Message, u32)>,
    c: Counts,
) -> End {
    let mut confirms = Confirms::new();
    let mut replies = Vec::new();
    let mut batch: Vec<(Message, u32)> = std::mem::take(pending);
    let beat = match conn.heartbeat {
        0 => None,
        h => Some(Duration::from_secs(u64::from(h))),
    };
    let mut last_read = Instant::now();
    let mut last_write = Instant::now();
    let tick = beat.map_or(Duration::from_secs(3600), |h| h / 2);
    let mut ticker = tokio::time::interval(tick);
    let end = 'conn: loop {
        if !batch.is_empty() {
            // A message that cannot be encoded is dropped alone (it
            // gets no delivery tag); the connection goes on.
            batch.retain(|(m, _)| match conn.publish(b, m) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!("rabbitmq: message to {:?} dropped: {e}", m.routing_key);
                    c.dropped(1);
                    false
                }
            });
            let wrote = match tokio::time::timeout(BROKER_TIMEOUT, conn.flush()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("publish failed: {e}")),
                Err(_) => Err("publish timed out".to_string()),
            };
            if let Err(e) = wrote {
                conn.discard();
                for (m, tries) in batch.drain(..) {
                    if tries < b.retries {
                        pending.push((m, tries + 1));
                    } else {
                        c.dropped(1);
                    }
                }
                break 'conn End::Failed(e);
            }
            last_write = Instant::now();
            for _ in batch.drain(..) {
                confirms.waiting.push_back(confirms.next_tag);
                confirms.next_tag += 1;
            }
            // Linger: the broker's acks and the workers' next messages
            // arrive meanwhile, and are taken in one wake-up without
            // waiting (the workers find this task asleep and do not wake
            // it; under load the task wakes once per LINGER).
            tokio::time::sleep(LINGER).await;
            match conn.try_fill() {
                Ok(true) => {
                    last_read = Instant::now();
                    let r = conn.replies(&mut replies).await;
                    for reply in replies.drain(..) {
                        confirms.apply(reply, c);
                    }
                    if let Err(e) = r {
                        break 'conn End::Failed(e.to_string());
                    }
                }
                Ok(false) => {}
                Err(e) => break 'conn End::Failed(e.to_string()),
            }
            let room = IN_FLIGHT.saturating_sub(confirms.waiting.len());
            while batch.len() < room {
                match rx.try_recv() {
                    Ok(m) => batch.push((m, 0)),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                continue 'conn;
            }
        }
        let room = IN_FLIGHT.saturating_sub(confirms.waiting.len());
        tokio::select! {
            r = conn.fill() => {
                if let Err(e) = r {
                    break 'conn End::Failed(e.to_string());
                }
                last_read = Instant::now();
                let r = conn.replies(&mut replies).await;
                for reply in replies.drain(..) {
                    confirms.apply(reply, c);
                }
                if let Err(e) = r {
                    break 'conn End::Failed(e.to_string());
                }
            }
            m = rx.recv(), if room > 0 => {
                let Some(m) = m else { break 'conn End::Done };
                batch.push((m, 0));
                // Written at once with what is already queued; the
                // linger after the write gathers the rest of a burst.
                while batch.len() < room {
                    match rx.try_recv() {
                        Ok(m) => batch.push((m, 0)),
                        Err(_) => break,
                    }
                }
            }
            _ = ticker.tick(), if beat.is_some() => {
                let h = beat.unwrap_or(tick);
                if last_read.elapsed() > h * 2 {
                    break 'conn End::Failed("missed heartbeats".into());
                }
                if last_write.elapsed() >= h / 2 {
                    conn.heartbeat_frame();
                    if conn.flush().await.is_err() {
                        break 'conn End::Failed("heartbeat write failed".into());
                    }
                    last_write = Instant::now();
                }
            }
        }
    };
    if matches!(end, End::Done) {
        // Wait a little for the last confirms before closing.
        let until = Instant::now() + Duration::from_secs(1);
        while !confirms.waiting.is_empty() {
            match tokio::time::timeout_at(until, conn.fill()).await {
                Ok(Ok(())) => {
                    let _ = conn.replies(&mut replies).await;
                    for reply in replies.drain(..) {
                        confirms.apply(reply, c);
                    }
                }
                _ => break,
            }
        }
        conn.close().await;
    }
    // Written and never confirmed: lost with the connection as far as
    // we know (the broker may still hold them: at-least-once).
    c.dropped(confirms.waiting.len());
    end
}

/// Connects, publishes until the broker fails, then drops what arrives
/// during a growing pause (counted) and connects again.
async fn publish_loop(b: Broker, mut rx: mpsc::Receiver<Message>, up: Arc<AtomicBool>, c: Counts) {
    let mut backoff = Duration::from_millis(100);
    // The broker without its credentials, for the log.
    let shown = b.uri.rsplit_once('@').map_or(b.uri.as_str(), |(_, h)| h);
    let mut pending: Vec<(Message, u32)> = Vec::new();
    loop {
        match tokio::time::timeout(b.connect_timeout, Conn::open(&b)).await {
            Ok(Ok(conn)) => {
                tracing::debug!("rabbitmq: connected to {shown}");
                up.store(true, Ordering::Relaxed);
                backoff = Duration::from_millis(100);
                match serve(conn, &b, &mut rx, &mut pending, c).await {
                    End::Done => return,
                    End::Failed(e) => tracing::warn!("rabbitmq {shown}: {e}"),
                }
            }
            Ok(Err(e)) => tracing::warn!("rabbitmq: cannot connect to {shown}: {e}"),
            Err(_) => tracing::warn!("rabbitmq: {shown} did not answer"),
        }
        up.store(false, Ordering::Relaxed);
        let until = tokio::time::Instant::now() + backoff;
        loop {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(_)) => c.dropped(1),
                Ok(None) => {
                    c.dropped(pending.len());
                    return;
                }
                Err(_) => break,
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SENT: Counter = Counter::new();
    static DROPPED: Counter = Counter::new();

    /// RabbitMQ "Publisher Confirms": an ack with `multiple` settles every
    /// earlier tag; a basic.return makes the next acked message a drop; a
    /// nack is a drop; a tag acked twice counts once.
    #[test]
    fn confirms_count_by_delivery_tag() {
        let c = Counts {
            sent: &SENT,
            dropped: &DROPPED,
        };
        let mut f = Confirms::new();
        f.waiting.extend(1..=6);
        f.apply(
            Reply::Ack {
                tag: 3,
                multiple: true,
            },
            c,
        );
        assert_eq!((SENT.get(), DROPPED.get()), (3, 0));
        f.apply(Reply::Return, c);
        f.apply(
            Reply::Ack {
                tag: 4,
                multiple: false,
            },
            c,
        );
        f.apply(
            Reply::Ack {
                tag: 4,
                multiple: false,
            },
            c,
        );
        assert_eq!((SENT.get(), DROPPED.get()), (3, 1));
        f.apply(
            Reply::Nack {
                tag: 6,
                multiple: true,
            },
            c,
        );
        assert_eq!((SENT.get(), DROPPED.get()), (3, 3));
        assert!(f.waiting.is_empty());
    }
}
