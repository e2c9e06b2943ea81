//! The timer thread of the transaction layer: one heap of deadlines shared
//! by every worker. When a deadline passes, the event goes to a worker
//! (chosen by transaction id), which does the work with its own sockets
//! and Lua state; the thread itself only keeps time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::txn::Txn;
use crate::transaction::Timer;

/// A timer that fired, addressed to one transaction (and branch).
#[derive(Debug, Clone)]
pub struct TimerEvent {
    pub txn: Weak<Mutex<Box<Txn>>>,
    pub txn_id: u64,
    /// None: the server transaction; Some(i): branch i's client transaction.
    pub branch: Option<usize>,
    pub timer: Timer,
    /// Generation when armed: a re-armed or stopped timer has moved on.
    pub gen: u64,
}

struct Entry {
    at: Instant,
    seq: u64,
    ev: TimerEvent,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Default)]
struct Inner {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    stopped: bool,
}

/// Deadlines of every transaction timer.
#[derive(Default)]
pub struct Wheel {
    inner: Mutex<Inner>,
    cv: Condvar,
}

impl Wheel {
    /// Arms `ev` to fire after `after`.
    pub fn schedule(&self, after: Duration, ev: TimerEvent) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.seq += 1;
        let seq = g.seq;
        let at = Instant::now() + after;
        let earliest = g.heap.peek().is_none_or(|Reverse(e)| at < e.at);
        g.heap.push(Reverse(Entry { at, seq, ev }));
        drop(g);
        if earliest {
            self.cv.notify_one();
        }
    }

    /// How many timers are armed (for tests and statistics).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.heap.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stop(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.stopped = true;
        }
        self.cv.notify_all();
    }

    /// Drops the deadlines of transactions that no longer exist. A timer
    /// stopped or re-armed stays in the heap until its deadline (fr_inv can
    /// be minutes away); without this sweep, finished calls would pile up
    /// there at the call rate.
    fn sweep(inner: &mut Inner) {
        inner.heap.retain(|Reverse(e)| e.ev.txn.strong_count() > 0);
    }

    /// Runs until [`Wheel::stop`], handing each due event to `fire`.
    pub fn run(&self, fire: impl Fn(TimerEvent)) {
        const SWEEP_EVERY: Duration = Duration::from_secs(1);
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut swept = Instant::now();
        loop {
            if g.stopped {
                return;
            }
            let now = Instant::now();
            if now.duration_since(swept) >= SWEEP_EVERY {
                Self::sweep(&mut g);
                swept = now;
            }
            match g.heap.peek() {
                Some(Reverse(e)) if e.at <= now => {
                    if let Some(Reverse(e)) = g.heap.pop() {
                        drop(g);
                        fire(e.ev);
                        g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                    }
                }
                Some(Reverse(e)) => {
                    let wait = (e.at - now).min(SWEEP_EVERY);
                    g = self
                        .cv
                        .wait_timeout(g, wait)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                None => {
                    g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fires_in_deadline_order() {
        let w = Arc::new(Wheel::default());
        let ev = |gen| TimerEvent {
            txn: Weak::new(),
            txn_id: 1,
            branch: None,
            timer: Timer::J,
            gen,
        };
        w.schedule(Duration::from_millis(60), ev(2));
        w.schedule(Duration::from_millis(20), ev(1));
        let (tx, rx) = std::sync::mpsc::channel();
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.run(move |e| tx.send(e.gen).unwrap()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap(), 1);
        assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap(), 2);
        w.stop();
        t.join().unwrap();
    }

    #[test]
    fn deadlines_of_ended_transactions_are_swept() {
        let w = Wheel::default();
        // A transaction that ended: only a Weak is left in the heap.
        let ended = {
            let a: Arc<Mutex<Box<Txn>>> = Arc::new(Mutex::new(Box::new(test_txn())));
            Arc::downgrade(&a)
        };
        let alive: Arc<Mutex<Box<Txn>>> = Arc::new(Mutex::new(Box::new(test_txn())));
        for (txn, gen) in [(ended, 1), (Arc::downgrade(&alive), 2)] {
            w.schedule(
                Duration::from_secs(120),
                TimerEvent {
                    txn,
                    txn_id: gen,
                    branch: None,
                    timer: Timer::C,
                    gen,
                },
            );
        }
        assert_eq!(w.len(), 2);
        Wheel::sweep(&mut w.inner.lock().unwrap());
        assert_eq!(w.len(), 1, "the ended transaction's deadline is gone");
    }

    fn test_txn() -> Txn {
        crate::proxy::tm::txn::tests::sample()
    }
}
