//! The nodes from the database (OpenSIPS 3.4 clusterer node_info.c
//! `load_db_info`, `db_mode = 1`): the rows of the `clusterer` table
//! (version 4) of every cluster in which this node (`my_node_id`) has a
//! row; its own rows describe it, the others are its neighbours.

use super::nodes::{parse_url, Node};
use super::ClConf;
use crate::db::{version, Ident};
use crate::modules::cfg;

/// Where the nodes are read from.
#[derive(Debug, Clone)]
pub struct Source {
    url: String,
    table: Ident,
}

const M: &str = "clusterer";

/// Reads `db_url`, `db_table` and `my_node_id` (required in this mode).
pub fn prepare(t: &mlua::Table, c: &mut ClConf) -> Result<Source, String> {
    let e = |key: &str, m: String| format!("config.modules.clusterer.{key}: {m}");
    let url = cfg::str(t, M, "db_url")?
        .ok_or_else(|| e("db_url", "required with db_mode 1 (or set db_mode = 0 and describe the nodes)".into()))?;
    crate::db::check_url(&url).map_err(|m| e("db_url", m.to_string()))?;
    let name = cfg::str(t, M, "db_table")?.unwrap_or_else(|| "clusterer".into());
    let table = Ident::new(&name).map_err(|m| e("db_table", m.to_string()))?;
    let id = cfg::int(t, M, "my_node_id")?.or(cfg::int(t, M, "current_id")?);
    c.my_id = match id {
        Some(n) if n >= 1 && n <= i64::from(i32::MAX) => n as i32,
        Some(n) => return Err(e("my_node_id", format!("{n} is not a positive node id"))),
        None => return Err(e("my_node_id", "required".into())),
    };
    Ok(Source { url, table })
}

/// Reads the table into `c` (`me`, `db_nodes`, `me_enabled`).
pub fn load(src: &Source, c: &mut ClConf) -> Result<(), String> {
    let err = |m: String| format!("clusterer: table {}: {m}", src.table.as_str());
    let db = crate::db::open(&src.url).map_err(|e| err(e.to_string()))?;
    version::check_wait(&db, "clusterer", &src.table).map_err(|e| err(e.to_string()))?;
    let t = &src.table;
    let rows = db
        .query_wait(
            &format!(
                "SELECT id, cluster_id, node_id, url, state, no_ping_retries, priority, sip_addr, flags, description \
                 FROM {t} WHERE cluster_id IN (SELECT cluster_id FROM {t} WHERE node_id = ?)"
            ),
            vec![crate::db::Value::Int(i64::from(c.my_id))],
        )
        .map_err(|e| err(e.to_string()))?;
    if rows.is_empty() {
        tracing::warn!("clusterer: current node does not belong to any cluster");
    }
    for r in &rows {
        let int = |k: &str| r.int(k).and_then(|v| i32::try_from(v).ok());
        let (Some(id), Some(cluster), Some(node_id), Some(url)) =
            (int("id"), int("cluster_id"), int("node_id"), r.text("url"))
        else {
            tracing::error!("clusterer: a row of {} lacks id, cluster_id, node_id or url; skipped", t.as_str());
            continue;
        };
        let addr = match parse_url(&url) {
            Ok(a) => a,
            Err(m) => {
                tracing::error!("clusterer: row {id} of {}: {m}; skipped", t.as_str());
                continue;
            }
        };
        let node = Node {
            cluster,
            node_id,
            url,
            addr,
            priority: int("priority").unwrap_or(50),
            no_ping_retries: int("no_ping_retries").unwrap_or(3),
            sip_addr: r.text("sip_addr"),
            flags: r.text("flags"),
        };
        let enabled = int("state").unwrap_or(1) != 0;
        if node_id == c.my_id {
            if c.me.first().is_some_and(|m| m.addr != node.addr) {
                return Err(err(format!("row {id}: this node has one BIN url, {}", c.me[0].url)));
            }
            c.me_enabled.insert(cluster, enabled);
            c.me.push(node);
        } else {
            c.db_nodes.push((node, id, r.text("description"), enabled));
        }
    }
    tracing::info!("clusterer: {} nodes of {} clusters read from {}", c.db_nodes.len(), c.me.len(), t.as_str());
    Ok(())
}
