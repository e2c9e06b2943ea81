//! Sharing tags (OpenSIPS 3.4 clusterer sharing_tags.c): a named
//! responsibility in a cluster that one node holds active and the others
//! as backup. A node going active tells every other node
//! (CLUSTERER_SHTAG_ACTIVE over clusterer-extra), which then steps back
//! to backup; a node that was not reachable is told when it comes up.
//! Changes raise E_CLUSTERER_SHARING_TAG_CHANGED.

use serde_json::{json, Value};
use std::sync::Mutex;

use super::bin::{Builder, Packet};
use super::send::{send, SendRet};
use super::topo::{msg, BIN_VERSION, EXTRA_CAP};
use crate::mi::{Ctx, MiError, Params};

/// One tag (sharing_tags.c `struct sharing_tag`).
#[derive(Debug, Clone)]
struct Tag {
    name: String,
    cluster: i32,
    active: bool,
    /// Going active still has to be told to some nodes.
    send_active_msg: bool,
    /// The nodes told so far.
    sent_to: Vec<i32>,
}

/// The tags (long-lived state).
#[derive(Default)]
pub struct Tags(Mutex<Vec<Tag>>);

fn tags() -> std::sync::Arc<Tags> {
    crate::state::state::<Tags>()
}

/// sharing_tags.c `shtag_modparam_func`: `"name/cluster_id=active"` (or
/// `backup`); (name, cluster, active).
pub fn parse_param(v: &str) -> Result<(String, i32, bool), String> {
    let (tag, state) = v
        .split_once('=')
        .ok_or_else(|| format!("bad definition for sharing tag '{v}' (name/cluster_id=active|backup)"))?;
    let active = match state.trim() {
        "active" => true,
        "backup" => false,
        s => return Err(format!("bad state '{s}' for sharing tag '{v}', allowed only active/backup")),
    };
    let (name, cluster) = split_name(tag)?;
    Ok((name, cluster, active))
}

/// `name/cluster_id`.
fn split_name(tag: &str) -> Result<(String, i32), String> {
    let (name, c) = tag
        .split_once('/')
        .ok_or_else(|| format!("bad naming for sharing tag '{tag}', <name/cluster_id> expected"))?;
    let cluster = c
        .trim()
        .parse::<u32>()
        .ok()
        .and_then(|c| i32::try_from(c).ok())
        .ok_or_else(|| format!("invalid cluster id '{}' for sharing tag '{tag}'", c.trim()))?;
    Ok((name.trim().to_string(), cluster))
}

/// Creates the tags of the settings (module `init`, after the clusters):
/// a tag of a cluster this node is not in is dropped with a warning
/// (`shtag_validate_list`).
pub fn init(defs: &[(String, i32, bool)], clusters: &[i32]) {
    let mut list = Vec::new();
    for (name, cluster, active) in defs {
        if !clusters.contains(cluster) {
            tracing::warn!("clusterer: cluster id [{cluster}] required by tag <{name}> not found, purging tag");
            continue;
        }
        list.retain(|t: &Tag| !(t.name == *name && t.cluster == *cluster));
        list.push(Tag {
            name: name.clone(),
            cluster: *cluster,
            active: *active,
            // Told to the others as they come up.
            send_active_msg: *active,
            sent_to: Vec::new(),
        });
    }
    *tags().0.lock().unwrap_or_else(|e| e.into_inner()) = list;
}

fn with_tag<R>(name: &str, cluster: i32, f: impl FnOnce(&mut Tag) -> R) -> R {
    let t = tags();
    let mut list = t.0.lock().unwrap_or_else(|e| e.into_inner());
    let i = match list.iter().position(|t| t.name == name && t.cluster == cluster) {
        Some(i) => i,
        None => {
            // sharing_tags.c `shtag_create`: an unknown tag is backup.
            list.push(Tag {
                name: name.to_string(),
                cluster,
                active: false,
                send_active_msg: false,
                sent_to: Vec::new(),
            });
            list.len() - 1
        }
    };
    f(&mut list[i])
}

/// OpenSIPS clusterer API `shtag_get`: whether the tag is active here
/// (an unknown tag is made, backup).
pub fn is_active(name: &str, cluster: i32) -> bool {
    with_tag(name, cluster, |t| t.active)
}

fn active_packet(name: &str) -> Option<Builder> {
    let mut b = Builder::new(EXTRA_CAP, msg::SHTAG_ACTIVE, BIN_VERSION, name.len() + 2);
    b.str(name.as_bytes()).ok()?;
    Some(b)
}

/// sharing_tags.c `report_shtag_change`.
fn report(name: &str, cluster: i32, active: bool, reason: &str) {
    let state = if active { "active" } else { "backup" };
    tracing::info!("clusterer: tag <{name}>, cluster {cluster}, became {state} due to {reason}");
    let mut m = serde_json::Map::new();
    m.insert("name".into(), name.into());
    m.insert("cluster".into(), cluster.into());
    m.insert("state".into(), state.into());
    m.insert("reason".into(), reason.into());
    crate::event::raise_declared("E_CLUSTERER_SHARING_TAG_CHANGED", m);
}

/// sharing_tags.c `shtag_activate`: the tag is active here; every node
/// of the cluster is told (those that cannot be reached yet are told
/// when they come up).
pub fn activate(name: &str, cluster: i32, reason: &str) -> Result<(), String> {
    let old = with_tag(name, cluster, |t| std::mem::replace(&mut t.active, true));
    let nodes: Vec<i32> = {
        let t = super::proto::topology();
        let clusters = super::proto::lock(&t);
        let Some(cl) = clusters.iter().find(|c| c.id == cluster) else {
            return Err(format!("bad cluster id: {cluster}"));
        };
        cl.nodes.iter().map(|n| n.id()).collect()
    };
    let p = active_packet(name).ok_or("sharing tag name too long")?;
    for node in nodes {
        let skip = with_tag(name, cluster, |t| t.send_active_msg && t.sent_to.contains(&node));
        if skip {
            continue;
        }
        if send(cluster, Some(node), &p) == SendRet::Success {
            with_tag(name, cluster, |t| t.sent_to.push(node));
        } else {
            with_tag(name, cluster, |t| t.send_active_msg = true);
        }
    }
    if !old {
        report(name, cluster, true, reason);
    }
    Ok(())
}

/// sharing_tags.c `shtag_flush_state`: a node came up; the tags still to
/// be told active are sent to it.
pub fn flush_state(cluster: i32, node: i32) {
    let pending: Vec<String> = {
        let t = tags();
        let list = t.0.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .filter(|t| t.cluster == cluster && t.send_active_msg && !t.sent_to.contains(&node))
            .map(|t| t.name.clone())
            .collect()
    };
    for name in pending {
        let Some(p) = active_packet(&name) else { continue };
        if send(cluster, Some(node), &p) == SendRet::Success {
            with_tag(&name, cluster, |t| t.sent_to.push(node));
        } else {
            tracing::error!("clusterer: failed to send info about sharing tag <{name}> to node {node}");
        }
    }
}

/// A clusterer-extra packet for this node (clusterer.c
/// `bin_rcv_cl_extra_packets`): sharing tags and generic messages; MI
/// commands, node removal and syncs are not handled.
pub fn on_extra(mut p: Packet) {
    match p.ptype {
        msg::SHTAG_ACTIVE => {
            let Ok(name) = p.str("tag") else {
                tracing::warn!("clusterer: bad sharing tag packet from node {}", p.src);
                return;
            };
            let name = String::from_utf8_lossy(&name).into_owned();
            // sharing_tags.c `handle_shtag_active`: another node went
            // active, this one is backup.
            let old = with_tag(&name, p.cluster, |t| {
                let old = t.active;
                t.active = false;
                t.send_active_msg = false;
                t.sent_to.clear();
                old
            });
            if old {
                report(&name, p.cluster, false, &format!("cluster broadcast from {}", p.src));
            }
        }
        msg::GENERIC_MSG => super::generic::on_generic(&mut p),
        t => tracing::warn!("clusterer: clusterer message type {t} from node {} is not supported", p.src),
    }
}

/// MI `clusterer_list_shtags` (sharing_tags.c `shtag_mi_list`).
pub fn mi_list(_: &Ctx, _: &Params) -> Result<Value, MiError> {
    let t = tags();
    let list = t.0.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Value::Array(
        list.iter()
            .map(|t| json!({"Tag": t.name, "Cluster": t.cluster, "State": if t.active { "active" } else { "backup" }}))
            .collect(),
    ))
}

/// MI `clusterer_shtag_set_active` (sharing_tags.c `shtag_mi_set_active`).
pub fn mi_set_active(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let tag = p.str("tag").unwrap_or_default();
    let Some((name, c)) = tag.split_once('/') else {
        return Err(MiError::new(400, "Bad tag format <name/cluster_id>"));
    };
    let Some(cluster) = c.trim().parse::<u32>().ok().and_then(|c| i32::try_from(c).ok()) else {
        return Err(MiError::new(400, "Bad cluster ID in tag"));
    };
    if !super::conf().me.iter().any(|m| m.cluster == cluster) {
        return Err(MiError::new(404, "Cluster ID not found"));
    }
    activate(name.trim(), cluster, "MI command")
        .map_err(|_| MiError::new(500, "Internal failure when activating tag"))?;
    Ok(Value::String("OK".into()))
}

/// `$cluster.sh_tag(name/cluster_id)`: `active` or `backup`.
pub fn pv_get(c: &crate::proxy::context::Call, s: &crate::pv::Spec) -> crate::pv::Value {
    let Some(inner) = s.name(c) else { return crate::pv::Value::Null };
    match split_name(&inner) {
        Ok((name, cluster)) => crate::pv::Value::Str(if is_active(&name, cluster) { "active" } else { "backup" }.into()),
        Err(_) => crate::pv::Value::Null,
    }
}

/// Writing `active` (or a number above 0) activates the tag; `backup`
/// is refused with a warning, as OpenSIPS (`var_set_sh_tag`).
pub fn pv_set(c: &mut crate::proxy::context::Call, s: &crate::pv::Spec, v: crate::pv::Value) -> Result<(), String> {
    let inner = s.name(c).ok_or("$cluster.sh_tag needs name/cluster_id")?.into_owned();
    let (name, cluster) = split_name(&inner)?;
    let active = match &v {
        crate::pv::Value::Null => return Ok(()),
        crate::pv::Value::Str(s) if s.is_empty() => return Ok(()),
        crate::pv::Value::Str(s) if s.eq_ignore_ascii_case("active") => true,
        crate::pv::Value::Str(s) if s.eq_ignore_ascii_case("backup") => false,
        crate::pv::Value::Str(s) => {
            return Err(format!("unknown value <{s}> while setting tag <{name}/{cluster}>"))
        }
        other => other.to_int().unwrap_or(0) > 0,
    };
    if !active {
        tracing::warn!("clusterer: cannot set tag <{name}/{cluster}> to backup, operation not allowed");
        return Ok(());
    }
    activate(&name, cluster, "script variable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharing_tag_params_as_opensips() {
        assert_eq!(parse_param("vip/1=active").unwrap(), ("vip".into(), 1, true));
        assert_eq!(parse_param(" vip / 2 = backup").unwrap(), ("vip".into(), 2, false));
        assert!(parse_param("vip/1").is_err());
        assert!(parse_param("vip=active").is_err());
        assert!(parse_param("vip/x=active").is_err());
        assert!(parse_param("vip/1=primary").is_err());
    }
}
