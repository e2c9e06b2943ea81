//! Publishing to RabbitMQ off the workers (lapin): one task per broker
//! connection on the delivery thread, fed through a bounded queue tried
//! without waiting. Used by `rabbitmq:` subscriber sockets
//! (event_rabbitmq) and by the rabbitmq module's `rabbitmq_publish`.
//! A broker that is down costs drops (counted), never a wait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::mpsc;

use crate::stats::Counter;

/// Messages waiting for a publisher.
const QUEUE: usize = 8192;
/// Messages published and not yet confirmed by the broker.
const IN_FLIGHT: usize = 1024;
/// How long one publish may take before the broker is taken as down.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

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
    pub body: Arc<str>,
    pub content_type: Option<String>,
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
                h.spawn(publish_loop(broker.clone(), rx, up.clone(), sent, dropped));
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

fn props() -> ConnectionProperties {
    ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current())
}

fn properties(b: &Broker, m: &Message) -> BasicProperties {
    let mut p = BasicProperties::default();
    if let Some(ct) = &m.content_type {
        p = p.with_content_type(ShortString::from(ct.as_str()));
    }
    if b.persistent {
        p = p.with_delivery_mode(2);
    }
    if !m.headers.is_empty() {
        let mut t = FieldTable::default();
        for (k, v) in &m.headers {
            let v = match v {
                HeaderValue::Str(s) => AMQPValue::LongString(s.as_str().into()),
                HeaderValue::Int(i) => AMQPValue::LongInt(*i),
            };
            t.insert(ShortString::from(k.as_str()), v);
        }
        p = p.with_headers(t);
    }
    p
}

/// A channel in confirm mode.
async fn channel(conn: &Connection) -> Result<lapin::Channel, lapin::Error> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// Connects, publishes until the broker fails, then drops what arrives
/// during a growing pause (counted) and connects again.
async fn publish_loop(
    b: Broker,
    mut rx: mpsc::Receiver<Message>,
    up: Arc<AtomicBool>,
    sent_n: &'static Counter,
    dropped: &'static Counter,
) {
    let mut backoff = Duration::from_millis(100);
    let opts = BasicPublishOptions {
        mandatory: b.mandatory,
        immediate: b.immediate,
    };
    // The broker without its credentials, for the log.
    let shown = b.uri.rsplit_once('@').map_or(b.uri.as_str(), |(_, h)| h);
    // A message whose publish failed, tried again on the next connection
    // while it has retries left.
    let mut pending: Option<(Message, u32)> = None;
    let window = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    loop {
        match tokio::time::timeout(b.connect_timeout, Connection::connect(&b.uri, props())).await {
            Ok(Ok(conn)) => match channel(&conn).await {
                Ok(ch) => {
                    tracing::debug!("rabbitmq: connected to {shown}");
                    up.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                    loop {
                        let (m, tries) = match pending.take() {
                            Some(p) => p,
                            None => match rx.recv().await {
                                Some(m) => (m, 0),
                                None => {
                                    let _ = conn.close(200, "bye").await;
                                    return;
                                }
                            },
                        };
                        // Counted sent when the broker confirms it
                        // (RabbitMQ publisher confirms), so `sent` is what
                        // the broker holds and `dropped` all the rest.
                        let Ok(permit) = window.clone().acquire_owned().await else {
                            return;
                        };
                        let sent = tokio::time::timeout(
                            BROKER_TIMEOUT,
                            ch.basic_publish(
                                b.exchange.as_str(),
                                &m.routing_key,
                                opts,
                                m.body.as_bytes(),
                                properties(&b, &m),
                            ),
                        )
                        .await;
                        match sent {
                            Ok(Ok(confirm)) => {
                                tokio::spawn(async move {
                                    let _permit = permit;
                                    match confirm.await {
                                        // Acked and not returned as unroutable.
                                        Ok(Confirmation::Ack(None)) => sent_n.inc(),
                                        _ => dropped.inc(),
                                    }
                                });
                            }
                            failed => {
                                match failed {
                                    Ok(Err(e)) => {
                                        tracing::warn!("rabbitmq {shown}: publish failed: {e}")
                                    }
                                    _ => tracing::warn!("rabbitmq {shown}: publish timed out"),
                                }
                                if tries < b.retries {
                                    pending = Some((m, tries + 1));
                                } else {
                                    dropped.inc();
                                }
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!("rabbitmq {shown}: channel: {e}"),
            },
            Ok(Err(e)) => tracing::warn!("rabbitmq: cannot connect to {shown}: {e}"),
            Err(_) => tracing::warn!("rabbitmq: {shown} did not answer"),
        }
        up.store(false, Ordering::Relaxed);
        let until = tokio::time::Instant::now() + backoff;
        loop {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(_)) => dropped.inc(),
                Ok(None) => return,
                Err(_) => break,
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
