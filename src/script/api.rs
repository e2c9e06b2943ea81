//! The parts of the `sip` table that are not module functions: `sip.pv`
//! (get/set/fmt and the `sip.pv.ru` sugar), `sip.var` ($var) and the
//! unwinding probe the prelude's pcall wrapper uses.

use mlua::{IntoLua, Lua, MultiValue, Table, Value};
use std::rc::Rc;

use super::host::{located, State};
use crate::pv;

/// Converts a pseudo-variable value to Lua (null → nil).
pub fn to_lua(lua: &Lua, v: pv::Value) -> mlua::Result<Value> {
    match v {
        pv::Value::Null => Ok(Value::Nil),
        pv::Value::Int(i) => i.into_lua(lua),
        pv::Value::Str(s) => s.into_lua(lua),
    }
}

/// Converts a Lua value to a pseudo-variable value.
pub fn from_lua(v: &Value) -> mlua::Result<pv::Value> {
    Ok(match v {
        Value::Nil => pv::Value::Null,
        Value::Integer(i) => pv::Value::Int(*i),
        Value::Number(n) if n.fract() == 0.0 => pv::Value::Int(*n as i64),
        Value::Number(n) => pv::Value::Str(n.to_string()),
        Value::String(s) => pv::Value::Str(s.to_str()?.to_string()),
        Value::Boolean(b) => pv::Value::Int(*b as i64),
        other => {
            return Err(mlua::Error::RuntimeError(format!(
                "cannot store a {} in a pseudo-variable",
                other.type_name()
            )))
        }
    })
}

/// The parsed spec for `text` (`$ru`, or `ru` for the `sip.pv.ru` sugar).
fn cached_spec(
    lua: &Lua,
    st: &State,
    text: &str,
    sugar: bool,
) -> mlua::Result<std::rc::Rc<pv::Spec>> {
    let mut cache = st.pv.borrow_mut();
    let spec = if sugar {
        cache.named(text)
    } else {
        cache.spec(text)
    };
    spec.map_err(|e| located(lua, format!("sip.pv: {e}")))
}

fn pv_get(lua: &Lua, st: &State, spec: &str, sugar: bool) -> mlua::Result<Value> {
    let spec = cached_spec(lua, st, spec, sugar)?;
    let v = pv::get(&st.call.borrow(), &spec);
    to_lua(lua, v)
}

fn pv_set(lua: &Lua, st: &State, spec: &str, v: &Value, sugar: bool) -> mlua::Result<()> {
    let spec = cached_spec(lua, st, spec, sugar)?;
    let v = from_lua(v)?;
    pv::set(&mut st.call.borrow_mut(), &spec, v).map_err(|e| located(lua, format!("sip.pv: {e}")))
}

/// Expands an xlog format against the current call.
pub fn pv_fmt(lua: &Lua, st: &State, fmt: &str) -> mlua::Result<String> {
    let parts = st
        .pv
        .borrow_mut()
        .format(fmt)
        .map_err(|e| located(lua, format!("format: {e}")))?;
    let mut out = String::with_capacity(fmt.len() + 32);
    pv::format(&st.call.borrow(), &parts, &mut out);
    Ok(out)
}

/// Registers `sip.pv`, `sip.var` and `sip.__unwinding`.
pub fn register(lua: &Lua, state: &Rc<State>) -> mlua::Result<()> {
    let sip: Table = lua.globals().get("sip")?;

    let pvt = lua.create_table()?;
    let st = state.clone();
    pvt.set(
        "get",
        lua.create_function(move |lua, spec: String| pv_get(lua, &st, &spec, false))?,
    )?;
    let st = state.clone();
    pvt.set(
        "set",
        lua.create_function(move |lua, (spec, v): (String, Value)| {
            pv_set(lua, &st, &spec, &v, false)
        })?,
    )?;
    let st = state.clone();
    pvt.set(
        "fmt",
        lua.create_function(move |lua, fmt: String| pv_fmt(lua, &st, &fmt))?,
    )?;
    let meta = lua.create_table()?;
    let st = state.clone();
    meta.set(
        "__index",
        lua.create_function(move |lua, (_t, k): (Table, mlua::String)| {
            pv_get(lua, &st, &k.to_str()?, true)
        })?,
    )?;
    let st = state.clone();
    meta.set(
        "__newindex",
        lua.create_function(move |lua, (_t, k, v): (Table, String, Value)| {
            pv_set(lua, &st, &k, &v, true)
        })?,
    )?;
    pvt.set_metatable(Some(meta));
    sip.set("pv", pvt)?;

    // sip.var.x: $var(x), per worker.
    let var = lua.create_table()?;
    let meta = lua.create_table()?;
    let st = state.clone();
    meta.set(
        "__index",
        lua.create_function(move |lua, (_t, k): (Table, String)| {
            let v = st.vars.borrow().get(&k).cloned().unwrap_or(pv::Value::Null);
            to_lua(lua, v)
        })?,
    )?;
    let st = state.clone();
    meta.set(
        "__newindex",
        lua.create_function(move |_, (_t, k, v): (Table, String, Value)| {
            let v = from_lua(&v)?;
            let mut vars = st.vars.borrow_mut();
            if v == pv::Value::Null {
                vars.remove(&k);
            } else {
                vars.insert(k, v);
            }
            Ok(())
        })?,
    )?;
    var.set_metatable(Some(meta));
    sip.set("var", var)?;

    let st = state.clone();
    sip.set(
        "__unwinding",
        lua.create_function(move |_, _: MultiValue| Ok(st.call.borrow().unwind.is_some()))?,
    )?;
    Ok(())
}
