//! Statistics: named counters kept lock-free and sharded per worker, so the
//! hot path never bounces one cache line between cores. Each module
//! declares its statistics once ([`StatDecl`] in `Module::stats`, group =
//! module name); with the core's groups they are the built-in statistics.
//! Statistics added at run time (the script's own, `sip.update_stat`) are
//! in [`registry`]. The MI, `/metrics` and docs/statistics.md read them all
//! through [`each_stat`], under OpenSIPS names (`group:name`).

mod registry;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// How a statistic behaves, as `list_statistics` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// Only goes up (until reset): OpenSIPS "incremental".
    Counter,
    /// Goes up and down, or is computed on read: OpenSIPS "non-incremental".
    Gauge,
}

impl StatKind {
    /// The word OpenSIPS's `list_statistics` prints.
    pub fn opensips_name(self) -> &'static str {
        match self {
            StatKind::Counter => "incremental",
            StatKind::Gauge => "non-incremental",
        }
    }
}

/// Where a declared statistic's value is.
#[derive(Clone, Copy)]
pub enum StatValue {
    /// A counter that only goes up (resettable).
    Counter(&'static Counter),
    /// A counter that goes up and down (not resettable).
    Gauge(&'static Counter),
    /// Computed on every read (table sizes, memory; not resettable).
    Computed(fn() -> u64),
}

/// One statistic, declared once: its public name within its group, what
/// it counts (docs/statistics.md) and where its value is.
#[derive(Clone, Copy)]
pub struct StatDecl {
    pub name: &'static str,
    pub doc: &'static str,
    pub value: StatValue,
}

impl StatDecl {
    pub const fn counter(name: &'static str, c: &'static Counter, doc: &'static str) -> Self {
        StatDecl {
            name,
            doc,
            value: StatValue::Counter(c),
        }
    }

    pub const fn gauge(name: &'static str, c: &'static Counter, doc: &'static str) -> Self {
        StatDecl {
            name,
            doc,
            value: StatValue::Gauge(c),
        }
    }

    pub const fn computed(name: &'static str, f: fn() -> u64, doc: &'static str) -> Self {
        StatDecl {
            name,
            doc,
            value: StatValue::Computed(f),
        }
    }

    pub fn kind(&self) -> StatKind {
        match self.value {
            StatValue::Counter(_) => StatKind::Counter,
            _ => StatKind::Gauge,
        }
    }

    pub fn get(&self) -> u64 {
        match self.value {
            StatValue::Counter(c) | StatValue::Gauge(c) => c.get(),
            StatValue::Computed(f) => f(),
        }
    }

    /// Zeroes a counter; false for gauges and computed values.
    fn reset(&self) -> bool {
        match self.value {
            StatValue::Counter(c) => {
                c.reset();
                true
            }
            _ => false,
        }
    }
}

/// A group of declared statistics: the core's, or a module's (named
/// after the module, as in OpenSIPS).
#[derive(Clone, Copy)]
pub struct StatGroup {
    pub name: &'static str,
    pub stats: &'static [StatDecl],
}

/// The core's counters.
pub static CORE_STATS: &[StatDecl] = &[
    StatDecl::counter(
        "rcv_requests",
        &CORE.rcv_requests,
        "Requests received and parsed.",
    ),
    StatDecl::counter(
        "rcv_replies",
        &CORE.rcv_replies,
        "Replies received and parsed.",
    ),
    StatDecl::counter(
        "fwd_requests",
        &CORE.fwd_requests,
        "Requests forwarded (stateless).",
    ),
    StatDecl::counter("fwd_replies", &CORE.fwd_replies, "Replies forwarded."),
    StatDecl::counter(
        "drop_requests",
        &CORE.drop_requests,
        "Requests dropped by the script or for lack of a destination.",
    ),
    StatDecl::counter(
        "drop_replies",
        &CORE.drop_replies,
        "Replies dropped (not for us, or by the script).",
    ),
    StatDecl::counter(
        "err_requests",
        &CORE.err_requests,
        "Requests that failed processing (bad headers, script error).",
    ),
    StatDecl::counter(
        "err_replies",
        &CORE.err_replies,
        "Replies that failed processing.",
    ),
    StatDecl::counter(
        "bad_URIs_rcvd",
        &CORE.bad_uris_rcvd,
        "Requests whose Request-URI did not parse (OpenSIPS counts each failed URI parse).",
    ),
    StatDecl::counter(
        "bad_msg_hdr",
        &CORE.bad_msg_hdr,
        "Messages whose headers did not parse.",
    ),
    StatDecl::counter(
        "oversize_msgs",
        &CORE.oversize_msgs,
        "Datagrams or stream frames over the size limit.",
    ),
    StatDecl::counter(
        "dropped_msgs",
        &CORE.dropped_msgs,
        "Messages dropped unanswered before routing: unparsable, or over a size limit in a header a 400 would copy back.",
    ),
    StatDecl::counter(
        "bad_tcp_conns",
        &CORE.bad_tcp_conns,
        "TCP connections closed for bad framing, `tcp_max_bad_msgs` unparsable messages in a row, or no whole message within `tcp_read_timeout`.",
    ),
    StatDecl::gauge(
        "suspended_routes",
        &CORE.suspended_routes,
        "Routes suspended on I/O now.",
    ),
    StatDecl::counter(
        "suspend_overflows",
        &CORE.suspend_overflows,
        "Requests answered 503 because their worker had `max_suspended` routes suspended.",
    ),
    StatDecl::counter(
        "resume_timeouts",
        &CORE.resume_timeouts,
        "Suspended routes that waited past `resume_timeout` (the call got 500).",
    ),
    StatDecl::counter(
        "slow_messages",
        &CORE.slow_messages,
        "Messages whose handling took longer than `exec_msg_threshold`.",
    ),
    StatDecl::counter(
        "shed_requests",
        &CORE.shed_requests,
        "New INVITEs answered 503 before routing: over the rate the proxy takes while its socket queues stand past `overload_queue_delay`.",
    ),
    StatDecl::gauge(
        "overload_admitted_rate",
        &CORE.overload_admitted_rate,
        "New INVITEs per second the proxy takes while overloaded (lunasip's admission controller); 0 while every new INVITE is taken.",
    ),
    StatDecl::counter(
        "overload_episodes",
        &CORE.overload_episodes,
        "Times a socket fell behind: its datagrams waited longer than `overload_queue_delay` for that long (lunasip).",
    ),
];

/// The process's memory, from /proc/self/statm.
pub static MEMORY_STATS: &[StatDecl] = &[
    StatDecl::computed(
        "rss_size",
        || statm().map_or(0, |(_, rss)| rss),
        "Resident memory in bytes.",
    ),
    StatDecl::computed(
        "virtual_size",
        || statm().map_or(0, |(vm, _)| vm),
        "Virtual memory in bytes.",
    ),
];

/// Modules' statistics groups, registered once by the module registry
/// ([`register_module_groups`]): the counters here are a leaf every layer
/// uses, so this file depends on no module.
static MODULE_GROUPS: std::sync::OnceLock<Vec<StatGroup>> = std::sync::OnceLock::new();

/// Installs the modules' groups (in `modules::ALL` order); the first call wins.
pub fn register_module_groups(groups: impl IntoIterator<Item = StatGroup>) {
    let _ = MODULE_GROUPS.set(groups.into_iter().collect());
}

/// Every declared group in the order the MI lists them: `core`, each
/// module's (in `modules::ALL` order), `memory`.
pub fn declared() -> impl Iterator<Item = StatGroup> {
    let module = MODULE_GROUPS.get().into_iter().flatten().copied();
    std::iter::once(StatGroup {
        name: "core",
        stats: CORE_STATS,
    })
    .chain(module)
    .chain(std::iter::once(StatGroup {
        name: "memory",
        stats: MEMORY_STATS,
    }))
}

/// A declared statistic by group and name.
fn builtin(group: &str, name: &str) -> Option<&'static StatDecl> {
    declared()
        .filter(|g| g.name == group)
        .find_map(|g| g.stats.iter().find(|d| d.name == name))
}

/// A declared statistic by `name` or `group:name`.
fn builtin_any(full: &str) -> Option<&'static StatDecl> {
    let (group, name) = match full.split_once(':') {
        Some((g, n)) => (Some(g), n),
        None => (None, full),
    };
    declared()
        .filter(|g| group.is_none_or(|want| want == g.name))
        .find_map(|g| g.stats.iter().find(|d| d.name == name))
}

/// One statistic as the MI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub group: &'static str,
    pub name: &'static str,
    pub value: u64,
    pub kind: StatKind,
}

/// Visits every statistic, declared first, then registered ones in
/// registration order.
pub fn each_stat(mut f: impl FnMut(Stat)) {
    for g in declared() {
        for d in g.stats {
            f(Stat {
                group: g.name,
                name: d.name,
                value: d.get(),
                kind: d.kind(),
            });
        }
    }
    // Clone the list so a gauge's function never runs under the lock.
    let regs: Vec<Arc<Registered>> = registry::registry().clone();
    for r in regs {
        f(Stat {
            group: r.group,
            name: r.name,
            value: r.get(),
            kind: r.kind,
        });
    }
}

/// Visits every statistic as (group, name, value).
pub fn each(mut f: impl FnMut(&'static str, &'static str, u64)) {
    each_stat(|s| f(s.group, s.name, s.value));
}

/// A statistic by name: `rcv_requests` or `core:rcv_requests`.
pub fn get(name: &str) -> Option<u64> {
    let (group, name) = match name.split_once(':') {
        Some((g, n)) => (Some(g), n),
        None => (None, name),
    };
    let mut found = None;
    each(|g, n, v| {
        if found.is_none() && n == name && group.is_none_or(|want| want == g) {
            found = Some(v);
        }
    });
    found
}

/// Group names in the order [`each_stat`] visits them.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    each_stat(|s| {
        if !out.contains(&s.group) {
            out.push(s.group);
        }
    });
    out
}

/// Resets a statistic by name (`name` or `group:name`); false when it does
/// not exist or is a gauge (a gauge of memory cannot be reset).
pub fn reset(full: &str) -> bool {
    if let Some(d) = builtin_any(full) {
        return d.reset();
    }
    let (group, name) = match full.split_once(':') {
        Some((g, n)) => (Some(g), n),
        None => (None, full),
    };
    let r = registry::registry()
        .iter()
        .find(|r| r.name == name && group.is_none_or(|g| g == r.group))
        .cloned();
    r.is_some_and(|r| r.reset())
}

/// Resets every statistic that can be (MI `reset_all_statistics`);
/// gauges keep their values.
pub fn reset_all() {
    let mut names = Vec::new();
    each_stat(|s| names.push(format!("{}:{}", s.group, s.name)));
    for n in names {
        reset(&n);
    }
}

/// (virtual, resident) bytes of this process.
fn statm() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (vm, rss) = (it.next()??, it.next()??);
    let page = rustix::param::page_size() as u64;
    Some((vm * page, rss * page))
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

/// docs/statistics.md: every declared group with its statistics.
pub fn statistics_markdown() -> String {
    let mut out = String::from("# Statistics\n\n<!-- Generated from src/stats/mod.rs and each module's `stats` by\n     `UPDATE_DOCS=1 cargo test --test docs`. Do not edit by hand. -->\n\n");
    out.push_str("Every statistic is shown by the MI `get_statistics` / `list_statistics` (as `group:name`),\n");
    out.push_str(
        "by `GET /metrics` (as `lunasip_group_name`) and in the line logged at shutdown.\n",
    );
    out.push_str("A counter only goes up (until `reset_statistics`); a gauge goes up and down or is computed.\n");
    out.push_str("Scripts add their own with `sip.update_stat` (group `dynamic` unless named).\n");
    for g in declared() {
        let _ = writeln!(out, "\n## {}\n", g.name);
        out.push_str("| statistic | kind | what it counts |\n|---|---|---|\n");
        for d in g.stats {
            let kind = match d.kind() {
                StatKind::Counter => "counter",
                StatKind::Gauge => "gauge",
            };
            let _ = writeln!(
                out,
                "| `{}:{}` | {kind} | {} |",
                g.name,
                d.name,
                d.doc.replace('|', "\\|")
            );
        }
    }
    out
}
