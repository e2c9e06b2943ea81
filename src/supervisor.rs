//! The supervisor: notices a worker that stopped running its event loop
//! (stuck in a Rust bug, a C library, or a route with no `route_timeout`).
//!
//! Each worker's runtime ticks a heartbeat ([`Heartbeats::beat`]); the
//! supervisor thread looks every quarter of `worker_stall_timeout`. A
//! worker silent for longer is logged once as stuck (and again when it
//! comes back), and while any worker is stuck the systemd watchdog
//! (`WATCHDOG=1`, `WatchdogSec=` in the unit) is not pinged, so systemd
//! restarts the service. Shutdown does not wait for a stuck worker past
//! its grace time (`runtime`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Every worker's last sign of life.
pub struct Heartbeats {
    epoch: Instant,
    /// Milliseconds since `epoch` of each worker's last beat.
    beats: Vec<AtomicU64>,
    stuck: Vec<AtomicBool>,
    /// Silence longer than this is a stuck worker.
    pub stall: Duration,
}

impl Heartbeats {
    pub fn new(workers: usize, stall: Duration) -> Arc<Heartbeats> {
        Arc::new(Heartbeats {
            epoch: Instant::now(),
            beats: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            stuck: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            stall,
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Worker `id` is alive now.
    pub fn beat(&self, id: usize) {
        if let Some(b) = self.beats.get(id) {
            b.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// How often a worker should beat: well inside the stall time.
    pub fn every(&self) -> Duration {
        (self.stall / 4).clamp(Duration::from_millis(20), Duration::from_secs(1))
    }

    /// Looks at every worker, logging the ones that became stuck or came
    /// back; true when none is stuck.
    pub fn check(&self) -> bool {
        let now = self.now_ms();
        let stall = self.stall.as_millis() as u64;
        let mut all = true;
        for (id, (b, stuck)) in self.beats.iter().zip(&self.stuck).enumerate() {
            let silent = now.saturating_sub(b.load(Ordering::Relaxed));
            let is_stuck = silent > stall;
            all &= !is_stuck;
            if stuck.swap(is_stuck, Ordering::Relaxed) != is_stuck {
                if is_stuck {
                    tracing::error!(
                        worker = id,
                        "worker {id} is stuck: no heartbeat for {silent} ms (worker_stall_timeout {stall} ms); the systemd watchdog is no longer pinged"
                    );
                } else {
                    tracing::warn!(worker = id, "worker {id} runs again");
                }
            }
        }
        all
    }

    /// Whether worker `id` is stuck now (as of the last check).
    pub fn is_stuck(&self, id: usize) -> bool {
        self.stuck
            .get(id)
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// The supervisor thread; [`Supervisor::stop`] ends it.
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Supervisor {
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.thread().unpark();
        let _ = self.handle.join();
    }
}

/// Starts the supervisor: checks the heartbeats and pings the systemd
/// watchdog (when the unit asks for one) only while every worker beats.
pub fn spawn(hb: Arc<Heartbeats>) -> std::io::Result<Supervisor> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let ping = crate::notify::watchdog_interval();
    let tick = match ping {
        Some(p) => p.min(hb.every()),
        None => hb.every(),
    };
    let handle = std::thread::Builder::new()
        .name("supervisor".into())
        .spawn(move || {
            let mut last_ping: Option<Instant> = None;
            while !flag.load(Ordering::Relaxed) {
                let alive = hb.check();
                if let Some(every) = ping {
                    if alive && last_ping.is_none_or(|t| t.elapsed() >= every) {
                        crate::notify::watchdog_ping();
                        last_ping = Some(Instant::now());
                    }
                }
                std::thread::park_timeout(tick);
            }
        })?;
    Ok(Supervisor { stop, handle })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_worker_is_stuck_until_it_beats() {
        let hb = Heartbeats::new(2, Duration::from_millis(50));
        hb.beat(0);
        hb.beat(1);
        assert!(hb.check());
        std::thread::sleep(Duration::from_millis(80));
        hb.beat(0);
        assert!(!hb.check());
        assert!(hb.is_stuck(1) && !hb.is_stuck(0));
        hb.beat(1);
        assert!(hb.check());
        assert!(!hb.is_stuck(1));
        assert_eq!(hb.every(), Duration::from_millis(20));
    }
}
