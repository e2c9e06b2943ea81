//! Dispatcher (OpenSIPS dispatcher): sets of destinations, the OpenSIPS
//! selection algorithms, failover through `ds_next_dst`, and the
//! `ds_list` / `ds_reload` / `ds_set_state` MI commands. See
//! docs/dispatcher.md.
//!
//! The loaded sets live in one process-wide [`Arc<Sets>`]: a call takes
//! the `Arc` once (a shared read lock held for a pointer copy), per
//! destination state is atomic, and a reload builds new sets and swaps the
//! pointer, keeping the state of destinations that survived.

pub mod db;
pub mod lua;
pub mod mi;
pub mod probe;
pub mod select;
pub mod sets;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use mlua::{Table, Value};

use sets::{Partition, Row, Sets, Source};

pub use lua::MODULE;

static SETS: RwLock<Option<Arc<Sets>>> = RwLock::new(None);

/// Held while sets are read from their sources and swapped in, so that a
/// config load, an MI `ds_reload` and a database retry never interleave
/// (each builds from the sets in force and installs).
static LOADING: Mutex<()> = Mutex::new(());

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

/// The current sets (empty when the module is not configured).
pub fn current() -> Arc<Sets> {
    let g = SETS.read().unwrap_or_else(|e| e.into_inner());
    match g.as_ref() {
        Some(s) => s.clone(),
        None => Arc::new(Sets::default()),
    }
}

/// Installs new sets; with `inherit`, destinations that survive keep their
/// state.
pub fn install(new: Sets, inherit: bool) {
    let mut g = SETS.write().unwrap_or_else(|e| e.into_inner());
    if inherit {
        if let Some(old) = g.as_ref() {
            sets::inherit_state(old, &new);
        }
    }
    *g = Some(Arc::new(new));
}

/// Settings of one partition before its destinations are loaded.
#[derive(Debug, Clone)]
pub struct PartitionConf {
    pub name: String,
    pub source: Source,
    pub hash_pvar: Option<String>,
    pub pvar_algo_pattern: Option<String>,
    pub algo_route: Option<String>,
    pub attrs_avp: Option<String>,
    pub names: sets::AvpNames,
}

/// Loads partitions from their sources; a partition whose source cannot
/// be read is an error naming it.
pub fn load(confs: &[PartitionConf]) -> Result<Sets, String> {
    let mut out = Sets::default();
    for c in confs {
        out.partitions.push(load_one(c)?);
    }
    Ok(out)
}

fn load_one(c: &PartitionConf) -> Result<Partition, String> {
    let (rows, unread) = sets::read_source(&c.name, &c.source)
        .map_err(|e| format!("dispatcher: partition {}: {e}", c.name))?;
    let (built, bad) = sets::build_sets(&c.name, &rows);
    let mut p = partition(c, built);
    p.bad_rows = unread + bad;
    Ok(p)
}

/// [`load`] for a config read: a database that cannot be read leaves its
/// partition as it was (empty at start) with a logged error, and is tried
/// again in the background; other sources that cannot be read are errors.
fn load_for_config(confs: &[PartitionConf]) -> Result<Sets, String> {
    let old = current();
    let mut out = Sets::default();
    for c in confs {
        match (load_one(c), &c.source) {
            (Ok(p), _) => {
                db::loaded(&c.name);
                out.partitions.push(p);
            }
            (Err(e), Source::Db { retry, .. }) => {
                let kept = old
                    .partition(Some(&c.name))
                    .filter(|p| p.source.same_table(&c.source));
                let what = match kept {
                    Some(_) => "keeping the destinations loaded before",
                    None => "the partition stays empty until it loads",
                };
                report(
                    tracing::Level::ERROR,
                    format!("{e}; {what}; trying again every {} s", retry.as_secs_f64()),
                );
                db::retry_later(&c.name, *retry);
                let mut p = partition(c, Vec::new());
                if let Some(k) = kept {
                    p.sets = k.sets.clone();
                    p.bad_rows = k.bad_rows;
                }
                out.partitions.push(p);
            }
            (Err(e), _) => return Err(e),
        }
    }
    Ok(out)
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
    let _loading = LOADING.lock().unwrap_or_else(|e| e.into_inner());
    let cur = current();
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
            new.partitions.push(load_one(c)?);
        }
    }
    install(new, inherit);
    for p in &new_names(only, &cur) {
        db::loaded(p);
    }
    Ok(())
}

/// Reads `config.modules.dispatcher` (absent: the module stays empty) and
/// installs the sets. Called when the script's config is read, so a script
/// reload re-reads it, keeping destination states.
pub fn configure(modules: &Table) -> Result<(), String> {
    let probing = match modules.get::<Value>("dispatcher") {
        Ok(Value::Table(t)) => probe::parse(&t)?,
        _ => probe::ProbeConf::default(),
    };
    probe::install(probing);
    match parse_config(modules)? {
        None => install(Sets::default(), false),
        Some(confs) => {
            let _ = crate::stats::register_gauge("dispatcher", "bad_rows", bad_rows);
            let _loading = LOADING.lock().unwrap_or_else(|e| e.into_inner());
            install(load_for_config(&confs)?, true);
        }
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

/// The partitions `config.modules.dispatcher` declares (None when absent).
pub fn parse_config(modules: &Table) -> Result<Option<Vec<PartitionConf>>, String> {
    let t = match modules
        .get::<Value>("dispatcher")
        .map_err(|e| e.to_string())?
    {
        Value::Nil => return Ok(None),
        Value::Table(t) => t,
        other => {
            return Err(format!(
                "config.modules.dispatcher must be a table, not {}",
                other.type_name()
            ))
        }
    };
    let mut confs = Vec::new();
    match t.get::<Value>("partitions").map_err(|e| e.to_string())? {
        Value::Nil => confs.push(partition_conf("default", &t)?),
        Value::Table(parts) => {
            for pair in parts.pairs::<String, Table>() {
                let (name, pt) = pair.map_err(|e| {
                    format!("config.modules.dispatcher.partitions: each entry must be name = {{ … }}: {e}")
                })?;
                confs.push(partition_conf(&name, &pt)?);
            }
            confs.sort_by(|a, b| {
                (a.name != "default", &a.name).cmp(&(b.name != "default", &b.name))
            });
        }
        other => {
            return Err(format!(
                "config.modules.dispatcher.partitions must be a table, not {}",
                other.type_name()
            ))
        }
    }
    Ok(Some(confs))
}

fn text(t: &Table, key: &str, what: &str) -> Result<Option<String>, String> {
    match t.get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_str().map_err(|e| e.to_string())?.to_string())),
        Value::Integer(i) => Ok(Some(i.to_string())),
        other => Err(format!(
            "config.modules.dispatcher: {what}.{key} must be a string, not {}",
            other.type_name()
        )),
    }
}

fn int(t: &Table, key: &str, what: &str) -> Result<Option<i64>, String> {
    match t.get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        Value::Integer(i) => Ok(Some(i)),
        Value::Number(n) if n.fract() == 0.0 => Ok(Some(n as i64)),
        Value::String(s) => s
            .to_str()
            .map_err(|e| e.to_string())?
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("config.modules.dispatcher: {what}.{key} must be a number")),
        other => Err(format!(
            "config.modules.dispatcher: {what}.{key} must be a number, not {}",
            other.type_name()
        )),
    }
}

/// One partition: `list_file = "path"`, or `sets = { [1] = { "sip:a", {
/// uri = "sip:b", weight = 3 } } }`, or `destinations = { { setid = 1,
/// destination = "sip:a", … } }` (the columns of OpenSIPS's table).
fn partition_conf(name: &str, t: &Table) -> Result<PartitionConf, String> {
    let what = format!("partition {name}");
    let db_url = text(t, "db_url", &what)?;
    let list_file = text(t, "list_file", &what)?;
    if db_url.is_some() && list_file.is_some() {
        return Err(format!(
            "config.modules.dispatcher: {what}: db_url and list_file are two sources; give one"
        ));
    }
    let source = if let Some(url) = db_url {
        db::check_url(&url).map_err(|e| format!("config.modules.dispatcher: {what}: {e}"))?;
        let table = text(t, "table_name", &what)?.unwrap_or_else(|| db::DEFAULT_TABLE.into());
        db::check_table(&table).map_err(|e| format!("config.modules.dispatcher: {what}: {e}"))?;
        let retry = match int(t, "db_retry_interval", &what)? {
            None => db::DEFAULT_RETRY,
            Some(n) if n >= 1 => std::time::Duration::from_secs(n as u64),
            Some(_) => {
                let e = "db_retry_interval must be 1 or more (seconds)";
                return Err(format!("config.modules.dispatcher: {what}.{e}"));
            }
        };
        Source::Db { url, table, retry }
    } else if let Some(f) = list_file {
        Source::ListFile(PathBuf::from(f))
    } else {
        let mut rows = Vec::new();
        if let Value::Table(sets) = t.get::<Value>("sets").map_err(|e| e.to_string())? {
            for pair in sets.pairs::<Value, Table>() {
                let (id, dests) = pair.map_err(|e| format!("{what}: sets: {e}"))?;
                let id = match id {
                    Value::Integer(i) => i,
                    Value::Number(n) => n as i64,
                    Value::String(s) => s
                        .to_str()
                        .map_err(|e| e.to_string())?
                        .trim()
                        .parse()
                        .map_err(|_| format!("{what}: set id must be a number"))?,
                    other => return Err(format!("{what}: bad set id {}", other.type_name())),
                };
                for d in dests.sequence_values::<Value>() {
                    let d = d.map_err(|e| e.to_string())?;
                    rows.push(row(id, &d, &what)?);
                }
            }
            rows.sort_by_key(|r| r.setid);
        }
        if let Value::Table(ds) = t.get::<Value>("destinations").map_err(|e| e.to_string())? {
            for d in ds.sequence_values::<Value>() {
                let d = d.map_err(|e| e.to_string())?;
                let id = match &d {
                    Value::Table(dt) => int(dt, "setid", &what)?
                        .ok_or_else(|| format!("{what}: a destination has no setid"))?,
                    _ => return Err(format!("{what}: destinations must be tables")),
                };
                rows.push(row(id, &d, &what)?);
            }
        }
        Source::Rows(rows)
    };
    Ok(PartitionConf {
        name: name.to_string(),
        source,
        hash_pvar: text(t, "hash_pvar", &what)?,
        pvar_algo_pattern: text(t, "pvar_algo_pattern", &what)?,
        algo_route: text(t, "algo_route", &what)?,
        attrs_avp: text(t, "attrs_avp", &what)?,
        names: sets::AvpNames {
            dst: avp_param(t, "dst_avp", &what)?,
            grp: avp_param(t, "grp_avp", &what)?,
            cnt: avp_param(t, "cnt_avp", &what)?,
            setid_pvar: text(t, "setid_pvar", &what)?,
        },
    })
}

/// `dst_avp = "$avp(name)"` (or a bare name).
fn avp_param(t: &Table, key: &str, what: &str) -> Result<Option<String>, String> {
    let v = text(t, key, what)?;
    if let Some(n) = &v {
        let bare = n.trim().trim_start_matches("$avp(").trim_end_matches(')');
        if bare.is_empty() || bare.contains(['$', '(', ')', ' ']) {
            return Err(format!(
                "config.modules.dispatcher: {what}.{key}: '{n}' is not an AVP"
            ));
        }
    }
    Ok(v)
}

fn row(setid: i64, v: &Value, what: &str) -> Result<Row, String> {
    let mut r = Row {
        setid,
        weight: 1,
        ..Row::default()
    };
    match v {
        Value::String(s) => r.uri = s.to_str().map_err(|e| e.to_string())?.to_string(),
        Value::Table(t) => {
            r.uri = text(t, "uri", what)?
                .or(text(t, "destination", what)?)
                .ok_or_else(|| format!("{what}: set {setid}: a destination has no uri"))?;
            r.socket = text(t, "socket", what)?.filter(|s| !s.is_empty());
            if let Some(s) = text(t, "state", what)? {
                r.state = sets::parse_state(&s)
                    .ok_or_else(|| format!("{what}: set {setid}: bad state '{s}'"))?;
            }
            if let Some(w) = int(t, "weight", what)? {
                r.weight = u32::try_from(w)
                    .map_err(|_| format!("{what}: set {setid}: weight must be 0 or more"))?;
            }
            r.priority = int(t, "priority", what)?.unwrap_or(0);
            r.attrs = text(t, "attrs", what)?.unwrap_or_default();
            r.description = text(t, "description", what)?.unwrap_or_default();
        }
        other => {
            return Err(format!(
                "{what}: set {setid}: a destination must be a URI or a table, not {}",
                other.type_name()
            ))
        }
    }
    Ok(r)
}

/// Changes a destination's state; the one place a state change happens,
/// so the E_DISPATCHER_STATUS event can be raised here once the event
/// interface exists.
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confs(lua_text: &str) -> Result<Option<Vec<PartitionConf>>, String> {
        let lua = mlua::Lua::new();
        let t: Table = lua.load(lua_text).eval().map_err(|e| e.to_string())?;
        parse_config(&t)
    }

    #[test]
    fn config_forms() {
        assert!(confs("return {}").expect("ok").is_none());
        let c = confs(
            r#"return { dispatcher = { partitions = {
                 b = { destinations = { { setid = 3, destination = "sip:10.0.0.3", weight = "2", state = "i" } } },
                 default = { hash_pvar = "$fU", sets = { [2] = { "sip:10.0.0.2" }, [1] = { "sip:10.0.0.1", { uri = "sip:10.0.0.9:5080", weight = 3, priority = 1, attrs = "x=1" } } } },
               } } }"#,
        )
        .expect("ok")
        .expect("some");
        assert_eq!(c[0].name, "default");
        assert_eq!(c[0].hash_pvar.as_deref(), Some("$fU"));
        let sets = load(&c).expect("load");
        let d = sets.partition(None).expect("default");
        assert_eq!(d.sets.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1, 2]);
        let s1 = d.set(1).expect("set 1");
        assert_eq!(s1.dests[1].port, 5080);
        assert_eq!(s1.dests[1].weight, 3);
        let b = sets.partition(Some("b")).expect("b");
        let dst = &b.set(3).expect("set 3").dests[0];
        assert_eq!((dst.weight, dst.state()), (2, sets::INACTIVE));
        assert!(confs("return { dispatcher = { sets = { [1] = { 5 } } } }").is_err());
        assert!(confs("return { dispatcher = 1 }").is_err());
    }

    #[test]
    fn database_source_keys() {
        let c = confs(
            r#"return { dispatcher = { db_url = "mysql://root@127.0.0.1:3306/test", db_retry_interval = 2 } }"#,
        )
        .expect("ok")
        .expect("some");
        match &c[0].source {
            Source::Db { url, table, retry } => {
                assert_eq!(url, "mysql://root@127.0.0.1:3306/test");
                assert_eq!(table, "dispatcher");
                assert_eq!(retry.as_secs(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(confs(r#"return { dispatcher = { db_url = "nope" } }"#).is_err());
        assert!(confs(
            r#"return { dispatcher = { db_url = "mysql://h/d", table_name = "t; drop" } }"#
        )
        .is_err());
        assert!(
            confs(r#"return { dispatcher = { db_url = "mysql://h/d", list_file = "/x" } }"#)
                .is_err()
        );
        assert!(confs(
            r#"return { dispatcher = { db_url = "mysql://h/d", db_retry_interval = 0 } }"#
        )
        .is_err());
    }

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
