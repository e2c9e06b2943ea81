//! clusterer (OpenSIPS module of the same name, 3.4 `modules/clusterer/`):
//! the nodes of the clusters this node belongs to, given in the
//! configuration (`db_mode = 0`, `my_node_info`, `neighbor_node_info`),
//! BIN packets between them over TCP ([`link`], [`bin`]), pings and
//! link states ([`heartbeat`]), the topology learned from the other
//! nodes and routing through a next hop ([`proto`], [`topo`], [`send`]),
//! sharing tags ([`shtag`]), and the modules' capabilities (tm's
//! `tm-repl`). See docs/clusterer.md.

pub mod bin;
mod db;
mod generic;
pub mod heartbeat;
pub mod link;
mod mi;
mod nodes;
pub mod proto;
pub mod send;
pub mod shtag;
pub mod topo;

use std::rc::Rc;
use std::sync::Arc;

use crate::modules::{cfg, param, Module, Param, ParamKind};
pub use nodes::Node;
pub use send::{send, SendRet};

/// A module's handler of the packets of one capability (OpenSIPS
/// `register_capability`), on the first worker.
pub struct Capability {
    pub name: &'static str,
    /// The cluster it is registered in (0: none).
    pub cluster: fn() -> i32,
    pub on_packet: fn(&Rc<crate::proxy::worker::Worker>, bin::Packet),
}

/// The capabilities packets are dispatched to, declared once.
pub static CAPABILITIES: &[Capability] = &[Capability {
    name: crate::modules::tm::cluster::CAPABILITY,
    cluster: || crate::modules::tm::cluster::conf().cluster,
    on_packet: crate::modules::tm::cluster::on_packet,
}];

/// clusterer's settings in force.
#[derive(Debug, Clone, Default)]
pub struct ClConf {
    /// `my_node_id` (0: the module is not configured).
    pub my_id: i32,
    /// This node, once per cluster it belongs to (`my_node_info`).
    pub me: Vec<Node>,
    /// The other nodes (`neighbor_node_info`).
    pub neighbors: Vec<Node>,
    /// `db_mode` (0: the nodes come from the settings).
    pub db_mode: i64,
    /// The nodes of the `clusterer` table: node, row id, description,
    /// enabled.
    pub db_nodes: Vec<(Node, i32, Option<String>, bool)>,
    /// This node's `state` per cluster in the table (enabled when absent).
    pub me_enabled: std::collections::HashMap<i32, bool>,
    /// `ping_interval` (s), `ping_timeout` (ms), `node_timeout` (s).
    pub ping_interval: u32,
    pub ping_timeout: u32,
    pub node_timeout: u32,
    /// `sharing_tag`s: (name, cluster, active).
    pub sharing_tags: Vec<(String, i32, bool)>,
}

/// clusterer.h `DEFAULT_PING_INTERVAL`, `DEFAULT_PING_TIMEOUT`,
/// `DEFAULT_NODE_TIMEOUT`.
const PING_INTERVAL: u32 = 4;
const PING_TIMEOUT: u32 = 1000;
const NODE_TIMEOUT: u32 = 60;

/// The settings in force (the registry of this thread's environment).
pub fn conf() -> Arc<ClConf> {
    crate::state::module::<ClConf>()
}

/// This node's id (OpenSIPS clusterer API `get_my_id`); 0 when unset.
pub fn my_id() -> i32 {
    conf().my_id
}

/// `config.modules.clusterer`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    conf: ClConf,
    /// With `db_mode` 1: the nodes are read from this table at commit.
    db: Option<db::Source>,
}

const M: &str = "clusterer";

/// A string, or a list of strings (a parameter OpenSIPS takes repeatedly).
fn strings(t: &mlua::Table, key: &str) -> Result<Vec<String>, String> {
    match t.get::<mlua::Value>(key).map_err(|e| e.to_string())? {
        mlua::Value::Table(list) => list
            .sequence_values::<String>()
            .map(|v| v.map_err(|_| format!("config.modules.clusterer.{key}: a list of strings")))
            .collect(),
        _ => Ok(cfg::str(t, M, key)?.into_iter().collect()),
    }
}

/// Reads `config.modules.clusterer` (nothing bound yet).
pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let mut c = ClConf {
        ping_interval: PING_INTERVAL,
        ping_timeout: PING_TIMEOUT,
        node_timeout: NODE_TIMEOUT,
        db_mode: 1,
        ..ClConf::default()
    };
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(Prepared { conf: c, db: None });
    };
    let e = |key: &str, m: String| format!("config.modules.clusterer.{key}: {m}");
    // clusterer_mod.c `mod_init`: a value out of range is replaced by
    // the default, with a warning.
    let timing = |key: &str, min: i64, default: u32| -> Result<u32, String> {
        match cfg::int(&t, M, key)? {
            None => Ok(default),
            Some(v) if v >= min && v <= i64::from(u32::MAX / 1000) => Ok(v as u32),
            Some(v) => {
                tracing::warn!("config.modules.clusterer.{key}: invalid value {v}, using the default {default}");
                Ok(default)
            }
        }
    };
    c.ping_interval = timing("ping_interval", 1, PING_INTERVAL)?;
    c.ping_timeout = timing("ping_timeout", 1, PING_TIMEOUT)?;
    c.node_timeout = timing("node_timeout", 0, NODE_TIMEOUT)?;
    for d in strings(&t, "sharing_tag")? {
        c.sharing_tags.push(shtag::parse_param(&d).map_err(|m| e("sharing_tag", m))?);
    }
    let db_mode = cfg::int(&t, M, "db_mode")?.unwrap_or(1);
    c.db_mode = db_mode;
    if db_mode != 0 {
        // The nodes come from the `clusterer` table (read at commit);
        // my_node_info/neighbor_node_info are ignored, as in OpenSIPS.
        let src = db::prepare(&t, &mut c)?;
        return Ok(Prepared { conf: c, db: Some(src) });
    }
    // OpenSIPS 2.x names: current_id, current_info, neighbor_info.
    let my_id = cfg::int(&t, M, "my_node_id")?.or(cfg::int(&t, M, "current_id")?);
    let my_id = match my_id {
        Some(n) if n < 1 || n > i64::from(i32::MAX) => {
            return Err(e("my_node_id", format!("{n} is not a positive node id")))
        }
        n => n.map(|n| n as i32),
    };
    let mine = [strings(&t, "my_node_info")?, strings(&t, "current_info")?].concat();
    for d in mine {
        let n = nodes::parse(&d, my_id).map_err(|m| e("my_node_info", m))?;
        if my_id.is_some_and(|id| id != n.node_id) {
            return Err(e("my_node_info", format!("node_id {} is not my_node_id", n.node_id)));
        }
        c.my_id = n.node_id;
        c.me.push(n);
    }
    if c.me.is_empty() {
        return Err(e("my_node_info", "this node's description is required (cluster_id=…,url=bin:ip:port)".into()));
    }
    if let Some(bad) = c.me.iter().find(|n| n.node_id != c.my_id) {
        return Err(e("my_node_info", format!("node_id {} differs from {}", bad.node_id, c.my_id)));
    }
    if let Some(bad) = c.me.iter().find(|n| n.addr != c.me[0].addr) {
        return Err(e("my_node_info", format!("{}: this node has one BIN url, {}", bad.url, c.me[0].url)));
    }
    let neighbors = [strings(&t, "neighbor_node_info")?, strings(&t, "neighbor_info")?].concat();
    for d in neighbors {
        let n = nodes::parse(&d, None).map_err(|m| e("neighbor_node_info", m))?;
        if n.node_id == c.my_id {
            return Err(e("neighbor_node_info", format!("node {} is this node", n.node_id)));
        }
        if !c.me.iter().any(|m| m.cluster == n.cluster) {
            return Err(e("neighbor_node_info", format!("cluster {} has no my_node_info", n.cluster)));
        }
        if c.neighbors.iter().any(|o| o.cluster == n.cluster && o.node_id == n.node_id) {
            return Err(e("neighbor_node_info", format!("node {} given twice", n.node_id)));
        }
        c.neighbors.push(n);
    }
    Ok(Prepared { conf: c, db: None })
}

impl Prepared {
    /// This node's id (0 when the module is not configured).
    pub fn my_id(&self) -> i32 {
        self.conf.my_id
    }

    /// The clusters this node belongs to (None: they are read from the
    /// database at commit).
    pub fn clusters(&self) -> Option<Vec<i32>> {
        if self.db.is_some() {
            return None;
        }
        Some(self.conf.me.iter().map(|n| n.cluster).collect())
    }

    /// With `db_mode` 1 reads the nodes (a failure stops the start, as
    /// in OpenSIPS).
    pub fn commit(self, staged: &mut crate::state::Staged) -> Result<(), String> {
        let mut c = self.conf;
        if let Some(src) = &self.db {
            db::load(src, &mut c)?;
        }
        staged.put(c);
        Ok(())
    }
}
crate::modules::staged_settings!(Prepared);

/// Binds the listener once the first configuration is in force, and
/// builds the clusters and the sharing tags.
fn init() -> Result<(), String> {
    link::init()?;
    proto::init();
    let c = conf();
    let clusters: Vec<i32> = c.me.iter().map(|m| m.cluster).collect();
    shtag::init(&c.sharing_tags, &clusters);
    Ok(())
}

const I: ParamKind = ParamKind::Int;
const S: ParamKind = ParamKind::Str;

static PARAMS: &[Param] = &[
    param("my_node_id", I, "none", "This node's id (else `node_id` of `my_node_info`).").also(&["current_id"]),
    param("db_mode", I, "1", "0: the nodes are the ones `my_node_info`/`neighbor_node_info` describe; 1: the rows of the `clusterer` table (OpenSIPS 3.4 schema, version 4; `lunasip db init` creates it) of the clusters where `my_node_id` has a row, read at start."),
    param("db_url", S, "none", "Database of the `clusterer` table (db_mode 1)."),
    param("db_table", S, "clusterer", "Name of the nodes table."),
    param("my_node_info", S, "none", "This node in a cluster, `\"cluster_id=1,node_id=1,url=bin:127.0.0.1:5566\"` (a list for several clusters); lunasip listens for BIN packets on the url's TCP address.").also(&["current_info"]),
    param("neighbor_node_info", S, "none", "Another node, in the same form (a list of them); properties `cluster_id`, `node_id`, `url` (`bin:IP:port`), `priority` (default 50; the lower is preferred as next hop), `no_ping_retries` (default 3), `sip_addr`, and `flags` accepted.").also(&["neighbor_info"]),
    param("ping_interval", I, "4", "Seconds between pings to a node whose link is Up and that was sent nothing else meanwhile."),
    param("ping_timeout", I, "1000", "Milliseconds a pong may take; past it the node is pinged again, `no_ping_retries` times, then its link is Down."),
    param("node_timeout", I, "60", "Seconds before a node whose link is Down is pinged again."),
    param("sharing_tag", S, "none", "A sharing tag and its state at start, `\"name/cluster_id=active\"` or `=backup` (a list for several)."),
];

pub static MODULE: Module = Module {
    name: "clusterer",
    table: Some("clusterer"),
    doc: "The nodes of a cluster, their link states (pings), the topology learned from each other and BIN packets between them over TCP, routed through a next hop when two nodes are not linked (OpenSIPS clusterer and proto_bin); sharing tags; used by tm's `t_anycast_replicate`.",
    params: PARAMS,
    mi: mi::MI,
    exports: mi::EXPORTS,
    pvs: mi::PVS,
    events: mi::EVENTS,
    init: Some(init),
    child_init: Some(link::child_init),
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
