//! Transaction-stateful proxying (OpenSIPS tm, RFC 3261 §16 and §17):
//! the transactions shared by every worker, their timers, relaying with
//! forking, response selection, failure routes and CANCEL.
//!
//! A transaction lives in [`Tm::server`] under its server key and is found
//! again by its branches' client keys in [`Tm::client`]. Each is an
//! `Arc<Mutex<Box<Txn>>>`; a worker holds the lock only while it updates state,
//! never while Lua runs. Timers fire on the timer thread and are handed to
//! a worker, so a reply or a timer may be handled by any worker.

pub mod hooks;
mod hop;
pub mod locate;
pub mod relay;
pub mod response;
pub mod txn;
pub mod uac;
mod uas;
pub mod wheel;

use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::transaction::{Timer, Timers, TxnKey};
pub use txn::Txn;
use wheel::{TimerEvent, Wheel};

/// A transaction as the tables hold it. The state is boxed so that what a
/// pending timer's `Weak` keeps allocated after the transaction ended is a
/// few words, not the whole transaction (timers are not removed from the
/// heap when stopped; they lapse at their deadline).
pub type TxnRef = Arc<Mutex<Box<Txn>>>;

/// Locks a transaction; a poisoned lock (a panic elsewhere) still yields the data.
pub fn lock(t: &TxnRef) -> std::sync::MutexGuard<'_, Box<Txn>> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which client transaction of a transaction a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchRole {
    /// The branch's request (INVITE, BYE, …).
    Request(usize),
    /// The CANCEL we sent on that branch: its 200 is absorbed.
    Cancel(usize),
}

/// Every transaction in flight, shared by all workers.
pub struct Tm {
    pub server: DashMap<TxnKey, TxnRef>,
    pub client: DashMap<TxnKey, (TxnRef, BranchRole)>,
    pub wheel: Arc<Wheel>,
    pub timers: Timers,
    next_id: AtomicU64,
    /// Per-process salt in branch ids, so a restarted proxy never reuses one.
    salt: u32,
    workers: OnceLock<Vec<tokio::sync::mpsc::UnboundedSender<TimerEvent>>>,
    /// Subscribers to transaction events (set once, before traffic).
    observers: OnceLock<Vec<Arc<dyn hooks::Observer>>>,
}

impl Tm {
    pub fn new(timers: Timers) -> Tm {
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
        Tm {
            server: DashMap::new(),
            client: DashMap::new(),
            wheel: Arc::new(Wheel::default()),
            timers,
            next_id: AtomicU64::new(1),
            salt: salt ^ std::process::id(),
            workers: OnceLock::new(),
            observers: OnceLock::new(),
        }
    }

    /// Subscribes `obs` to every transaction's events; once, before
    /// traffic (false when already set).
    pub fn set_observers(&self, obs: Vec<Arc<dyn hooks::Observer>>) -> bool {
        self.observers.set(obs).is_ok()
    }

    /// Tells every subscriber (nothing to do when there is none).
    #[inline]
    pub fn notify(&self, f: impl Fn(&dyn hooks::Observer)) {
        if let Some(obs) = self.observers.get() {
            for o in obs {
                f(o.as_ref());
            }
        }
    }

    /// The subscribers, for a hook that changes what it is given.
    pub fn observers(&self) -> &[Arc<dyn hooks::Observer>] {
        self.observers.get().map_or(&[], Vec::as_slice)
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Our Via branch for branch `idx` of transaction `id`; ends with the
    /// loop hash like the stateless branch, so loop detection sees it.
    pub fn branch_id(&self, id: u64, idx: usize, loop_hash: u32) -> String {
        format!("z9hG4bK{:08x}{id:x}x{idx}.{loop_hash:08x}", self.salt)
    }

    /// Where fired timers go: one queue per worker.
    pub fn set_workers(&self, queues: Vec<tokio::sync::mpsc::UnboundedSender<TimerEvent>>) {
        let _ = self.workers.set(queues);
    }

    /// Hands a fired timer to the worker that owns its transaction id.
    /// A deadline that lapsed (the transaction ended, or the timer was
    /// stopped or re-armed since) is dropped here: most deadlines are of
    /// that kind (a retransmission timer stopped by the 1xx, fr by the
    /// final), and waking a worker for each costs more than this check.
    pub fn dispatch(&self, ev: TimerEvent) {
        {
            let Some(txn) = ev.txn.upgrade() else { return };
            let t = lock(&txn);
            let current = match ev.branch {
                None => t.server_gens.current(ev.timer),
                Some(i) => t.branches.get(i).map_or(0, |b| b.gens.current(ev.timer)),
            };
            if current != ev.gen {
                return;
            }
        }
        if let Some(qs) = self.workers.get().filter(|q| !q.is_empty()) {
            let _ = qs[(ev.txn_id % qs.len() as u64) as usize].send(ev);
        }
    }

    /// Arms a timer of the server transaction (`branch` None) or a branch.
    pub fn arm(
        &self,
        txn: &TxnRef,
        t: &mut Txn,
        branch: Option<usize>,
        timer: Timer,
        after: Duration,
    ) {
        let gen = match branch {
            None => t.server_gens.arm(timer),
            Some(i) => match t.branches.get_mut(i) {
                Some(b) => b.gens.arm(timer),
                None => return,
            },
        };
        self.wheel.schedule(
            after,
            TimerEvent {
                txn: Arc::downgrade(txn),
                txn_id: t.id,
                branch,
                timer,
                gen,
            },
        );
    }

    /// Drops a finished transaction from both tables.
    pub fn forget(&self, t: &Txn) {
        if self.server.remove(&t.key).is_some() {
            crate::stats::TM.inuse_transactions.sub(1);
        }
        for b in &t.branches {
            self.client.remove(&crate::transaction::key::our_client_key(
                &b.branch_id,
                b.method(),
            ));
            self.client.remove(&crate::transaction::key::our_client_key(
                &b.branch_id,
                "CANCEL",
            ));
        }
    }

    /// Transactions in the table (MI `inuse_transactions`, tests).
    pub fn in_use(&self) -> usize {
        self.server.len()
    }
}

impl std::fmt::Debug for Tm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tm")
            .field("in_use", &self.server.len())
            .finish()
    }
}
