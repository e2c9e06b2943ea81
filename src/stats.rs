//! Statistics: named counters kept lock-free and sharded per worker, so the
//! hot path never bounces one cache line between cores. The management
//! interface reads them through [`each`].

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

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
    const fn new() -> Self {
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

    pub fn reset(&self) {
        for s in &self.slots {
            s.0.store(0, Ordering::Relaxed);
        }
    }
}

macro_rules! stat_group {
    ($(#[$m:meta])* $vis:vis struct $ty:ident : $group:literal { $($(#[$fm:meta])* $name:ident),* $(,)? }) => {
        $(#[$m])*
        $vis struct $ty { $($(#[$fm])* pub $name: Counter,)* }
        impl $ty {
            const fn new() -> Self { $ty { $($name: Counter::new(),)* } }
            /// Group name as the MI shows it (`core:rcv_requests`).
            pub const GROUP: &'static str = $group;
            /// Every counter of the group with its name.
            pub fn each(&self, mut f: impl FnMut(&'static str, &Counter)) {
                $(f(stringify!($name), &self.$name);)*
            }
        }
    };
}

stat_group! {
    /// The core's counters (OpenSIPS names).
    pub struct Core: "core" {
        /// Requests received and parsed.
        rcv_requests,
        /// Replies received and parsed.
        rcv_replies,
        /// Requests forwarded (stateless).
        fwd_requests,
        /// Replies forwarded.
        fwd_replies,
        /// Requests dropped by the script or for lack of a destination.
        drop_requests,
        /// Replies dropped (not for us, or by the script).
        drop_replies,
        /// Requests that failed processing (bad headers, script error).
        err_requests,
        /// Replies that failed processing.
        err_replies,
        /// Messages whose headers did not parse.
        bad_msg_hdr,
        /// Datagrams or stream frames over the size limit.
        oversize_msgs,
    }
}

stat_group! {
    /// Stateless reply counters (OpenSIPS sl module names).
    pub struct Sl: "sl" {
        sent_replies,
        sent_err_replies,
        r1xx_replies,
        r2xx_replies,
        r3xx_replies,
        r4xx_replies,
        r5xx_replies,
        r6xx_replies,
    }
}

stat_group! {
    /// Transaction counters (OpenSIPS tm module names).
    pub struct Tm: "tm" {
        /// Server transactions created (`UAS_transactions`).
        uas_transactions,
        /// Client transactions created (`UAC_transactions`).
        uac_transactions,
        r2xx_transactions,
        r3xx_transactions,
        r4xx_transactions,
        r5xx_transactions,
        r6xx_transactions,
    }
}

pub static CORE: Core = Core::new();
pub static SL: Sl = Sl::new();
pub static TM: Tm = Tm::new();

impl Tm {
    /// Counts a transaction's final reply by class.
    pub fn count_final(&self, code: u16) {
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

/// Public name of a counter: the sl class counters are `1xx_replies`… in
/// OpenSIPS, which is not a Rust identifier.
fn public_name(name: &'static str) -> &'static str {
    match name {
        "uas_transactions" => return "UAS_transactions",
        "uac_transactions" => return "UAC_transactions",
        _ => {}
    }
    name.strip_prefix('r')
        .filter(|n| n.as_bytes().first().is_some_and(u8::is_ascii_digit))
        .unwrap_or(name)
}

/// Visits every statistic as (group, name, value).
pub fn each(mut f: impl FnMut(&'static str, &'static str, u64)) {
    CORE.each(|n, c| f(Core::GROUP, public_name(n), c.get()));
    SL.each(|n, c| f(Sl::GROUP, public_name(n), c.get()));
    TM.each(|n, c| f(Tm::GROUP, public_name(n), c.get()));
}

/// One line with every non-zero statistic, for the shutdown log.
pub fn summary() -> String {
    let mut out = String::new();
    each(|g, n, v| {
        if v != 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("{g}:{n}={v}"));
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_over_shards() {
        let c = Counter::new();
        bind_thread(1);
        c.inc();
        bind_thread(2);
        c.add(2);
        assert_eq!(c.get(), 3);
        c.reset();
        assert_eq!(c.get(), 0);
    }

    #[test]
    fn sl_names_are_opensips_names() {
        let mut names = vec![];
        each(|g, n, _| names.push(format!("{g}:{n}")));
        assert!(names.contains(&"sl:1xx_replies".to_string()));
        assert!(names.contains(&"core:rcv_requests".to_string()));
        assert!(names.contains(&"sl:sent_replies".to_string()));
    }
}
