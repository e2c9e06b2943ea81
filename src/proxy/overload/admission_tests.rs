//! Unit tests of the admission controller: time is injected, nothing
//! sleeps.

use super::*;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

const MS: Duration = Duration::from_millis(1);
const TARGET: Duration = Duration::from_millis(100);

/// `taken` new INVITEs so far, none refused.
fn n(taken: u64) -> Counts {
    Counts { taken, refused: 0 }
}

/// `c` is a raise to `rate`, within rounding.
fn raised_to(c: Change, rate: f64) -> bool {
    matches!(c, Change::Raised(r) if (r - rate).abs() < 1e-6)
}

/// A process behind from t0 + 100 ms, having taken 300 calls/s until
/// then: the first report opens the meter, the second cuts.
fn behind_at_300() -> (Admission, Instant) {
    let t0 = Instant::now();
    let mut a = Admission::default();
    assert_eq!(a.report(t0, 60 * MS, TARGET, n(0), false), Change::None);
    let c = a.report(t0 + 100 * MS, 150 * MS, TARGET, n(30), true);
    assert_eq!(c, Change::Cut(300.0 * CUT));
    (a, t0 + 100 * MS)
}

#[test]
fn no_limit_until_the_queue_stands_above_the_target() {
    let t0 = Instant::now();
    let mut a = Admission::default();
    for i in 0..50u32 {
        let now = t0 + i * 100 * MS;
        let c = a.report(now, 99 * MS, TARGET, n(10 * u64::from(i)), false);
        assert_eq!(c, Change::None);
        assert!(a.admit(now));
    }
    assert_eq!(a.rate(), None);
}

#[test]
fn the_first_cut_starts_from_the_rate_taken_lately() {
    let (a, _) = behind_at_300();
    assert_eq!(a.rate(), Some(300.0 * CUT));
    // Behind at the very first report: no measure yet, so no new call
    // until the queue is short again (then the limit is lifted).
    let t0 = Instant::now();
    let mut b = Admission::default();
    assert_eq!(b.report(t0, 150 * MS, TARGET, n(0), true), Change::Cut(0.0));
    assert!(!(1..=100u32).any(|i| b.admit(t0 + i * MS)));
    let c = b.report(t0 + 150 * MS, 170 * MS, TARGET, n(0), true);
    assert_eq!(c, Change::Cut(0.0));
    let c = b.report(t0 + 300 * MS, Duration::ZERO, TARGET, n(0), false);
    assert_eq!(c, Change::Lifted);
}

#[test]
fn admission_follows_the_rate_deterministically() {
    let run = || {
        let (mut a, t) = behind_at_300();
        // 1,000 INVITEs/s offered for a second, one per ms: 270 taken,
        // evenly spread.
        (1..=1000u32)
            .map(|i| a.admit(t + i * MS))
            .collect::<Vec<bool>>()
    };
    let taken = run();
    let n = taken.iter().filter(|&&x| x).count();
    assert!((269..=270).contains(&n), "{n}");
    assert!(!taken[..3].iter().any(|&x| x), "no credit at the start");
    for tenth in taken.chunks(100) {
        let k = tenth.iter().filter(|&&x| x).count();
        assert!((26..=28).contains(&k), "{k} in 100 ms");
    }
    assert_eq!(taken, run(), "the same times give the same answers");
}

#[test]
fn a_pause_does_not_bank_a_burst() {
    let (mut a, t) = behind_at_300();
    let later = t + Duration::from_secs(5);
    // 270/s × 100 ms ÷ 5 = 5.4 calls of credit at most.
    let burst = (0..20).filter(|_| a.admit(later)).count();
    assert_eq!(burst, 5);
}

#[test]
fn cuts_wait_for_the_last_one_to_show() {
    let (mut a, t) = behind_at_300();
    let r = 300.0 * CUT;
    // 150 ms standing at the cut: the next one no sooner than 150 ms.
    assert_eq!(
        a.report(t + 100 * MS, 190 * MS, TARGET, n(57), true),
        Change::None
    );
    // Still rising after the lag: cut again.
    let c = a.report(t + 150 * MS, 190 * MS, TARGET, n(70), true);
    assert_eq!(c, Change::Cut(r * CUT));
    // Falling after the lag (190 ms): held while it drains ...
    assert_eq!(
        a.report(t + 400 * MS, 180 * MS, TARGET, n(140), true),
        Change::None
    );
    assert_eq!(
        a.report(t + 600 * MS, 150 * MS, TARGET, n(200), true),
        Change::None
    );
    // ... unless it stands above the target for three lags.
    let c = a.report(t + 720 * MS, 150 * MS, TARGET, n(230), true);
    assert_eq!(c, Change::Cut(r * CUT * CUT));
}

#[test]
fn a_queue_past_twice_the_target_takes_no_call() {
    let (mut a, t) = behind_at_300();
    assert!((1..=20u32).any(|i| a.admit(t + i * MS)));
    assert_eq!(
        a.report(t + 50 * MS, 210 * MS, TARGET, n(40), true),
        Change::None
    );
    assert!(!(21..=500u32).any(|i| a.admit(t + i * MS)));
    // Back under twice the target: the credit accrues again (no banked
    // burst from the refused time).
    a.report(t + 500 * MS, 180 * MS, TARGET, n(40), true);
    let back: Vec<bool> = (501..=520u32).map(|i| a.admit(t + i * MS)).collect();
    assert!(!back[0] && back.iter().any(|&x| x), "{back:?}");
}

#[test]
fn a_short_queue_raises_by_steps_and_the_middle_holds() {
    let (mut a, t) = behind_at_300();
    let r = 300.0 * CUT;
    let step = r * RAISE;
    // Between half the target and the target: held.
    assert_eq!(
        a.report(t + 100 * MS, 70 * MS, TARGET, n(57), false),
        Change::None
    );
    // Short, but a socket is still behind: held.
    assert_eq!(
        a.report(t + 200 * MS, 10 * MS, TARGET, n(84), true),
        Change::None
    );
    let c = a.report(t + 300 * MS, 10 * MS, TARGET, n(111), false);
    assert!(raised_to(c, r + step), "{c:?}");
    // At most one raise per interval (two sockets report).
    assert_eq!(
        a.report(t + 350 * MS, 5 * MS, TARGET, n(125), false),
        Change::None
    );
    let c = a.report(t + 400 * MS, 5 * MS, TARGET, n(138), false);
    assert!(raised_to(c, r + 2.0 * step), "{c:?}");
    // Behind again: cut from where it stands.
    let c = a.report(t + 500 * MS, 120 * MS, TARGET, n(166), true);
    let Change::Cut(cut) = c else { panic!("{c:?}") };
    assert!((cut - (r + 2.0 * step) * CUT).abs() < 1e-6, "{cut}");
}

#[test]
fn an_empty_socket_grows_a_deep_limit_fast() {
    let (mut a, t) = behind_at_300();
    // Cut deep (a stall of the machine): 270 → about 30/s.
    let mut at = t;
    for _ in 0..21 {
        at += 200 * MS;
        a.report(at, 200 * MS, TARGET, n(30), true);
    }
    let deep = a.rate().unwrap_or_default();
    assert!(deep < 40.0, "{deep}");
    // The stall is over: 1,000/s offered, the socket runs empty between
    // them; refused ones count as offered.
    let mut seen = n(30);
    let mut intervals = 0;
    while a.rate().is_some_and(|r| r < 900.0) && intervals < 50 {
        at += 100 * MS;
        let r = a.rate().unwrap_or_default();
        seen.taken += (r / 10.0) as u64;
        seen.refused += 100 - (r / 10.0).min(100.0) as u64;
        a.report(at, Duration::ZERO, TARGET, seen, false);
        intervals += 1;
    }
    // ×1.5 per interval: 30 → 900 in nine, where +5.4/s steps would
    // take 160.
    assert!(intervals <= 10, "{intervals} intervals, at {:?}", a.rate());
}

#[test]
fn a_drop_in_load_lifts_the_limit() {
    let (mut a, t) = behind_at_300();
    // 100 calls/s offered, all taken, the queue short: lifted at the
    // first raise due.
    let c = a.report(t + 200 * MS, Duration::ZERO, TARGET, n(50), false);
    assert_eq!(c, Change::Lifted);
    assert_eq!(a.rate(), None);
    assert!((0..100).all(|_| a.admit(t + 300 * MS)));
}

#[test]
fn a_limit_stays_while_far_more_is_offered_than_taken() {
    let (mut a, t) = behind_at_300();
    // Past twice the target for a while: nothing taken, 1,000/s refused.
    a.report(t + 100 * MS, 250 * MS, TARGET, n(30), true);
    let seen = Counts {
        taken: 30,
        refused: 200,
    };
    let c = a.report(t + 300 * MS, 10 * MS, TARGET, seen, false);
    assert!(raised_to(c, 300.0 * CUT * (1.0 + RAISE)), "{c:?}");
}

#[test]
fn a_zero_target_lifts_the_limit() {
    let (mut a, t) = behind_at_300();
    let c = a.report(t + 10 * MS, 500 * MS, Duration::ZERO, n(31), true);
    assert_eq!(c, Change::Lifted);
    assert!(a.admit(t + 11 * MS));
}

/// A message of the simulated proxy's queue.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Msg {
    Invite,
    Ringing,
    Ok,
    Ack,
    Bye,
    ByeOk,
    AckOf503,
}

/// CPU per message in µs: a call taken costs 1 ms in all, a call
/// refused 0.2 ms (its INVITE read and answered, its ACK filtered).
fn cost(m: Msg, taken: bool) -> u64 {
    match m {
        Msg::Invite if taken => 160,
        Msg::Invite => 150,
        Msg::Ringing | Msg::Ok => 170,
        Msg::Ack | Msg::ByeOk => 160,
        Msg::Bye => 180,
        Msg::AckOf503 => 50,
    }
}

struct Outcome {
    /// Calls completed per second during the overload.
    goodput: f64,
    /// Calls completed per second in the 5 s after it.
    after: f64,
    max_wait: Duration,
}

/// A proxy that finishes 1,000 calls/s, one FIFO socket queue, the
/// callers and callees answering 0.5 ms after each message leaves;
/// `offered` new INVITEs per second for 30 s, then 500/s for 5 s. The
/// socket reports its standing delay each interval and is behind as the
/// gauge says (every read for an interval waited past the target).
fn simulate(offered: u64) -> Outcome {
    let t0 = Instant::now();
    let at = |us: u64| t0 + Duration::from_micros(us);
    let phase = 30_000_000u64;
    let end = phase + 5_000_000;
    let mut future: BinaryHeap<Reverse<(u64, Msg)>> = BinaryHeap::new();
    let (mut t, mut i) = (0u64, 0u64);
    while t < end {
        future.push(Reverse((t, Msg::Invite)));
        i += 1;
        t = if t < phase {
            i * 1_000_000 / offered
        } else {
            phase + (i - offered * 30) * 2_000
        };
    }
    let mut a = Admission::default();
    let mut queue: VecDeque<(u64, Msg)> = VecDeque::new();
    let (mut now, mut max_wait) = (0u64, 0u64);
    let mut seen = Counts::default();
    let mut window: Option<(u64, u64)> = None;
    let (mut above_since, mut behind) = (None::<u64>, false);
    let (mut done, mut done_after) = (0u64, 0u64);
    let target = TARGET.as_micros() as u64;
    while now < end {
        while future.peek().is_some_and(|Reverse((t, _))| *t <= now) {
            if let Some(Reverse(m)) = future.pop() {
                queue.push_back(m);
            }
        }
        let Some((arrived, m)) = queue.pop_front() else {
            // Ran empty: no queue at all.
            window = Some((window.map_or(now, |w| w.0), 0));
            above_since = None;
            behind = false;
            now = future.peek().map_or(end, |Reverse((t, _))| *t);
            continue;
        };
        let wait = now - arrived;
        max_wait = max_wait.max(wait);
        match window {
            None => window = Some((now, wait)),
            Some((start, min)) if now - start >= target => {
                window = None;
                let standing = Duration::from_micros(min.min(wait));
                a.report(at(now), standing, TARGET, seen, behind);
            }
            Some((start, min)) => window = Some((start, min.min(wait))),
        }
        if wait > target {
            let since = *above_since.get_or_insert(now);
            behind |= now - since >= target;
        } else {
            above_since = None;
            behind &= wait >= target / 2;
        }
        let took = m == Msg::Invite && a.admit(at(now));
        let c = cost(m, took);
        let out = now + c + 500;
        match m {
            Msg::Invite if took => {
                seen.taken += 1;
                future.push(Reverse((out, Msg::Ringing)));
                future.push(Reverse((out + 100, Msg::Ok)));
            }
            Msg::Invite => {
                seen.refused += 1;
                future.push(Reverse((out, Msg::AckOf503)));
            }
            Msg::Ok => {
                future.push(Reverse((out, Msg::Ack)));
                future.push(Reverse((out + 100, Msg::Bye)));
            }
            Msg::Bye => future.push(Reverse((out, Msg::ByeOk))),
            Msg::ByeOk if now < phase => done += 1,
            Msg::ByeOk if now >= phase + 1_000_000 => done_after += 1,
            _ => {}
        }
        now += c;
    }
    Outcome {
        goodput: done as f64 / 30.0,
        after: done_after as f64 / 4.0,
        max_wait: Duration::from_micros(max_wait),
    }
}

#[test]
fn settles_at_capacity_in_a_simulated_proxy() {
    for offered in [1_100, 1_500, 2_000] {
        let o = simulate(offered);
        // What the proxy can finish while refusing the rest at 0.2 ms
        // each: x + 0.2 (offered - x) = 1000.
        let best = (1000.0 - 0.2 * offered as f64) / 0.8;
        assert!(
            o.goodput >= 0.95 * best,
            "{offered}/s offered: {:.0}/s of {best:.0}",
            o.goodput
        );
        assert!(o.max_wait < 4 * TARGET, "{offered}/s: {:?}", o.max_wait);
        assert!(
            o.after >= 499.0,
            "{offered}/s, then 500/s: {:.0}/s",
            o.after
        );
    }
}
