//! cfgutils' probability and set functions (OpenSIPS 3.4
//! `modules/cfgutils/cfgutils.c`: `set_prob`, `rand_event`,
//! `pv_set_count`, `pv_sel_weight`). The probability is one value shared
//! by every worker, as OpenSIPS keeps it in shared memory.

use mlua::{IntoLua, Lua, MultiValue};
use std::sync::atomic::{AtomicI64, Ordering};

use crate::proxy::context::Value;
use crate::script::exports::{ret, Args};
use crate::script::host::State;

/// The probability in percent `rand_event` uses, shared by the workers
/// (long-lived state in the module registry); -1: not set,
/// `initial_probability` applies.
struct Probability(AtomicI64);

impl Default for Probability {
    fn default() -> Self {
        Probability(AtomicI64::new(-1))
    }
}

fn store(p: i64) {
    crate::state::state::<Probability>().0.store(p, Ordering::Relaxed);
}

fn probability() -> i64 {
    match crate::state::state::<Probability>().0.load(Ordering::Relaxed) {
        -1 => super::conf().initial,
        p => p,
    }
}

fn percent(a: &Args, i: usize) -> mlua::Result<i64> {
    let p = a.int(i)?;
    if !(0..=100).contains(&p) {
        return Err(a.err(format!("{p} is not a probability (0..100)")));
    }
    Ok(p)
}

pub fn rand_set_prob(lua: &Lua, _: &State, a: Args) -> mlua::Result<MultiValue> {
    store(percent(&a, 0)?);
    ret(lua, true)
}

pub fn rand_reset_prob(lua: &Lua, _: &State, _: Args) -> mlua::Result<MultiValue> {
    store(-1);
    ret(lua, true)
}

pub fn rand_get_prob(lua: &Lua, _: &State, _: Args) -> mlua::Result<MultiValue> {
    ret(lua, probability())
}

/// True with the probability given (else the shared one).
pub fn rand_event(lua: &Lua, _: &State, a: Args) -> mlua::Result<MultiValue> {
    let p = match a.opt_int(0)? {
        Some(_) => percent(&a, 0)?,
        None => probability(),
    };
    let draw = crate::modules::random() as f64 / (u32::MAX as f64 + 1.0);
    ret(lua, draw < p as f64 / 100.0)
}

/// The values of a multi-value variable (`$avp(x)`), oldest index first
/// as `$(avp(x)[i])` reads them.
fn values(st: &State, a: &Args) -> mlua::Result<Vec<Value>> {
    let name = a.str(0)?;
    let inner = name
        .strip_prefix('$')
        .filter(|n| !n.starts_with('('))
        .ok_or_else(|| a.err(format!("{name:?} is not a variable such as \"$avp(x)\"")))?;
    let mut out = Vec::new();
    // OpenSIPS walks indexes until a null; AVP lists are bounded by the
    // script's memory, this by a generous cap.
    for i in 0..100_000 {
        let spec = st
            .pv
            .borrow_mut()
            .spec(&format!("$({inner}[{i}])"))
            .map_err(|e| a.err(e))?;
        match crate::pv::get(&st.call.borrow(), &spec) {
            Value::Null => break,
            v => out.push(v),
        }
    }
    Ok(out)
}

/// `set_count(var, [out])`: how many values `var` holds; also written to
/// `out` when given.
pub fn set_count(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let n = values(st, &a)?.len() as i64;
    if let Some(out) = a.opt_str(1)? {
        let spec = st.pv.borrow_mut().spec(&out).map_err(|e| a.err(e))?;
        crate::pv::set(&mut st.call.borrow_mut(), &spec, Value::Int(n)).map_err(|e| a.err(e))?;
    }
    ret(lua, n)
}

/// `set_select_weight(var)`: an index of `var`'s integer values drawn
/// with probability proportional to each value (roulette wheel); nil and
/// -1 when it holds none, a value that is not an integer, or weights that
/// sum to 0.
pub fn set_select_weight(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let vals = values(st, &a)?;
    let mut weights = Vec::with_capacity(vals.len());
    for v in &vals {
        match v {
            Value::Int(n) => weights.push((*n).max(0)),
            Value::Str(s) => match s.trim().parse::<i64>() {
                Ok(n) => weights.push(n.max(0)),
                Err(_) => return fail(lua),
            },
            Value::Null => {}
        }
    }
    let sum: i64 = weights.iter().sum();
    if weights.is_empty() || sum <= 0 {
        return fail(lua);
    }
    if weights.len() == 1 {
        return ret(lua, 0);
    }
    let mut draw = ((crate::modules::random() as u64) << 32 | crate::modules::random() as u64) % sum as u64;
    for (i, w) in weights.iter().enumerate() {
        if draw < *w as u64 {
            return ret(lua, i as i64);
        }
        draw -= *w as u64;
    }
    ret(lua, weights.len() as i64 - 1)
}

fn fail(lua: &Lua) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([mlua::Value::Nil, (-1).into_lua(lua)?]))
}
