//! Statistics: named counters kept lock-free and sharded per worker, so the
//! hot path never bounces one cache line between cores, plus a registry of
//! statistics added at run time: gauges computed on read (process memory),
//! counters that modules declare, and the script's own (`sip.update_stat`,
//! OpenSIPS's "dynamic" statistics). The management interface reads them
//! all through [`each`] / [`each_stat`], under OpenSIPS names (`group:name`).

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

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

macro_rules! stat_group {
    ($(#[$m:meta])* $vis:vis struct $ty:ident : $group:literal { $($(#[$fm:meta])* $name:ident),* $(,)? }) => {
        $(#[$m])*
        $vis struct $ty { $($(#[$fm])* pub $name: Counter,)* }
        impl $ty {
            const fn new() -> Self { $ty { $($name: Counter::new(),)* } }
            /// Group name as the MI shows it (`core:rcv_requests`).
            pub const GROUP: &'static str = $group;
            /// Every counter of the group with its name.
            pub fn each<'s>(&'s self, mut f: impl FnMut(&'static str, &'s Counter)) {
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
        /// Routes suspended on I/O now (a gauge).
        suspended_routes,
        /// Requests answered 503 because their worker had `max_suspended`
        /// routes suspended.
        suspend_overflows,
        /// Suspended routes that waited past `resume_timeout` (the call got 500).
        resume_timeouts,
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
    /// Transaction counters (OpenSIPS tm module names; `uas_`/`uac_` read
    /// `UAS_`/`UAC_`, `rNxx_` read `Nxx_`). `inuse_transactions` is a gauge:
    /// `inc` when a transaction is created, `sub(1)` when it is freed.
    pub struct Tm: "tm" {
        /// Server transactions created.
        uas_transactions,
        /// Client transactions created.
        uac_transactions,
        /// Transactions completed with a final reply of each class.
        r2xx_transactions,
        r3xx_transactions,
        r4xx_transactions,
        r5xx_transactions,
        r6xx_transactions,
        /// Transactions alive now.
        inuse_transactions,
    }
}

pub static CORE: Core = Core::new();
pub static SL: Sl = Sl::new();
pub static TM: Tm = Tm::new();
pub static DISPATCHER: Dispatcher = Dispatcher::new();

stat_group! {
    /// Dispatcher counters.
    pub struct Dispatcher: "dispatcher" {
        /// Probes (OPTIONS or `ds_ping_method`) sent to destinations.
        probes_sent,
    }
}

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

/// Built-in statistics that go up and down.
const BUILTIN_GAUGES: &[&str] = &["inuse_transactions", "suspended_routes"];

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

/// Where a registered statistic's value comes from.
enum Source {
    /// Kept here; changed by [`update`] (scripts) or [`Registered::add`].
    Value(AtomicI64),
    /// Computed on every read (memory, table sizes); cannot be reset.
    Func(Box<dyn Fn() -> u64 + Send + Sync>),
}

/// A statistic added at run time. Names are leaked once so that [`each`]
/// can keep handing out `&'static str`; the registry is capped at
/// [`MAX_REGISTERED`] so the leak is bounded.
pub struct Registered {
    pub group: &'static str,
    pub name: &'static str,
    pub kind: StatKind,
    src: Source,
}

impl Registered {
    /// Current value; a value that went negative reads as 0.
    pub fn get(&self) -> u64 {
        match &self.src {
            Source::Value(v) => v.load(Ordering::Relaxed).max(0) as u64,
            Source::Func(f) => f(),
        }
    }

    /// Adds `n` (may be negative) to a kept value; no-op for computed ones.
    pub fn add(&self, n: i64) {
        if let Source::Value(v) = &self.src {
            v.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn reset(&self) -> bool {
        match &self.src {
            Source::Value(v) => {
                v.store(0, Ordering::Relaxed);
                true
            }
            Source::Func(_) => false,
        }
    }
}

/// Registered statistics at most (script typos must not grow memory forever).
pub const MAX_REGISTERED: usize = 4096;

/// Group of script statistics named without a group (as in OpenSIPS).
pub const DYNAMIC_GROUP: &str = "dynamic";

static REGISTRY: RwLock<Vec<Arc<Registered>>> = RwLock::new(Vec::new());

fn registry() -> std::sync::RwLockReadGuard<'static, Vec<Arc<Registered>>> {
    REGISTRY.read().unwrap_or_else(|e| e.into_inner())
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Splits `group:name` (or `name`, whose group is `default_group`) and
/// checks both parts: letters, digits, `_`, `-`, `.`; 64 bytes each.
pub fn split_name<'a>(full: &'a str, default_group: &'a str) -> Result<(&'a str, &'a str), String> {
    let (g, n) = full.split_once(':').unwrap_or((default_group, full));
    if !valid_part(g) || !valid_part(n) {
        return Err(format!(
            "bad statistic name '{full}' (use group:name with letters, digits, _ - .)"
        ));
    }
    Ok((g, n))
}

fn register(
    group: &str,
    name: &str,
    kind: StatKind,
    src: Source,
) -> Result<Arc<Registered>, String> {
    let (group, name) = split_name(&format!("{group}:{name}"), DYNAMIC_GROUP)
        .map(|(g, n)| (g.to_string(), n.to_string()))?;
    let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = reg.iter().find(|r| r.group == group && r.name == name) {
        return Ok(r.clone());
    }
    if builtin(&group, &name).is_some() {
        return Err(format!("statistic {group}:{name} is built in"));
    }
    if reg.len() >= MAX_REGISTERED {
        return Err(format!("too many statistics ({MAX_REGISTERED} at most)"));
    }
    let r = Arc::new(Registered {
        group: Box::leak(group.into_boxed_str()),
        name: Box::leak(name.into_boxed_str()),
        kind,
        src,
    });
    reg.push(r.clone());
    Ok(r)
}

/// Declares a counter kept in the registry (modules call this once at
/// start; a second call with the same name returns the same counter).
pub fn register_counter(group: &str, name: &str) -> Result<Arc<Registered>, String> {
    register(
        group,
        name,
        StatKind::Counter,
        Source::Value(AtomicI64::new(0)),
    )
}

/// Declares a gauge computed on every read.
pub fn register_gauge(
    group: &str,
    name: &str,
    f: impl Fn() -> u64 + Send + Sync + 'static,
) -> Result<(), String> {
    register(group, name, StatKind::Gauge, Source::Func(Box::new(f))).map(|_| ())
}

/// OpenSIPS `update_stat`: adds `n` (may be negative) to `group:name` or
/// `name`, creating it in the `dynamic` group when it does not exist yet.
/// Built-in counters cannot be changed this way.
pub fn update(full: &str, n: i64) -> Result<u64, String> {
    let (g, name) = split_name(full, DYNAMIC_GROUP)?;
    let explicit_group = full.contains(':');
    let found = registry()
        .iter()
        .find(|r| r.name == name && (!explicit_group || r.group == g))
        .cloned();
    let r = match found {
        Some(r) => r,
        None => {
            if builtin_any(full).is_some() {
                return Err(format!(
                    "statistic {full} is built in and cannot be updated"
                ));
            }
            let kind = if n < 0 {
                StatKind::Gauge
            } else {
                StatKind::Counter
            };
            register(g, name, kind, Source::Value(AtomicI64::new(0)))?
        }
    };
    if matches!(r.src, Source::Func(_)) {
        return Err(format!(
            "statistic {}:{} is computed and cannot be updated",
            r.group, r.name
        ));
    }
    r.add(n);
    Ok(r.get())
}

/// A built-in counter by group and name.
fn builtin(group: &str, name: &str) -> Option<&'static Counter> {
    let mut found = None;
    each_builtin(|g, n, c| {
        if found.is_none() && g == group && n == name {
            found = Some(c);
        }
    });
    found
}

fn builtin_any(full: &str) -> Option<&'static Counter> {
    let (group, name) = match full.split_once(':') {
        Some((g, n)) => (Some(g), n),
        None => (None, full),
    };
    let mut found = None;
    each_builtin(|g, n, c| {
        if found.is_none() && n == name && group.is_none_or(|want| want == g) {
            found = Some(c);
        }
    });
    found
}

fn each_builtin(mut f: impl FnMut(&'static str, &'static str, &'static Counter)) {
    CORE.each(|n, c| f(Core::GROUP, public_name(n), c));
    SL.each(|n, c| f(Sl::GROUP, public_name(n), c));
    TM.each(|n, c| f(Tm::GROUP, public_name(n), c));
    DISPATCHER.each(|n, c| f(Dispatcher::GROUP, public_name(n), c));
}

/// One statistic as the MI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub group: &'static str,
    pub name: &'static str,
    pub value: u64,
    pub kind: StatKind,
}

/// Visits every statistic, built-in first, then registered ones in
/// registration order.
pub fn each_stat(mut f: impl FnMut(Stat)) {
    each_builtin(|group, name, c| {
        f(Stat {
            group,
            name,
            value: c.get(),
            kind: if BUILTIN_GAUGES.contains(&name) {
                StatKind::Gauge
            } else {
                StatKind::Counter
            },
        })
    });
    // Clone the list so a gauge's function never runs under the lock.
    let regs: Vec<Arc<Registered>> = registry().clone();
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
/// not exist or is computed (a gauge of memory cannot be reset).
pub fn reset(full: &str) -> bool {
    if let Some(c) = builtin_any(full) {
        let name = full.rsplit(':').next().unwrap_or(full);
        if BUILTIN_GAUGES.contains(&name) {
            return false;
        }
        c.reset();
        return true;
    }
    let (group, name) = match full.split_once(':') {
        Some((g, n)) => (Some(g), n),
        None => (None, full),
    };
    let r = registry()
        .iter()
        .find(|r| r.name == name && group.is_none_or(|g| g == r.group))
        .cloned();
    r.is_some_and(|r| r.reset())
}

/// Registers the process gauges (`memory:rss_size`, `memory:virtual_size`,
/// from /proc/self/statm); harmless to call twice.
pub fn register_process_gauges() {
    let _ = register_gauge("memory", "rss_size", || statm().map_or(0, |(_, rss)| rss));
    let _ = register_gauge("memory", "virtual_size", || statm().map_or(0, |(vm, _)| vm));
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
    fn lookup_by_name() {
        assert!(get("core:rcv_requests").is_some());
        assert!(get("rcv_requests").is_some());
        assert!(get("sl:4xx_replies").is_some());
        assert!(get("sl:rcv_requests").is_none());
        assert!(get("nope").is_none());
    }

    #[test]
    fn script_stats_are_created_updated_and_reset() {
        assert_eq!(update("mi_test_calls", 2).unwrap(), 2);
        assert_eq!(update("dynamic:mi_test_calls", 3).unwrap(), 5);
        assert_eq!(get("dynamic:mi_test_calls"), Some(5));
        assert_eq!(update("mygrp:mi_test_active", -1).unwrap(), 0);
        assert!(update("core:rcv_requests", 1).is_err());
        assert!(update("bad name", 1).is_err());
        assert!(update("a:b:c", 1).is_err());
        assert!(reset("mi_test_calls"));
        assert_eq!(get("mi_test_calls"), Some(0));
        assert!(!reset("nope_not_there"));
    }

    #[test]
    fn tm_names_and_inuse_gauge() {
        assert!(get("tm:UAS_transactions").is_some());
        assert!(get("tm:2xx_transactions").is_some());
        let c = Counter::new();
        bind_thread(1);
        c.inc();
        c.inc();
        bind_thread(2);
        c.sub(1);
        assert_eq!(c.get(), 1);
        let mut kind = None;
        each_stat(|s| {
            if s.name == "inuse_transactions" {
                kind = Some(s.kind)
            }
        });
        assert_eq!(kind, Some(StatKind::Gauge));
        assert!(!reset("tm:inuse_transactions"));
    }

    #[test]
    fn process_gauges() {
        register_process_gauges();
        assert!(get("memory:rss_size").unwrap() > 0);
        assert!(!reset("memory:rss_size"));
        let mut kinds = vec![];
        each_stat(|s| {
            if s.group == "memory" {
                kinds.push(s.kind)
            }
        });
        assert!(kinds.iter().all(|k| *k == StatKind::Gauge) && kinds.len() == 2);
        assert!(groups().contains(&"memory"));
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
