//! Overload without a cliff (issue 17). A proxy that takes more new calls
//! than it can finish lets its socket queues grow until the callers and
//! callees retransmit, which adds work exactly when there is none to spare:
//! goodput collapses (OpenSIPS and Kamailio do, bench/RESULTS.md). lunasip
//! watches how long datagrams wait in its sockets' queues (the kernel's
//! receive stamp, `transport::udp::recv_stamped`) and, while that delay
//! stands above `config.overload_queue_delay`, answers new INVITEs 503
//! with Retry-After before any route runs. Everything else — replies,
//! ACK, BYE, CANCEL, in-dialog requests, retransmissions of calls already
//! taken — still runs: those finish calls already paid for. Retransmission
//! timers of our own client transactions do not resend meanwhile (the
//! answer is most likely waiting in our own queue).
//!
//! The delay is a better signal than the queue's length: it is what the
//! peers' timers (T1 = 500 ms) see, whatever the message sizes and the
//! machine's speed. As in CoDel (RFC 8289), a burst that drains quickly is
//! not overload: a socket is *behind* once every datagram read for a whole
//! `overload_queue_delay` waited longer than `overload_queue_delay`, and it
//! is caught up again as soon as one waited less than half of it or the
//! socket ran empty. The process sheds while any socket is behind: the
//! workers share the CPU, and a call admitted by one worker has its replies
//! read by another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::proxy::context::Current;
use crate::sip::Method;
use crate::stats::CORE;

/// While the process is behind: a new INVITE (no To tag) is answered 503
/// with `Retry-After` before any route runs, unless it is a retransmission
/// of one already taken, whose transaction answers it again (its last
/// reply, as `t_check_trans` does). True when the request was handled so.
pub fn shed(st: &Current) -> bool {
    let new_invite = st
        .call
        .borrow()
        .msg
        .as_ref()
        .is_some_and(|m| m.method_kind() == Method::Invite && m.to_tag().is_none());
    if !new_invite {
        return false;
    }
    if crate::proxy::tm::relay::t_check_trans(st).0 {
        return true;
    }
    CORE.shed_requests.inc();
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
}

impl Load {
    /// True while new calls are refused (some socket is behind).
    #[inline]
    pub fn shedding(&self) -> bool {
        self.behind.load(Ordering::Relaxed) > 0
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
}

impl<'a> Gauge<'a> {
    pub fn new(load: &'a Load, target: Duration) -> Gauge<'a> {
        Gauge {
            load,
            target,
            above_since: None,
            behind: false,
        }
    }

    /// The socket ran empty: no queue at all.
    pub fn empty(&mut self) {
        self.above_since = None;
        self.set(false, Duration::ZERO);
    }

    /// A datagram was read that waited `age` in the queue.
    pub fn waited(&mut self, age: Duration) {
        if self.target.is_zero() {
            return;
        }
        if age > self.target {
            let now = Instant::now();
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
                "overload: datagrams wait {} ms in the socket queue; new INVITEs get 503 until it drains",
                age.as_millis()
            );
        } else {
            self.load.behind.fetch_sub(1, Ordering::Relaxed);
            tracing::info!("overload over: taking new calls again");
        }
    }

    /// A reload changed `overload_queue_delay`.
    pub fn set_target(&mut self, target: Duration) {
        self.target = target;
        if target.is_zero() {
            self.empty();
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
        // A queue of old datagrams read quickly: above the target, but not
        // for a whole target's time.
        for _ in 0..100 {
            g.waited(300 * MS);
        }
        g.waited(10 * MS);
        assert!(!load.shedding());
    }

    #[test]
    fn a_standing_queue_is_overload_until_it_drains() {
        let load = Load::default();
        let mut g = Gauge::new(&load, 20 * MS);
        g.waited(30 * MS);
        std::thread::sleep(25 * MS);
        g.waited(30 * MS);
        assert!(load.shedding());
        // Between half the target and the target: still behind.
        g.waited(15 * MS);
        assert!(load.shedding());
        g.waited(5 * MS);
        assert!(!load.shedding());
        g.waited(30 * MS);
        std::thread::sleep(25 * MS);
        g.waited(30 * MS);
        assert!(load.shedding());
        let mut other = Gauge::new(&load, 20 * MS);
        other.empty();
        assert!(load.shedding(), "one socket behind is enough");
        g.empty();
        assert!(!load.shedding());
    }

    #[test]
    fn a_gauge_dropped_while_behind_leaves_no_overload() {
        let load = Load::default();
        {
            let mut g = Gauge::new(&load, MS);
            g.waited(5 * MS);
            std::thread::sleep(2 * MS);
            g.waited(5 * MS);
            assert!(load.shedding());
        }
        assert!(!load.shedding());
    }

    #[test]
    fn zero_target_never_sheds() {
        let load = Load::default();
        let mut g = Gauge::new(&load, Duration::ZERO);
        g.waited(Duration::from_secs(5));
        std::thread::sleep(MS);
        g.waited(Duration::from_secs(5));
        assert!(!load.shedding());
    }
}
