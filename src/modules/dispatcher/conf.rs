//! Reading `config.modules.dispatcher` into a [`Prepared`] value: every
//! parameter parsed and checked, nothing loaded, installed or connected.
//! The sets are loaded and installed by [`Prepared::commit`].


use mlua::{Table, Value};

use super::db;
use super::probe::{self, ProbeConf};
use super::sets::{self, Row, Source};

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

/// The dispatcher's configuration, read and checked but not applied.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub probing: ProbeConf,
    /// The declared partitions (None: the module is not configured).
    pub partitions: Option<Vec<PartitionConf>>,
}

/// Reads `config.modules.dispatcher` (absent: an empty module). No side
/// effect: sources are read at commit.
pub fn prepare(modules: &Table) -> Result<Prepared, String> {
    let probing = match modules.get::<Value>("dispatcher") {
        Ok(Value::Table(t)) => probe::parse(&t)?,
        _ => ProbeConf::default(),
    };
    Ok(Prepared {
        probing,
        partitions: parse_config(modules)?,
    })
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

/// The shared readers (`modules::cfg`), with errors naming the partition.
fn text(t: &Table, key: &str, what: &str) -> Result<Option<String>, String> {
    crate::modules::cfg::str(t, &format!("dispatcher: {what}"), key)
}

fn int(t: &Table, key: &str, what: &str) -> Result<Option<i64>, String> {
    crate::modules::cfg::int(t, &format!("dispatcher: {what}"), key)
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
        // A relative path is in the script's directory (as Kamailio's
        // ds_list_file, where this file format comes from).
        Source::ListFile(crate::script::cfg_path::from_script_dir(
            &crate::script::cfg_path::dir(),
            &f,
        ))
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
            script_attrs: avp_param(t, "script_attrs_avp", &what)?,
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
        let sets = super::super::load(&c).expect("load");
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
}
