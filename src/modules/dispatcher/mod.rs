//! Dispatcher (OpenSIPS dispatcher): sets of destinations, the OpenSIPS
//! selection algorithms, failover through `ds_next_dst`, and the
//! `ds_list` / `ds_reload` / `ds_set_state` MI commands. See
//! docs/dispatcher.md.
//!
//! The loaded sets live in one process-wide [`Arc<Sets>`]: a call takes
//! the `Arc` once (a shared read lock held for a pointer copy), per
//! destination state is atomic, and a reload builds new sets and swaps the
//! pointer, keeping the state of destinations that survived.

pub mod args;
pub mod conf;
pub mod db;
pub mod exports;
pub mod lua;
pub mod mi;
pub mod probe;
pub mod script_attrs;
pub mod select;
pub mod sets;
pub mod status;

use std::sync::{Arc, Mutex, RwLock};

use crate::config::Listen;
use sets::{Partition, Sets, Source};

pub use conf::{parse_config, prepare, PartitionConf, Prepared};
pub use exports::MODULE;

/// The sets in force (the registry's long-lived state: MI `ds_reload`
/// and the database retry replace them between config loads).
#[derive(Default)]
struct InForce {
    sets: RwLock<Option<Arc<Sets>>>,
    /// Held while sets are read from their sources and swapped in, so
    /// that a config load, an MI `ds_reload` and a database retry never
    /// interleave (each builds from the sets in force and installs).
    loading: Mutex<()>,
}

fn in_force() -> Arc<InForce> {
    crate::state::state::<InForce>()
}

/// Messages logged before the daemon's logger is up (the config is read
/// first), kept to be written once it is: see [`flush_early_log`].
static EARLY_LOG: Mutex<Vec<(tracing::Level, String)>> = Mutex::new(Vec::new());

/// Logs `msg` at `level`, or keeps it for [`flush_early_log`] when no
/// logger is installed yet.
pub fn report(level: tracing::Level, msg: String) {
    if !tracing::dispatcher::has_been_set() {
        let mut early = EARLY_LOG.lock().unwrap_or_else(|e| e.into_inner());
        if early.len() < 1000 {
            early.push((level, msg));
        }
        return;
    }
    match level {
        tracing::Level::ERROR => tracing::error!("{msg}"),
        tracing::Level::WARN => tracing::warn!("{msg}"),
        tracing::Level::INFO => tracing::info!("{msg}"),
        _ => tracing::debug!("{msg}"),
    }
}

/// Writes what [`report`] kept while there was no logger (the daemon calls
/// this once logging is set up).
pub fn flush_early_log() {
    let early = std::mem::take(&mut *EARLY_LOG.lock().unwrap_or_else(|e| e.into_inner()));
    for (level, msg) in early {
        report(level, msg);
    }
}

/// Takes what [`report`] kept while there was no logger (`lunasip check`
/// prints it).
pub fn take_early_log() -> Vec<String> {
    let early = std::mem::take(&mut *EARLY_LOG.lock().unwrap_or_else(|e| e.into_inner()));
    early.into_iter().map(|(_, msg)| msg).collect()
}

/// The current sets (empty when the module is not configured).
pub fn current() -> Arc<Sets> {
    let l = in_force();
    let g = l.sets.read().unwrap_or_else(|e| e.into_inner());
    match g.as_ref() {
        Some(s) => s.clone(),
        None => Arc::new(Sets::default()),
    }
}

/// Installs new sets; with `inherit`, destinations that survive keep their
/// state.
pub fn install(new: Sets, inherit: bool) {
    let l = in_force();
    let mut g = l.sets.write().unwrap_or_else(|e| e.into_inner());
    if inherit {
        if let Some(old) = g.as_ref() {
            sets::inherit_state(old, &new);
        }
    }
    let new = Arc::new(new);
    *g = Some(new.clone());
    drop(g);
    sets::resolve_names(new);
}

/// Loads partitions from their sources; a partition whose source cannot
/// be read is an error naming it.
pub fn load(confs: &[PartitionConf]) -> Result<Sets, String> {
    let listen = sets::listeners();
    let mut out = Sets::default();
    for c in confs {
        out.partitions.push(load_one(c, &listen)?);
    }
    Ok(out)
}

fn load_one(c: &PartitionConf, listen: &[Listen]) -> Result<Partition, String> {
    let (rows, unread) = sets::read_source(&c.name, &c.source)
        .map_err(|e| format!("dispatcher: partition {}: {e}", c.name))?;
    let (built, bad) = sets::build_sets(&c.name, &rows, listen);
    let mut p = partition(c, built);
    p.bad_rows = unread + bad;
    Ok(p)
}

/// What a config load does with a database source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbLoad {
    /// Not opened: the partition is left empty (`lunasip check`).
    Skip,
    /// Read; an error fails the load (`lunasip check --connect`).
    Required,
    /// Read; an error keeps the partition as it was (empty at start) and
    /// schedules retries at commit (the daemon, as OpenSIPS does).
    Retry,
}

/// What [`load_for_config`] read, to be installed by the caller.
struct Loaded {
    sets: Sets,
    /// Partitions whose source was read.
    read: Vec<String>,
    /// Databases that could not be read: partition, message, retry interval.
    down: Vec<(String, String, std::time::Duration)>,
}

/// [`load`] for a config: reads every source (databases as `db` says)
/// without installing anything; other sources that cannot be read are
/// errors.
fn load_for_config(
    confs: &[PartitionConf],
    listen: &[Listen],
    db: DbLoad,
) -> Result<Loaded, String> {
    let old = current();
    let mut out = Loaded {
        sets: Sets::default(),
        read: Vec::new(),
        down: Vec::new(),
    };
    for c in confs {
        let skip = db == DbLoad::Skip && matches!(c.source, Source::Db { .. });
        if skip {
            out.sets.partitions.push(partition(c, Vec::new()));
            continue;
        }
        match (load_one(c, listen), &c.source) {
            (Ok(p), _) => {
                out.read.push(c.name.clone());
                out.sets.partitions.push(p);
            }
            (Err(e), Source::Db { retry, .. }) if db == DbLoad::Retry => {
                let kept = old
                    .partition(Some(&c.name))
                    .filter(|p| p.source.same_table(&c.source));
                let what = match kept {
                    Some(_) => "keeping the destinations loaded before",
                    None => "the partition stays empty until it loads",
                };
                let msg = format!("{e}; {what}; trying again every {} s", retry.as_secs_f64());
                out.down.push((c.name.clone(), msg, *retry));
                let mut p = partition(c, Vec::new());
                if let Some(k) = kept {
                    p.sets = k.sets.clone();
                    p.bad_rows = k.bad_rows;
                }
                out.sets.partitions.push(p);
            }
            (Err(e), _) => return Err(e),
        }
    }
    Ok(out)
}

impl Prepared {
    /// Reads the sources and installs the sets and the probing settings.
    /// A source that cannot be read (other than a database, retried in
    /// the background) is an error and nothing changes.
    pub fn commit(self, listen: &[Listen], staged: &mut crate::state::Staged) -> Result<(), String> {
        let l = in_force();
        let _loading = l.loading.lock().unwrap_or_else(|e| e.into_inner());
        let loaded = match &self.partitions {
            Some(confs) => Some(load_for_config(confs, listen, DbLoad::Retry)?),
            None => None,
        };
        // Nothing below fails.
        sets::set_listeners(listen, staged);
        staged.put(self.probing);
        let Some(loaded) = loaded else {
            install(Sets::default(), false);
            return Ok(());
        };
        let counts: Vec<(String, usize, usize)> = loaded
            .sets
            .partitions
            .iter()
            .map(|p| (p.name.clone(), p.sets.iter().map(|s| s.dests.len()).sum(), p.bad_rows))
            .collect();
        install(loaded.sets, true);
        for name in &loaded.read {
            db::loaded(name);
        }
        // Status reports: what each partition now holds.
        for (name, n, bad) in &counts {
            let before = status::loading(name);
            match loaded.down.iter().any(|(d, _, _)| d == name) {
                true => status::failed(name, before),
                false => status::loaded(name, *n, *bad),
            }
        }
        for (name, msg, retry) in loaded.down {
            report(tracing::Level::ERROR, msg);
            db::retry_later(&name, retry);
        }
        Ok(())
    }

    /// Reads the sources as `db` says and installs nothing (`lunasip
    /// check`); returns one line per partition saying what it holds.
    pub fn verify(&self, listen: &[Listen], db: DbLoad) -> Result<Vec<String>, String> {
        let Some(confs) = &self.partitions else {
            return Ok(Vec::new());
        };
        let loaded = load_for_config(confs, listen, db)?;
        let lines = confs
            .iter()
            .zip(&loaded.sets.partitions)
            .map(|(c, p)| match &c.source {
                Source::Db { url, .. } if db == DbLoad::Skip => format!(
                    "dispatcher: partition {}: database {} not opened (--connect loads it)",
                    c.name,
                    db::redact(url)
                ),
                _ => {
                    let n: usize = p.sets.iter().map(|s| s.dests.len()).sum();
                    let bad = match p.bad_rows {
                        0 => String::new(),
                        1 => ", 1 row skipped".to_string(),
                        b => format!(", {b} rows skipped"),
                    };
                    let plural = |n: usize| if n == 1 { "" } else { "s" };
                    format!(
                        "dispatcher: partition {}: {n} destination{} in {} set{}{bad}",
                        c.name,
                        plural(n),
                        p.sets.len(),
                        plural(p.sets.len())
                    )
                }
            })
            .collect();
        Ok(lines)
    }
}

/// Rows skipped as malformed by the last load of every partition (the
/// `dispatcher:bad_rows` statistic).
pub fn bad_rows() -> u64 {
    current().partitions.iter().map(|p| p.bad_rows as u64).sum()
}

fn partition(c: &PartitionConf, built: Vec<sets::Set>) -> Partition {
    Partition {
        bad_rows: 0,
        name: c.name.clone(),
        sets: Arc::new(built),
        source: c.source.clone(),
        hash_pvar: c.hash_pvar.clone(),
        pvar_algo_pattern: c.pvar_algo_pattern.clone(),
        algo_route: c.algo_route.clone(),
        attrs_avp: c.attrs_avp.clone(),
        names: c.names.clone(),
    }
}

/// Re-reads every partition's source (or only `only`) and swaps the sets.
/// When a source cannot be read nothing changes: the error names it.
pub fn reload(only: Option<&str>, inherit: bool) -> Result<(), String> {
    let l = in_force();
    let _loading = l.loading.lock().unwrap_or_else(|e| e.into_inner());
    let cur = current();
    let listen = sets::listeners();
    if let Some(p) = only {
        if cur.partition(Some(p)).is_none() {
            return Err(format!("unknown partition '{p}'"));
        }
    }
    let confs: Vec<PartitionConf> = cur
        .partitions
        .iter()
        .map(|p| PartitionConf {
            name: p.name.clone(),
            source: p.source.clone(),
            hash_pvar: p.hash_pvar.clone(),
            pvar_algo_pattern: p.pvar_algo_pattern.clone(),
            algo_route: p.algo_route.clone(),
            attrs_avp: p.attrs_avp.clone(),
            names: p.names.clone(),
        })
        .collect();
    let mut new = Sets::default();
    for (c, p) in confs.iter().zip(cur.partitions.iter()) {
        if only.is_some_and(|o| o != c.name) {
            new.partitions.push(Partition {
                sets: p.sets.clone(),
                source: p.source.clone(),
                bad_rows: p.bad_rows,
                ..partition(c, Vec::new())
            });
        } else {
            let before = status::loading(&c.name);
            match load_one(c, &listen) {
                Ok(p) => new.partitions.push(p),
                Err(e) => {
                    status::failed(&c.name, before);
                    return Err(e);
                }
            }
        }
    }
    for p in &new.partitions {
        if only.is_none_or(|o| o == p.name) {
            let n = p.sets.iter().map(|s| s.dests.len()).sum();
            status::loaded(&p.name, n, p.bad_rows);
        }
    }
    install(new, inherit);
    for p in &new_names(only, &cur) {
        db::loaded(p);
    }
    Ok(())
}

/// The partitions a reload of `only` (None: all) read.
fn new_names(only: Option<&str>, cur: &Sets) -> Vec<String> {
    cur.partitions
        .iter()
        .filter(|p| only.is_none_or(|o| o == p.name))
        .map(|p| p.name.clone())
        .collect()
}

/// E_DISPATCHER_STATUS, as OpenSIPS 3.4 modules/dispatcher/dispatch.c
/// raises it (`partition` only for a partition other than the default).
pub static EVENTS: &[crate::event::EventDecl] = &[crate::event::EventDecl {
    name: "E_DISPATCHER_STATUS",
    params: &["partition", "group", "address", "status"],
    doc: "A destination's state changed: status `active`, or `inactive` for inactive and probing.",
}];

/// Changes a destination's state; the one place a state change happens,
/// and the one place E_DISPATCHER_STATUS is raised: on every change, with
/// status `inactive` for inactive and probing, as OpenSIPS does.
pub fn set_state(partition: &str, setid: i64, d: &sets::Dest, state: u8) {
    let old = d.state.swap(state, std::sync::atomic::Ordering::Relaxed);
    if old != state {
        tracing::info!(
            partition,
            group = setid,
            address = d.uri.as_str(),
            "dispatcher: destination {} is now {}",
            d.uri,
            sets::state_name(state)
        );
        let mut m = serde_json::Map::new();
        if partition != "default" {
            m.insert("partition".into(), partition.into());
        }
        m.insert("group".into(), setid.into());
        m.insert("address".into(), d.uri.as_str().into());
        let status = match state {
            sets::ACTIVE => "active",
            _ => "inactive",
        };
        m.insert("status".into(), status.into());
        crate::event::raise_declared("E_DISPATCHER_STATUS", m);
        self::status::state_changed(partition, setid, &d.uri, state == sets::ACTIVE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sets::Row;

    #[test]
    fn reload_keeps_state_of_survivors() {
        let old = load(&[PartitionConf {
            name: "default".into(),
            source: Source::Rows(vec![Row {
                setid: 1,
                uri: "sip:10.0.0.1".into(),
                ..Row::default()
            }]),
            hash_pvar: None,
            pvar_algo_pattern: None,
            algo_route: None,
            attrs_avp: None,
            names: Default::default(),
        }])
        .expect("old");
        old.partitions[0].sets[0].dests[0].set_state(sets::INACTIVE);
        let new = load(&[PartitionConf {
            name: "default".into(),
            source: Source::Rows(vec![
                Row {
                    setid: 1,
                    uri: "sip:10.0.0.2".into(),
                    ..Row::default()
                },
                Row {
                    setid: 1,
                    uri: "sip:10.0.0.1".into(),
                    ..Row::default()
                },
            ]),
            hash_pvar: None,
            pvar_algo_pattern: None,
            algo_route: None,
            attrs_avp: None,
            names: Default::default(),
        }])
        .expect("new");
        sets::inherit_state(&old, &new);
        let d = &new.partitions[0].sets[0].dests;
        assert_eq!(d[0].state(), sets::ACTIVE);
        assert_eq!(d[1].state(), sets::INACTIVE);
    }
}
