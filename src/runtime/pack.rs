//! Packing UDP onto one worker while the load is light (`config.udp_pack`).
//!
//! Each worker has its own SO_REUSEPORT socket per UDP listen address, and
//! the kernel spreads datagrams over them by a hash of addresses and ports.
//! At a light load that costs: every worker sleeps and wakes for its share,
//! and on a virtual machine a sleep and a wake-up cost more than the work
//! between them (bench/RESULTS.md, "Session 15": 92 against 74 µs of CPU per
//! registration with two workers sharing 1000 registrations/s from many
//! ports, against one worker taking them all).
//!
//! So while the first worker has time to spare, the group's program sends
//! every datagram to it ([`Steer::First`]); once it is busy, or a datagram
//! waits in its queue, the kernel's hash spreads them over all workers again
//! ([`Steer::Hash`]), and only a long quiet spell packs them again. The
//! supervisor thread of this file looks at the workers' CPU time (the
//! kernel's account, each thread's CPU-time clock) every [`TICK`].
//! Requests already queued stay with the worker that has them: all workers
//! share transactions, dialogs and registrations, so any may take any.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reuseport::Steer;

use crate::stats::CORE;

/// How often the load is looked at.
pub const TICK: Duration = Duration::from_millis(50);
/// Spread when the first worker was busy more than this share of a tick.
const SPREAD_ABOVE: f64 = 0.5;
/// Pack again when all workers together were busy less than this share of
/// one CPU for [`QUIET_TICKS`] ticks in a row.
const PACK_BELOW: f64 = 0.3;
const QUIET_TICKS: u32 = 20;
/// Spread when the oldest datagram queued for the first worker has waited
/// longer than this (it is stuck or behind, whatever its CPU says).
const BACKLOG: Duration = Duration::from_millis(10);

/// The decision, without I/O.
#[derive(Debug)]
pub struct Decide {
    packed: bool,
    quiet: u32,
}

impl Decide {
    /// Starts packed: a daemon starts with no load.
    pub fn new() -> Decide {
        Decide {
            packed: true,
            quiet: 0,
        }
    }

    pub fn packed(&self) -> bool {
        self.packed
    }

    /// The steering [`Decide::tick`] asked for could not be made: back to
    /// where it was, so the next tick asks again.
    pub fn undo(&mut self) {
        self.packed = !self.packed;
        self.quiet = 0;
    }

    /// One tick's figures: the busy share of a CPU of the first worker and
    /// of all workers, and whether the first worker's queue is backed up.
    /// Returns the new steering when it changes.
    pub fn tick(&mut self, first: f64, all: f64, backlog: bool) -> Option<Steer> {
        if self.packed {
            if first > SPREAD_ABOVE || backlog {
                self.packed = false;
                self.quiet = 0;
                return Some(Steer::Hash);
            }
            return None;
        }
        if all < PACK_BELOW && !backlog {
            self.quiet += 1;
        } else {
            self.quiet = 0;
        }
        if self.quiet >= QUIET_TICKS {
            self.packed = true;
            self.quiet = 0;
            return Some(Steer::First);
        }
        None
    }
}

impl Default for Decide {
    fn default() -> Self {
        Decide::new()
    }
}

/// The packing thread; [`Packer::stop`] ends it.
pub struct Packer {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Packer {
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.thread().unpark();
        let _ = self.handle.join();
    }
}

/// Steers every group `firsts` (the first worker's socket of each UDP
/// listen address, the first of its group to bind) and starts the thread
/// that keeps steering them by the load of the workers `tids` (kernel
/// thread ids, the first worker first). None when there is nothing to do
/// (one worker, no UDP) or the kernel refuses the program (logged; the
/// hash then spreads as without packing).
pub fn spawn(firsts: Vec<UdpSocket>, tids: Vec<i64>) -> Option<Packer> {
    if tids.len() < 2 || firsts.is_empty() {
        return None;
    }
    if let Err(e) = steer_all(&firsts, Steer::First) {
        tracing::warn!("udp_pack: cannot steer the UDP sockets ({e}); the kernel's hash spreads datagrams over the workers");
        let _ = steer_all(&firsts, Steer::Hash);
        return None;
    }
    CORE.udp_packed.inc();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let firsts = Arc::new(firsts);
    let socks = firsts.clone();
    let handle = std::thread::Builder::new()
        .name("udp-pack".into())
        .spawn(move || watch(&socks, &tids, &flag));
    match handle {
        Ok(handle) => Some(Packer { stop, handle }),
        Err(e) => {
            tracing::warn!("udp_pack: cannot start its thread ({e}); spreading by hash");
            CORE.udp_packed.sub(1);
            let _ = steer_all(&firsts, Steer::Hash);
            None
        }
    }
}

fn steer_all(firsts: &[UdpSocket], how: Steer) -> io::Result<()> {
    for s in firsts {
        reuseport::steer(s.as_fd(), how)?;
    }
    Ok(())
}

fn watch(firsts: &[UdpSocket], tids: &[i64], stop: &AtomicBool) {
    let mut decide = Decide::new();
    let mut last: Vec<Option<u64>> = tids.iter().map(|t| cpu_ns(*t)).collect();
    let mut at = Instant::now();
    let mut ctrl = crate::transport::udp::stamp_buffer();
    let mut warned = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(TICK);
        let now = Instant::now();
        let span = now.duration_since(at).as_nanos().max(1) as f64;
        at = now;
        let mut first = 0.0;
        let mut all = 0.0;
        for (i, (tid, prev)) in tids.iter().zip(last.iter_mut()).enumerate() {
            let cur = cpu_ns(*tid);
            if let (Some(c), Some(p)) = (cur, *prev) {
                let share = c.saturating_sub(p) as f64 / span;
                all += share;
                if i == 0 {
                    first = share;
                }
            }
            *prev = cur;
        }
        let backlog = firsts.iter().any(|s| {
            crate::transport::udp::peek_age(s, &mut ctrl).is_some_and(|age| age > BACKLOG)
        });
        let Some(how) = decide.tick(first, all, backlog) else {
            continue;
        };
        match steer_all(firsts, how) {
            Ok(()) => {
                tracing::debug!(
                    "udp_pack: {} (first worker {:.0} %, all {:.0} %, backlog {backlog})",
                    if how == Steer::First {
                        "packed onto the first worker"
                    } else {
                        "spread over the workers"
                    },
                    first * 100.0,
                    all * 100.0
                );
                if how == Steer::First {
                    CORE.udp_packed.inc();
                } else {
                    CORE.udp_packed.sub(1);
                    CORE.udp_spreads.inc();
                }
            }
            // Packing failed: the kernel's hash still spreads; stop here.
            Err(e) if how == Steer::First => {
                tracing::warn!("udp_pack: cannot steer the UDP sockets ({e}); the kernel's hash spreads datagrams from now on");
                return;
            }
            // Spreading failed: everything still reaches the first worker,
            // so try again on the next tick.
            Err(e) => {
                if !warned {
                    tracing::warn!("udp_pack: cannot spread the UDP sockets ({e}); trying again");
                    warned = true;
                }
                decide.undo();
            }
        }
    }
}

/// CPU time of thread `tid` of this process so far, in nanoseconds: its
/// CPU-time clock (Linux's clock id for a thread, as glibc's
/// `pthread_getcpuclockid` makes it: the thread id inverted and shifted,
/// with the per-thread and scheduler-time bits), one system call.
fn cpu_ns(tid: i64) -> Option<u64> {
    const PER_THREAD_SCHED: i64 = 4 | 2;
    let id = (!tid << 3) | PER_THREAD_SCHED;
    let clock = nix::time::ClockId::from_raw(libc::clockid_t::try_from(id).ok()?);
    let t = nix::time::clock_gettime(clock).ok()?;
    Some(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_clock_counts_that_thread_only() {
        let me = rustix::thread::gettid().as_raw_nonzero().get() as i64;
        // The same account through the calling thread's own clock.
        let own = || {
            let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
                .expect("own clock");
            t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
        };
        let before = cpu_ns(me).expect("clock by id");
        let start = own();
        while own() - start < 20_000_000 {
            std::hint::black_box(start);
        }
        let spent = cpu_ns(me).expect("clock by id") - before;
        assert!(spent >= 20_000_000, "{spent} ns");
        // A thread of another process has no clock here.
        let mut other = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        assert_eq!(cpu_ns(i64::from(other.id())), None);
        let _ = other.kill();
        let _ = other.wait();
    }

    #[test]
    fn a_busy_first_worker_or_a_queue_spreads_at_once() {
        let mut d = Decide::new();
        assert_eq!(d.tick(0.2, 0.2, false), None);
        assert_eq!(d.tick(0.6, 0.6, false), Some(Steer::Hash));
        let mut d = Decide::new();
        assert_eq!(d.tick(0.0, 0.0, true), Some(Steer::Hash));
        // Spreading failed: the next busy tick asks again.
        d.undo();
        assert!(d.packed());
        assert_eq!(d.tick(0.9, 0.9, false), Some(Steer::Hash));
    }

    #[test]
    fn only_a_long_quiet_spell_packs_again() {
        let mut d = Decide::new();
        d.tick(0.9, 0.9, false);
        for _ in 0..QUIET_TICKS - 1 {
            assert_eq!(d.tick(0.1, 0.2, false), None);
        }
        // A busy tick starts the count again.
        assert_eq!(d.tick(0.2, 0.4, false), None);
        for _ in 0..QUIET_TICKS - 1 {
            assert_eq!(d.tick(0.1, 0.2, false), None);
        }
        assert_eq!(d.tick(0.1, 0.2, false), Some(Steer::First));
        assert!(d.packed());
    }
}
