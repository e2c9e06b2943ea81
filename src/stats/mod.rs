//! Statistics: named counters kept lock-free and sharded per worker, so the
//! hot path never bounces one cache line between cores. Each module
//! declares its statistics once ([`StatDecl`] in `Module::stats`, group =
//! module name); with the core's groups they are the built-in statistics.
//! Statistics added at run time (the script's own, `sip.update_stat`) are
//! in [`registry`]. The MI, `/metrics` and docs/statistics.md read them all
//! through [`each_stat`], under OpenSIPS names (`group:name`).
//!
//! Here: the sharded [`Counter`] and the core's, sl's and tm's counter
//! groups. `decl.rs` declares statistics (kinds, the core's and memory's
//! lists), `read.rs` lists, reads and resets them all.

mod decl;
mod read;
mod registry;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

pub use decl::{StatDecl, StatGroup, StatKind, StatValue, CORE_STATS, MEMORY_STATS};
pub use read::{
    declared, each, each_stat, get, groups, register_module_groups, reset, reset_all,
    statistics_markdown, summary, Stat,
};
pub use registry::{
    register_counter, register_gauge, split_name, update, Registered, DYNAMIC_GROUP, MAX_REGISTERED,
};

/// Shards per counter; workers beyond this share shards (still correct).
const SHARDS: usize = 8;

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Binds the calling thread to a shard (a worker calls this once at start).
pub fn bind_thread(worker: usize) {
    SHARD.with(|s| s.set(worker % SHARDS));
}

#[repr(align(64))]
#[derive(Default)]
struct Slot(AtomicU64);

/// A monotonically increasing counter.
pub struct Counter {
    slots: [Slot; SHARDS],
}

impl Counter {
    pub const fn new() -> Self {
        Counter {
            slots: [const { Slot(AtomicU64::new(0)) }; SHARDS],
        }
    }

    /// Adds one; relaxed, per-thread shard.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        let i = SHARD.with(|s| s.get());
        self.slots[i].0.fetch_add(n, Ordering::Relaxed);
    }

    /// Sum over the shards.
    pub fn get(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// Takes `n` away (for gauges kept in a counter: the shards wrap, the
    /// sum is right as long as the total never goes below zero).
    #[inline]
    pub fn sub(&self, n: u64) {
        let i = SHARD.with(|s| s.get());
        self.slots[i].0.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for s in &self.slots {
            s.0.store(0, Ordering::Relaxed);
        }
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

/// A struct of [`Counter`]s for the hot path (`TM.uas_transactions.inc()`);
/// its statistics are declared with [`StatDecl`]s that point at the fields.
macro_rules! stat_group {
    ($(#[$m:meta])* $vis:vis struct $ty:ident : $group:literal { $($(#[$fm:meta])* $name:ident),* $(,)? }) => {
        $(#[$m])*
        $vis struct $ty { $($(#[$fm])* pub $name: $crate::stats::Counter,)* }
        impl $ty {
            pub const fn new() -> Self { $ty { $($name: $crate::stats::Counter::new(),)* } }
            /// Group name as the MI shows it (`core:rcv_requests`).
            pub const GROUP: &'static str = $group;
            /// Every counter of the group with its field name.
            pub fn each<'s>(&'s self, mut f: impl FnMut(&'static str, &'s $crate::stats::Counter)) {
                $(f(stringify!($name), &self.$name);)*
            }
        }
        impl Default for $ty {
            fn default() -> Self { $ty::new() }
        }
    };
}
pub(crate) use stat_group;

stat_group! {
    /// The core's counters (OpenSIPS names), declared in [`CORE_STATS`].
    pub struct Core: "core" {
        rcv_requests,
        rcv_replies,
        fwd_requests,
        fwd_replies,
        drop_requests,
        drop_replies,
        err_requests,
        err_replies,
        /// OpenSIPS's `bad_URIs_rcvd` (the MI name comes from the StatDecl).
        bad_uris_rcvd,
        bad_msg_hdr,
        oversize_msgs,
        dropped_msgs,
        bad_tcp_conns,
        suspended_routes,
        suspend_overflows,
        resume_timeouts,
        slow_messages,
        shed_requests,
        overload_admitted_rate,
        overload_episodes,
        udp_packed,
        udp_spreads,
    }
}

stat_group! {
    /// Stateless reply counters (OpenSIPS sl module names), declared by
    /// `modules::sl`.
    pub struct Sl: "sl" {
        sent_replies,
        sent_err_replies,
        r1xx_replies,
        r2xx_replies,
        r3xx_replies,
        r4xx_replies,
        r5xx_replies,
        r6xx_replies,
        received_acks,
    }
}

stat_group! {
    /// Transaction counters (OpenSIPS tm module names), declared by
    /// `modules::tm`. `inuse_transactions` is a gauge: `inc` when a
    /// transaction is created, `sub(1)` when it is freed.
    pub struct Tm: "tm" {
        uas_transactions,
        uac_transactions,
        r2xx_transactions,
        r3xx_transactions,
        r4xx_transactions,
        r5xx_transactions,
        r6xx_transactions,
        inuse_transactions,
        cluster_reply_sent,
        cluster_request_sent,
        cluster_cancel_sent,
        cluster_reply_recv,
        cluster_request_recv,
        cluster_cancel_recv,
    }
}

pub static CORE: Core = Core::new();
pub static SL: Sl = Sl::new();
pub static TM: Tm = Tm::new();

impl Tm {
    /// Counts a transaction completed with final reply `code`.
    pub fn completed(&self, code: u16) {
        match code / 100 {
            2 => self.r2xx_transactions.inc(),
            3 => self.r3xx_transactions.inc(),
            4 => self.r4xx_transactions.inc(),
            5 => self.r5xx_transactions.inc(),
            6 => self.r6xx_transactions.inc(),
            _ => {}
        }
    }
}

impl Sl {
    /// Counts one locally generated reply by class.
    pub fn count(&self, code: u16) {
        self.sent_replies.inc();
        if code >= 300 {
            self.sent_err_replies.inc();
        }
        match code / 100 {
            1 => self.r1xx_replies.inc(),
            2 => self.r2xx_replies.inc(),
            3 => self.r3xx_replies.inc(),
            4 => self.r4xx_replies.inc(),
            5 => self.r5xx_replies.inc(),
            _ => self.r6xx_replies.inc(),
        }
    }
}
