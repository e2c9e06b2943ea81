//! dialog's Lua functions (OpenSIPS 3.4 names, argument order and
//! results).

use mlua::{IntoLua, Lua, MultiValue};

use super::machine::{self, CallDlg};
use super::store::{self, lock, DlgRef};
use super::{conf, profiles, pv::store_value};
use crate::proxy::context::Value;
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// The call's dialog: the one its request created or matched, or the one
/// `load_dialog_ctx` made current.
pub(super) fn current(st: &State) -> Option<DlgRef> {
    st.call.borrow().slot_ref::<CallDlg>()?.dlg.clone()
}

/// OpenSIPS's create_dialog flag letters; unknown letters are skipped.
fn parse_flags(s: &str) -> u32 {
    let mut f = 0;
    for c in s.chars() {
        f |= match c {
            'P' => store::FLAG_PING_CALLER,
            'p' => store::FLAG_PING_CALLEE,
            'B' => store::FLAG_BYE_ON_TIMEOUT,
            'R' => store::FLAG_REINVITE_PING_CALLER,
            'r' => store::FLAG_REINVITE_PING_CALLEE,
            _ => 0,
        };
    }
    f
}

fn create_dialog(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let flags = match a.opt_str(0)? {
        Some(f) => parse_flags(&pv_fmt(lua, st, &f)?),
        None => 0,
    };
    let mut call = st.call.borrow_mut();
    if call.slot_ref::<CallDlg>().is_some_and(|c| c.dlg.is_some()) {
        // OpenSIPS: a second create_dialog for the same request is a no-op.
        return ret(lua, true);
    }
    let bind = st.env.sockets.list.get(call.src.socket).map(|s| s.spec());
    ret(lua, machine::create(&mut call, flags, bind).is_some())
}

fn match_dialog(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mode = match a.opt_int(0)? {
        None => conf().match_mode,
        Some(n @ 0..=2) => n as u8,
        Some(n) => return Err(a.err(format!("match mode {n} is not 0, 1 or 2"))),
    };
    let mut call = st.call.borrow_mut();
    let params = call.rr_params();
    ret(lua, machine::on_sequential(&mut call, params.as_deref(), mode))
}

fn validate_dialog(lua: &Lua, st: &State, _: Args) -> mlua::Result<MultiValue> {
    let rc = machine::validate(&st.call.borrow());
    Ok(MultiValue::from_iter([
        (rc > 0).into_lua(lua)?,
        rc.into_lua(lua)?,
    ]))
}

fn fix_route_dialog(lua: &Lua, st: &State, _: Args) -> mlua::Result<MultiValue> {
    ret(lua, machine::fix_route(&mut st.call.borrow_mut()))
}

/// The profile named by argument 0 and the value of argument 1 (expanded),
/// which only a profile with values takes.
fn profile_args(lua: &Lua, st: &State, a: &Args) -> mlua::Result<Option<(String, Option<String>)>> {
    let name = a.str(0)?;
    let Some(with_value) = profiles::has_value(&name) else {
        tracing::error!("{}: profile <{name}> not defined", a.fname);
        return Ok(None);
    };
    let value = match a.opt_str(1)? {
        Some(v) if with_value => Some(pv_fmt(lua, st, &v)?),
        _ => None,
    };
    Ok(Some((name, value)))
}

fn set_dlg_profile(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let Some((name, value)) = profile_args(lua, st, &a)? else {
        return ret(lua, false);
    };
    let Some(d) = current(st) else {
        return ret(lua, false);
    };
    let with_value = profiles::has_value(&name) == Some(true);
    if with_value && value.is_none() {
        return ret(lua, false);
    }
    let clear = a.opt_int(2)?.unwrap_or(0) != 0;
    let mut d = lock(&d);
    if with_value && clear {
        profiles::unset(&mut d, &name, None, true);
    }
    profiles::set(&mut d, &name, value.as_deref());
    ret(lua, true)
}

fn unset_dlg_profile(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let Some((name, value)) = profile_args(lua, st, &a)? else {
        return ret(lua, false);
    };
    let Some(d) = current(st) else {
        return ret(lua, false);
    };
    let any = value.is_none();
    let done = profiles::unset(&mut lock(&d), &name, value.as_deref(), any);
    ret(lua, done)
}

fn is_in_profile(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let Some((name, value)) = profile_args(lua, st, &a)? else {
        return ret(lua, false);
    };
    let Some(d) = current(st) else {
        return ret(lua, false);
    };
    let hit = profiles::is_in(&lock(&d), &name, value.as_deref());
    ret(lua, hit)
}

/// Writes `v` into the pseudo-variable named by argument `i`, if given.
pub(super) fn write_out(st: &State, a: &Args, i: usize, v: Value) -> mlua::Result<()> {
    let Some(out) = a.opt_str(i)? else {
        return Ok(());
    };
    let spec = st.pv.borrow_mut().spec(&out).map_err(|e| a.err(e))?;
    crate::pv::set(&mut st.call.borrow_mut(), &spec, v).map_err(|e| a.err(e))
}

fn get_profile_size(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let Some((name, value)) = profile_args(lua, st, &a)? else {
        return Ok(MultiValue::from_iter([mlua::Value::Nil]));
    };
    let n = profiles::size(&name, value.as_deref()) as i64;
    write_out(st, &a, 2, Value::Int(n))?;
    ret(lua, n)
}

fn store_dlg_value(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    let v = match a.vals.get(1) {
        Some(mlua::Value::Integer(n)) => Value::Int(*n),
        _ => Value::Str(pv_fmt(lua, st, &a.str(1)?)?),
    };
    let Some(d) = current(st) else {
        return ret(lua, false);
    };
    store_value(&mut lock(&d), &name, v);
    ret(lua, true)
}

fn fetch_dlg_value(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    let Some(d) = current(st) else {
        return Ok(MultiValue::from_iter([mlua::Value::Nil]));
    };
    let v = lock(&d)
        .vals
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.clone());
    let Some(v) = v else {
        return Ok(MultiValue::from_iter([mlua::Value::Nil]));
    };
    write_out(st, &a, 1, v.clone())?;
    match v {
        Value::Int(n) => ret(lua, n),
        Value::Str(s) => ret(lua, s),
        Value::Null => Ok(MultiValue::from_iter([mlua::Value::Nil])),
    }
}

/// get_dialog_info (OpenSIPS `w_get_dlg_info`): for every dialog not yet
/// ended whose value `key` equals `key_val`, its value `attr` is added to
/// `attr_avp`; `ok, n` (false, -1 when none matched or one lacks `attr`).
fn get_dialog_info(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let attr = a.str(0)?;
    a.str(1)?;
    let key = a.str(2)?;
    let want = pv_fmt(lua, st, &a.str(3)?)?;
    let fail = || -> mlua::Result<MultiValue> {
        Ok(MultiValue::from_iter([false.into_lua(lua)?, (-1).into_lua(lua)?]))
    };
    let mut found = Vec::new();
    for r in store::table().all() {
        let d = lock(&r);
        if d.state > store::CONFIRMED {
            continue;
        }
        let hit = d.vals.iter().any(|(n, v)| {
            *n == key && v.to_text().is_some_and(|t| t == want.as_str())
        });
        if !hit {
            continue;
        }
        match d.vals.iter().find(|(n, _)| *n == attr) {
            Some((_, v)) => found.push(v.clone()),
            None => return fail(),
        }
    }
    if found.is_empty() {
        return fail();
    }
    let n = found.len() as i64;
    for v in found {
        write_out(st, &a, 1, v)?;
    }
    write_out(st, &a, 4, Value::Int(n))?;
    Ok(MultiValue::from_iter([true.into_lua(lua)?, n.into_lua(lua)?]))
}

const R: RouteMask = RouteMask::REQUEST;
const ANY_MSG: RouteMask = RouteMask::REQUEST
    .or(RouteMask::BRANCH)
    .or(RouteMask::FAILURE)
    .or(RouteMask::ONREPLY);

/// dialog.c `w_set_dlg_shtag`: the current dialog follows sharing tag
/// `tag` of `dialog_replication_cluster` (1; without that cluster, 1 and
/// nothing done; -1 without a dialog).
fn set_dlg_sharing_tag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let tag = pv_fmt(lua, st, &a.str(0)?)?;
    let cluster = conf().repl_cluster;
    if cluster == 0 {
        tracing::debug!("dialog: set_dlg_sharing_tag: dialog replication not configured");
        return Ok(MultiValue::from_iter([true.into_lua(lua)?, 1.into_lua(lua)?]));
    }
    let Some(d) = current(st) else {
        tracing::error!("dialog: set_dlg_sharing_tag: unable to fetch dialog");
        return Ok(MultiValue::from_iter([false.into_lua(lua)?, (-1).into_lua(lua)?]));
    };
    // dlg_replication.c `set_dlg_shtag`: the tag is made (backup) if new.
    crate::modules::clusterer::shtag::is_active(&tag, cluster);
    lock(&d).shtag = Some(tag);
    Ok(MultiValue::from_iter([true.into_lua(lua)?, 1.into_lua(lua)?]))
}

pub static EXPORTS: &[Export] = &[
    Export {
        name: "set_dlg_sharing_tag",
        args: "(tag)",
        returns: "ok, rc: 1 set (or `dialog_replication_cluster` unset: nothing done), -1 no dialog",
        routes: R,
        doc: "Binds the current dialog to clusterer sharing tag `tag` of `dialog_replication_cluster`: while the tag is backup on this node, the dialog's timeout sends no BYE and runs no `dlg_on_timeout` route (a backup with such a route waits ten minutes more, once), and no in-dialog pings are sent — the node holding the tag active does that.",
        func: Func::Sync(set_dlg_sharing_tag),
    },
    Export {
        name: "set_dlg_flag",
        args: "(flag)",
        returns: "true, false without a dialog",
        routes: RouteMask::ANY,
        doc: "Sets a flag of the current dialog (`$DLG_flags`): an index 0-31 or a name (given a free index on first use).",
        func: Func::Sync(super::flags::set_dlg_flag),
    },
    Export {
        name: "reset_dlg_flag",
        args: "(flag)",
        returns: "true, false without a dialog",
        routes: RouteMask::ANY,
        doc: "Clears a flag of the current dialog.",
        func: Func::Sync(super::flags::reset_dlg_flag),
    },
    Export {
        name: "is_dlg_flag_set",
        args: "(flag)",
        returns: "true if the current dialog has the flag",
        routes: RouteMask::ANY,
        doc: "Tests a flag of the current dialog (false without a dialog).",
        func: Func::Sync(super::flags::is_dlg_flag_set),
    },
    Export {
        name: "test_and_set_dlg_flag",
        args: "(flag, value)",
        returns: "ok, rc: 1 the flag was `value` and is flipped, -1 it was not, -2 no dialog",
        routes: RouteMask::ANY,
        doc: "Flips a flag of the current dialog only if it is `value` (0 or 1), atomically: two requests racing on one dialog see one success.",
        func: Func::Sync(super::flags::test_and_set_dlg_flag),
    },
    Export {
        name: "create_dialog",
        args: "([flags])",
        returns: "true, false when the request cannot start a dialog",
        routes: R,
        doc: "Starts tracking the dialog of this initial INVITE: its id goes into our Record-Route as `did=…` (written if the script record-routes), its replies move it to early, confirmed, or failed. Flags: `B` send BYE to both sides at the timeout, `P`/`p` ping the caller/callee with in-dialog OPTIONS every `options_ping_interval` (no answer, 408 or 481 ends the call); `R`/`r` ping the caller/callee with an in-dialog re-INVITE carrying the SDP that side was last sent, every `reinvite_ping_interval` from the ACK (a 2xx is ACKed; no answer, 408 or 481 ends the call with BYEs both ways).",
        func: Func::Sync(create_dialog),
    },
    Export {
        name: "match_dialog",
        args: "([match_mode])",
        returns: "true if the request belongs to a dialog",
        routes: R,
        doc: "Finds the dialog of a sequential request without `loose_route` (which does it itself): by the `did` of this proxy's Route entry and/or Call-ID and tags, as `dlg_match_mode` (or `match_mode`) says.",
        func: Func::Sync(match_dialog),
    },
    Export {
        name: "validate_dialog",
        args: "()",
        returns: "ok, code (1; -1 bad CSeq; -2 target is not the contact; -4 no dialog)",
        routes: R,
        doc: "Checks a sequential request against its dialog: CSeq above the sender's last one (an ACK: the INVITE's), R-URI equal to the destination side's Contact once answered.",
        func: Func::Sync(validate_dialog),
    },
    Export {
        name: "fix_route_dialog",
        args: "()",
        returns: "true, false without a dialog",
        routes: R,
        doc: "Routes a sequential request as the dialog knows it: R-URI = the destination side's Contact, `$du` = the first hop of its route set.",
        func: Func::Sync(fix_route_dialog),
    },
    Export {
        name: "set_dlg_profile",
        args: "(profile, [value], [clear_values])",
        returns: "true, false without a dialog or for an unknown profile",
        routes: ANY_MSG,
        doc: "Puts the current dialog in `profile` (with `value`, pseudo-variables expanded, for a profile with values; `clear_values` 1 first removes its other values).",
        func: Func::Sync(set_dlg_profile),
    },
    Export {
        name: "unset_dlg_profile",
        args: "(profile, [value])",
        returns: "true if it was in it",
        routes: ANY_MSG,
        doc: "Takes the current dialog out of `profile` (without a value: out of every value).",
        func: Func::Sync(unset_dlg_profile),
    },
    Export {
        name: "is_in_profile",
        args: "(profile, [value])",
        returns: "boolean",
        routes: ANY_MSG,
        doc: "Whether the current dialog is in `profile` (with `value`, if given).",
        func: Func::Sync(is_in_profile),
    },
    Export {
        name: "get_profile_size",
        args: "(profile, [value], [result_pv])",
        returns: "the number of dialogs (nil for an unknown profile)",
        routes: RouteMask::ANY,
        doc: "Dialogs in `profile` (with `value`: those with that value); also written to `result_pv` when given (`\"$var(n)\"`).",
        func: Func::Sync(get_profile_size),
    },
    Export {
        name: "get_dialog_info",
        args: "(attr, attr_avp, key, key_val, [number_var])",
        returns: "ok, n (false, -1 when no dialog matched)",
        routes: RouteMask::ANY,
        doc: "Looks through the dialogs not yet ended for those whose value `key` equals `key_val` (pseudo-variables expanded): each one's value `attr` is added to the AVP `attr_avp`; `number_var` gets how many.",
        func: Func::Sync(get_dialog_info),
    },
    Export {
        name: "get_dialogs_by_val",
        args: "(name, value, out_avp, number_var)",
        returns: "ok, n (false, -1 when no dialog matched)",
        routes: RouteMask::ANY,
        doc: "Every dialog not yet ended whose value `name` equals `value` (pseudo-variables expanded) is added to the AVP `out_avp` as a JSON object in OpenSIPS's shape (`ID`, `state`, `user_flags`, `callid`, `timestart`, `timeout`, `from_uri`, `to_uri`, `caller`, `callees`, `values`, `profiles`); `number_var` gets how many.",
        func: Func::Sync(super::json::get_dialogs_by_val),
    },
    Export {
        name: "get_dialogs_by_profile",
        args: "(profile, [value], out_avp, number_var)",
        returns: "ok, n (false, -1 when no dialog matched or the profile is unknown)",
        routes: RouteMask::ANY,
        doc: "Every dialog not yet ended in `profile` (for a profile with values and a `value`, pseudo-variables expanded: only those with it; `nil` for all) is added to the AVP `out_avp` as JSON, as `get_dialogs_by_val` writes it; `number_var` gets how many.",
        func: Func::Sync(super::json::get_dialogs_by_profile),
    },
    Export {
        name: "get_dialog_vals",
        args: "(names_avp, vals_avp, callid)",
        returns: "true, false when no dialog has that Call-ID",
        routes: RouteMask::ANY,
        doc: "Every value of the dialog whose Call-ID is `callid` (pseudo-variables expanded): its name is added to the AVP `names_avp`, its value to `vals_avp`, in the same order.",
        func: Func::Sync(super::json::get_dialog_vals),
    },
    Export {
        name: "load_dialog_ctx",
        args: "(id, [mode])",
        returns: "true, false when no dialog has that id or one is loaded already",
        routes: RouteMask::ANY,
        doc: "Makes another dialog the current one (its `$DLG_*`, `$dlg_val`, profiles, `dlg_send_sequential`): `id` (pseudo-variables expanded) is a Call-ID, or with `mode` `\"did\"` a dialog id (`$DLG_did`). Not nested: `unload_dialog_ctx` first.",
        func: Func::Sync(super::ctx::load_dialog_ctx),
    },
    Export {
        name: "unload_dialog_ctx",
        args: "()",
        returns: "true, false when none was loaded",
        routes: RouteMask::ANY,
        doc: "Puts back the current dialog `load_dialog_ctx` replaced.",
        func: Func::Sync(super::ctx::unload_dialog_ctx),
    },
    Export {
        name: "dlg_on_answer",
        args: "([route])",
        returns: "true, false without a dialog or once it was answered",
        routes: ANY_MSG,
        doc: "Runs `route[route]` when the dialog is answered (its 2xx), with the dialog as context and no message, on the first worker; without `route` clears it.",
        func: Func::Sync(super::ctx::dlg_on_answer),
    },
    Export {
        name: "dlg_on_timeout",
        args: "([route])",
        returns: "true, false without a dialog or once it was answered",
        routes: ANY_MSG,
        doc: "Runs `route[route]` when the dialog times out, with the dialog as context and no message, before it ends; setting `$DLG_timeout` there keeps it that much longer. Without `route` clears it.",
        func: Func::Sync(super::ctx::dlg_on_timeout),
    },
    Export {
        name: "dlg_on_hangup",
        args: "([route])",
        returns: "true, false without a dialog or once it was answered",
        routes: ANY_MSG,
        doc: "Runs `route[route]` when a BYE ends the dialog, with the (ended) dialog as context and no message, on the first worker; without `route` clears it.",
        func: Func::Sync(super::ctx::dlg_on_hangup),
    },
    Export {
        name: "dlg_send_sequential",
        args: "(method, leg, [body], [content_type], [headers])",
        returns: "true when queued, false without a live dialog",
        routes: RouteMask::ANY,
        doc: "Sends an in-dialog request `method` to the dialog's `\"caller\"` or `\"callee\"` (its Contact, route set, tags and next CSeq), with an optional body, Content-Type and extra header lines; sent by the dialog timer task, as a local request of tm.",
        func: Func::Sync(super::ctx::dlg_send_sequential),
    },
    Export {
        name: "store_dlg_value",
        args: "(name, value)",
        returns: "true, false without a dialog",
        routes: ANY_MSG,
        doc: "Stores `value` (pseudo-variables expanded; a Lua integer stays an integer) under `name` in the current dialog (`$dlg_val(name)`).",
        func: Func::Sync(store_dlg_value),
    },
    Export {
        name: "fetch_dlg_value",
        args: "(name, [result_pv])",
        returns: "the value, nil without one",
        routes: ANY_MSG,
        doc: "The current dialog's value `name`; also written to `result_pv` when given.",
        func: Func::Sync(fetch_dlg_value),
    },
];
