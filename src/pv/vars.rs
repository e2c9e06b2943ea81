//! Script variables: `$var(name)` (per worker, kept between messages),
//! `$avp(name)` (per message, a list with the newest value first, as
//! OpenSIPS AVPs), `$shv(name)` (shared by every worker), and the
//! assignment operators of the OpenSIPS script (`=`, `:=`, `+=`, …) that
//! the translator emits as `sip.pv.assign(spec, op, value)`.

use dashmap::DashMap;
use std::sync::OnceLock;

use super::{PvDef, Spec, Value};
use crate::proxy::context::Call;

fn name_of(c: &Call, spec: &Spec) -> Result<String, String> {
    spec.name(c)
        .map(|n| n.into_owned())
        .ok_or_else(|| format!("{}: the variable name evaluates to null", spec.text))
}

fn get_var(c: &Call, spec: &Spec) -> Value {
    spec.name(c)
        .and_then(|n| c.vars.get(n.as_ref()).cloned())
        .unwrap_or(Value::Null)
}
fn set_var(c: &mut Call, spec: &Spec, v: Value) -> Result<(), String> {
    let n = name_of(c, spec)?;
    if v == Value::Null {
        c.vars.remove(&n);
    } else {
        c.vars.insert(n, v);
    }
    Ok(())
}

/// The position in an AVP list for index `i` (negative from the oldest end).
fn slot(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    usize::try_from(i).ok().filter(|i| *i < len)
}

fn get_avp(c: &Call, spec: &Spec) -> Value {
    avp_in(&c.avps, c, spec)
}

/// `$bavp(name)`: the AVPs of the branch being built (branch route) or
/// answered (reply route), with the same list semantics as `$avp`.
pub(crate) fn get_bavp(c: &Call, spec: &Spec) -> Value {
    avp_in(&c.tm.bavps, c, spec)
}

pub(crate) fn set_bavp(c: &mut Call, spec: &Spec, v: Value) -> Result<(), String> {
    std::mem::swap(&mut c.avps, &mut c.tm.bavps);
    let r = set_avp(c, spec, v);
    std::mem::swap(&mut c.avps, &mut c.tm.bavps);
    r
}

fn avp_in(map: &std::collections::HashMap<String, Vec<Value>>, c: &Call, spec: &Spec) -> Value {
    let Some(n) = spec.name(c) else {
        return Value::Null;
    };
    let Some(list) = map.get(n.as_ref()) else {
        return Value::Null;
    };
    match spec.index(c) {
        None | Some(Err(())) => list.first().cloned().unwrap_or(Value::Null),
        Some(Ok(i)) => slot(list.len(), i).map_or(Value::Null, |k| list[k].clone()),
    }
}

/// Most AVP values one name may hold (a script loop must not exhaust memory).
const AVP_MAX: usize = 10_000;

/// `$avp(x) = v` adds v as the newest value; `= null` deletes the newest;
/// `$(avp(x)[n]) = v` overwrites the n-th (null deletes it);
/// `$(avp(x)[*]) = v` replaces them all (null deletes all).
fn set_avp(c: &mut Call, spec: &Spec, v: Value) -> Result<(), String> {
    let n = name_of(c, spec)?;
    let index = spec.index(c);
    let list = c.avps.entry(n.clone()).or_default();
    match (index, v) {
        (None, Value::Null) => {
            if !list.is_empty() {
                list.remove(0);
            }
        }
        (None, v) => {
            if list.len() >= AVP_MAX {
                return Err(format!("{}: more than {AVP_MAX} values", spec.text));
            }
            list.insert(0, v);
        }
        (Some(Err(())), Value::Null) => list.clear(),
        (Some(Err(())), v) => {
            list.clear();
            list.push(v);
        }
        (Some(Ok(i)), v) => {
            let k = slot(list.len(), i)
                .ok_or_else(|| format!("{}: no value at index {i}", spec.text))?;
            if v == Value::Null {
                list.remove(k);
            } else {
                list[k] = v;
            }
        }
    }
    if list.is_empty() {
        c.avps.remove(&n);
    }
    Ok(())
}

/// Every value of an AVP, newest first (for `sip.avp` and tests).
pub fn avp_values(c: &Call, name: &str) -> Vec<Value> {
    c.avps.get(name).cloned().unwrap_or_default()
}

/// `$shv(name)`: one map for the whole process, sharded so workers do not
/// contend on one lock.
pub fn shared() -> &'static DashMap<String, Value> {
    static SHV: OnceLock<DashMap<String, Value>> = OnceLock::new();
    SHV.get_or_init(DashMap::new)
}

fn get_shv(c: &Call, spec: &Spec) -> Value {
    spec.name(c)
        .and_then(|n| shared().get(n.as_ref()).map(|v| v.clone()))
        .unwrap_or(Value::Null)
}
fn set_shv(c: &mut Call, spec: &Spec, v: Value) -> Result<(), String> {
    let n = name_of(c, spec)?;
    if v == Value::Null {
        shared().remove(&n);
    } else {
        shared().insert(n, v);
    }
    Ok(())
}

/// One OpenSIPS assignment: `=`, `:=` (for AVPs: replace every value),
/// `+=` (numbers add, text concatenates), `-=`, `*=`, `/=`, `%=`, `&=`,
/// `|=`, `^=` (numbers only).
pub fn assign(c: &mut Call, spec: &Spec, op: &str, v: Value) -> Result<(), String> {
    let op = op.trim();
    match op {
        "=" => return super::set(c, spec, v),
        ":=" => {
            if spec.def.name == "avp" && spec.index.is_none() {
                let mut all = spec.clone();
                all.index = Some(super::Index::All);
                return super::set(c, &all, v);
            }
            return super::set(c, spec, v);
        }
        _ => {}
    }
    let cur = super::eval(c, spec)?;
    let new = match (op, &cur, &v) {
        ("+=", Value::Str(a), b) => match b.to_text() {
            Some(b) => Value::Str(format!("{a}{b}")),
            None => cur.clone(),
        },
        ("+=", Value::Int(_) | Value::Null, Value::Str(b)) if b.trim().parse::<i64>().is_err() => {
            Value::Str(format!("{}{b}", cur.to_text().unwrap_or_default()))
        }
        _ => {
            let a = cur.to_int().unwrap_or(0);
            let b = v
                .to_int()
                .ok_or_else(|| format!("{}: {op} needs a number", spec.text))?;
            Value::Int(match op {
                "+=" => a.wrapping_add(b),
                "-=" => a.wrapping_sub(b),
                "*=" => a.wrapping_mul(b),
                "/=" | "%=" if b == 0 => {
                    return Err(format!("{}: division by zero", spec.text));
                }
                "/=" => a.wrapping_div(b),
                "%=" => a.wrapping_rem(b),
                "&=" => a & b,
                "|=" => a | b,
                "^=" => a ^ b,
                _ => return Err(format!("unknown assignment operator '{op}'")),
            })
        }
    };
    if spec.def.name == "avp" && spec.index.is_none() {
        // Update the newest value in place rather than adding one.
        let mut first = spec.clone();
        first.index = Some(super::Index::At(0));
        if get_avp(c, spec) != Value::Null {
            return super::set(c, &first, new);
        }
    }
    super::set(c, spec, new)
}

pub static DEFS: &[PvDef] = &[
    PvDef {
        name: "var",
        get: get_var,
        set: Some(set_var),
        takes_inner: true,
        doc: "script variable, per worker, kept between messages (writable; null deletes)",
        peek: None,
    },
    PvDef {
        name: "avp",
        get: get_avp,
        set: Some(set_avp),
        takes_inner: true,
        doc: "AVP list, per message, newest first; [n] n-th, [*] all on write (writable)",
        peek: None,
    },
    PvDef {
        name: "shv",
        get: get_shv,
        set: Some(set_shv),
        takes_inner: true,
        doc: "shared variable, one for all workers (writable; null deletes)",
        peek: None,
    },
];
