//! The core's own events (OpenSIPS `evi_core`, `dprint.c`, `mem.c`,
//! `net_tcp.c`, `mem/shm_mem.h`): E_CORE_THRESHOLD, E_CORE_PKG_THRESHOLD,
//! E_CORE_SHM_THRESHOLD, E_CORE_TCP_DISCONNECT and E_CORE_LOG, reported by
//! layers that sit
//! below the event interface. They report here; the runtime connects this
//! leaf to `crate::event` ([`connect`]), so no layer imports upwards.
//! Parameters are built only when someone listens ([`raise`]).

use serde_json::{Map, Value};
use std::sync::OnceLock;
use std::time::Duration;

pub const THRESHOLD: &str = "E_CORE_THRESHOLD";
pub const PKG_THRESHOLD: &str = "E_CORE_PKG_THRESHOLD";
pub const SHM_THRESHOLD: &str = "E_CORE_SHM_THRESHOLD";
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

/// How often [`ShmWatch::check`] runs (OpenSIPS checks on every shm
/// allocation; reading the process's memory costs a /proc read).
pub const SHM_CHECK_EVERY: Duration = Duration::from_secs(1);

/// E_CORE_SHM_THRESHOLD (OpenSIPS mem/shm_mem.h `shm_threshold_check`).
/// lunasip has no shared memory pool: what it measures is the process's
/// resident memory (its shared tables — transactions, dialogs, locations,
/// caches — and the workers' Lua states), against `shm_memory` bytes or
/// the machine's memory.
pub struct ShmWatch {
    threshold: u64,
    size: u64,
    last: u64,
}

impl ShmWatch {
    /// None when `threshold` is 0 (off) or the size cannot be known.
    pub fn new(threshold: u8, size: u64) -> Option<ShmWatch> {
        if threshold == 0 {
            return None;
        }
        let size = match size {
            0 => mem_total()?,
            n => n,
        };
        Some(ShmWatch {
            threshold: u64::from(threshold),
            size,
            last: 0,
        })
    }

    /// Reads the resident memory and raises the event when due.
    pub fn check(&mut self) {
        if let Some(used) = resident() {
            if let Some(perc) = self.due(used) {
                let (th, size) = (self.threshold, self.size);
                raise(SHM_THRESHOLD, || {
                    params([
                        ("usage", Value::from(perc)),
                        ("threshold", Value::from(th)),
                        ("used", Value::from(used)),
                        ("size", Value::from(size)),
                    ])
                });
            }
        }
    }

    /// The usage in percent when the event is due, as OpenSIPS decides:
    /// at or over the threshold with a usage not reported yet, or back
    /// under it after a report over it.
    fn due(&mut self, used: u64) -> Option<u64> {
        let perc = used.saturating_mul(100) / self.size.max(1);
        let th = self.threshold;
        if (perc < th && self.last <= th) || (perc >= th && self.last == perc) {
            return None;
        }
        self.last = perc;
        Some(perc)
    }
}

/// Checks the process's memory every [`SHM_CHECK_EVERY`] on this
/// thread's local task set (the first worker's), if the event is on.
pub fn watch_shm(threshold: u8, size: u64) {
    let Some(mut shm) = ShmWatch::new(threshold, size) else {
        return;
    };
    tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(SHM_CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            shm.check();
        }
    });
}

/// The process's resident memory in bytes (/proc/self/statm).
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(rustix::param::page_size() as u64))
}

/// The machine's memory in bytes (/proc/meminfo `MemTotal`).
fn mem_total() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// shm_mem.h `shm_threshold_check`: raised when crossing the
    /// threshold, again when the usage moves while over it, once more
    /// when it goes back under, never while it stays under.
    #[test]
    fn shm_threshold_is_raised_as_opensips_does() {
        let mut w = ShmWatch::new(80, 1000).expect("on");
        let seen: Vec<Option<u64>> = [500, 790, 800, 800, 850, 850, 700, 600, 810]
            .into_iter()
            .map(|u| w.due(u))
            .collect();
        assert_eq!(
            seen,
            [
                None,
                None,
                Some(80),
                None,
                Some(85),
                None,
                Some(70),
                None,
                Some(81)
            ]
        );
        assert!(ShmWatch::new(0, 1000).is_none());
        assert!(ShmWatch::new(50, 0).is_some_and(|w| w.size > 0));
        assert!(resident().is_some_and(|r| r > 0));
    }
}
