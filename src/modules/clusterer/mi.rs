//! clusterer's surface: MI commands, script functions, the
//! `$cluster.sh_tag` variable and its events (OpenSIPS 3.4
//! clusterer_mod.c `mi_cmds`, `cmds`, `mod_vars`, clusterer_evi.c,
//! sharing_tags.c).

use mlua::{Lua, MultiValue};
use serde_json::{json, Value};

use super::proto::{lock, topology};
use super::shtag;
use super::topo::Ls;
use crate::mi::{opt, req, Command, Ctx, Kind, MiError, Params};
use crate::pv::PvDef;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::route::RouteMask;
use crate::script::host::State;

/// MI `clusterer_list` (clusterer_mod.c): every cluster with its other
/// nodes, the state of the link to each and the next hop towards it.
fn mi_list(_: &Ctx, _: &Params) -> Result<Value, MiError> {
    let t = topology();
    let clusters = lock(&t);
    let out: Vec<Value> = clusters
        .iter()
        .map(|cl| {
            let nodes: Vec<Value> = cl
                .nodes
                .iter()
                .map(|n| {
                    json!({
                        "node_id": n.id(),
                        "db_id": n.db_id,
                        "url": n.node.url,
                        "link_state": n.ls.name(),
                        "state": if n.enabled { "enabled" } else { "disabled" },
                        "next_hop": cl.next_hop(n.id()).map_or("none".to_string(), |h| h.to_string()),
                        "description": n.description.as_deref().unwrap_or("none"),
                    })
                })
                .collect();
            json!({"cluster_id": cl.id, "Nodes": nodes})
        })
        .collect();
    Ok(json!({ "Clusters": out }))
}

/// MI `clusterer_list_topology`: the adjacency lists this node knows.
fn mi_list_topology(_: &Ctx, _: &Params) -> Result<Value, MiError> {
    let t = topology();
    let clusters = lock(&t);
    let out: Vec<Value> = clusters
        .iter()
        .map(|cl| {
            let mut nodes = vec![json!({"node_id": cl.my_id(), "Neighbours": cl.my_neigh})];
            for n in &cl.nodes {
                let mut neigh = n.neighbours.clone();
                if n.ls == Ls::Up {
                    neigh.push(cl.my_id());
                }
                nodes.push(json!({"node_id": n.id(), "Neighbours": neigh}));
            }
            json!({"cluster_id": cl.id, "Nodes": nodes})
        })
        .collect();
    Ok(json!({ "Clusters": out }))
}

/// MI `clusterer_list_cap`: the capabilities registered here.
fn mi_list_cap(_: &Ctx, _: &Params) -> Result<Value, MiError> {
    let t = topology();
    let clusters = lock(&t);
    let out: Vec<Value> = clusters
        .iter()
        .map(|cl| {
            let caps: Vec<Value> = cl
                .caps
                .iter()
                .map(|c| json!({"name": c, "state": "Ok", "enabled": "yes"}))
                .collect();
            json!({"cluster_id": cl.id, "Capabilities": caps})
        })
        .collect();
    Ok(json!({ "Clusters": out }))
}

/// MI `clusterer_set_status` (clusterer.c `cl_set_state`): enables (1)
/// or disables (0) this node, or another node as seen from here.
fn mi_set_status(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let cluster = p.int("cluster_id").unwrap_or(0);
    if cluster < 1 {
        return Err(MiError::new(400, "Bad value for 'cluster_id'"));
    }
    let status = p.int("status").unwrap_or(-1);
    if status != 0 && status != 1 {
        return Err(MiError::new(400, "Bad value for 'status'"));
    }
    let t = topology();
    let mut fx = super::proto::Effects::default();
    {
        let mut clusters = lock(&t);
        let Some(cl) = clusters.iter_mut().find(|c| i64::from(c.id) == cluster) else {
            return Err(MiError::new(404, "Cluster id not found"));
        };
        let node = p.int("node_id").unwrap_or(i64::from(cl.my_id()));
        if node < 1 {
            return Err(MiError::new(400, "Bad value for 'node_id'"));
        }
        let on = status == 1;
        if node == i64::from(cl.my_id()) {
            cl.enabled = on;
            if !on {
                let ids: Vec<i32> = cl.nodes.iter().map(|n| n.id()).collect();
                for id in ids {
                    cl.set_link_w_neigh(Ls::Down, id);
                }
            } else {
                for n in cl.nodes.iter_mut() {
                    n.ls = Ls::RestartPinging;
                }
            }
        } else {
            let Some(n) = cl.nodes.iter_mut().find(|n| i64::from(n.id()) == node) else {
                return Err(MiError::new(404, "Node id not found"));
            };
            n.enabled = on;
            let id = n.id();
            if on {
                n.ls = Ls::RestartPinging;
            } else {
                cl.set_link_w_neigh_adv(Ls::Down, id, &mut fx.out);
            }
        }
        fx.collect(cl);
    }
    fx.apply(None);
    Ok(Value::String("OK".into()))
}

pub static MI: &[Command] = &[
    Command {
        name: "clusterer_list",
        help: "Lists the clusters this node belongs to and their other nodes, with the state of the link to each and the next hop towards it.",
        module: "clusterer",
        params: &[],
        result: "`{\"Clusters\": [{\"cluster_id\", \"Nodes\": [{\"node_id\", \"db_id\", \"url\", \"link_state\" (Up, Down, Probe: being pinged), \"state\" (enabled, disabled), \"next_hop\" (a node id, or none: unreachable), \"description\"}]}]}`",
        handler: mi_list,
    },
    Command {
        name: "clusterer_list_topology",
        help: "Lists the topology as this node knows it: each node's direct links.",
        module: "clusterer",
        params: &[],
        result: "`{\"Clusters\": [{\"cluster_id\", \"Nodes\": [{\"node_id\", \"Neighbours\": [ids]}]}]}` (this node first)",
        handler: mi_list_topology,
    },
    Command {
        name: "clusterer_list_cap",
        help: "Lists the capabilities registered on this node and their states.",
        module: "clusterer",
        params: &[],
        result: "`{\"Clusters\": [{\"cluster_id\", \"Capabilities\": [{\"name\", \"state\": \"Ok\", \"enabled\": \"yes\"}]}]}`",
        handler: mi_list_cap,
    },
    Command {
        name: "clusterer_set_status",
        help: "Enables (1) or disables (0) this node in a cluster, or another node as seen from this one; a disabled node is neither pinged nor sent to.",
        module: "clusterer",
        params: &[req("cluster_id", Kind::Int), req("status", Kind::Int), opt("node_id", Kind::Int)],
        result: "`\"OK\"`; errors 400 \"Bad value for 'cluster_id'\"/\"'status'\"/\"'node_id'\", 404 \"Cluster id not found\", 404 \"Node id not found\"",
        handler: mi_set_status,
    },
    Command {
        name: "clusterer_list_shtags",
        help: "Lists the sharing tags and their states on this node.",
        module: "clusterer",
        params: &[],
        result: "`[{\"Tag\", \"Cluster\", \"State\": \"active\"|\"backup\"}]`",
        handler: shtag::mi_list,
    },
    Command {
        name: "clusterer_shtag_set_active",
        help: "Makes a sharing tag active on this node; the other nodes of its cluster are told and turn it backup.",
        module: "clusterer",
        params: &[req("tag", Kind::Str)],
        result: "`\"OK\"`; errors 400 \"Bad tag format <name/cluster_id>\", 400 \"Bad cluster ID in tag\", 404 \"Cluster ID not found\"",
        handler: shtag::mi_set_active,
    },
];

/// clusterer.c `clusterer_check_addr`: whether `ip` is a node's BIN
/// address (`bin`) or the host of its `sip_addr` (`sip`, the default).
fn cluster_check_addr(lua: &Lua, _: &State, a: Args) -> mlua::Result<MultiValue> {
    let cluster = a.int(0)?;
    let ip = a.str(1)?;
    let sip = match a.opt_str(2)? {
        None => true,
        Some(t) if t.eq_ignore_ascii_case("sip") => true,
        Some(t) if t.eq_ignore_ascii_case("bin") => false,
        Some(t) => return Err(a.err(format!("bad address type '{t}', should be 'bin' or 'sip'"))),
    };
    let t = topology();
    let clusters = lock(&t);
    let Some(cl) = clusters.iter().find(|c| i64::from(c.id) == cluster) else {
        tracing::warn!("clusterer: unknown cluster id [{cluster}]");
        return ret(lua, false);
    };
    let found = if sip {
        cl.nodes.iter().any(|n| {
            n.node
                .sip_addr
                .as_deref()
                .is_some_and(|s| s.split(':').next() == Some(ip.as_str()))
        })
    } else {
        match ip.parse::<std::net::Ipv4Addr>() {
            Ok(v4) => cl.nodes.iter().any(|n| n.node.addr.ip() == std::net::IpAddr::V4(v4)),
            Err(_) => {
                tracing::error!("clusterer: invalid IP address '{ip}'");
                false
            }
        }
    };
    ret(lua, found)
}

const SENT: &str = "ok, rc: 1 sent, -1 this node is disabled in the cluster, -2 the destination is unreachable, -3 not sent";

pub static EXPORTS: &[Export] = &[
    Export {
        name: "cluster_check_addr",
        args: "(cluster_id, ip, [type])",
        returns: "true when `ip` belongs to a node of the cluster",
        routes: RouteMask::ANY,
        doc: "`type` `sip` (default): the host of a node's `sip_addr`; `bin`: a node's BIN address (IPv4, as OpenSIPS).",
        func: Func::Sync(cluster_check_addr),
    },
    Export {
        name: "cluster_send_req",
        args: "(cluster_id, node_id, msg, [tag_pv])",
        returns: SENT,
        routes: RouteMask::ANY,
        doc: "Sends text `msg` to a node (through the next hop if not linked directly); it raises E_CLUSTERER_REQ_RECEIVED there. The exchange tag generated (`cluster-node-` and 24 random characters) goes into `tag_pv` (`\"$var(tag)\"`).",
        func: Func::Sync(super::generic::cluster_send_req),
    },
    Export {
        name: "cluster_broadcast_req",
        args: "(cluster_id, msg, [tag_pv])",
        returns: SENT,
        routes: RouteMask::ANY,
        doc: "As `cluster_send_req`, to every node of the cluster (1 when sent to at least one).",
        func: Func::Sync(super::generic::cluster_broadcast_req),
    },
    Export {
        name: "cluster_send_rpl",
        args: "(cluster_id, node_id, msg, tag_pv)",
        returns: SENT,
        routes: RouteMask::ANY,
        doc: "Answers a request: `msg` with the tag read from `tag_pv` (an empty tag: -1); it raises E_CLUSTERER_RPL_RECEIVED on the node.",
        func: Func::Sync(super::generic::cluster_send_rpl),
    },
];

pub static PVS: &[PvDef] = &[PvDef {
    name: "cluster.sh_tag",
    get: shtag::pv_get,
    set: Some(shtag::pv_set),
    takes_inner: true,
    doc: "clusterer: the state of sharing tag `name/cluster_id` here, `active` or `backup`; writing `active` (or 1) activates it (backup cannot be written)",
    peek: None,
}];

pub static EVENTS: &[crate::event::EventDecl] = &[
    crate::event::EventDecl {
        name: "E_CLUSTERER_REQ_RECEIVED",
        params: &["cluster_id", "src_id", "msg", "tag"],
        doc: "A node sent this one a message with `cluster_send_req` or `cluster_broadcast_req`.",
    },
    crate::event::EventDecl {
        name: "E_CLUSTERER_RPL_RECEIVED",
        params: &["cluster_id", "src_id", "msg", "tag"],
        doc: "A node answered with `cluster_send_rpl`.",
    },
    crate::event::EventDecl {
        name: "E_CLUSTERER_NODE_STATE_CHANGED",
        params: &["cluster_id", "node_id", "new_state"],
        doc: "A node became reachable (`new_state` 1) or unreachable (0), directly or through another node.",
    },
    crate::event::EventDecl {
        name: "E_CLUSTERER_SHARING_TAG_CHANGED",
        params: &["name", "cluster", "state", "reason"],
        doc: "A sharing tag became `active` or `backup` on this node; `reason`: `MI command`, `script variable`, `cluster broadcast from N`.",
    },
];
