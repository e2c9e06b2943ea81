//! Destination sets: the data the selection algorithms read, loaded from
//! `config.modules.dispatcher`, an OpenSIPS `dispatcher.list` file or an
//! OpenSIPS `dispatcher` table (see db.rs).
//!
//! The types live here; reading a source into them is in `load.rs` (rows
//! checked and grouped, state kept over a reload), `list.rs` (the list
//! file) and `resolve.rs` (host names looked up after install).
//!
//! A loaded [`Sets`] is immutable except for each destination's state and
//! counters (atomics) and each set's round-robin cursor. Workers take an
//! `Arc<Sets>` once per call; a reload builds a new one and swaps it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

mod list;
mod load;
mod resolve;

pub use list::parse_list;
pub use load::{
    build_dest, build_sets, inherit_state, listeners, read_source, set_listeners, uri_hostport,
    uri_port_given,
};
pub use resolve::resolve_names;

/// Destination states, as OpenSIPS numbers them in the `state` column.
pub const ACTIVE: u8 = 0;
pub const INACTIVE: u8 = 1;
pub const PROBING: u8 = 2;

/// State name as `ds_list` shows it.
pub fn state_name(s: u8) -> &'static str {
    match s {
        ACTIVE => "Active",
        INACTIVE => "Inactive",
        _ => "Probing",
    }
}

/// `a`/`i`/`p` (or `active`/`inactive`/`probing`, or 0/1/2) to a state.
pub fn parse_state(s: &str) -> Option<u8> {
    match s.trim().to_ascii_lowercase().as_str() {
        "a" | "active" | "0" => Some(ACTIVE),
        "i" | "inactive" | "1" => Some(INACTIVE),
        "p" | "probing" | "2" => Some(PROBING),
        _ => None,
    }
}

/// One destination of a set.
#[derive(Debug)]
pub struct Dest {
    pub uri: String,
    /// Host of the URI (brackets removed) and port (5060/5061 when absent).
    pub host: String,
    pub port: u16,
    /// The host when it is an IP literal (`ds_is_in_list` compares these).
    pub ip: Option<IpAddr>,
    /// The addresses a host name resolved to after the sets were
    /// installed ([`resolve_names`]); unset for IP literals and until then.
    pub resolved: std::sync::OnceLock<Vec<IpAddr>>,
    /// Outgoing socket as written (`udp:10.0.0.1:5060`), if any.
    pub socket: Option<String>,
    pub state: AtomicU8,
    pub weight: u32,
    pub priority: i64,
    pub attrs: String,
    pub description: String,
    /// Times this destination was chosen first (`ds_list` first_hit_counter).
    pub hits: AtomicU64,
    /// Failed probes in a row (`ds_probing_threshold`).
    pub failures: std::sync::atomic::AtomicU32,
    /// Whether the URI names a port (a destination without one matches
    /// any port in `ds_push_script_attrs`, as OpenSIPS's port 0).
    pub port_given: bool,
    /// Set by `ds_push_script_attrs` (script or MI); lost on reload as in
    /// OpenSIPS (dispatch.c keeps them with the loaded data).
    pub script_attrs: std::sync::RwLock<Option<String>>,
}

impl Dest {
    /// Whether `ip` is this destination's address: its IP literal or one
    /// its host name resolved to (OpenSIPS dispatch.c compares the
    /// destination's `ips[]`, filled by a DNS lookup at load).
    pub fn has_ip(&self, ip: IpAddr) -> bool {
        self.ip == Some(ip) || self.resolved.get().is_some_and(|v| v.contains(&ip))
    }

    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Relaxed)
    }

    pub fn is_active(&self) -> bool {
        self.state() == ACTIVE
    }

    pub fn set_state(&self, s: u8) {
        self.state.store(s, Ordering::Relaxed);
    }
}

/// A set of destinations, ordered by priority (lower value first, as
/// OpenSIPS sorts them), then as listed.
#[derive(Debug)]
pub struct Set {
    pub id: i64,
    pub dests: Vec<Dest>,
    /// Destination indexes repeated by weight (at most 100 entries, as
    /// OpenSIPS's weighted list); hashing and round-robin index into it.
    pub wlist: Vec<usize>,
    /// Round-robin cursor over `wlist`.
    pub rr: AtomicUsize,
}

impl Set {
    pub fn new(id: i64, mut dests: Vec<Dest>) -> Set {
        dests.sort_by_key(|d| d.priority);
        let wlist = weighted_list(&dests);
        Set {
            id,
            dests,
            wlist,
            rr: AtomicUsize::new(0),
        }
    }
}

/// Each destination's index repeated in proportion to its weight, spread
/// (interleaved) so round-robin alternates rather than running in blocks.
/// With all weights equal this is just `0..n`.
pub fn weighted_list(dests: &[Dest]) -> Vec<usize> {
    let n = dests.len();
    if n == 0 {
        return Vec::new();
    }
    let w: Vec<u64> = dests.iter().map(|d| u64::from(d.weight.max(1))).collect();
    if w.iter().all(|&x| x == w[0]) {
        return (0..n).collect();
    }
    let total: u64 = w.iter().sum();
    // Scale to at most 100 slots, keeping at least one per destination.
    let slots: Vec<u64> = if total > 100 {
        w.iter().map(|&x| (x * 100 / total).max(1)).collect()
    } else {
        w.clone()
    };
    let len: u64 = slots.iter().sum();
    // Smooth weighted round-robin (nginx): interleaves by weight.
    let mut cur = vec![0i64; n];
    let mut out = Vec::with_capacity(len as usize);
    for _ in 0..len {
        let mut best = 0;
        for i in 0..n {
            cur[i] += slots[i] as i64;
            if cur[i] > cur[best] {
                best = i;
            }
        }
        cur[best] -= len as i64;
        out.push(best);
    }
    out
}

/// An independent dispatcher table with its own source.
#[derive(Debug)]
pub struct Partition {
    pub name: String,
    /// Shared so a reload of another partition keeps these as they are.
    pub sets: std::sync::Arc<Vec<Set>>,
    pub source: Source,
    /// `hash_pvar` (algorithm 7) and `pvar_algo_pattern` (algorithm 9).
    pub hash_pvar: Option<String>,
    pub pvar_algo_pattern: Option<String>,
    /// Lua function name for algorithm 10 (`route.NAME` or a global).
    pub algo_route: Option<String>,
    /// AVP that gets the chosen destination's attrs.
    pub attrs_avp: Option<String>,
    /// `dst_avp`, `grp_avp`, `cnt_avp`, `setid_pvar`.
    pub names: AvpNames,
    /// Rows (or list lines) the last load skipped as malformed.
    pub bad_rows: usize,
}

impl Partition {
    pub fn set(&self, id: i64) -> Option<&Set> {
        self.sets.iter().find(|s| s.id == id)
    }
}

/// Names of the AVPs a partition keeps its failover state in (OpenSIPS
/// `dst_avp`, `grp_avp`, `cnt_avp`; defaults `ds_dst_failover` … with
/// `_PARTITION` for partitions other than `default`) and the `setid_pvar`
/// that `ds_is_in_list` without a set fills.
#[derive(Debug, Clone, Default)]
pub struct AvpNames {
    pub dst: Option<String>,
    pub grp: Option<String>,
    pub cnt: Option<String>,
    pub setid_pvar: Option<String>,
    /// `script_attrs_avp`: gets the chosen destination's script attrs.
    pub script_attrs: Option<String>,
}

impl AvpNames {
    fn name(given: &Option<String>, base: &str, part: &str) -> String {
        match given {
            Some(n) => n
                .trim()
                .trim_start_matches("$avp(")
                .trim_end_matches(')')
                .to_string(),
            None if part == "default" => base.to_string(),
            None => format!("{base}_{part}"),
        }
    }
    pub fn dst(&self, part: &str) -> String {
        Self::name(&self.dst, "ds_dst_failover", part)
    }
    pub fn grp(&self, part: &str) -> String {
        Self::name(&self.grp, "ds_grp_failover", part)
    }
    pub fn cnt(&self, part: &str) -> String {
        Self::name(&self.cnt, "ds_cnt_failover", part)
    }
}

/// Where a partition's destinations come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Rows given in the script's config (reload keeps them).
    Rows(Vec<Row>),
    /// An OpenSIPS dispatcher.list file, re-read on reload.
    ListFile(std::path::PathBuf),
    /// A MySQL/MariaDB table with OpenSIPS's `dispatcher` columns, re-read
    /// on reload; `retry` is how often a failed load is tried again.
    Db {
        url: String,
        table: String,
        retry: std::time::Duration,
    },
}

impl Source {
    /// The same database table (a reload that fails keeps what it had).
    pub fn same_table(&self, other: &Source) -> bool {
        matches!((self, other), (Source::Db { url: u1, table: t1, .. }, Source::Db { url: u2, table: t2, .. }) if u1 == u2 && t1 == t2)
    }
}

/// One destination as written in a source, before checking.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// The row's `id` column (database rows), named when the row is bad.
    pub id: Option<i64>,
    pub setid: i64,
    pub uri: String,
    pub socket: Option<String>,
    pub state: u8,
    pub weight: u32,
    pub priority: i64,
    pub attrs: String,
    pub description: String,
    /// The `probe_mode` column (database rows; 0 when absent).
    pub probe_mode: u32,
}

/// Every partition.
#[derive(Debug, Default)]
pub struct Sets {
    pub partitions: Vec<Partition>,
}

impl Sets {
    pub fn partition(&self, name: Option<&str>) -> Option<&Partition> {
        let name = name.filter(|n| !n.is_empty()).unwrap_or("default");
        self.partitions.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_interleave() {
        let mk = |w| Dest {
            uri: String::new(),
            host: String::new(),
            port: 0,
            ip: None,
            resolved: std::sync::OnceLock::new(),
            socket: None,
            state: AtomicU8::new(0),
            weight: w,
            priority: 0,
            attrs: String::new(),
            description: String::new(),
            hits: AtomicU64::new(0),
            failures: Default::default(),
            port_given: false,
            script_attrs: Default::default(),
        };
        let l = weighted_list(&[mk(1), mk(3)]);
        assert_eq!(l.len(), 4);
        assert_eq!(l.iter().filter(|&&i| i == 0).count(), 1);
        assert_eq!(weighted_list(&[mk(5), mk(5)]), vec![0, 1]);
        let big = weighted_list(&[mk(1000), mk(3000)]);
        assert_eq!(big.len(), 100);
        assert_eq!(big.iter().filter(|&&i| i == 0).count(), 25);
    }
}
