//! Delivery off the workers: one thread with its own runtime sends the
//! UDP datagrams (event_datagram) and runs one publisher task per
//! `rabbitmq:` subscriber (event_rabbitmq). Every hand-over is a bounded
//! queue tried without waiting: a full one drops the event and counts it
//! in `evi:dropped`, so a slow or dead peer never reaches a route.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::mpsc;

use super::socket::{Kind, RabbitTarget, Socket};
use super::{DROPPED, SENT};

/// Events waiting for the delivery thread (UDP) or a publisher task.
const QUEUE: usize = 8192;
/// How long connecting or one publish may take before the broker is
/// taken as down.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

struct Runner {
    handle: tokio::runtime::Handle,
    udp: mpsc::Sender<(SocketAddr, Arc<str>)>,
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
                .spawn(move || rt.block_on(udp_loop(rx)))
                .map_err(|e| tracing::error!("events: cannot start the delivery thread: {e}"))
                .ok()?;
            Some(Runner { handle, udp: tx })
        })
        .as_ref()
}

async fn udp_loop(mut rx: mpsc::Receiver<(SocketAddr, Arc<str>)>) {
    let v4 = tokio::net::UdpSocket::bind("0.0.0.0:0").await.ok();
    let v6 = tokio::net::UdpSocket::bind("[::]:0").await.ok();
    while let Some((to, body)) = rx.recv().await {
        let sock = if to.is_ipv4() { &v4 } else { &v6 };
        match sock {
            Some(s) if s.send_to(body.as_bytes(), to).await.is_ok() => SENT.inc(),
            _ => DROPPED.inc(),
        }
    }
}

/// Hands `payload` to each subscriber's queue.
pub fn queue(targets: Vec<Socket>, payload: String) {
    let Some(r) = runner() else {
        DROPPED.add(targets.len() as u64);
        return;
    };
    let body: Arc<str> = payload.into();
    for t in targets {
        let ok = match &t.kind {
            Kind::Udp(a) => r.udp.try_send((*a, body.clone())).is_ok(),
            Kind::Rabbit(p) => p.tx.try_send(body.clone()).is_ok(),
        };
        if !ok {
            DROPPED.inc();
        }
    }
}

/// A `rabbitmq:` subscriber: its queue and the task that publishes from
/// it (ends when the last subscription holding it is gone).
pub struct Rabbit {
    pub target: RabbitTarget,
    tx: mpsc::Sender<Arc<str>>,
}

impl Rabbit {
    pub fn new(target: RabbitTarget) -> Arc<Rabbit> {
        let (tx, rx) = mpsc::channel(QUEUE);
        match runner() {
            Some(r) => {
                r.handle.spawn(publish_loop(target.clone(), rx));
            }
            None => drop(rx),
        }
        Arc::new(Rabbit { target, tx })
    }
}

fn props() -> ConnectionProperties {
    ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current())
}

/// Connects, publishes until the broker fails, then drops what arrives
/// during a growing pause (counted) and connects again.
async fn publish_loop(t: RabbitTarget, mut rx: mpsc::Receiver<Arc<str>>) {
    let uri = t.uri();
    let mut backoff = Duration::from_millis(100);
    let mut properties = BasicProperties::default().with_content_type("application/json".into());
    if t.persistent {
        properties = properties.with_delivery_mode(2);
    }
    loop {
        match tokio::time::timeout(BROKER_TIMEOUT, Connection::connect(&uri, props())).await {
            Ok(Ok(conn)) => match conn.create_channel().await {
                Ok(ch) => {
                    tracing::debug!("events: connected to rabbitmq {}:{}", t.host, t.port);
                    backoff = Duration::from_millis(100);
                    loop {
                        let Some(body) = rx.recv().await else {
                            let _ = conn.close(200, "bye").await;
                            return;
                        };
                        let sent = tokio::time::timeout(
                            BROKER_TIMEOUT,
                            ch.basic_publish(
                                t.exchange.as_str(),
                                t.routing_key.as_str(),
                                BasicPublishOptions::default(),
                                body.as_bytes(),
                                properties.clone(),
                            ),
                        )
                        .await;
                        match sent {
                            Ok(Ok(_)) => SENT.inc(),
                            Ok(Err(e)) => {
                                DROPPED.inc();
                                tracing::warn!("events: rabbitmq publish failed: {e}");
                                break;
                            }
                            Err(_) => {
                                DROPPED.inc();
                                tracing::warn!("events: rabbitmq publish timed out");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!("events: rabbitmq channel: {e}"),
            },
            Ok(Err(e)) => tracing::warn!(
                "events: cannot connect to rabbitmq {}:{}: {e}",
                t.host,
                t.port
            ),
            Err(_) => tracing::warn!("events: rabbitmq {}:{} did not answer", t.host, t.port),
        }
        let until = tokio::time::Instant::now() + backoff;
        loop {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(_)) => DROPPED.inc(),
                Ok(None) => return,
                Err(_) => break,
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
