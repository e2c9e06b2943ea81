//! Logging: tracing to stderr, with levels named as OpenSIPS names them
//! (`log_level` numbers -3..4 and xlog's `L_ERR`, `L_INFO`, …).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI8, Ordering};
use tracing::{Level, Metadata};
use tracing_subscriber::filter::LevelFilter;

/// Parses `error|warn|notice|info|debug|trace` or an OpenSIPS number.
pub fn parse_level(s: &str) -> Result<LevelFilter, String> {
    if let Ok(n) = s.trim().parse::<i64>() {
        return parse_level(opensips_level_name(n));
    }
    match s.trim().to_ascii_lowercase().as_str() {
        "alert" | "crit" | "critical" | "err" | "error" => Ok(LevelFilter::ERROR),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        "notice" | "info" => Ok(LevelFilter::INFO),
        "dbg" | "debug" => Ok(LevelFilter::DEBUG),
        "trace" => Ok(LevelFilter::TRACE),
        "off" | "none" => Ok(LevelFilter::OFF),
        other => Err(format!(
            "unknown log level '{other}' (use error, warn, notice, info, debug)"
        )),
    }
}

/// OpenSIPS numeric log levels to names.
pub fn opensips_level_name(n: i64) -> &'static str {
    match n {
        i64::MIN..=-3 => "alert",
        -2 => "crit",
        -1 => "error",
        0 | 1 => "warn",
        2 => "notice",
        3 => "info",
        _ => "debug",
    }
}

/// An xlog level (`L_ERR`, `L_INFO`, "err", a number) to a tracing level.
pub fn xlog_level(s: &str) -> Option<Level> {
    let t = s.trim();
    let t = t.strip_prefix("L_").unwrap_or(t);
    let lf = parse_level(t).ok()?;
    lf.into_level()
}

/// OpenSIPS `xlog_level` (xlog.c): an `xlog` message whose level number
/// is above it is not printed, before `log_level` filters it. OpenSIPS's
/// default is 2 (L_NOTICE); lunasip's is 4 (L_DBG), so `xlog("L_INFO",
/// …)` prints as it always did unless `config.xlog_level` says otherwise.
static XLOG_DEFAULT: AtomicI8 = AtomicI8::new(4);
static XLOG_SHARED: AtomicI8 = AtomicI8::new(4);

thread_local! {
    /// `$xlog_level` set by this worker's script (OpenSIPS's per-process level).
    static XLOG_LOCAL: Cell<Option<i8>> = const { Cell::new(None) };
}

/// Sets the configured xlog level (start, reload): the default that a
/// reset returns to, and the shared level.
pub fn set_xlog_default(n: i64) {
    XLOG_DEFAULT.store(clamp(n), Ordering::Relaxed);
    XLOG_SHARED.store(clamp(n), Ordering::Relaxed);
}

/// MI `xlog_level level`: the level every worker follows.
pub fn set_xlog_shared(n: i64) {
    XLOG_SHARED.store(clamp(n), Ordering::Relaxed);
}

/// The shared xlog level (MI `xlog_level`).
pub fn xlog_shared() -> i64 {
    XLOG_SHARED.load(Ordering::Relaxed) as i64
}

/// The xlog level this thread prints with (`$xlog_level`).
pub fn xlog_level_now() -> i64 {
    XLOG_LOCAL
        .with(|l| l.get())
        .map_or_else(xlog_shared, |n| n as i64)
}

/// `$xlog_level = n`: this worker's own level; `$xlog_level = null` goes
/// back to the shared one, or, when there was no own level, resets the
/// shared one to the configured default (OpenSIPS `reset_xlog_level`).
pub fn set_xlog_local(n: Option<i64>) {
    match n {
        Some(n) => XLOG_LOCAL.with(|l| l.set(Some(clamp(n)))),
        None => {
            if XLOG_LOCAL.with(|l| l.take()).is_none() {
                XLOG_SHARED.store(XLOG_DEFAULT.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }
}

/// An xlog level name (`L_NOTICE`, `notice`, `-1`) as OpenSIPS's number.
pub fn xlog_number(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    let t = t.strip_prefix("L_").unwrap_or(t);
    Some(match t.to_ascii_lowercase().as_str() {
        "alert" => -3,
        "crit" | "critical" => -2,
        "err" | "error" => -1,
        "warn" | "warning" => 1,
        "notice" => 2,
        "info" => 3,
        "dbg" | "debug" => 4,
        "trace" => 5,
        _ => return None,
    })
}

/// Log levels as OpenSIPS numbers (-3 alert … 4 debug, 5 = trace, a
/// lunasip extension), global and per worker thread. Events are filtered
/// against the calling thread's level, so the MI can turn one worker to
/// debug while the others stay quiet.
pub struct Levels {
    global: AtomicI8,
    /// Per worker; [`UNSET`] means "follow the global level".
    worker: [AtomicI8; MAX_WORKERS],
}

/// Workers with their own slot (config.children is at most 256).
pub const MAX_WORKERS: usize = 256;
const UNSET: i8 = i8::MIN;

static LEVELS: Levels = Levels {
    global: AtomicI8::new(3),
    worker: [const { AtomicI8::new(UNSET) }; MAX_WORKERS],
};

thread_local! {
    /// This thread's worker slot, if it is a worker (set by [`bind_worker`]).
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks the calling thread as worker `id` (its events use its own level).
pub fn bind_worker(id: usize) {
    WORKER.with(|w| w.set((id < MAX_WORKERS).then_some(id)));
}

/// Clamps to the range lunasip knows (-3 alert … 5 trace).
fn clamp(n: i64) -> i8 {
    n.clamp(-3, 5) as i8
}

/// OpenSIPS level number to a tracing filter.
pub fn filter_of(n: i64) -> LevelFilter {
    match n {
        i64::MIN..=-1 => LevelFilter::ERROR,
        0 | 1 => LevelFilter::WARN,
        2 | 3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// A tracing filter to the OpenSIPS number that stands for it.
pub fn number_of(f: LevelFilter) -> i64 {
    match f {
        LevelFilter::OFF => -3,
        LevelFilter::ERROR => -1,
        LevelFilter::WARN => 1,
        LevelFilter::INFO => 3,
        LevelFilter::DEBUG => 4,
        _ => 5,
    }
}

/// Parses a level for the MI: an OpenSIPS number or a name.
pub fn parse_number(s: &str) -> Result<i64, String> {
    match s.trim().parse::<i64>() {
        Ok(n) => Ok(clamp(n) as i64),
        Err(_) => parse_level(s).map(number_of),
    }
}

/// The global level (OpenSIPS number).
pub fn global_level() -> i64 {
    LEVELS.global.load(Ordering::Relaxed) as i64
}

/// Sets the global level; workers that have their own level keep it, as
/// OpenSIPS's `log_level` without a pid resets every process.
pub fn set_global_level(n: i64) {
    LEVELS.global.store(clamp(n), Ordering::Relaxed);
    for w in &LEVELS.worker {
        w.store(UNSET, Ordering::Relaxed);
    }
    tracing::callsite::rebuild_interest_cache();
}

/// A worker's level (its own, else the global one).
pub fn worker_level(id: usize) -> i64 {
    match LEVELS.worker.get(id).map(|w| w.load(Ordering::Relaxed)) {
        Some(n) if n != UNSET => n as i64,
        _ => global_level(),
    }
}

/// Sets one worker's level; false when there is no such slot.
pub fn set_worker_level(id: usize, n: i64) -> bool {
    match LEVELS.worker.get(id) {
        Some(w) => {
            w.store(clamp(n), Ordering::Relaxed);
            tracing::callsite::rebuild_interest_cache();
            true
        }
        None => false,
    }
}

/// The level of the calling thread: its worker's own, else the global one.
pub fn own_level() -> i64 {
    WORKER
        .with(|w| w.get())
        .map_or_else(global_level, worker_level)
}

/// `$log_level = n` (OpenSIPS pvar.c `pv_set_log_level`): the calling
/// worker's own level; None goes back to the global one. False outside a
/// worker.
pub fn set_own_level(n: Option<i64>) -> bool {
    let Some(id) = WORKER.with(|w| w.get()) else {
        return false;
    };
    match n {
        Some(n) => set_worker_level(id, n),
        None => {
            if let Some(w) = LEVELS.worker.get(id) {
                w.store(UNSET, Ordering::Relaxed);
                tracing::callsite::rebuild_interest_cache();
            }
            true
        }
    }
}

/// The most verbose level in force anywhere: callsites above it are
/// skipped by tracing without calling the filter at all.
fn max_level() -> LevelFilter {
    let mut n = global_level();
    for w in &LEVELS.worker {
        let v = w.load(Ordering::Relaxed);
        if v != UNSET {
            n = n.max(v as i64);
        }
    }
    filter_of(n)
}

fn current_level() -> LevelFilter {
    let n = WORKER
        .with(|w| w.get())
        .map_or_else(global_level, worker_level);
    filter_of(n)
}

/// The filter layer reading [`LEVELS`] and its log consumer's mute state
/// and level filter.
struct LevelsFilter(usize);

impl<S: tracing::Subscriber> tracing_subscriber::layer::Filter<S> for LevelsFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        *meta.level() <= current_level() && consumer_allows(self.0, *meta.level())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if *meta.level() <= max_level() {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(max_level())
    }
}

/// A log consumer (OpenSIPS dprint.c): where log lines go, each with a
/// mute state and a level filter (an OpenSIPS number; 0: none), which MI
/// `log_mute_state` and `log_level_filter` change at run time.
struct Consumer {
    name: &'static str,
    muted: AtomicBool,
    filter: AtomicI8,
}

const STDERR: usize = 0;
const SYSLOG: usize = 1;
const EVENT: usize = 2;

/// `stderror`: plain lines on stderr; `syslog`: the journal (under
/// systemd, in place of stderr); `event`: E_CORE_LOG. The one of stderr
/// and journal that is not in use reads as muted, and unmuting it adds no
/// output.
static CONSUMERS: [Consumer; 3] = [
    Consumer {
        name: "stderror",
        muted: AtomicBool::new(false),
        filter: AtomicI8::new(0),
    },
    Consumer {
        name: "syslog",
        muted: AtomicBool::new(true),
        filter: AtomicI8::new(0),
    },
    Consumer {
        name: "event",
        muted: AtomicBool::new(true),
        filter: AtomicI8::new(0),
    },
];

fn consumer(name: &str) -> Option<&'static Consumer> {
    CONSUMERS.iter().find(|c| c.name == name)
}

/// Whether consumer `i` takes a line at `level` (dprint.c: not muted, and
/// no filter or the line's level number at most the filter).
fn consumer_allows(i: usize, level: Level) -> bool {
    let c = &CONSUMERS[i];
    if c.muted.load(Ordering::Relaxed) {
        return false;
    }
    let f = i64::from(c.filter.load(Ordering::Relaxed));
    f == 0 || number_of(LevelFilter::from_level(level)) <= f
}

/// The consumers' names.
pub fn consumer_names() -> impl Iterator<Item = &'static str> {
    CONSUMERS.iter().map(|c| c.name)
}

/// A consumer's level filter (0: none); None for an unknown consumer.
pub fn level_filter(name: &str) -> Option<i64> {
    consumer(name).map(|c| i64::from(c.filter.load(Ordering::Relaxed)))
}

/// Sets a consumer's level filter (0: none); false for an unknown one.
pub fn set_level_filter(name: &str, n: i64) -> bool {
    let Some(c) = consumer(name) else {
        return false;
    };
    c.filter
        .store(if n == 0 { 0 } else { clamp(n) }, Ordering::Relaxed);
    true
}

/// A consumer's mute state; None for an unknown consumer.
pub fn muted(name: &str) -> Option<bool> {
    consumer(name).map(|c| c.muted.load(Ordering::Relaxed))
}

/// Mutes or unmutes a consumer; false for an unknown one.
pub fn set_muted(name: &str, m: bool) -> bool {
    let Some(c) = consumer(name) else {
        return false;
    };
    c.muted.store(m, Ordering::Relaxed);
    true
}

thread_local! {
    /// A line logged while raising E_CORE_LOG is not raised again.
    static IN_LOG_EVENT: Cell<bool> = const { Cell::new(false) };
}

/// Turns E_CORE_LOG on for lines at OpenSIPS `level` or more important,
/// or off with None.
pub fn set_log_event(level: Option<i64>) {
    let c = &CONSUMERS[EVENT];
    c.muted.store(level.is_none(), Ordering::Relaxed);
    if let Some(l) = level {
        c.filter.store(clamp(l), Ordering::Relaxed);
    }
}

/// The layer raising E_CORE_LOG (OpenSIPS dprint.c `event_dprint`) with
/// time, pid, level, module, function and message.
struct EventLog;

struct MessageOf<'a>(&'a mut String);

impl tracing::field::Visit for MessageOf<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EventLog {
    fn on_event(&self, ev: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = ev.metadata();
        if !consumer_allows(EVENT, *meta.level()) || IN_LOG_EVENT.with(Cell::get) {
            return;
        }
        IN_LOG_EVENT.with(|f| f.set(true));
        crate::core_events::raise(crate::core_events::LOG, || {
            use serde_json::Value;
            let mut message = String::new();
            ev.record(&mut MessageOf(&mut message));
            let level = match *meta.level() {
                Level::ERROR => "ERROR",
                Level::WARN => "WARNING",
                Level::INFO => "INFO",
                _ => "DBG",
            };
            let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::system());
            let time = jiff::fmt::strtime::format("%b %e %H:%M:%S", &now).unwrap_or_default();
            crate::core_events::params([
                ("time", Value::from(time)),
                ("pid", Value::from(std::process::id())),
                ("level", Value::from(level)),
                ("module", Value::from(meta.target())),
                ("function", Value::from(meta.name())),
                ("message", Value::from(message)),
            ])
        });
        IN_LOG_EVENT.with(|f| f.set(false));
    }
}

/// Handle to change the level at run time (MI `log_level`, reload).
#[derive(Clone, Copy, Debug, Default)]
pub struct LevelHandle;

impl LevelHandle {
    /// Sets the global level from a tracing filter.
    pub fn set(&self, level: LevelFilter) {
        set_global_level(number_of(level));
    }
}

/// Installs the subscriber (stderr, or the journal under systemd); returns
/// the handle to change its level.
pub fn init(level: LevelFilter) -> LevelHandle {
    use tracing_subscriber::prelude::*;
    LEVELS
        .global
        .store(number_of(level) as i8, Ordering::Relaxed);
    use std::io::IsTerminal;
    // Under systemd the journal gets structured entries (see journal.rs);
    // elsewhere, plain lines on stderr.
    let journald = crate::journal::journald_layer();
    CONSUMERS[STDERR]
        .muted
        .store(journald.is_some(), Ordering::Relaxed);
    CONSUMERS[SYSLOG]
        .muted
        .store(journald.is_none(), Ordering::Relaxed);
    let fmt = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(LevelsFilter(STDERR))
    });
    let journald = journald.map(|j| j.with_filter(LevelsFilter(SYSLOG)));
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(journald)
        .with(EventLog.with_filter(LevelsFilter(EVENT)))
        .try_init();
    tracing::callsite::rebuild_interest_cache();
    LevelHandle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_level("info").unwrap(), LevelFilter::INFO);
        assert_eq!(parse_level("-1").unwrap(), LevelFilter::ERROR);
        assert_eq!(parse_level("4").unwrap(), LevelFilter::DEBUG);
        assert!(parse_level("loud").is_err());
        assert_eq!(xlog_level("L_ERR"), Some(Level::ERROR));
        assert_eq!(xlog_level("L_DBG"), Some(Level::DEBUG));
        assert_eq!(xlog_level("L_NOTICE"), Some(Level::INFO));
        assert_eq!(xlog_level("bogus"), None);
    }

    #[test]
    fn numbers_and_workers() {
        assert_eq!(parse_number("debug").unwrap(), 4);
        assert_eq!(parse_number("-1").unwrap(), -1);
        assert_eq!(parse_number("99").unwrap(), 5);
        assert!(parse_number("loud").is_err());
        assert_eq!(filter_of(number_of(LevelFilter::WARN)), LevelFilter::WARN);
        set_global_level(2);
        assert!(set_worker_level(3, 4));
        assert_eq!(worker_level(3), 4);
        assert_eq!(worker_level(4), 2);
        assert_eq!(max_level(), LevelFilter::DEBUG);
        assert!(!set_worker_level(MAX_WORKERS, 4));
        set_global_level(3);
        assert_eq!(worker_level(3), 3);
    }
}
