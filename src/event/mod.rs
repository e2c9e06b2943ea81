//! The event interface (OpenSIPS `evi/`): events declared by the core and
//! by modules ([`EventDecl`] in `Module::events`) or raised by the script,
//! subscribers with an expiry (`event_subscribe`), and delivery off the
//! workers.
//!
//! [`raise`] is all a caller does: it builds the OpenSIPS 3.x JSON-RPC
//! notification once, hands it to the delivery thread through a bounded
//! queue (full: dropped and counted in `evi:dropped`) and, when the script
//! has `event_route.<name>`, queues the event for worker 0; event_routing's
//! subscriptions ([`routing`]) get it too. It never waits.

mod deliver;
pub mod flat;
pub mod format;
pub mod rabbit;
pub mod routing;
pub mod socket;

use bytes::Bytes;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::stats::Counter;
use deliver::Job;
pub use format::{Param, Params};
use socket::Kind;
pub use socket::{Format, Socket};

/// One event a module (or the core) can raise, with the names of its
/// parameters as OpenSIPS 3.4 has them.
pub struct EventDecl {
    pub name: &'static str,
    pub params: &'static [&'static str],
    pub doc: &'static str,
}

/// Events delivered to a subscriber (UDP datagram sent, broker publish
/// confirmed by the client library).
pub static SENT: Counter = Counter::new();
/// Events not delivered or not confirmed: a full queue, a broker that is down, a send
/// error, a broker ack lost with its connection.
pub static DROPPED: Counter = Counter::new();

/// OpenSIPS's default subscription lifetime (`event_subscribe` without
/// `expire`): 3600 s.
pub const DEFAULT_EXPIRE: u64 = 3600;

struct Sub {
    event: String,
    socket: Socket,
    /// None: never expires (`expire` 0).
    until: Option<Instant>,
}

static SUBS: Mutex<Vec<Sub>> = Mutex::new(Vec::new());
static SCRIPT_EVENTS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
/// The `event_route` queue to worker 0 (set by the runtime).
static ROUTE_NAMES: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static ROUTES: OnceLock<tokio::sync::mpsc::Sender<(String, Map<String, Value>)>> = OnceLock::new();

fn subs() -> std::sync::MutexGuard<'static, Vec<Sub>> {
    SUBS.lock().unwrap_or_else(|e| e.into_inner())
}

fn script_events() -> std::sync::MutexGuard<'static, BTreeSet<String>> {
    SCRIPT_EVENTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every declared event (modules' in `ALL` order), then the script's.
pub fn declared() -> Vec<String> {
    let mut v: Vec<String> = crate::modules::ALL
        .iter()
        .flat_map(|m| m.events.iter())
        .map(|e| e.name.to_string())
        .collect();
    v.extend(script_events().iter().cloned());
    v
}

fn known(name: &str) -> bool {
    // The script's own names first: `sip.raise_event` raises them per call.
    script_events().contains(name)
        || crate::modules::ALL
            .iter()
            .flat_map(|m| m.events.iter())
            .any(|e| e.name == name)
}

/// Declares a script's own event (OpenSIPS registers the names a script
/// raises when it loads). Names must be non-empty without blanks.
pub fn declare_script_event(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("bad event name {name:?}"));
    }
    if !known(name) {
        script_events().insert(name.to_string());
    }
    Ok(())
}

/// Connects `event_route` handlers: raised events are queued for the
/// worker that runs them (once per process).
pub fn set_route_queue(tx: tokio::sync::mpsc::Sender<(String, Map<String, Value>)>) {
    let _ = ROUTES.set(tx);
}

/// The events the script has an `event_route` for (set by the worker that
/// runs them, again after a reload).
pub fn set_route_names(names: Vec<String>) {
    *ROUTE_NAMES.lock().unwrap_or_else(|e| e.into_inner()) = names.into_iter().collect();
}

fn has_route(name: &str) -> bool {
    ROUTE_NAMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(name)
}

/// Subscribes `socket` to `event` for `expire` seconds; a second
/// subscription of the same socket refreshes the first and `expire` 0
/// removes it, as OpenSIPS's `evi_event_subscribe` does.
pub fn subscribe(event: &str, socket: &str, expire: u64) -> Result<(), String> {
    if !known(event) {
        return Err(format!("unknown event {event}"));
    }
    let socket = Socket::parse(socket)?;
    let mut s = subs();
    s.retain(|x| !(x.event == event && x.socket.spec == socket.spec));
    if expire > 0 {
        s.push(Sub {
            event: event.to_string(),
            socket,
            // An expiry past what the clock holds never expires.
            until: Instant::now().checked_add(Duration::from_secs(expire)),
        });
    }
    Ok(())
}

/// Live subscriptions: (event, socket, seconds left, None = never).
pub fn subscribers() -> Vec<(String, String, Option<u64>)> {
    let now = Instant::now();
    let mut s = subs();
    s.retain(|x| x.until.is_none_or(|u| u > now));
    s.iter()
        .map(|x| {
            (
                x.event.clone(),
                x.socket.spec.clone(),
                x.until.map(|u| u.saturating_duration_since(now).as_secs()),
            )
        })
        .collect()
}

/// Someone would get `name` now: a live subscriber or the script's
/// `event_route` (OpenSIPS `evi_probe_event`), so callers build the
/// parameters only then.
pub fn wanted(name: &str) -> bool {
    (ROUTES.get().is_some() && has_route(name))
        || routing::wanted(name)
        || subs()
            .iter()
            .any(|x| x.event == name && x.until.is_none_or(|u| u > Instant::now()))
}

/// The OpenSIPS 3.x notification for `name` with `params`.
pub fn payload(name: &str, params: &Map<String, Value>) -> String {
    let body = format::json(name, params).unwrap_or_default();
    String::from_utf8(body).unwrap_or_default()
}

/// Why an event was not raised.
#[derive(Debug, thiserror::Error)]
pub enum RaiseError {
    #[error("unknown event {0}")]
    Unknown(String),
    /// A parameter that cannot be sent (the script's table).
    #[error("{0}")]
    Params(String),
}

/// Queues `(route, params)` for the worker that runs `event_route`s.
fn to_route(route: &str, params: Map<String, Value>) {
    let sent = ROUTES
        .get()
        .is_some_and(|tx| tx.try_send((route.to_string(), params)).is_ok());
    if !sent {
        DROPPED.inc();
    }
}

/// Raises `name`: queues it for each live subscriber and for the script's
/// `event_route.<name>`. Never waits; an unknown name is an error. Each
/// payload is built once, when a subscriber wants it.
pub fn raise(name: &str, params: &dyn Params) -> Result<(), RaiseError> {
    if !known(name) {
        return Err(RaiseError::Unknown(name.to_string()));
    }
    raise_known(name, params)
}

/// [`raise`] for the script's own event, declared by raising it
/// (OpenSIPS registers the names a script raises when it loads).
pub fn raise_script(name: &str, params: &dyn Params) -> Result<(), RaiseError> {
    declare_script_event(name).map_err(RaiseError::Params)?;
    raise_known(name, params)
}

fn raise_known(name: &str, params: &dyn Params) -> Result<(), RaiseError> {
    // event_routing's subscriptions first: a waiting route resumes with
    // the same parameters the other subscribers get.
    routing::notify(name, params).map_err(RaiseError::Params)?;
    let now = Instant::now();
    let mut targets: Vec<(Kind, Format)> = Vec::new();
    for x in subs().iter() {
        if x.event == name && x.until.is_none_or(|u| u > now) {
            targets.push((x.socket.kind.clone(), x.socket.format));
        }
    }
    let (mut json, mut text): (Option<Bytes>, Option<Bytes>) = (None, None);
    let mut line: Option<Arc<str>> = None;
    let mut checked = false;
    for (kind, fmt) in targets {
        let mut body = || -> Result<Bytes, RaiseError> {
            checked = true;
            let slot = match fmt {
                Format::Json => &mut json,
                Format::Text => &mut text,
            };
            if let Some(b) = slot {
                return Ok(b.clone());
            }
            let b = match fmt {
                Format::Json => format::json(name, params),
                Format::Text => format::text(name, params),
            }
            .map_err(RaiseError::Params)?;
            Ok(slot.insert(Bytes::from(b)).clone())
        };
        match kind {
            Kind::Udp(to) => deliver::queue(Job::Udp(to, body()?)),
            Kind::Unix(p) => deliver::queue(Job::Unix(p, body()?)),
            Kind::Route(r) => {
                checked = true;
                to_route(&r, params.to_map().map_err(RaiseError::Params)?)
            }
            Kind::Rabbit(p, key) => {
                let content_type = match fmt {
                    Format::Json => "application/json",
                    Format::Text => "text/plain",
                };
                p.publish(rabbit::Message {
                    routing_key: key,
                    body: body()?,
                    content_type: Some(content_type.into()),
                    headers: Vec::new(),
                });
            }
            Kind::Flat(f) => {
                let l = match &line {
                    Some(l) => l.clone(),
                    None => {
                        checked = true;
                        let s = flat::settings();
                        let l: Arc<str> =
                            format::flat_line(name, params, &s.delimiter, s.suppress_event_name)
                                .map_err(RaiseError::Params)?
                                .into();
                        line.insert(l).clone()
                    }
                };
                deliver::queue(Job::Flat(f, l))
            }
        }
    }
    if has_route(name) {
        checked = true;
        to_route(name, params.to_map().map_err(RaiseError::Params)?);
    }
    if !checked {
        // Nobody listens: the parameters are still checked, as when they
        // are sent.
        params.visit(&mut |_, _| {}).map_err(RaiseError::Params)?;
    }
    Ok(())
}

/// [`raise`] for a declared event whose parameters are built by the
/// caller: an error is logged (a module's own event is always known).
pub fn raise_declared(name: &'static str, params: Map<String, Value>) {
    if let Err(e) = raise(name, &params) {
        tracing::warn!("event {name}: {e}");
    }
}

#[cfg(test)]
mod tests;
