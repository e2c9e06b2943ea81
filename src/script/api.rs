//! The parts of the `sip` table that are not module functions: `sip.pv`
//! (get/set/fmt/assign and the `sip.pv.ru` sugar), `sip.var` ($var),
//! `sip.avp` ($avp), `sip.tr` (transformations on any value),
//! `sip.re_match` (OpenSIPS `=~`) and the unwinding probe the prelude's
//! pcall wrapper uses.

use mlua::{IntoLua, Lua, MultiValue, Table, Value};
use std::rc::Rc;

use super::host::{located, State};
use super::resolve_wait;
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
        Value::String(s) => pv::Value::Str(String::from(&*s.to_str()?)),
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

/// A read's result as Lua sees it. Returning these types (not a
/// `mlua::Value`) lets mlua push the string or integer straight onto the
/// Lua stack, without a registry reference per read.
type Out = Option<mlua::Either<String, i64>>;

fn out(v: pv::Value) -> Out {
    match v {
        pv::Value::Null => None,
        pv::Value::Int(i) => Some(mlua::Either::Right(i)),
        pv::Value::Str(s) => Some(mlua::Either::Left(s)),
    }
}

/// Readers already made, as a Lua table from spec text (or, for the
/// sugar, the bare name) to a Rust function bound to the parsed spec.
/// `sip.pv.get` and `sip.pv.NAME` (Lua functions, see [`READ_PATH`]) look
/// there first, so a repeated read passes no argument to Rust: no
/// reference taken per argument, no hashing of the text, no parse.
struct Readers {
    table: Table,
    /// Entries in `table`; it is emptied at [`READERS_MAX`], so scripts
    /// that build specs at run time cannot grow it without bound.
    count: std::cell::Cell<usize>,
    sugar: bool,
}

const READERS_MAX: usize = 4096;

/// The first read of a spec (or after the table was emptied): parse it,
/// make its reader and remember it; Lua then calls the reader. A spec
/// with `{ip.resolve}` gets a reader that may wait for the name.
fn make_reader(
    lua: &Lua,
    st: &Rc<State>,
    r: &Readers,
    text: &mlua::String,
) -> mlua::Result<mlua::Function> {
    let text_s = text.to_str()?;
    let spec = cached_spec(lua, st, &text_s, r.sugar)?;
    if r.count.get() >= READERS_MAX {
        r.table.clear()?;
        r.count.set(0);
    }
    let st2 = st.clone();
    let reader = if resolve_wait::may_want(&text_s) {
        let now = lua.create_function(move |lua, ()| {
            let v = read(lua, &st2, &spec);
            Ok((v, resolve_wait::settle(lua, &st2)))
        })?;
        resolve_wait::again(lua, now)?
    } else {
        lua.create_function(move |lua, ()| Ok(read(lua, &st2, &spec)))?
    };
    r.table.raw_set(text, reader.clone())?;
    r.count.set(r.count.get() + 1);
    Ok(reader)
}

/// `sip.pv.get` and the `sip.pv.NAME` read, in Lua: a reader found by the
/// spec text is called with no argument; else Rust parses and makes one.
/// Named `=prelude` so script positions skip it.
const READ_PATH: &str = r#"
local pv, specs, names, make_spec, make_name = ...
pv.get = function(spec)
  local r = specs[spec] or make_spec(spec)
  return r()
end
return function(_, name)
  local r = names[name] or make_name(name)
  return r()
end
"#;

/// Reads a parsed spec.
fn read(lua: &Lua, st: &State, spec: &pv::Spec) -> Out {
    let call = st.call.borrow();
    if let Some(text) = pv::peek(&call, spec) {
        // A plain read of a message slice: no getter, no parse.
        return text.map(|t| mlua::Either::Left(t.to_string()));
    }
    match pv::eval(&call, spec) {
        Ok(v) => out(v),
        Err(e) => {
            // As OpenSIPS: log the failing transformation, go on with null.
            tracing::warn!("{}", describe_located(lua, &format!("sip.pv: {e}")));
            None
        }
    }
}

/// `file:line: msg` for a log line (no error raised).
pub(super) fn describe_located(lua: &Lua, msg: &str) -> String {
    match located(lua, msg.to_string()) {
        mlua::Error::RuntimeError(m) => m,
        other => other.to_string(),
    }
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
    resolve_wait::settle_nowait(lua);
    Ok(out)
}

/// `sip.pv.fmt` from Lua: the parsed format found by the string's identity
/// (Lua strings are immutable: the identity is a key that needs no
/// hashing of the text). Returns the text and whether it wanted a name
/// looked up (`{ip.resolve}`): Lua then waits and formats again.
fn fmt_lua(lua: &Lua, st: &State, fmt: &mlua::String) -> mlua::Result<(String, bool)> {
    let key = fmt.to_pointer() as usize;
    let found = st.pv.borrow().format_by_key(key);
    let parts = match found {
        Some(p) => p,
        None => {
            let text = fmt.to_str()?;
            let p = st
                .pv
                .borrow_mut()
                .format(&text)
                .map_err(|e| located(lua, format!("format: {e}")))?;
            st.pv
                .borrow_mut()
                .remember_format(key, Box::new(fmt.clone()), p.clone());
            p
        }
    };
    let mut out = String::with_capacity(64);
    pv::format(&st.call.borrow(), &parts, &mut out);
    Ok((out, resolve_wait::settle(lua, st)))
}

/// `sip.pv.assign(spec, op, value)`: OpenSIPS `=`, `:=`, `+=`, `-=`, …
fn pv_assign(lua: &Lua, st: &State, spec: &str, op: &str, v: &Value) -> mlua::Result<()> {
    let spec = cached_spec(lua, st, spec, false)?;
    let v = from_lua(v)?;
    pv::vars::assign(&mut st.call.borrow_mut(), &spec, op, v)
        .map_err(|e| located(lua, format!("sip.pv.assign: {e}")))
}

/// `sip.tr(value, "{t1}{t2,arg}")`: transformations on any value.
fn tr(lua: &Lua, st: &State, v: &Value, chain: &str) -> mlua::Result<Out> {
    let trans = st
        .pv
        .borrow_mut()
        .chain(chain)
        .map_err(|e| located(lua, format!("sip.tr: {e}")))?;
    let v = from_lua(v)?;
    let result = pv::tr::apply(&st.call.borrow(), &trans, v)
        .map_err(|e| located(lua, format!("sip.tr: '{chain}': {e}")))?;
    Ok(out(result))
}

/// Lua-to-text for `sip.re_match`: strings and numbers.
fn lua_text(v: &Value, what: &str) -> mlua::Result<Option<String>> {
    Ok(match v {
        Value::Nil => None,
        Value::String(s) => Some(String::from(&*s.to_str()?)),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => {
            return Err(mlua::Error::RuntimeError(format!(
                "sip.re_match: {what} must be a string, not {}",
                other.type_name()
            )))
        }
    })
}

/// Registers `sip.pv`, `sip.var`, `sip.__unwinding`, `sip.__unwind` and
/// `sip.__watch`.
pub fn register(lua: &Lua, state: &Rc<State>) -> mlua::Result<()> {
    let sip: Table = lua.globals().get("sip")?;

    let pvt = lua.create_table()?;
    let st = state.clone();
    let specs = Rc::new(Readers {
        table: lua.create_table()?,
        count: Default::default(),
        sugar: false,
    });
    let names = Rc::new(Readers {
        table: lua.create_table()?,
        count: Default::default(),
        sugar: true,
    });
    let (r, specs_t) = (specs.clone(), specs.table.clone());
    let first_spec =
        lua.create_function(move |lua, spec: mlua::String| make_reader(lua, &st, &r, &spec))?;
    let (st, r, names_t) = (state.clone(), names.clone(), names.table.clone());
    let first_name =
        lua.create_function(move |lua, name: mlua::String| make_reader(lua, &st, &r, &name))?;
    let index: mlua::Function = lua.load(READ_PATH).set_name("=prelude").call((
        pvt.clone(),
        specs_t,
        names_t,
        first_spec,
        first_name,
    ))?;
    let st = state.clone();
    pvt.set(
        "set",
        lua.create_function(move |lua, (spec, v): (String, Value)| {
            pv_set(lua, &st, &spec, &v, false)
        })?,
    )?;
    let st = state.clone();
    let fmt_now = lua.create_function(move |lua, fmt: mlua::String| fmt_lua(lua, &st, &fmt))?;
    pvt.set("fmt", resolve_wait::again(lua, fmt_now)?)?;
    let meta = lua.create_table()?;
    meta.set("__index", index)?;
    let st = state.clone();
    meta.set(
        "__newindex",
        lua.create_function(move |lua, (_t, k, v): (Table, String, Value)| {
            pv_set(lua, &st, &k, &v, true)
        })?,
    )?;
    let st = state.clone();
    pvt.set(
        "assign",
        lua.create_function(move |lua, (spec, op, v): (String, String, Value)| {
            pv_assign(lua, &st, &spec, &op, &v)
        })?,
    )?;
    pvt.set_metatable(Some(meta));
    sip.set("pv", pvt)?;

    // The sockets, for $socket_in / $socket_out / $Ri.
    state.call.borrow_mut().sockets = Some(state.env.sockets.clone());
    // The Lua state, for $cfg_line / $cfg_file.
    let weak = lua.weak();
    state.call.borrow_mut().script_pos =
        Some(crate::proxy::context::ScriptPos(Rc::new(move || {
            script_pos(&weak)
        })));
    // The same, for $route's stack of sub-routes.
    let weak = lua.weak();
    state.call.borrow_mut().route_stack =
        Some(crate::proxy::context::RouteStack(Rc::new(move || {
            route_stack(&weak)
        })));

    let st = state.clone();
    let tr_now = lua.create_function(move |lua, (v, chain): (Value, String)| {
        let out = tr(lua, &st, &v, &chain)?;
        let wait = resolve_wait::may_want(&chain) && resolve_wait::settle(lua, &st);
        Ok((out, wait))
    })?;
    sip.set("tr", resolve_wait::again(lua, tr_now)?)?;
    sip.set(
        "re_match",
        lua.create_function(move |lua, (s, re, flags): (Value, Value, Option<String>)| {
            let Some(re) = lua_text(&re, "the pattern")? else {
                return Err(located(lua, "sip.re_match: the pattern is missing".into()));
            };
            // A nil subject (an unset variable) matches nothing, as in OpenSIPS.
            let Some(s) = lua_text(&s, "the subject")? else {
                return Ok(false);
            };
            pv::re::is_match(&s, &re, flags.as_deref().unwrap_or(""))
                .map_err(|e| located(lua, format!("sip.re_match: {e}")))
        })?,
    )?;

    super::bit::register(lua, &sip)?;
    super::launch::register(lua, state, &sip)?;

    // sip.avp.x: $avp(x), per message; reads the newest value, a write adds
    // one, nil deletes the newest.
    let avp = lua.create_table()?;
    let meta = lua.create_table()?;
    let st = state.clone();
    meta.set(
        "__index",
        lua.create_function(move |lua, (_t, k): (Table, String)| {
            let v = st
                .call
                .borrow()
                .avps
                .get(&k)
                .and_then(|l| l.first().cloned())
                .unwrap_or(pv::Value::Null);
            to_lua(lua, v)
        })?,
    )?;
    let st = state.clone();
    meta.set(
        "__newindex",
        lua.create_function(move |lua, (_t, k, v): (Table, String, Value)| {
            let spec = cached_spec(lua, &st, &format!("$avp({k})"), false)?;
            let v = from_lua(&v)?;
            pv::set(&mut st.call.borrow_mut(), &spec, v)
                .map_err(|e| located(lua, format!("sip.avp: {e}")))
        })?,
    )?;
    avp.set_metatable(Some(meta));
    sip.set("avp", avp)?;

    // sip.var.x: $var(x), per worker.
    let var = lua.create_table()?;
    let meta = lua.create_table()?;
    let st = state.clone();
    meta.set(
        "__index",
        lua.create_function(move |lua, (_t, k): (Table, String)| {
            let v = st
                .call
                .borrow()
                .vars
                .get(&k)
                .cloned()
                .unwrap_or(pv::Value::Null);
            to_lua(lua, v)
        })?,
    )?;
    let st = state.clone();
    meta.set(
        "__newindex",
        lua.create_function(move |_, (_t, k, v): (Table, String, Value)| {
            let v = from_lua(&v)?;
            let mut call = st.call.borrow_mut();
            let vars = &mut call.vars;
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
    // The route clock onto a script's own coroutine before the prelude's
    // `coroutine.resume` runs it, and back onto the resumer's after
    // (no argument: the running coroutine).
    let st = state.clone();
    sip.set(
        "__watch",
        lua.create_function(move |lua, co: Value| {
            match co {
                Value::Thread(t) => st.watchdog.watch(&t),
                _ => st.watchdog.watch(&lua.current_thread()),
            }
            Ok(())
        })?,
    )?;
    // `sip.exit()`/`sip.drop()` as the prelude defines them: mark how the
    // invocation unwinds here, then raise from Lua (an error raised by a
    // Rust function would cost mlua a traceback each time).
    let st = state.clone();
    sip.set(
        "__unwind",
        lua.create_function(move |_, drop: bool| {
            st.call.borrow_mut().unwind = Some(if drop {
                crate::proxy::context::Unwind::Drop
            } else {
                crate::proxy::context::Unwind::Exit
            });
            Ok(())
        })?,
    )?;
    Ok(())
}

/// The `route` functions running under the entry route, outermost
/// first: Lua frames whose function is defined where a function of the
/// `route` table is (source and lines), the outermost script frame (the
/// entry route itself) left out. Walked only when `$route` is read, so a
/// sub-route call costs nothing more than a Lua call.
fn route_stack(lua: &mlua::WeakLua) -> Vec<String> {
    let Some(lua) = lua.try_upgrade() else {
        return Vec::new();
    };
    type Key = (Option<String>, Option<usize>, Option<usize>);
    // The script's frames, innermost first (bounded in case of deep stacks).
    let mut frames: Vec<(Key, Option<String>)> = Vec::new();
    for level in 0..256 {
        let Some(d) = lua.inspect_stack(level) else {
            break;
        };
        let src = d.source();
        if src.what != "Lua" || src.source.as_deref() == Some("=prelude") {
            continue;
        }
        let key = (
            src.source.as_deref().map(str::to_string),
            src.line_defined,
            src.last_line_defined,
        );
        frames.push((key, d.names().name.map(|n| n.to_string())));
    }
    // The outermost one is the entry route.
    frames.pop();
    if frames.is_empty() {
        return Vec::new();
    }
    let Ok(routes) = lua.globals().get::<mlua::Table>("route") else {
        return Vec::new();
    };
    let mut defs: Vec<(Key, String)> = Vec::new();
    for (name, f) in routes.pairs::<String, mlua::Function>().flatten() {
        let i = f.info();
        defs.push(((i.source, i.line_defined, i.last_line_defined), name));
    }
    frames
        .iter()
        .rev()
        .filter_map(|(key, called)| {
            let mut same = defs.iter().filter(|(k, _)| k == key);
            let first = same.next()?;
            // Two routes written on the same lines: the name it was called by.
            let named = std::iter::once(first)
                .chain(same)
                .find(|(_, n)| Some(n) == called.as_ref());
            Some(named.unwrap_or(first).1.clone())
        })
        .collect()
}

/// The script position of the Lua code evaluating a spec: the first Lua
/// frame above the Rust function that reads it (`sip.pv.get`, the
/// `sip.pv.NAME` sugar, `sip.pv.fmt`, `sip.xlog`, …), past C functions
/// and the prelude. None outside a Lua call (`lunasip eval`).
fn script_pos(lua: &mlua::WeakLua) -> Option<(String, i64)> {
    let lua = lua.try_upgrade()?;
    // Level 0 is the running (Rust) function; bounded in case of deep stacks.
    for level in 0..256 {
        let d = lua.inspect_stack(level)?;
        let src = d.source();
        let line = d.curr_line();
        // C functions and lunasip's own prelude (the pcall wrapper) are
        // not the script's position.
        if src.what == "C" || line <= 0 || src.source.as_deref() == Some("=prelude") {
            continue;
        }
        let file = match src.source.as_deref() {
            Some(s) if s.starts_with('@') || s.starts_with('=') => s[1..].to_string(),
            _ => src.short_src.as_deref().unwrap_or("?").to_string(),
        };
        return Some((file, line as i64));
    }
    None
}
