//! Branches injected into a waiting INVITE transaction (OpenSIPS 3.4
//! tm.c `t_wait_for_new_branches`, `t_wait_no_more_branches`,
//! `w_t_inject_branches`): a transaction marked waiting keeps the
//! negative answers of its branches until the wait ends (the script says
//! so, the given number of branches was reached, or the final response
//! timeout passed, like OpenSIPS's phony branch), so a branch added later
//! (a callee that registered meanwhile, after a push notification) can
//! still answer the call. `t_inject_branches("event")` takes the branch
//! from an event_routing notification (`inject_event.rs`).

use mlua::{Lua, MultiValue};

use super::inject_event;
use super::jobs::{self, Job};
use crate::modules::sipmsgops::ret_code;
use crate::proxy::tm::{hash_index, lock, relay};
use crate::script::exports::{ret, Args};
use crate::script::host::State;
use crate::script::route::RouteType;
use crate::sip::Method;

/// Asks tm's task to end the wait of transaction `id`, after `after`.
fn end_wait_later(id: u64, after: Option<std::time::Duration>) {
    let job = Job::EndWait(hash_index(id), id);
    match after {
        Some(d) => jobs::push(Job::Later(d, Box::new(job))),
        None => jobs::push(job),
    };
}

/// `t_wait_for_new_branches([n])`: false without a transaction or for a
/// request that is not an INVITE (OpenSIPS: INVITEs only).
pub(super) fn t_wait_for_new_branches(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let n = match a.opt_int(0)? {
        Some(n) if n < 0 => return Err(a.err("the number of branches to wait for is not negative")),
        n => n.map(|n| n as usize),
    };
    let (txn, invite, fr_inv) = {
        let call = st.call.borrow();
        let invite = call.msg.as_ref().is_some_and(|m| m.method_kind() == Method::Invite);
        (call.tm.txn.clone(), invite, call.tm.fr_inv)
    };
    let Some(txn) = txn else {
        return ret(lua, false);
    };
    if !invite {
        tracing::error!("{}: for INVITEs only", a.fname);
        return ret(lua, false);
    }
    let id = {
        let mut t = lock(&txn);
        if t.server.last_code >= 200 {
            return ret(lua, false);
        }
        t.wait_branches = true;
        t.wait_limit = n.map(|n| t.branches.len() + n);
        t.id
    };
    // The phony branch ends as a branch would: after fr_inv_timeout.
    end_wait_later(id, Some(fr_inv.unwrap_or(st.env.tm.timers.fr_inv)));
    ret(lua, true)
}

/// `t_wait_no_more_branches()`: the wait ends now (once the route
/// returned); false without a waiting transaction.
pub(super) fn t_wait_no_more_branches(lua: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    let Some(txn) = st.call.borrow().tm.txn.clone() else {
        return ret(lua, false);
    };
    let (waiting, id) = {
        let t = lock(&txn);
        (t.wait_branches, t.id)
    };
    if waiting {
        end_wait_later(id, None);
    }
    ret(lua, waiting)
}

/// `t_inject_branches(source [, flags])` (OpenSIPS 3.4 tm.c
/// `w_t_inject_branches`, t_fwd.c `t_inject_branch`): adds branches to
/// the current request's transaction or, in an event_routing notification
/// route, to the transaction that subscribed. `source` `msg` takes the
/// current request's destinations (R-URI or `$du`, and `append_branch`es),
/// `event` the contact the event's AVPs describe (usrloc's
/// `E_UL_CONTACT_*`). Flag `cancel` (or `c`) cancels the branches still
/// ringing first, `l` makes this the last injection (the wait ends).
/// Codes: 1 sent; -1 no transaction, or nothing to inject; -2 the
/// transaction has its final response; -3 no branch could be sent.
pub(super) fn t_inject_branches(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let source = a.str(0)?.to_ascii_lowercase();
    let from_event = match source.as_str() {
        "msg" | "message" => false,
        "event" | "events" => true,
        s => return Err(a.err(format!("unsupported injection source '{s}'"))),
    };
    let flags = a.opt_str(1)?.unwrap_or_default().to_ascii_lowercase();
    if flags != "cancel" && !flags.chars().all(|c| "cl".contains(c)) {
        return Err(a.err(format!("unknown flags '{flags}'")));
    }
    let cancel = flags.contains('c');
    let last = flags != "cancel" && flags.contains('l');
    // The local transaction first, else the one a notification route
    // runs for (OpenSIPS `remote_T`).
    let (txn, route, has_msg) = {
        let call = st.call.borrow();
        let txn = call
            .tm
            .txn
            .clone()
            .or_else(|| call.tm.remote.as_ref().and_then(|w| w.upgrade()));
        (txn, call.route, call.msg.is_some())
    };
    let Some(txn) = txn else {
        tracing::debug!("{}: no transaction (local or remote) to use", a.fname);
        return ret_code(lua, -1);
    };
    if !from_event && (route != RouteType::Request || !has_msg) {
        tracing::error!("{}: no request here to take destinations from", a.fname);
        return ret_code(lua, -1);
    }
    let event = match from_event {
        true => match inject_event::Contact::from_avps(st) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("{}: failed to grab the new branch from the event: {e}", a.fname);
                return ret_code(lua, -1);
            }
        },
        false => None,
    };
    {
        let mut t = lock(&txn);
        if t.server.last_code >= 200 {
            return ret_code(lua, -2);
        }
        if cancel {
            let tm = &st.env.tm;
            let mut call = st.call.borrow_mut();
            relay::cancel_pending(tm, &txn, &mut t, None, &mut call.outbox);
        }
    }
    let Some(host) = crate::script::phases::phases_of(st) else {
        return Err(a.err("no script host"));
    };
    let sent = match event {
        Some(c) => inject_event::add_branch(&*host, &txn, &c),
        None => relay::add_branches(&*host, &txn).inspect_err(|e| {
            st.call.borrow_mut().last_error = Some(e.reply());
        }),
    };
    let sent = sent.unwrap_or_else(|e| {
        tracing::warn!("{}: {e}", a.fname);
        false
    });
    let (limit_reached, id) = {
        let t = lock(&txn);
        let reached = t.wait_limit.is_some_and(|l| t.branches.len() >= l);
        (t.wait_branches && (last || reached), t.id)
    };
    if limit_reached {
        end_wait_later(id, None);
    }
    ret_code(lua, if sent { 1 } else { -3 })
}
