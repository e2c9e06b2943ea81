//! The event interface (OpenSIPS `evi/`): events declared by the core and
//! by modules ([`EventDecl`] in `Module::events`) or raised by the script,
//! subscribers with an expiry (`event_subscribe`), and delivery off the
//! workers.
//!
//! [`raise`] is all a caller does: it builds the OpenSIPS 3.x JSON-RPC
//! notification once, hands it to the delivery thread through a bounded
//! queue (full: dropped and counted in `evi:dropped`) and, when the script
//! has `event_route.<name>`, queues the event for worker 0. It never waits.

mod deliver;
pub mod socket;

use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::stats::Counter;
pub use socket::Socket;

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
/// Events not delivered: a full queue, a broker that is down, a send error.
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
    crate::modules::ALL
        .iter()
        .flat_map(|m| m.events.iter())
        .any(|e| e.name == name)
        || script_events().contains(name)
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

/// The OpenSIPS 3.x notification for `name` with `params`.
pub fn payload(name: &str, params: &Map<String, Value>) -> String {
    let mut m = Map::new();
    m.insert("jsonrpc".into(), Value::from("2.0"));
    m.insert("method".into(), Value::from(name));
    m.insert("params".into(), Value::Object(params.clone()));
    Value::Object(m).to_string()
}

/// Raises `name`: queues it for each live subscriber and for the script's
/// `event_route.<name>`. Never waits; an unknown name is an error.
pub fn raise(name: &str, params: Map<String, Value>) -> Result<(), String> {
    if !known(name) {
        return Err(format!("unknown event {name}"));
    }
    let now = Instant::now();
    let targets: Vec<Socket> = subs()
        .iter()
        .filter(|x| x.event == name && x.until.is_none_or(|u| u > now))
        .map(|x| x.socket.clone())
        .collect();
    if !targets.is_empty() {
        deliver::queue(targets, payload(name, &params));
    }
    if let Some(tx) = ROUTES.get().filter(|_| has_route(name)) {
        if tx.try_send((name.to_string(), params)).is_err() {
            DROPPED.inc();
        }
    }
    Ok(())
}

/// Whether raising `name` now would reach anyone (a live subscriber or
/// an `event_route`): a caller may skip building the parameters.
pub fn wanted(name: &str) -> bool {
    if ROUTES.get().is_some() && has_route(name) {
        return true;
    }
    let now = Instant::now();
    subs()
        .iter()
        .any(|x| x.event == name && x.until.is_none_or(|u| u > now))
}

/// [`raise`] for a declared event whose parameters are built by the
/// caller: an error is logged (a module's own event is always known).
pub fn raise_declared(name: &'static str, params: Map<String, Value>) {
    if let Err(e) = raise(name, params) {
        tracing::warn!("event {name}: {e}");
    }
}

#[cfg(test)]
mod tests;
