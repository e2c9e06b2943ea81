//! dialog's pseudo-variables (OpenSIPS 3.4 dialog `mod_items`): the
//! current dialog's status, lifetime, flags, direction, id, end reason,
//! timeout, and its values (`$dlg_val(name)`).

use super::machine::{now_unix, CallDlg};
use super::store::{self, lock, DlgRef};
use crate::proxy::context::Call;
use crate::pv::{PvDef, Spec, Value};

fn current(c: &Call) -> Option<DlgRef> {
    c.slot_ref::<CallDlg>()?.dlg.clone()
}

fn int(v: i64) -> Value {
    Value::Int(v)
}

fn status(c: &Call, _: &Spec) -> Value {
    current(c).map_or(Value::Null, |d| int(i64::from(lock(&d).state)))
}

/// Seconds since the 2xx (0 before it).
fn lifetime(c: &Call, _: &Spec) -> Value {
    current(c).map_or(Value::Null, |d| {
        let d = lock(&d);
        int(if d.state > store::EARLY { now_unix() - d.start_ts } else { 0 })
    })
}

fn count(_: &Call, _: &Spec) -> Value {
    int(store::table().dlgs.len() as i64)
}

fn dir(c: &Call, _: &Spec) -> Value {
    match c.slot_ref::<CallDlg>().map_or(0, |s| s.dir) {
        1 => Value::Str("downstream".into()),
        2 => Value::Str("upstream".into()),
        _ => Value::Null,
    }
}

fn did(c: &Call, _: &Spec) -> Value {
    current(c).map_or(Value::Null, |d| Value::Str(lock(&d).did()))
}

fn end_reason(c: &Call, _: &Spec) -> Value {
    current(c)
        .and_then(|d| lock(&d).end_reason)
        .map_or(Value::Null, |r| Value::Str(r.into()))
}

fn timeout(c: &Call, _: &Spec) -> Value {
    match (current(c), c.slot_ref::<CallDlg>().and_then(|s| s.timeout)) {
        (Some(d), _) => int(lock(&d).timeout_left()),
        (None, Some(t)) => int(i64::from(t)),
        _ => Value::Null,
    }
}

fn set_timeout(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    let secs = match v.to_int() {
        Some(n) if n >= 0 => u32::try_from(n).map_err(|_| "$DLG_timeout: too large".to_string())?,
        _ => return Err("$DLG_timeout takes a number of seconds, 0 or more".into()),
    };
    match current(c) {
        Some(d) => lock(&d).set_lifetime(secs),
        // Before create_dialog: the dialog it makes gets it.
        None => c.slot::<CallDlg>().timeout = Some(secs),
    }
    Ok(())
}

/// `$DLG_flags`: the dialog's script flags as a number (bit i = flag i).
fn flags(c: &Call, _: &Spec) -> Value {
    current(c).map_or(Value::Null, |d| int(lock(&d).user_flags as i64))
}

fn set_flags(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    let d = current(c).ok_or("$DLG_flags: no dialog")?;
    lock(&d).user_flags = match v {
        Value::Null => 0,
        v => v.to_int().ok_or("$DLG_flags takes a number")? as u64,
    };
    Ok(())
}

fn val(c: &Call, s: &Spec) -> Value {
    let (Some(d), Some(name)) = (current(c), s.name(c)) else {
        return Value::Null;
    };
    let d = lock(&d);
    d.vals
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(Value::Null, |(_, v)| v.clone())
}

fn set_val(c: &mut Call, s: &Spec, v: Value) -> Result<(), String> {
    let name = s.name(c).ok_or("$dlg_val needs a name")?.into_owned();
    let d = current(c).ok_or("$dlg_val: no dialog")?;
    store_value(&mut lock(&d), &name, v);
    Ok(())
}

/// Stores (or with null, removes) a dialog value.
pub fn store_value(d: &mut store::Dlg, name: &str, v: Value) {
    d.vals.retain(|(n, _)| n != name);
    if v != Value::Null {
        d.vals.push((name.to_string(), v));
    }
}

/// The pseudo-variables dialog declares.
pub static PVS: &[PvDef] = &[
    PvDef::ro("DLG_count", count, "dialog: dialogs in memory"),
    PvDef::ro("DLG_status", status, "dialog: state of the current dialog (1 unconfirmed, 2 early, 3 confirmed without ACK, 4 confirmed, 5 deleted)"),
    PvDef::ro("DLG_lifetime", lifetime, "dialog: seconds since the current dialog was answered (0 before)"),
    PvDef::rw("DLG_flags", flags, set_flags, "dialog: the current dialog's script flags (a number, bit i = flag i; writable)"),
    PvDef::ro("DLG_dir", dir, "dialog: `downstream` (from the caller) or `upstream` for a sequential request"),
    PvDef::ro("DLG_did", did, "dialog: the current dialog's id (`did` Record-Route parameter)"),
    PvDef::ro("DLG_end_reason", end_reason, "dialog: why the dialog ended (`Upstream BYE`, `Downstream BYE`, `Lifetime Timeout`, `MI Termination`, `Ping Timeout`)"),
    PvDef::rw("DLG_timeout", timeout, set_timeout, "dialog: seconds left before the dialog times out (its lifetime before the answer); writable, also before create_dialog"),
    PvDef {
        name: "dlg_val",
        get: val,
        set: Some(set_val),
        takes_inner: true,
        doc: "dialog: the current dialog's value `name` (`store_dlg_value`), writable",
        peek: None,
    },
];
