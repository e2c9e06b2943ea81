//! Statistics added at run time: counters and gauges a caller registers,
//! and the script's own (`sip.update_stat`, OpenSIPS's "dynamic"
//! statistics). Declared statistics ([`super::StatDecl`]) are not here.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use super::read::{builtin, builtin_any};
use super::StatKind;

/// Where a registered statistic's value comes from.
enum Source {
    /// Kept here; changed by [`update`] (scripts) or [`Registered::add`].
    Value(AtomicI64),
    /// Computed on every read (memory, table sizes); cannot be reset.
    Func(Box<dyn Fn() -> u64 + Send + Sync>),
}

/// A statistic added at run time. Names are leaked once so that
/// [`super::each`] can keep handing out `&'static str`; the registry is
/// capped at [`MAX_REGISTERED`] so the leak is bounded.
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

    pub(super) fn reset(&self) -> bool {
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

pub(super) fn registry() -> std::sync::RwLockReadGuard<'static, Vec<Arc<Registered>>> {
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

/// Adds a counter kept in the registry (a second call with the same name
/// returns the same counter). Modules declare theirs in `Module::stats`.
pub fn register_counter(group: &str, name: &str) -> Result<Arc<Registered>, String> {
    register(
        group,
        name,
        StatKind::Counter,
        Source::Value(AtomicI64::new(0)),
    )
}

/// Adds a gauge computed on every read.
pub fn register_gauge(
    group: &str,
    name: &str,
    f: impl Fn() -> u64 + Send + Sync + 'static,
) -> Result<(), String> {
    register(group, name, StatKind::Gauge, Source::Func(Box::new(f))).map(|_| ())
}

/// OpenSIPS `update_stat`: adds `n` (may be negative) to `group:name` or
/// `name`, creating it in the `dynamic` group when it does not exist yet.
/// Built-in statistics cannot be changed this way.
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
