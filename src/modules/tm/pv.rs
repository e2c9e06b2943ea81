//! tm's pseudo-variables (OpenSIPS `modules/tm/t_var.c` and tm's
//! `mod_items`): the transaction's reply code, branch, R-URI, id and its
//! per-request timeouts, read from the call's tm state.

use std::time::Duration;

use crate::proxy::context::Call;
use crate::pv::{PvDef, Spec, Value};

/// `$T_reply_code`: the reply being handled in a reply route, the winning
/// one in a failure route.
fn reply_code(c: &Call, _: &Spec) -> Value {
    c.tm.reply_code
        .map_or(Value::Null, |v| Value::Int(v as i64))
}

/// `$T_branch_idx`: the branch a reply route's reply came from; in a branch
/// route, the index the branch being built gets.
fn branch_idx(c: &Call, _: &Spec) -> Value {
    match (c.tm.branch, &c.tm.txn) {
        (Some(i), _) => Value::Int(i as i64),
        (None, Some(_)) => c
            .tm
            .txn_branches()
            .map_or(Value::Null, |n| Value::Int(n as i64)),
        _ => Value::Null,
    }
}

/// `$T_ruri`: the R-URI of the transaction's request.
fn ruri(c: &Call, _: &Spec) -> Value {
    c.tm.txn_ruri().map_or(Value::Null, Value::Str)
}

/// `$T_id`: the transaction's id.
fn id(c: &Call, _: &Spec) -> Value {
    c.tm.txn_id()
        .map_or(Value::Null, |id| Value::Int(id as i64))
}

fn secs(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| Value::Int(d.as_secs() as i64))
}

fn set_secs(v: Value, what: &str) -> Result<Option<Duration>, String> {
    match v {
        Value::Null => Ok(None),
        v => match v.to_int() {
            Some(n) if (1..=86_400).contains(&n) => Ok(Some(Duration::from_secs(n as u64))),
            _ => Err(format!("${what} takes seconds, 1..86400")),
        },
    }
}

/// `$T_fr_timeout`: seconds without a reply before a branch times out, for
/// the transactions this request creates (null: the config value).
fn get_fr(c: &Call, _: &Spec) -> Value {
    secs(c.tm.fr)
}
fn set_fr(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    c.tm.fr = set_secs(v, "T_fr_timeout")?;
    Ok(())
}
fn get_fr_inv(c: &Call, _: &Spec) -> Value {
    secs(c.tm.fr_inv)
}
fn set_fr_inv(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    c.tm.fr_inv = set_secs(v, "T_fr_inv_timeout")?;
    Ok(())
}

/// The pseudo-variables tm declares.
pub static PVS: &[PvDef] = &[
    PvDef::ro(
        "T_branch_idx",
        branch_idx,
        "tm: index of the branch a reply came from (reply routes) or being built (branch routes)",
    ),
    PvDef::ro(
        "T_reply_code",
        reply_code,
        "tm: code of the reply being handled, or the winning one in a failure route",
    ),
    PvDef::ro("T_ruri", ruri, "tm: R-URI of the transaction's request"),
    PvDef::ro("T_id", id, "tm: transaction id (null outside a transaction)"),
    PvDef::rw(
        "T_fr_timeout",
        get_fr,
        set_fr,
        "tm: seconds without any reply before a branch times out, for this request's transaction (writable; null: the config's fr_timeout)",
    ),
    PvDef::rw(
        "T_fr_inv_timeout",
        get_fr_inv,
        set_fr_inv,
        "tm: seconds an INVITE branch may ring without a final reply (writable; null: the config's fr_inv_timeout)",
    ),
];
