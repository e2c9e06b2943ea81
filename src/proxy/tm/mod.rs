//! Transaction-stateful proxying (OpenSIPS tm, RFC 3261 §16 and §17):
//! the transactions shared by every worker, their timers, relaying with
//! forking, response selection, failure routes and CANCEL.
//!
//! A transaction lives in [`Tm::server`] under its server key and is found
//! again by its branches' client keys in [`Tm::client`]. Each is an
//! `Arc<Mutex<Box<Txn>>>`; a worker holds the lock only while it updates state,
//! never while Lua runs. Timers fire on the timer thread and are handed to
//! a worker, so a reply or a timer may be handled by any worker.

pub mod cluster;
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

/// The hasher of the transaction tables: keyed at random per process like
/// std's SipHash (a peer chooses the branches, so the tables must resist
/// flooding), at a third of its cost per lookup (bench/RESULTS.md,
/// "Session 8").
pub type KeyHasher = ahash::RandomState;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
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
    pub server: DashMap<TxnKey, TxnRef, KeyHasher>,
    pub client: DashMap<TxnKey, (TxnRef, BranchRole), KeyHasher>,
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
            server: DashMap::with_hasher(KeyHasher::new()),
            client: DashMap::with_hasher(KeyHasher::new()),
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

/// Buckets of OpenSIPS's transaction hash table (h_table.h
/// `TM_TABLE_ENTRIES`): MI `t_hash` lists them and `t_reply` names a
/// transaction by `hash_index:label`. lunasip's table is not bucketed;
/// a transaction's bucket is its id (the label, `$T_id`) modulo this.
pub const TABLE_ENTRIES: usize = 1 << 16;

/// Transactions ever created per bucket (`t_hash`'s `Total`).
static TOTALS: [AtomicU32; TABLE_ENTRIES] = [const { AtomicU32::new(0) }; TABLE_ENTRIES];

/// The bucket of transaction `id`.
pub fn hash_index(id: u64) -> usize {
    (id as usize) & (TABLE_ENTRIES - 1)
}

/// Counts a new transaction in its bucket.
pub fn count_created(id: u64) {
    TOTALS[hash_index(id)].fetch_add(1, Ordering::Relaxed);
}

impl Tm {
    /// Every transaction alive, server ones then local ones, each once.
    /// The tables are copied out first: a transaction's lock is never
    /// awaited while a table shard is held (`forget` takes them the other
    /// way round).
    fn snapshot(&self) -> Vec<TxnRef> {
        let mut all: Vec<TxnRef> = self.server.iter().map(|e| e.value().clone()).collect();
        all.extend(self.client.iter().map(|e| e.value().0.clone()));
        let mut seen = std::collections::HashSet::new();
        all.retain(|t| seen.insert(Arc::as_ptr(t) as usize));
        all
    }

    /// Per bucket: transactions alive now (server ones and local ones)
    /// and ever created, as MI `t_hash` reports them.
    pub fn buckets(&self) -> Vec<(u32, u32)> {
        let mut cur = vec![0u32; TABLE_ENTRIES];
        for t in self.snapshot() {
            let t = lock(&t);
            if self.server.contains_key(&t.key) || t.local.is_some() {
                cur[hash_index(t.id)] += 1;
            }
        }
        cur.into_iter()
            .zip(TOTALS.iter())
            .map(|(c, t)| (c, t.load(Ordering::Relaxed)))
            .collect()
    }

    /// The server transaction `label` in bucket `hash` (OpenSIPS
    /// t_lookup.c `t_lookup_ident`).
    pub fn find_ident(&self, hash: usize, label: u64) -> Option<TxnRef> {
        if hash_index(label) != hash {
            return None;
        }
        let all: Vec<TxnRef> = self.server.iter().map(|e| e.value().clone()).collect();
        all.into_iter().find(|t| lock(t).id == label)
    }

    /// The pending local INVITE transaction (one `t_uac_dlg` sent) with
    /// this Call-ID and CSeq number (OpenSIPS `t_lookup_callid`).
    pub fn find_local(&self, callid: &str, cseq: u32) -> Option<TxnRef> {
        self.snapshot().into_iter().find(|t| {
            let t = lock(t);
            let m = &t.request;
            t.local.is_some()
                && m.method_kind() == crate::sip::Method::Invite
                && m.call_id() == Some(callid)
                && m.cseq().is_some_and(|c| c.num == cseq)
        })
    }
}

impl std::fmt::Debug for Tm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tm")
            .field("in_use", &self.server.len())
            .finish()
    }
}
