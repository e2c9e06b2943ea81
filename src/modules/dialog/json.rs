//! Looking up other dialogs from the script. `get_dialogs_by_val` and
//! `get_dialogs_by_profile` (OpenSIPS 3.4 dialog.c
//! `w_get_dlg_jsons_by_val` / `w_get_dlg_jsons_by_profile`): each dialog
//! not yet ended that matches is written as JSON, in the shape of
//! dialog.c `dlg_get_json_out` with its context (values and profiles),
//! into an AVP; a variable gets how many. `get_dialog_vals`: one
//! dialog's values into two AVPs.

use mlua::{IntoLua, Lua, MultiValue};
use serde_json::{json, Map, Value as Json};

use super::store::{self, lock, Dlg, CALLEE, CALLER};
use super::{flags, profiles};
use crate::proxy::context::Value;
use crate::script::api::pv_fmt;
use crate::script::exports::Args;
use crate::script::host::State;

fn leg_json(d: &Dlg, i: usize) -> Json {
    let l = &d.legs[i];
    json!({
        "tag": l.tag,
        "contact": l.contact,
        "cseq": l.cseq.to_string(),
        "route_set": l.route_set.join(","),
        "bind_addr": l.bind.clone().unwrap_or_default(),
        "sdp": l.out_sdp,
    })
}

/// One dialog as `dlg_get_json_out(dlg, ctx=1)` prints it: every field a
/// string but the integer values; string values holding control or
/// non-ASCII bytes are left out, as OpenSIPS does.
pub fn dlg_json(d: &Dlg) -> Json {
    let timeout = match d.deadline {
        Some(_) if d.state < store::DELETED => super::machine::now_unix() + d.timeout_left(),
        _ => 0,
    };
    let mut v = json!({
        "ID": d.key().to_string(),
        "state": d.state.to_string(),
        "user_flags": flags::names_of(d.user_flags),
        "callid": d.callid,
        "timestart": d.start_ts.to_string(),
        "timeout": timeout.to_string(),
        "from_uri": d.from_uri,
        "to_uri": d.to_uri,
        "caller": leg_json(d, CALLER),
        "callees": if d.legs[CALLEE].tag.is_empty() { json!([]) } else { json!([leg_json(d, CALLEE)]) },
    });
    let mut vals = Map::new();
    for (n, val) in &d.vals {
        match val {
            Value::Int(i) => {
                vals.insert(n.clone(), json!(i));
            }
            Value::Str(s) if s.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
                vals.insert(n.clone(), json!(s));
            }
            _ => {}
        }
    }
    if !d.vals.is_empty() {
        v["values"] = Json::Object(vals);
    }
    if !d.profiles.is_empty() {
        let mut p = Map::new();
        for (name, value) in &d.profiles {
            let list = p.entry(name.clone()).or_insert_with(|| json!([]));
            if let Json::Array(a) = list {
                a.push(json!(value.clone().unwrap_or_default()));
            }
        }
        v["profiles"] = Json::Object(p);
    }
    v
}

/// Adds each JSON to the AVP of argument 2, the count to the variable of
/// argument 3; `ok, n` (false, -1 when none matched, as OpenSIPS).
fn answer(lua: &Lua, st: &State, a: &Args, found: Vec<String>) -> mlua::Result<MultiValue> {
    if found.is_empty() {
        return Ok(MultiValue::from_iter([false.into_lua(lua)?, (-1).into_lua(lua)?]));
    }
    let n = found.len() as i64;
    for j in found {
        super::lua::write_out(st, a, 2, Value::Str(j))?;
    }
    super::lua::write_out(st, a, 3, Value::Int(n))?;
    Ok(MultiValue::from_iter([true.into_lua(lua)?, n.into_lua(lua)?]))
}

/// Dialogs not yet ended (OpenSIPS skips those past CONFIRMED).
fn live() -> impl Iterator<Item = store::DlgRef> {
    store::table()
        .all()
        .into_iter()
        .filter(|r| lock(r).state <= store::CONFIRMED)
}

pub(super) fn get_dialogs_by_val(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    let want = pv_fmt(lua, st, &a.str(1)?)?;
    a.str(2)?;
    a.str(3)?;
    let found = live()
        .filter_map(|r| {
            let d = lock(&r);
            let hit = d
                .vals
                .iter()
                .any(|(n, v)| *n == name && v.to_text().is_some_and(|t| t == want.as_str()));
            hit.then(|| dlg_json(&d).to_string())
        })
        .collect();
    answer(lua, st, &a, found)
}

pub(super) fn get_dialogs_by_profile(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    a.str(2)?;
    a.str(3)?;
    let Some(with_value) = profiles::has_value(&name) else {
        tracing::error!("{}: no such profile <{name}>", a.fname);
        return Ok(MultiValue::from_iter([false.into_lua(lua)?, (-1).into_lua(lua)?]));
    };
    let value = match a.opt_str(1)? {
        Some(v) if with_value => Some(pv_fmt(lua, st, &v)?),
        _ => None,
    };
    let found = live()
        .filter_map(|r| {
            let d = lock(&r);
            let hit = d.profiles.iter().any(|(p, v)| {
                *p == name && (value.is_none() || v.as_deref() == value.as_deref())
            });
            hit.then(|| dlg_json(&d).to_string())
        })
        .collect();
    answer(lua, st, &a, found)
}

/// get_dialog_vals(names_avp, vals_avp, callid) (OpenSIPS
/// `w_get_dlg_vals`): every value of the dialog with that Call-ID, its
/// name added to one AVP and its value to the other; false without one.
pub(super) fn get_dialog_vals(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    a.str(0)?;
    a.str(1)?;
    let callid = pv_fmt(lua, st, &a.str(2)?)?;
    let Some(r) = store::table().by_callid(&callid).into_iter().next() else {
        return Ok(MultiValue::from_iter([false.into_lua(lua)?]));
    };
    let vals = lock(&r).vals.clone();
    for (n, v) in vals {
        super::lua::write_out(st, &a, 0, Value::Str(n))?;
        super::lua::write_out(st, &a, 1, v)?;
    }
    Ok(MultiValue::from_iter([true.into_lua(lua)?]))
}
