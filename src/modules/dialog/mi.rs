//! dialog's MI commands (OpenSIPS 3.4 names, parameters and result
//! shapes): `dlg_list`, `dlg_list_ctx`, `dlg_end_dlg`,
//! `profile_get_size`, `profile_list_dlgs`, `list_all_profiles`.

use serde_json::{json, Value};

use super::store::{self, lock, Dlg, DlgRef, CALLEE, CALLER};
use super::{conf, machine, profiles, timer};
use crate::mi::{opt, req, Command, Ctx, Kind, MiError, Params};
use crate::proxy::context::Value as PvValue;

fn ts_date(ts: i64) -> String {
    crate::pv::misc::strftime("%a %b %e %H:%M:%S %Y", ts).unwrap_or_default()
}

/// One dialog as OpenSIPS's `mi_print_dlg` writes it.
fn dlg_json(d: &Dlg, ctx: bool) -> Value {
    let timeout = match d.deadline {
        Some(_) => machine::now_unix() + d.timeout_left(),
        None => 0,
    };
    let caller = &d.legs[CALLER];
    let callee = &d.legs[CALLEE];
    let mut v = json!({
        "ID": d.did(),
        "db_id": d.key().to_string(),
        "state": d.state,
        "user_flags": d.user_flags.to_string(),
        "timestart": d.start_ts,
        "timeout": timeout,
        "callid": d.callid,
        "from_uri": d.from_uri,
        "to_uri": d.to_uri,
        "caller_tag": caller.tag,
        "caller_contact": caller.contact,
        "callee_cseq": caller.cseq.to_string(),
        "caller_route_set": caller.route_set.join(","),
        "caller_bind_addr": caller.bind,
        "CALLEES": [{
            "callee_tag": callee.tag,
            "callee_contact": callee.contact,
            "caller_cseq": callee.cseq.to_string(),
            "callee_route_set": callee.route_set.join(","),
            "callee_bind_addr": callee.bind,
        }],
    });
    if d.start_ts > 0 {
        v["datestart"] = json!(ts_date(d.start_ts));
    }
    if timeout > 0 {
        v["dateout"] = json!(ts_date(timeout));
    }
    if ctx {
        let mut c = serde_json::Map::new();
        if !d.vals.is_empty() {
            let vals: Vec<Value> = d
                .vals
                .iter()
                .map(|(n, v)| match v {
                    PvValue::Int(i) => json!({ n.as_str(): i }),
                    PvValue::Str(s) => json!({ n.as_str(): s }),
                    PvValue::Null => json!({ n.as_str(): null }),
                })
                .collect();
            c.insert("values".into(), Value::Array(vals));
        }
        if !d.profiles.is_empty() {
            let ps: Vec<Value> = d
                .profiles
                .iter()
                .map(|(p, v)| json!({ p.as_str(): v.clone().unwrap_or_default() }))
                .collect();
            c.insert("profiles".into(), Value::Array(ps));
        }
        v["context"] = Value::Object(c);
    }
    v
}

fn listing(p: &Params, ctx: bool) -> Result<Value, MiError> {
    let t = store::table();
    let mut all: Vec<DlgRef> = match p.str("callid") {
        Some(cid) => t.by_callid(cid),
        None => t.all(),
    };
    if let Some(ftag) = p.str("from_tag") {
        all.retain(|d| lock(d).legs[CALLER].tag == ftag);
    }
    all.sort_by_key(|d| lock(d).key());
    if p.has("index") || p.has("counter") {
        let index = int_param(p, "index")?;
        let counter = int_param(p, "counter")?;
        let total = all.len();
        let list: Vec<Value> = all
            .iter()
            .skip(index)
            .take(counter)
            .map(|d| dlg_json(&lock(d), ctx))
            .collect();
        return Ok(json!({ "count": total, "Dialogs": list }));
    }
    if p.str("callid").is_some() && all.is_empty() {
        return Err(MiError::new(404, "Nothing found"));
    }
    let list: Vec<Value> = all.iter().map(|d| dlg_json(&lock(d), ctx)).collect();
    Ok(json!({ "Dialogs": list }))
}

fn int_param(p: &Params, name: &str) -> Result<usize, MiError> {
    p.int(name)
        .or_else(|| p.str(name).and_then(|s| s.parse().ok()))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| MiError::new(-32602, format!("Invalid params: {name}")))
}

fn dlg_list(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    listing(p, false)
}

fn dlg_list_ctx(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    listing(p, true)
}

/// `dialog_id`: the `did`, the numeric id `dlg_list` shows as `db_id`,
/// or a Call-ID (OpenSIPS `get_dlg_by_dialog_id`).
fn find(id: &str) -> Option<DlgRef> {
    let t = store::table();
    if let Some(d) = t.by_did(id) {
        return Some(d);
    }
    if let Ok(k) = id.parse::<u64>() {
        if let Some(d) = t.dlgs.get(&k) {
            return Some(d.clone());
        }
    }
    t.by_callid(id).into_iter().next()
}

fn dlg_end_dlg(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let id = p.str("dialog_id").ok_or_else(|| MiError::new(-32602, "Invalid params"))?;
    let Some(r) = find(id) else {
        return Err(MiError::new(404, "Requested Dialog not found"));
    };
    let answered = lock(&r).state >= store::CONFIRMED_NA;
    if !machine::end(&r, Some("MI Termination")) {
        return Err(MiError::new(404, "Requested Dialog not found"));
    }
    if answered && !timer::push(timer::Job::Bye(timer::snapshot(&lock(&r)))) {
        return Err(MiError::new(500, "Operation failed"));
    }
    Ok(Value::String("OK".into()))
}

fn profile_name(p: &Params) -> Result<(String, Option<String>), MiError> {
    let name = p.str("profile").ok_or_else(|| MiError::new(-32602, "Invalid params"))?;
    let Some(with_value) = profiles::has_value(name) else {
        return Err(MiError::new(404, "Profile not found"));
    };
    let value = p.str("value").filter(|_| with_value).map(str::to_string);
    Ok((name.to_string(), value))
}

fn profile_get_size(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let (name, value) = profile_name(p)?;
    let count = profiles::size(&name, value.as_deref());
    Ok(json!({ "Profile": { "name": name, "value": value, "count": count } }))
}

fn profile_list_dlgs(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let (name, value) = profile_name(p)?;
    let list: Vec<Value> = store::table()
        .all()
        .iter()
        .filter_map(|r| {
            let d = lock(r);
            profiles::is_in(&d, &name, value.as_deref()).then(|| dlg_json(&d, false))
        })
        .collect();
    Ok(json!({ "Dialogs": list }))
}

fn list_all_profiles(_: &Ctx, _: &Params) -> Result<Value, MiError> {
    let list: Vec<Value> = conf()
        .profiles
        .iter()
        .map(|(n, v)| json!({ "name": n, "has value": v }))
        .collect();
    Ok(json!({ "Profiles": list }))
}

const DLG: &str = "`{\"Dialogs\": [{\"ID\", \"db_id\", \"state\", \"user_flags\", \"timestart\", \"datestart\", \"timeout\", \"dateout\", \"callid\", \"from_uri\", \"to_uri\", \"caller_tag\", \"caller_contact\", \"callee_cseq\", \"caller_route_set\", \"caller_bind_addr\", \"CALLEES\": [{\"callee_tag\", \"callee_contact\", \"caller_cseq\", \"callee_route_set\", \"callee_bind_addr\"}]}]}` (with `index`/`counter`: also `\"count\"`)";

pub static COMMANDS: &[Command] = &[
    Command {
        name: "dlg_list",
        help: "Lists the dialogs in memory, or those of `callid` (and `from_tag`); `index` and `counter` page through them.",
        module: "dialog",
        params: &[opt("callid", Kind::Str), opt("from_tag", Kind::Str), opt("index", Kind::Int), opt("counter", Kind::Int)],
        result: DLG,
        handler: dlg_list,
    },
    Command {
        name: "dlg_list_ctx",
        help: "As dlg_list, each dialog with its `context`: `values` (dialog values) and `profiles`.",
        module: "dialog",
        params: &[opt("callid", Kind::Str), opt("from_tag", Kind::Str), opt("index", Kind::Int), opt("counter", Kind::Int)],
        result: "as dlg_list, each dialog with `\"context\": {\"values\": [{name: value}], \"profiles\": [{name: value}]}`",
        handler: dlg_list_ctx,
    },
    Command {
        name: "dlg_end_dlg",
        help: "Ends dialog `dialog_id` (its `ID`, `db_id` or Call-ID): an answered one gets a BYE to both sides.",
        module: "dialog",
        params: &[req("dialog_id", Kind::Str), opt("extra_hdrs", Kind::Str)],
        result: "`\"OK\"`; 404 Requested Dialog not found",
        handler: dlg_end_dlg,
    },
    Command {
        name: "profile_get_size",
        help: "Dialogs in `profile` (with `value`: those with that value).",
        module: "dialog",
        params: &[req("profile", Kind::Str), opt("value", Kind::Str)],
        result: "`{\"Profile\": {\"name\", \"value\", \"count\"}}`; 404 Profile not found",
        handler: profile_get_size,
    },
    Command {
        name: "profile_list_dlgs",
        help: "The dialogs in `profile` (with `value`: those with that value).",
        module: "dialog",
        params: &[req("profile", Kind::Str), opt("value", Kind::Str)],
        result: "as dlg_list; 404 Profile not found",
        handler: profile_list_dlgs,
    },
    Command {
        name: "list_all_profiles",
        help: "Every declared profile and whether it takes values.",
        module: "dialog",
        params: &[],
        result: "`{\"Profiles\": [{\"name\", \"has value\"}]}`",
        handler: list_all_profiles,
    },
];
