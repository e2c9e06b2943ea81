//! How many new INVITEs to take while the proxy is behind: pure logic, fed
//! with the time and the queue delays, so that it is tested without a
//! clock.
//!
//! Refusing every new call while the queue stands (what lunasip did
//! first) over-sheds: the queue drains, everything is taken again, the
//! queue builds up, and the admitted rate swings between nothing and all,
//! about half the offered calls refused at 1.5 × capacity where a third
//! would do. Here the controller keeps an *admitted rate* instead, AIMD
//! as TCP's congestion window (RFC 5681 §3.1): cut by [`CUT`] while the
//! standing queue delay stays above the target, raised by a fixed step
//! each interval while it is below half the target, held in between. The
//! rate settles at what the proxy finishes; the standing queue it keeps
//! (under the target, far from the peers' T1 = 500 ms) absorbs the
//! sawtooth. A socket that ran empty during an interval means idle CPU:
//! the rate then grows by [`GROW`] instead (a deep cut after a stall of
//! the machine is undone in a second, not in tens). A rate rather than a
//! share of the offered calls: when the
//! offered load falls below it, every call is taken at once, with no
//! time spent growing a share back (the cap is lifted at the next short
//! queue). New INVITEs are admitted by a token accumulator, not at
//! random, so a test sees the same answers each run.
//!
//! A cut shows late: the datagrams read now were queued a standing delay
//! ago, before it. So after a cut the next one waits at least the standing
//! delay seen then (and an interval), and comes only if the delay is not
//! falling by then, or has stood above the target for three times that.
//! A queue past twice the target is too close to T1 to wait for that:
//! while a socket reports one, no new INVITE is taken at all (a sudden
//! flood far above capacity is refused at once, as before).

use std::time::{Duration, Instant};

/// Multiplicative decrease while behind.
pub const CUT: f64 = 0.9;
/// Additive increase per interval while the queue is short, as a share of
/// the rate set at the episode's first cut.
pub const RAISE: f64 = 0.02;
/// Multiplicative increase per interval while a socket runs empty: idle
/// CPU, so the limit is far too low (after a stall that cut it deep, or a
/// drop in load); TCP's slow start, RFC 5681 §3.1.
pub const GROW: f64 = 1.5;
/// The smallest increase, calls/s (an episode that began with no calls
/// taken at all).
const MIN_RAISE: f64 = 5.0;

/// The limit in force: admitted new INVITEs per second and the credit.
#[derive(Debug, Clone)]
struct Cap {
    rate: f64,
    /// Additive increase of this episode (calls/s per interval).
    step: f64,
    /// Credit in calls; one is spent per admitted INVITE.
    tokens: f64,
    /// When the credit was last topped up.
    at: Instant,
}

/// The admission controller of one process (every socket reports to it).
#[derive(Debug, Clone, Default)]
pub struct Admission {
    cap: Option<Cap>,
    /// The interval: `overload_queue_delay` of the last report.
    target: Duration,
    /// Rate meter of new INVITEs: window start (time, counts then).
    window: Option<(Instant, Counts)>,
    /// Over the last full window.
    rates: Option<Rates>,
    /// The last cut: when, and the standing delay then.
    last_cut: Option<(Instant, Duration)>,
    last_raise: Option<Instant>,
    /// The last report said the queue stood past twice the target.
    far: bool,
}

/// New INVITEs the process has seen so far (retransmissions aside).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub taken: u64,
    pub refused: u64,
}

impl Counts {
    fn offered(self) -> u64 {
        self.taken.saturating_add(self.refused)
    }
}

/// New INVITEs per second.
#[derive(Debug, Clone, Copy)]
struct Rates {
    taken: f64,
    offered: f64,
}

/// What a report did to the limit (for the log).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    None,
    /// The limit was set or cut to this rate (calls/s).
    Cut(f64),
    /// Raised to this rate.
    Raised(f64),
    /// No limit any more.
    Lifted,
}

impl Admission {
    /// Admitted new INVITEs per second; None while every one is taken.
    pub fn rate(&self) -> Option<f64> {
        self.cap.as_ref().map(|c| c.rate)
    }

    /// One socket's standing queue delay (the shortest wait of an
    /// interval; zero if it ran empty) at `now`. `seen` counts the new
    /// INVITEs of the process so far; `queued`: some socket is behind or
    /// reported a queue of half the target or more (then no raise: the
    /// sockets share the CPU).
    pub fn report(
        &mut self,
        now: Instant,
        standing: Duration,
        target: Duration,
        seen: Counts,
        queued: bool,
    ) -> Change {
        self.target = target;
        if target.is_zero() {
            return self.lift();
        }
        let fresh = self.meter(now, seen);
        self.far = standing > 2 * target;
        if standing > target {
            if !self.cut_due(now, standing) {
                return Change::None;
            }
            let rate = match (&self.cap, fresh) {
                (Some(c), _) => c.rate * CUT,
                // The first cut: from what the proxy took lately (its
                // reads are bounded by what it can do).
                (None, Some(r)) => r.taken * CUT,
                // A queue at the first look, with no recent measure (a
                // sudden flood, or slow routes): no new call until it is
                // short again; the limit is lifted then, and the next
                // episode starts from a measure (the sockets report all
                // along while there is traffic).
                (None, None) => 0.0,
            };
            let step = (rate * RAISE).max(MIN_RAISE);
            match &mut self.cap {
                Some(c) => c.rate = rate,
                None => {
                    self.cap = Some(Cap {
                        rate,
                        step,
                        tokens: 0.0,
                        at: now,
                    })
                }
            }
            self.last_cut = Some((now, standing));
            return Change::Cut(rate);
        }
        if standing >= target / 2 || queued {
            return Change::None;
        }
        let Some(cap) = &mut self.cap else {
            return Change::None;
        };
        if self
            .last_raise
            .is_some_and(|t| now.duration_since(t) < target)
        {
            return Change::None;
        }
        // Far above what is offered (taken or not: while the queue stood
        // past twice the target few were taken), or set with no measure:
        // the overload is over.
        if cap.rate == 0.0 || self.rates.is_none_or(|r| cap.rate >= 2.0 * r.offered) {
            return self.lift();
        }
        cap.rate = if standing.is_zero() {
            (cap.rate * GROW).max(cap.rate + cap.step)
        } else {
            cap.rate + cap.step
        };
        self.last_raise = Some(now);
        Change::Raised(cap.rate)
    }

    /// Whether a cut is due at `now` with the queue standing at `standing`.
    fn cut_due(&self, now: Instant, standing: Duration) -> bool {
        let Some((at, then)) = self.last_cut else {
            return true;
        };
        let lag = then.max(self.target);
        let since = now.duration_since(at);
        since >= lag && (standing >= then || since >= 3 * lag)
    }

    /// Updates the rate meter at the end of a window of at least an
    /// interval; the rates unless the last window was stale (no report
    /// for four intervals: no traffic to speak of).
    fn meter(&mut self, now: Instant, seen: Counts) -> Option<Rates> {
        let Some((t0, then)) = self.window else {
            self.window = Some((now, seen));
            return None;
        };
        let age = now.duration_since(t0);
        if age < self.target {
            return self.rates;
        }
        self.window = Some((now, seen));
        let secs = age.as_secs_f64();
        self.rates = (age <= 4 * self.target).then(|| Rates {
            taken: seen.taken.saturating_sub(then.taken) as f64 / secs,
            offered: seen.offered().saturating_sub(then.offered()) as f64 / secs,
        });
        self.rates
    }

    fn lift(&mut self) -> Change {
        self.far = false;
        self.last_cut = None;
        self.last_raise = None;
        match self.cap.take() {
            Some(_) => Change::Lifted,
            None => Change::None,
        }
    }

    /// Whether a new INVITE read at `now` is taken: always without a
    /// limit; never while the queue stands past twice the target; else if
    /// a whole call's credit has accumulated (at most a fifth of an
    /// interval's worth, so a pause in reading does not let a burst
    /// through).
    pub fn admit(&mut self, now: Instant) -> bool {
        let Some(c) = &mut self.cap else {
            return true;
        };
        if self.far {
            c.at = c.at.max(now);
            return false;
        }
        let dt = now.saturating_duration_since(c.at).as_secs_f64();
        c.at = c.at.max(now);
        let burst = (c.rate * self.target.as_secs_f64() / 5.0).max(1.0);
        c.tokens = (c.tokens + c.rate * dt).min(burst);
        if c.tokens >= 1.0 {
            c.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
