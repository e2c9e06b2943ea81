//! Overload without a cliff (issue 17). A proxy that takes more new calls
//! than it can finish lets its socket queues grow until the callers and
//! callees retransmit, which adds work exactly when there is none to spare:
//! goodput collapses (OpenSIPS and Kamailio do, bench/RESULTS.md). lunasip
//! watches how long datagrams wait in its sockets' queues (the kernel's
//! receive stamp, `transport::udp::recv_stamped`) and, once that delay
//! stands above `config.overload_queue_delay`, takes new INVITEs only at
//! the rate it finishes calls ([`admission`]); the others are answered
//! 503 with Retry-After before any route runs. Everything else — replies,
//! ACK, BYE, CANCEL, in-dialog requests, retransmissions of calls already
//! taken — still runs: those finish calls already paid for. Retransmission
//! timers of our own client transactions do not resend while a socket is
//! behind (the answer is most likely waiting in our own queue).
//!
//! The delay is a better signal than the queue's length: it is what the
//! peers' timers (T1 = 500 ms) see, whatever the message sizes and the
//! machine's speed. As in CoDel (RFC 8289), a burst that drains quickly is
//! not overload: a socket is *behind* once every datagram read for a whole
//! `overload_queue_delay` waited longer than `overload_queue_delay`, and it
//! is caught up again as soon as one waited less than half of it or the
//! socket ran empty. Each socket also reports its standing delay (the
//! shortest wait of each interval of `overload_queue_delay`) to the
//! process's controller: the workers share the CPU, and a call admitted by
//! one worker has its replies read by another.

pub mod admission;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::proxy::context::Current;
use crate::sip::Method;
use crate::stats::CORE;
use admission::{Admission, Change, Counts};

/// Runs for every request before the script: a new INVITE (no To tag) is
/// counted, and while new calls are limited it is either taken, or
/// answered again by its transaction if it is a retransmission of one
/// already taken (its last reply, as `t_check_trans` does), or answered
/// 503 with `Retry-After`. True when the request was handled so.
pub fn refuse(st: &Current) -> bool {
    let new_invite = st
        .call
        .borrow()
        .msg
        .as_ref()
        .is_some_and(|m| m.method_kind() == Method::Invite && m.to_tag().is_none());
    if !new_invite {
        return false;
    }
    let load = &st.env.load;
    if !load.limited() {
        load.taken.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    if crate::proxy::tm::relay::t_check_trans(st).0 {
        return true;
    }
    if load.admit(Instant::now()) {
        return false;
    }
    CORE.shed_requests.inc();
    load.refused.fetch_add(1, Ordering::Relaxed);
    crate::proxy::reply::send_local_reply_with(
        st,
        503,
        "Service Unavailable",
        "Retry-After: 5\r\n",
    );
    true
}

/// The process's overload state, shared by every worker ([`Env::load`]).
///
/// [`Env::load`]: crate::proxy::context::Env
#[derive(Debug, Default)]
pub struct Load {
    /// Sockets behind now.
    behind: AtomicUsize,
    /// Sockets whose last report showed a queue of half the target or more.
    queued: AtomicUsize,
    /// New INVITEs limited now (mirrors the controller, read without a lock).
    limited: AtomicBool,
    /// New INVITEs taken and refused so far (the controller's rate meter).
    taken: AtomicU64,
    refused: AtomicU64,
    control: Mutex<Admission>,
}

impl Load {
    /// True while some socket is behind (tm does not resend meanwhile).
    #[inline]
    pub fn behind(&self) -> bool {
        self.behind.load(Ordering::Relaxed) > 0
    }

    /// True while new INVITEs are taken at a limited rate.
    #[inline]
    pub fn limited(&self) -> bool {
        self.limited.load(Ordering::Relaxed)
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Admission> {
        // A panic elsewhere while holding it leaves plain numbers behind.
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a new INVITE read at `now` is taken (counted if so).
    fn admit(&self, now: Instant) -> bool {
        let ok = self.control().admit(now);
        if ok {
            self.taken.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// One socket's standing queue delay over its last interval.
    fn report(&self, now: Instant, standing: Duration, target: Duration) {
        let seen = Counts {
            taken: self.taken.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        };
        let mut c = self.control();
        let queued = self.behind() || self.queued.load(Ordering::Relaxed) > 0;
        let change = c.report(now, standing, target, seen, queued);
        self.limited.store(c.rate().is_some(), Ordering::Relaxed);
        // At least 1 while limited, so that 0 means "no limit".
        let shown = c.rate().map_or(0, |r| (r.round() as u64).max(1));
        // `core:overload_admitted_rate`: a gauge kept in a counter (stats is
        // a leaf), moved only here, under the controller's lock.
        let gauge = &crate::stats::CORE.overload_admitted_rate;
        let before = gauge.get();
        match shown >= before {
            true => gauge.add(shown - before),
            false => gauge.sub(before - shown),
        }
        drop(c);
        match change {
            Change::Cut(r) => tracing::debug!(
                "overload: queue delay {} ms, new INVITEs limited to {r:.0}/s",
                standing.as_millis()
            ),
            Change::Raised(r) => tracing::debug!("overload: new INVITEs limited to {r:.0}/s"),
            Change::Lifted => tracing::info!("overload over: taking every new call again"),
            Change::None => {}
        }
    }
}

/// One socket's view of its queue, fed by its receive loop.
pub struct Gauge<'a> {
    load: &'a Load,
    /// `overload_queue_delay`; zero: never behind.
    target: Duration,
    /// Since when every datagram read waited longer than `target`.
    above_since: Option<Instant>,
    behind: bool,
    /// The interval being measured for the controller: its start and the
    /// shortest wait in it (zero once the socket ran empty).
    window: Option<(Instant, Duration)>,
    /// Datagrams read; while there is no queue to watch the clock is read
    /// only every [`SAMPLE`] of them (the controller's rate meter still
    /// gets its reports).
    reads: u32,
    /// Counted in [`Load::queued`]: the last report showed a queue.
    queued: bool,
}

/// See [`Gauge::reads`].
const SAMPLE: u32 = 32;

impl<'a> Gauge<'a> {
    pub fn new(load: &'a Load, target: Duration) -> Gauge<'a> {
        Gauge {
            load,
            target,
            above_since: None,
            behind: false,
            window: None,
            reads: 0,
            queued: false,
        }
    }

    /// The socket ran empty: no queue at all.
    pub fn empty(&mut self) {
        self.above_since = None;
        self.set(false, Duration::ZERO);
        match &mut self.window {
            Some((_, least)) => *least = Duration::ZERO,
            None if self.load.limited() => self.empty_at(Instant::now()),
            None => {}
        }
    }

    /// [`Gauge::empty`] at a given time (for the controller).
    fn empty_at(&mut self, now: Instant) {
        let start = self.window.map_or(now, |(s, _)| s);
        self.window = Some((start, Duration::ZERO));
    }

    /// A datagram was read that waited `age` in the queue.
    pub fn waited(&mut self, age: Duration) {
        if self.target.is_zero() {
            return;
        }
        self.reads = self.reads.wrapping_add(1);
        if age <= self.target / 2 && !self.load.limited() && self.reads % SAMPLE != 0 {
            // Nothing to watch: no clock read.
            self.above_since = None;
            self.set(false, age);
            if let Some((start, least)) = self.window {
                self.window = Some((start, least.min(age)));
            }
            return;
        }
        self.waited_at(age, Instant::now());
    }

    /// [`Gauge::waited`] with the time given.
    pub fn waited_at(&mut self, age: Duration, now: Instant) {
        if self.target.is_zero() {
            return;
        }
        if age > self.target {
            let since = *self.above_since.get_or_insert(now);
            if !self.behind && now.duration_since(since) >= self.target {
                self.set(true, age);
            }
        } else {
            self.above_since = None;
            if age < self.target / 2 {
                self.set(false, age);
            }
        }
        match self.window {
            None => self.window = Some((now, age)),
            Some((start, least)) if now.duration_since(start) >= self.target => {
                self.window = None;
                let standing = least.min(age);
                self.set_queued(standing >= self.target / 2);
                self.load.report(now, standing, self.target);
            }
            Some((start, least)) => self.window = Some((start, least.min(age))),
        }
    }

    fn set_queued(&mut self, queued: bool) {
        if queued != self.queued {
            self.queued = queued;
            if queued {
                self.load.queued.fetch_add(1, Ordering::Relaxed);
            } else {
                self.load.queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn set(&mut self, behind: bool, age: Duration) {
        if behind == self.behind {
            return;
        }
        self.behind = behind;
        if behind {
            self.load.behind.fetch_add(1, Ordering::Relaxed);
            CORE.overload_episodes.inc();
            tracing::warn!(
                "overload: datagrams wait {} ms in the socket queue; new INVITEs are limited to the rate calls are finished",
                age.as_millis()
            );
        } else {
            self.load.behind.fetch_sub(1, Ordering::Relaxed);
            tracing::info!("overload: caught up on the socket queue");
        }
    }

    /// A reload changed `overload_queue_delay`.
    pub fn set_target(&mut self, target: Duration) {
        if target == self.target {
            return;
        }
        self.target = target;
        if target.is_zero() {
            self.above_since = None;
            self.set(false, Duration::ZERO);
            self.window = None;
            self.set_queued(false);
            // Off: no limit either.
            self.load.report(Instant::now(), Duration::ZERO, target);
        }
    }

    /// Whether this socket is behind now.
    pub fn behind(&self) -> bool {
        self.behind
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        if self.behind {
            self.load.behind.fetch_sub(1, Ordering::Relaxed);
        }
        self.set_queued(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_that_drains_is_not_overload() {
        let load = Load::default();
        let mut g = Gauge::new(&load, 50 * MS);
        let t = Instant::now();
        // A queue of old datagrams read quickly: above the target, but not
        // for a whole target's time.
        for i in 0..40u32 {
            g.waited_at(300 * MS, t + i * MS);
        }
        g.waited_at(10 * MS, t + 41 * MS);
        assert!(!load.behind());
        assert!(!load.limited());
    }

    #[test]
    fn a_standing_queue_is_overload_until_it_drains() {
        let load = Load::default();
        let mut g = Gauge::new(&load, 20 * MS);
        let t = Instant::now();
        g.waited_at(30 * MS, t);
        g.waited_at(30 * MS, t + 25 * MS);
        assert!(load.behind());
        // Between half the target and the target: still behind.
        g.waited_at(15 * MS, t + 26 * MS);
        assert!(load.behind());
        g.waited_at(5 * MS, t + 27 * MS);
        assert!(!load.behind());
        g.waited_at(30 * MS, t + 28 * MS);
        g.waited_at(30 * MS, t + 50 * MS);
        assert!(load.behind());
        let mut other = Gauge::new(&load, 20 * MS);
        other.empty();
        assert!(load.behind(), "one socket behind is enough");
        g.empty();
        assert!(!load.behind());
    }

    #[test]
    fn a_gauge_dropped_while_behind_leaves_no_overload() {
        let load = Load::default();
        {
            let mut g = Gauge::new(&load, MS);
            let t = Instant::now();
            g.waited_at(5 * MS, t);
            g.waited_at(5 * MS, t + 2 * MS);
            assert!(load.behind());
        }
        assert!(!load.behind());
    }

    #[test]
    fn zero_target_never_sheds() {
        let load = Load::default();
        let mut g = Gauge::new(&load, Duration::ZERO);
        let t = Instant::now();
        for i in 0..100u32 {
            g.waited_at(Duration::from_secs(5), t + i * 10 * MS);
        }
        assert!(!load.behind());
        assert!(!load.limited());
    }

    /// 1,000 new INVITEs/s taken, one a ms; the queue stands at 15 ms for
    /// an interval (the meter starts), then at 30 ms: limited from the
    /// second report (at 41 ms).
    fn rising(load: &Load, g: &mut Gauge, t: Instant) {
        for i in 0..60u32 {
            load.taken.fetch_add(1, Ordering::Relaxed);
            let age = if i < 21 { 15 * MS } else { 30 * MS };
            g.waited_at(age, t + i * MS);
            assert_eq!(load.limited(), i >= 41, "{i} ms");
        }
    }

    #[test]
    fn sockets_report_their_standing_delay_and_the_limit_follows() {
        let load = Load::default();
        let mut g = Gauge::new(&load, 20 * MS);
        let t = Instant::now();
        rising(&load, &mut g, t);
        assert!(load.limited());
        let r = load.control().rate().unwrap_or_default();
        assert!((850.0..=950.0).contains(&r), "{r}");
        // Limited: some new INVITEs still pass, at that rate.
        let taken = (0..100u32)
            .filter(|i| load.admit(t + (60 + i) * MS))
            .count();
        assert!((80..=95).contains(&taken), "{taken}");
        // A reload turning it off lifts the limit at once.
        g.set_target(Duration::ZERO);
        assert!(!load.limited() && !load.behind());
    }

    #[test]
    fn an_empty_socket_lifts_a_limit_no_longer_needed() {
        let load = Load::default();
        let mut g = Gauge::new(&load, 20 * MS);
        let t = Instant::now();
        rising(&load, &mut g, t);
        assert!(load.limited());
        // The socket runs empty, and the next datagram after an interval
        // closes it: a short queue, few calls: no limit.
        g.empty_at(t + 61 * MS);
        g.waited_at(MS, t + 90 * MS);
        assert!(!load.limited());
    }
}
