//! Destination sets: the data the selection algorithms read, loaded from
//! `config.modules.dispatcher`, an OpenSIPS `dispatcher.list` file or an
//! OpenSIPS `dispatcher` table (see db.rs).
//!
//! A loaded [`Sets`] is immutable except for each destination's state and
//! counters (atomics) and each set's round-robin cursor. Workers take an
//! `Arc<Sets>` once per call; a reload builds a new one and swaps it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::config::Listen;

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

/// Host and port of a SIP URI (`sip:host:port;params`), brackets removed.
pub fn uri_hostport(uri: &str) -> Option<(String, u16)> {
    let lower = uri.to_ascii_lowercase();
    let (rest, default_port) = if let Some(r) = lower.strip_prefix("sips:") {
        (&uri[uri.len() - r.len()..], 5061)
    } else if let Some(r) = lower.strip_prefix("sip:") {
        (&uri[uri.len() - r.len()..], 5060)
    } else {
        return None;
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    let hp = &rest[..end];
    let (host, port) = crate::config::split_hostport(hp)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.unwrap_or(default_port)))
}

/// Whether a SIP URI names its port (`sip:h:5070`, not `sip:h`).
pub fn uri_port_given(uri: &str) -> bool {
    let rest = uri.split_once(':').map_or("", |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    crate::config::split_hostport(&rest[..end]).is_some_and(|(_, p)| p.is_some())
}

/// Most addresses kept per host name (OpenSIPS's DS_MAX_IPS).
const MAX_IPS: usize = 32;

/// Resolves the host names of `sets`' destinations on a thread of its own
/// (the system resolver blocks; no SIP worker waits for it), so that
/// `ds_is_in_list` and `ds_push_script_attrs` match them by address as
/// OpenSIPS does after its load-time lookup (dispatch.c `add_dest2list`).
/// A name that does not resolve is logged and kept: lunasip looks it up
/// again when it relays to it, where OpenSIPS skips the destination.
pub fn resolve_names(sets: std::sync::Arc<Sets>) {
    let any = sets
        .partitions
        .iter()
        .flat_map(|p| p.sets.iter())
        .flat_map(|s| s.dests.iter())
        .any(|d| d.ip.is_none());
    if !any {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("ds-resolve".into())
        .spawn(move || {
            for p in &sets.partitions {
                for d in p.sets.iter().flat_map(|s| s.dests.iter()) {
                    if d.ip.is_some() || d.resolved.get().is_some() {
                        continue;
                    }
                    d.resolved.get_or_init(|| lookup(&p.name, &d.host, d.port));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("dispatcher: cannot start the name lookup thread: {e}");
    }
}

fn lookup(part: &str, host: &str, port: u16) -> Vec<IpAddr> {
    use std::net::ToSocketAddrs;
    match (host, port).to_socket_addrs() {
        Ok(addrs) => {
            let mut v: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !v.contains(&a.ip()) && v.len() < MAX_IPS {
                    v.push(a.ip());
                }
            }
            tracing::debug!("dispatcher: partition {part}: {host} is {v:?}");
            v
        }
        Err(e) => {
            tracing::warn!(
                "dispatcher: partition {part}: could not resolve {host} ({e}); \
                 ds_is_in_list and ds_push_script_attrs will not match it by address"
            );
            Vec::new()
        }
    }
}

/// Checks a row (its `socket` must be one of `listen`); the error names
/// what is wrong.
pub fn build_dest(r: &Row, listen: &[Listen]) -> Result<Dest, String> {
    let (host, port) =
        uri_hostport(&r.uri).ok_or_else(|| format!("bad destination URI '{}'", r.uri))?;
    if let Some(s) = &r.socket {
        let l = crate::config::parse_listen(s).map_err(|_| format!("bad socket '{s}'"))?;
        if !listener_in(listen, &l) {
            return Err(format!("socket '{s}' is not one of config.listen"));
        }
    }
    Ok(Dest {
        uri: r.uri.clone(),
        ip: host.parse().ok(),
        resolved: std::sync::OnceLock::new(),
        host,
        port,
        socket: r.socket.clone(),
        state: AtomicU8::new(r.state),
        weight: r.weight,
        priority: r.priority,
        attrs: r.attrs.clone(),
        description: r.description.clone(),
        hits: AtomicU64::new(0),
        failures: Default::default(),
        port_given: uri_port_given(&r.uri),
        script_attrs: Default::default(),
    })
}

/// The daemon's listening sockets, which a destination's `socket` must be
/// one of (as in OpenSIPS). Empty (unit tests, benches): no such check.
/// (Settings in the registry, committed with the dispatcher's.)
#[derive(Default)]
struct Listeners(Vec<Listen>);

/// Stages the sockets destinations may name (from `config.listen`).
pub fn set_listeners(listen: &[Listen], staged: &mut crate::state::Staged) {
    staged.put(Listeners(listen.to_vec()));
}

/// The sockets set by [`set_listeners`] (the registry of this thread's
/// environment).
pub fn listeners() -> Vec<Listen> {
    crate::state::module::<Listeners>().0.clone()
}

/// Whether `l` is one of `all`: same protocol and port, and the same
/// address or a listener on the wildcard address (`all` empty: yes).
fn listener_in(all: &[Listen], l: &Listen) -> bool {
    all.is_empty()
        || all.iter().any(|m| {
            m.proto == l.proto
                && m.addr.port() == l.addr.port()
                && (m.addr.ip() == l.addr.ip() || m.addr.ip().is_unspecified())
        })
}

/// Groups rows into sets (in order of first appearance), skipping bad rows
/// with a logged reason naming the row (its `id` column for database rows,
/// its position otherwise).
pub fn build_sets(part: &str, rows: &[Row], listen: &[Listen]) -> (Vec<Set>, usize) {
    let mut by_id: Vec<(i64, Vec<Dest>)> = Vec::new();
    let mut bad = 0;
    for (i, r) in rows.iter().enumerate() {
        match build_dest(r, listen) {
            Ok(d) => match by_id.iter_mut().find(|(id, _)| *id == r.setid) {
                Some((_, v)) => v.push(d),
                None => by_id.push((r.setid, vec![d])),
            },
            Err(e) => {
                bad += 1;
                let which = match r.id {
                    Some(id) => format!("row id {id}"),
                    None => format!("row {}", i + 1),
                };
                super::report(
                    tracing::Level::ERROR,
                    format!("dispatcher: partition {part}: {which} skipped: {e}"),
                );
            }
        }
    }
    (
        by_id.into_iter().map(|(id, d)| Set::new(id, d)).collect(),
        bad,
    )
}

/// Parses an OpenSIPS dispatcher.list: `setid destination [flags
/// [priority [attrs [description]]]]`, `#` comments. Flags: `0` active,
/// `1` inactive, `2` probing (OpenSIPS state bits); a `weight=N` in attrs
/// sets the weight as OpenSIPS 1.x list files did.
pub fn parse_list(text: &str) -> (Vec<Row>, Vec<String>) {
    let mut rows = Vec::new();
    let mut errs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut f = line
            .splitn(6, char::is_whitespace)
            .filter(|s| !s.is_empty());
        let (Some(setid), Some(uri)) = (f.next(), f.next()) else {
            errs.push(format!("line {}: expected 'setid destination'", n + 1));
            continue;
        };
        let Ok(setid) = setid.parse::<i64>() else {
            errs.push(format!("line {}: set id '{setid}' is not a number", n + 1));
            continue;
        };
        let mut row = Row {
            setid,
            uri: uri.to_string(),
            weight: 1,
            ..Row::default()
        };
        if let Some(flags) = f.next() {
            match flags.parse::<u8>() {
                Ok(v) if v & 2 != 0 || v & 8 != 0 => row.state = PROBING,
                Ok(v) if v & 1 != 0 || v & 4 != 0 => row.state = INACTIVE,
                Ok(_) => {}
                Err(_) => {
                    errs.push(format!("line {}: flags '{flags}' is not a number", n + 1));
                    continue;
                }
            }
        }
        if let Some(p) = f.next() {
            match p.parse() {
                Ok(v) => row.priority = v,
                Err(_) => {
                    errs.push(format!("line {}: priority '{p}' is not a number", n + 1));
                    continue;
                }
            }
        }
        if let Some(a) = f.next() {
            row.attrs = a.to_string();
            if let Some(w) = a
                .split(';')
                .find_map(|kv| kv.trim().strip_prefix("weight="))
            {
                match w.parse() {
                    Ok(v) => row.weight = v,
                    Err(_) => {
                        errs.push(format!("line {}: weight '{w}' is not a number", n + 1));
                        continue;
                    }
                }
            }
        }
        if let Some(d) = f.next() {
            row.description = d.trim().to_string();
        }
        rows.push(row);
    }
    (rows, errs)
}

/// Reads a partition's rows from its source, with the number of rows (or
/// lines) skipped because they did not read (each one logged).
pub fn read_source(part: &str, src: &Source) -> Result<(Vec<Row>, usize), String> {
    let (rows, errs, what) = match src {
        Source::Rows(r) => return Ok((r.clone(), 0)),
        Source::ListFile(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let (rows, errs) = parse_list(&text);
            (rows, errs, p.display().to_string())
        }
        Source::Db { url, table, .. } => {
            let (rows, errs) = super::db::read(url, table).map_err(|e| e.to_string())?;
            (rows, errs, format!("table {table}"))
        }
    };
    for e in &errs {
        super::report(
            tracing::Level::ERROR,
            format!("dispatcher: partition {part}: {what}: {e}, skipped"),
        );
    }
    Ok((rows, errs.len()))
}

/// Copies the state of destinations that survive (same partition, set and
/// URI) from `old` into `new`.
pub fn inherit_state(old: &Sets, new: &Sets) {
    for np in &new.partitions {
        let Some(op) = old.partition(Some(&np.name)) else {
            continue;
        };
        for ns in np.sets.iter() {
            let Some(os) = op.set(ns.id) else { continue };
            for nd in &ns.dests {
                if let Some(od) = os.dests.iter().find(|d| d.uri == nd.uri) {
                    nd.set_state(od.state());
                    nd.hits
                        .store(od.hits.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_file_lines() {
        let (rows, errs) = parse_list(
            "# comment\n1 sip:10.0.0.1:5070\n1 sip:10.0.0.2 1 5 weight=3;x=y box two\nx sip:a\n2 sip:[::1]:5080 0 0\n",
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].state, INACTIVE);
        assert_eq!(rows[1].priority, 5);
        assert_eq!(rows[1].weight, 3);
        assert_eq!(rows[1].description, "box two");
        let d = build_dest(&rows[2], &[]).expect("dest");
        assert_eq!((d.host.as_str(), d.port), ("::1", 5080));
        assert!(d.ip.is_some());
    }

    #[test]
    fn bad_rows_are_skipped() {
        let rows = vec![
            Row {
                setid: 1,
                uri: "nonsense".into(),
                ..Row::default()
            },
            Row {
                setid: 1,
                uri: "sip:h.example".into(),
                ..Row::default()
            },
        ];
        let (sets, bad) = build_sets("default", &rows, &[]);
        assert_eq!(bad, 1);
        assert_eq!(sets[0].dests.len(), 1);
        assert_eq!(sets[0].dests[0].port, 5060);
    }

    #[test]
    fn sockets_must_be_listeners() {
        use crate::config::parse_listen;
        let l = |s: &str| parse_listen(s).expect("listen");
        let ours = [l("udp:10.0.0.1:5060"), l("tcp:0.0.0.0:5070")];
        assert!(listener_in(&ours, &l("udp:10.0.0.1:5060")));
        assert!(listener_in(&ours, &l("tcp:10.9.9.9:5070")), "wildcard");
        assert!(!listener_in(&ours, &l("udp:10.0.0.2:5060")));
        assert!(!listener_in(&ours, &l("tcp:10.0.0.1:5060")));
        assert!(
            listener_in(&[], &l("udp:10.0.0.2:5060")),
            "no list: no check"
        );
    }

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
