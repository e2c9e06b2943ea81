//! Reading every statistic: the declared groups in MI order (core, the
//! modules', memory) then the registered ones; lookup by name, reset, the
//! shutdown summary and docs/statistics.md.

use std::fmt::Write;
use std::sync::Arc;

use super::registry::{self, Registered};
use super::{StatDecl, StatGroup, StatKind, CORE_STATS, MEMORY_STATS};

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
pub(super) fn builtin(group: &str, name: &str) -> Option<&'static StatDecl> {
    declared()
        .filter(|g| g.name == group)
        .find_map(|g| g.stats.iter().find(|d| d.name == name))
}

/// A declared statistic by `name` or `group:name`.
pub(super) fn builtin_any(full: &str) -> Option<&'static StatDecl> {
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
    let mut out = String::from("# Statistics\n\n<!-- Generated from src/stats/ and each module's `stats` by\n     `UPDATE_DOCS=1 cargo test --test docs`. Do not edit by hand. -->\n\n");
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
