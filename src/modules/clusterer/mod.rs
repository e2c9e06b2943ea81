//! clusterer (OpenSIPS module of the same name, 3.4 `modules/clusterer/`):
//! the nodes of the clusters this node belongs to, given in the
//! configuration (`db_mode = 0`, `my_node_info`, `neighbor_node_info`),
//! and BIN packets between them over TCP ([`link`], [`bin`]) for the
//! modules' capabilities (tm's `tm-repl`). Pings, topology and sharing
//! tags are not implemented: a neighbour's link is judged by its TCP
//! connection. See docs/clusterer.md.

pub mod bin;
pub mod link;
mod nodes;

use serde_json::{json, Value};
use std::rc::Rc;
use std::sync::Arc;

use crate::mi::{Command, Ctx, MiError, Params};
use crate::modules::{cfg, param, Module, Param, ParamKind};
pub use link::{send, SendRet};
pub use nodes::Node;

/// A module's handler of the packets of one capability (OpenSIPS
/// `register_capability`), on the first worker.
pub struct Capability {
    pub name: &'static str,
    pub on_packet: fn(&Rc<crate::proxy::worker::Worker>, bin::Packet),
}

/// The capabilities packets are dispatched to, declared once.
pub static CAPABILITIES: &[Capability] = &[Capability {
    name: crate::modules::tm::cluster::CAPABILITY,
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
}

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
    let mut c = ClConf::default();
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(Prepared { conf: c });
    };
    let e = |key: &str, m: String| format!("config.modules.clusterer.{key}: {m}");
    let db_mode = cfg::int(&t, M, "db_mode")?.unwrap_or(1);
    if db_mode != 0 {
        // OpenSIPS then reads the nodes from its `clusterer` table and
        // ignores my_node_info/neighbor_node_info; lunasip reads no such
        // table: this node is in no cluster (tm_replication_cluster says so).
        return Ok(Prepared { conf: c });
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
    Ok(Prepared { conf: c })
}

impl Prepared {
    /// This node's id (0 when the module is not configured).
    pub fn my_id(&self) -> i32 {
        self.conf.my_id
    }

    /// The clusters this node belongs to.
    pub fn clusters(&self) -> Vec<i32> {
        self.conf.me.iter().map(|n| n.cluster).collect()
    }

    pub fn commit(self, staged: &mut crate::state::Staged) {
        staged.put(self.conf);
    }
}
crate::modules::staged_settings!(Prepared);

/// Binds the listener once the first configuration is in force.
fn init() -> Result<(), String> {
    link::init()
}

/// MI `clusterer_list` (OpenSIPS clusterer_mod.c): every cluster with
/// its other nodes.
fn mi_clusterer_list(_: &Ctx, _: &Params) -> Result<Value, MiError> {
    let c = conf();
    let links = link::all();
    let clusters: Vec<Value> = c
        .me
        .iter()
        .map(|me| {
            let nodes: Vec<Value> = links
                .iter()
                .filter(|l| l.node.cluster == me.cluster)
                .map(|l| {
                    let state = l.state();
                    json!({
                        "node_id": l.node.node_id,
                        "db_id": -1,
                        "url": l.node.url,
                        "link_state": state.name(),
                        "state": "enabled",
                        // Direct links only: a node is its own next hop.
                        "next_hop": if state == link::LinkState::Down { "none".to_string() } else { l.node.node_id.to_string() },
                        "description": "none",
                    })
                })
                .collect();
            json!({"cluster_id": me.cluster, "Nodes": nodes})
        })
        .collect();
    Ok(json!({ "Clusters": clusters }))
}

const I: ParamKind = ParamKind::Int;
const S: ParamKind = ParamKind::Str;

static PARAMS: &[Param] = &[
    param("my_node_id", I, "none", "This node's id (else `node_id` of `my_node_info`).").also(&["current_id"]),
    param("db_mode", I, "1", "0: the nodes are the ones `my_node_info`/`neighbor_node_info` describe. OpenSIPS's default 1 reads them from the `clusterer` table, which lunasip does not: with it the node is in no cluster."),
    param("my_node_info", S, "none", "This node in a cluster, `\"cluster_id=1,node_id=1,url=bin:127.0.0.1:5566\"` (a list for several clusters); lunasip listens for BIN packets on the url's TCP address.").also(&["current_info"]),
    param("neighbor_node_info", S, "none", "Another node, in the same form (a list of them); properties `cluster_id`, `node_id`, `url` (`bin:IP:port`), and `priority`, `no_ping_retries`, `sip_addr`, `flags` accepted.").also(&["neighbor_info"]),
];

static MI: &[Command] = &[Command {
    name: "clusterer_list",
    help: "Lists the clusters this node belongs to and their other nodes, with the state of the link to each.",
    module: "clusterer",
    params: &[],
    result: "`{\"Clusters\": [{\"cluster_id\", \"Nodes\": [{\"node_id\", \"db_id\", \"url\", \"link_state\" (Up, Down, Probe: not tried yet), \"state\", \"next_hop\", \"description\"}]}]}`",
    handler: mi_clusterer_list,
}];

pub static MODULE: Module = Module {
    name: "clusterer",
    table: None,
    doc: "The nodes of a cluster and BIN packets between them over TCP (OpenSIPS clusterer and proto_bin), used by tm's `t_anycast_replicate`.",
    params: PARAMS,
    mi: MI,
    init: Some(init),
    child_init: Some(link::child_init),
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
