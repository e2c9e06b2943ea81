//! The core's own events (OpenSIPS `evi_core`, `dprint.c`, `mem.c`,
//! `net_tcp.c`): E_CORE_THRESHOLD, E_CORE_PKG_THRESHOLD,
//! E_CORE_TCP_DISCONNECT and E_CORE_LOG, reported by layers that sit
//! below the event interface. They report here; the runtime connects this
//! leaf to `crate::event` ([`connect`]), so no layer imports upwards.
//! Parameters are built only when someone listens ([`raise`]).

use serde_json::{Map, Value};
use std::sync::OnceLock;
use std::time::Duration;

pub const THRESHOLD: &str = "E_CORE_THRESHOLD";
pub const PKG_THRESHOLD: &str = "E_CORE_PKG_THRESHOLD";
pub const TCP_DISCONNECT: &str = "E_CORE_TCP_DISCONNECT";
pub const LOG: &str = "E_CORE_LOG";

pub type Params = Map<String, Value>;

struct Sink {
    wanted: fn(&str) -> bool,
    raise: fn(&'static str, Params),
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Connects the reports to the event interface (once per process).
pub fn connect(wanted: fn(&str) -> bool, raise: fn(&'static str, Params)) {
    let _ = SINK.set(Sink { wanted, raise });
}

/// Raises `name` with the parameters `build` makes, if anyone listens.
pub fn raise(name: &'static str, build: impl FnOnce() -> Params) {
    if let Some(s) = SINK.get() {
        if (s.wanted)(name) {
            (s.raise)(name, build());
        }
    }
}

/// Builds a parameter list from (name, value) pairs, in order.
pub fn params<const N: usize>(pairs: [(&str, Value); N]) -> Params {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// OpenSIPS `log_expiry`: `source` ("msg processing", "dns") took `took`,
/// over `threshold`: a warning, and E_CORE_THRESHOLD with the time in
/// microseconds and `extra` (the message, the name looked up).
pub fn threshold(source: &'static str, took: Duration, threshold: Duration, extra: &str) {
    let us = i64::try_from(took.as_micros()).unwrap_or(i64::MAX);
    tracing::warn!(
        "threshold exceeded: {source} took too long - {us} us (threshold {} us)",
        threshold.as_micros()
    );
    raise(THRESHOLD, || {
        params([
            ("source", Value::from(source)),
            ("time", Value::from(us)),
            ("extra", Value::from(extra)),
        ])
    });
}
