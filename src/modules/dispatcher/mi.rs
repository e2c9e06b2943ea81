//! MI commands: `ds_list`, `ds_reload`, `ds_set_state` (OpenSIPS 3.x
//! names, parameters and result shapes).

use serde_json::{json, Value};

use super::sets;
use crate::mi::{opt, req, Command, Ctx, Kind, MiError, Params};

fn ds_list(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let full = match p.str("full") {
        Some(s) => !matches!(s, "0" | "no" | "false" | ""),
        None => p.int("full").is_some_and(|n| n != 0),
    };
    let only = p.str("partition");
    let all = super::current();
    if let Some(o) = only {
        if all.partition(Some(o)).is_none() {
            return Err(MiError::new(404, "Partition not found"));
        }
    }
    let parts: Vec<Value> = all
        .partitions
        .iter()
        .filter(|pt| only.is_none_or(|o| o == pt.name))
        .map(|pt| {
            let sets: Vec<Value> = pt
                .sets
                .iter()
                .map(|s| {
                    let dests: Vec<Value> = s
                        .dests
                        .iter()
                        .map(|d| {
                            let mut v = json!({
                                "URI": d.uri,
                                "state": sets::state_name(d.state()),
                                "first_hit_counter": d.hits.load(std::sync::atomic::Ordering::Relaxed),
                            });
                            // Shown with or without `full`, as dispatch.c's
                            // ds_print_mi_list does.
                            if let Some(sa) = super::script_attrs::of(d) {
                                v["script_attr"] = json!(sa);
                            }
                            if full {
                                v["weight"] = json!(d.weight);
                                v["priority"] = json!(d.priority);
                                if let Some(sock) = &d.socket {
                                    v["socket"] = json!(sock);
                                }
                                if !d.attrs.is_empty() {
                                    v["attrs"] = json!(d.attrs);
                                }
                                if !d.description.is_empty() {
                                    v["description"] = json!(d.description);
                                }
                            }
                            v
                        })
                        .collect();
                    json!({ "id": s.id, "Destinations": dests })
                })
                .collect();
            json!({ "name": pt.name, "SETS": sets })
        })
        .collect();
    Ok(json!({ "PARTITIONS": parts }))
}

fn ds_reload(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let inherit = match p.str("inherit_state") {
        Some(s) => !matches!(s, "0" | "no" | "false"),
        None => p.int("inherit_state").is_none_or(|n| n != 0),
    };
    super::reload(p.str("partition"), inherit).map_err(|e| MiError::new(500, e))?;
    Ok(Value::String("OK".into()))
}

fn ds_set_state(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let state = p.str("state").unwrap_or("");
    let state = sets::parse_state(state)
        .ok_or_else(|| MiError::params(format!("bad state '{state}' (a, i or p)")))?;
    let group = p.str("group").unwrap_or("");
    let (part, setid) = super::args::parse_set(group, None).map_err(MiError::params)?;
    let part = part.unwrap_or_else(|| "default".into());
    let address = p.str("address").unwrap_or("");
    let all = super::current();
    let pt = all
        .partition(Some(&part))
        .ok_or_else(|| MiError::new(404, "Partition not found"))?;
    let set = pt
        .set(setid)
        .ok_or_else(|| MiError::new(404, "Destination not found"))?;
    let want = |u: &str| {
        u == address
            || u.strip_prefix("sip:")
                .or_else(|| u.strip_prefix("sips:"))
                .is_some_and(|r| r == address)
    };
    let d = set
        .dests
        .iter()
        .find(|d| want(&d.uri))
        .ok_or_else(|| MiError::new(404, "Destination not found"))?;
    super::set_state(&part, setid, d, state);
    Ok(Value::String("OK".into()))
}

/// OpenSIPS dispatcher.c `ds_mi_push_script_attrs`: 500 "Bad attrs
/// value" for empty attrs, 404 for an unknown partition, 404 "destination
/// not found" when `ip` is not an IP address (finding no destination is
/// still OK, as in OpenSIPS).
fn ds_push_script_attrs(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let attrs = p.str("attrs").unwrap_or("");
    if attrs.is_empty() {
        return Err(MiError::new(500, "Bad attrs value"));
    }
    let ip = p.str("ip").unwrap_or("");
    let int = |k: &str| -> Result<i64, MiError> {
        p.int(k)
            .or_else(|| p.str(k).and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| MiError::params(format!("{k} must be a number")))
    };
    let port = int("port")?;
    let set = int("set")?;
    let set = (set != -1).then_some(set);
    let r = super::script_attrs::push(&super::current(), p.str("partition"), attrs, ip, port, set);
    match r {
        Ok(_) => Ok(Value::String("OK".into())),
        Err(super::script_attrs::PushError::UnknownPartition) => {
            Err(MiError::new(404, "Partition not found"))
        }
        Err(super::script_attrs::PushError::BadIp) => {
            Err(MiError::new(404, "destination not found"))
        }
    }
}

pub static COMMANDS: &[Command] = &[
    Command {
        name: "ds_list",
        help: "Lists the partitions, sets and destinations with their state; `full` adds weight, priority, socket, attrs and description.",
        module: "dispatcher",
        params: &[opt("full", Kind::Str), opt("partition", Kind::Str)],
        result: "`{\"PARTITIONS\": [{\"name\", \"SETS\": [{\"id\", \"Destinations\": [{\"URI\", \"state\", \"first_hit_counter\", …}]}]}]}`",
        handler: ds_list,
    },
    Command {
        name: "ds_reload",
        help: "Re-reads the destinations of every partition (or of `partition`) and swaps them in at once; destinations that survive keep their state unless `inherit_state` is 0.",
        module: "dispatcher",
        params: &[opt("partition", Kind::Str), opt("inherit_state", Kind::Str)],
        result: "`\"OK\"`",
        handler: ds_reload,
    },
    Command {
        name: "ds_set_state",
        help: "Sets the state (`a` active, `i` inactive, `p` probing) of the destination `address` (its URI, `sip:` optional) in `group` (`[partition:]setid`).",
        module: "dispatcher",
        params: &[
            req("state", Kind::Str),
            req("group", Kind::Str),
            req("address", Kind::Str),
        ],
        result: "`\"OK\"`",
        handler: ds_set_state,
    },
    Command {
        name: "ds_push_script_attrs",
        help: "Stores `attrs` as the script attributes of the destinations of `set` (-1: every set) whose address is `ip` (an IP literal, or an address its host name resolved to at load) and port is `port` (0: any), in `partition` (default `default`); `ds_list` shows them as `script_attr`.",
        module: "dispatcher",
        params: &[
            req("attrs", Kind::Str),
            req("ip", Kind::Str),
            req("port", Kind::Int),
            req("set", Kind::Int),
            opt("partition", Kind::Str),
        ],
        result: "`\"OK\"`",
        handler: ds_push_script_attrs,
    },
];
