//! avpops' operations on the AVPs of a call (avpops_impl.c: ops_check_avp,
//! ops_copy_avp, ops_subst, ops_op_avp, ops_pushto_avp, ops_shuffle_avp,
//! ops_delete_avp, ops_print_avp, ops_is_avp_set). AVP lists are newest
//! first; a value added goes in front, as OpenSIPS's add_avp.

use std::rc::Rc;

use mlua::{Lua, MultiValue};

use crate::modules::sipmsgops::ret_code;
use crate::proxy::context::{Call, PendingBranch};
use crate::pv::re::{posix, Posix};
use crate::pv::{self, Spec, Value};
use crate::script::exports::Args;
use crate::script::host::State;

/// `text` split at its first `/`: (before, after or "").
fn cut(s: &str) -> (&str, &str) {
    s.split_once('/').unwrap_or((s, ""))
}

fn spec(st: &State, a: &Args, text: &str) -> mlua::Result<Rc<Spec>> {
    st.pv.borrow_mut().spec(text.trim()).map_err(|e| a.err(e))
}

fn avp_spec(st: &State, a: &Args, text: &str) -> mlua::Result<Rc<Spec>> {
    let s = spec(st, a, text)?;
    if s.def.name != "avp" {
        return Err(a.err(format!("'{text}' is not an $avp(name)")));
    }
    Ok(s)
}

/// The flags after a `/`, each one of `allowed`.
fn flags(a: &Args, f: &str, allowed: &str) -> mlua::Result<String> {
    let f = f.to_ascii_lowercase();
    match f.chars().find(|c| !allowed.contains(*c)) {
        Some(c) => Err(a.err(format!("bad flag '{c}' (allowed: {allowed})"))),
        None => Ok(f),
    }
}

fn name(call: &Call, s: &Spec) -> Option<String> {
    s.name(call).map(|n| n.into_owned())
}

/// Adds `v` as the newest value of `name`.
fn add(call: &mut Call, name: &str, v: Value) {
    call.avps.entry(name.to_string()).or_default().insert(0, v);
}

/// Removes the values at `idx` (positions in the list) of `name`.
fn remove(call: &mut Call, name: &str, idx: &[usize]) {
    if let Some(list) = call.avps.get_mut(name) {
        let mut k = 0;
        list.retain(|_| {
            k += 1;
            !idx.contains(&(k - 1))
        });
        if list.is_empty() {
            call.avps.remove(name);
        }
    }
}

/// `avp_delete(name)`.
pub fn avp_delete(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let arg = a.str(0)?;
    let (n, f) = cut(&arg);
    let all = flags(&a, f, "g")?.contains('g');
    let mut call = st.call.borrow_mut();
    if n.starts_with('$') {
        let s = avp_spec(st, &a, n)?;
        let Some(name) = name(&call, &s) else {
            return ret_code(lua, -1);
        };
        let Some(list) = call.avps.get_mut(&name) else {
            return ret_code(lua, -1);
        };
        if all || list.len() == 1 {
            call.avps.remove(&name);
        } else {
            list.remove(0);
        }
        return ret_code(lua, 1);
    }
    // `*`, `s`, `a`: every AVP; `i`: those with integer names.
    let only_int = match n.chars().next() {
        Some('i' | 'I') => true,
        Some('*' | 's' | 'S' | 'a' | 'A') => false,
        _ => return Err(a.err(format!("bad name '{n}' (expected $avp(name), *, s or i)"))),
    };
    let before = call.avps.len();
    call.avps
        .retain(|k, _| only_int && !k.bytes().all(|b| b.is_ascii_digit()));
    ret_code(lua, if call.avps.len() < before { 1 } else { -1 })
}

/// `avp_copy(src, dst[/flags])`: flags g, d, n, s.
pub fn avp_copy(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let src = avp_spec(st, &a, &a.str(0)?)?;
    let arg = a.str(1)?;
    let (d, f) = cut(&arg);
    let dst = avp_spec(st, &a, d)?;
    let f = flags(&a, f, "gdns")?;
    let mut call = st.call.borrow_mut();
    let (Some(sn), Some(dn)) = (name(&call, &src), name(&call, &dst)) else {
        return ret_code(lua, -1);
    };
    let vals = call.avps.get(&sn).cloned().unwrap_or_default();
    let take = if f.contains('g') { vals.len() } else { vals.len().min(1) };
    if take == 0 {
        return ret_code(lua, -1);
    }
    let mut out = Vec::with_capacity(take);
    for v in &vals[..take] {
        out.push(match v {
            Value::Str(s) if f.contains('n') => match s.trim().parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => {
                    tracing::error!("{}: cannot convert '{s}' to an integer", a.fname);
                    return ret_code(lua, -1);
                }
            },
            Value::Int(i) if f.contains('s') => Value::Str(i.to_string()),
            v => v.clone(),
        });
    }
    if f.contains('d') {
        remove(&mut call, &sn, &(0..take).collect::<Vec<_>>());
    }
    for v in out {
        add(&mut call, &dn, v);
    }
    ret_code(lua, 1)
}

/// `avp_shuffle(name)`: Fisher-Yates over the values.
pub fn avp_shuffle(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let s = avp_spec(st, &a, &a.str(0)?)?;
    let mut call = st.call.borrow_mut();
    let Some(n) = name(&call, &s) else {
        return ret_code(lua, -1);
    };
    if let Some(list) = call.avps.get_mut(&n) {
        for i in (1..list.len()).rev() {
            let j = crate::modules::random() as usize % (i + 1);
            list.swap(i, j);
        }
    }
    ret_code(lua, 1)
}

/// `avp_print()`.
pub fn avp_print(lua: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    let call = st.call.borrow();
    let mut names: Vec<_> = call.avps.keys().collect();
    names.sort();
    tracing::info!("avp_print: all AVPs of this call ({})", names.len());
    for n in names {
        for v in &call.avps[n] {
            match v {
                Value::Int(i) => tracing::info!("avp_print: name=<{n}> int value=<{i}>"),
                v => tracing::info!("avp_print: name=<{n}> str value=<{v}>"),
            }
        }
    }
    ret_code(lua, 1)
}

/// The values a parameter stands for: every value of an AVP (the first
/// only unless `all`), or the one value of another variable.
fn values_of(call: &Call, s: &Spec, all: bool) -> Vec<Value> {
    if s.def.name == "avp" && s.index.is_none() {
        let list = name(call, s)
            .and_then(|n| call.avps.get(&n).cloned())
            .unwrap_or_default();
        let k = if all { list.len() } else { list.len().min(1) };
        return list[..k].to_vec();
    }
    match pv::get(call, s) {
        Value::Null => Vec::new(),
        v => vec![v],
    }
}

/// `i:5`, `s:5`, or a number or text as written (parse_intstr_value).
fn intstr(s: &str) -> Value {
    if let Some(i) = s.strip_prefix("i:").or_else(|| s.strip_prefix("I:")) {
        return Value::Int(i.trim().parse().unwrap_or(0));
    }
    if let Some(t) = s.strip_prefix("s:").or_else(|| s.strip_prefix("S:")) {
        return Value::Str(t.to_string());
    }
    match s.parse::<i64>() {
        Ok(i) => Value::Int(i),
        Err(_) => Value::Str(s.to_string()),
    }
}

/// Case-insensitive compare of two strings as strncasecmp over the
/// longer length.
fn cmp_ci(x: &str, y: &str) -> std::cmp::Ordering {
    x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase())
}

/// One comparison of avp_check; None when the types differ.
fn check_one(op: &str, x: &Value, y: &Value, ci: bool) -> Result<bool, String> {
    use std::cmp::Ordering::*;
    Ok(match (x, y) {
        (Value::Str(x), Value::Str(y)) => match op {
            "eq" if ci => x.eq_ignore_ascii_case(y),
            "eq" => x == y,
            "ne" if ci => !x.eq_ignore_ascii_case(y),
            "ne" => x != y,
            "lt" => cmp_ci(x, y) == Less,
            "le" => cmp_ci(x, y) != Greater,
            "gt" => cmp_ci(x, y) == Greater,
            "ge" => cmp_ci(x, y) != Less,
            "re" => posix(y, Posix::PARAM)?.is_match(x),
            "fm" if ci => crate::sip::glob::glob(y.to_ascii_lowercase().as_bytes(), x.to_ascii_lowercase().as_bytes()),
            "fm" => crate::sip::glob::glob(y.as_bytes(), x.as_bytes()),
            _ => false,
        },
        (Value::Int(x), Value::Int(y)) => match op {
            "eq" => x == y,
            "ne" => x != y,
            "lt" => x < y,
            "le" => x <= y,
            "gt" => x > y,
            "ge" => x >= y,
            "and" => x & y != 0,
            "or" => x | y != 0,
            "xor" => x ^ y != 0,
            _ => false,
        },
        _ => false,
    })
}

/// `avp_check(param, "op/value[/flags]")`.
pub fn avp_check(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let src = spec(st, &a, &a.str(0)?)?;
    let check = a.str(1)?;
    let (op, rest) = check
        .split_once('/')
        .ok_or_else(|| a.err(format!("'{check}' is not op/value[/flags]")))?;
    let op = op.to_ascii_lowercase();
    if !["eq", "ne", "lt", "le", "gt", "ge", "re", "fm", "and", "or", "xor"].contains(&op.as_str()) {
        return Err(a.err(format!("unknown operation '{op}'")));
    }
    let (val, f) = cut(rest);
    if val.is_empty() {
        return Err(a.err(format!("'{check}' has no value")));
    }
    let f = flags(&a, f, "gi")?;
    let (all, ci) = (f.contains('g'), f.contains('i'));
    let call = st.call.borrow();
    let checks = if val.starts_with('$') {
        values_of(&call, &*spec(st, &a, val)?, true)
    } else if op == "re" || op == "fm" {
        vec![Value::Str(val.to_string())]
    } else {
        vec![intstr(val)]
    };
    for x in values_of(&call, &src, all) {
        for y in &checks {
            match check_one(&op, &x, y, ci) {
                Ok(true) => return ret_code(lua, 1),
                Ok(false) => {}
                Err(e) => return Err(a.err(e)),
            }
        }
    }
    ret_code(lua, -1)
}

/// `avp_op("$avp(src)[/$avp(dst)]", "op/value[/flags]")`.
pub fn avp_op(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let arg = a.str(0)?;
    let (s, d) = cut(&arg);
    let src = avp_spec(st, &a, s)?;
    let dst = match d.is_empty() {
        true => src.clone(),
        false => avp_spec(st, &a, d)?,
    };
    let opv = a.str(1)?;
    let (op, rest) = opv.split_once('/').unwrap_or((&opv, ""));
    let op = op.to_ascii_lowercase();
    if !["add", "sub", "mul", "div", "mod", "and", "or", "xor", "not"].contains(&op.as_str()) {
        return Err(a.err(format!("unknown operation '{op}'")));
    }
    let (val, f) = cut(rest);
    let f = flags(&a, f, "gd")?;
    let mut call = st.call.borrow_mut();
    let operand = if val.starts_with('$') {
        let s = spec(st, &a, val)?;
        values_of(&call, &s, true)
            .into_iter()
            .find_map(|v| match v {
                Value::Int(i) => Some(i),
                _ => None,
            })
    } else {
        val.trim().parse::<i64>().ok()
    };
    let Some(y) = operand else {
        tracing::error!("{}: '{val}' is not an integer", a.fname);
        return ret_code(lua, -1);
    };
    let (Some(sn), Some(dn)) = (name(&call, &src), name(&call, &dst)) else {
        return ret_code(lua, -1);
    };
    let list = call.avps.get(&sn).cloned().unwrap_or_default();
    let mut used = Vec::new();
    let mut out = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let Value::Int(x) = v else { continue };
        out.push(match op.as_str() {
            "add" => x.wrapping_add(y),
            "sub" => x.wrapping_sub(y),
            "mul" => x.wrapping_mul(y),
            "div" | "mod" if y == 0 => {
                tracing::error!("{}: division by 0", a.fname);
                0
            }
            "div" => x.wrapping_div(y),
            "mod" => x.wrapping_rem(y),
            "and" => x & y,
            "or" => x | y,
            "xor" => x ^ y,
            _ => !y,
        });
        used.push(i);
        if !f.contains('g') {
            break;
        }
    }
    if out.is_empty() && op != "not" {
        return ret_code(lua, -1);
    }
    if out.is_empty() {
        out.push(!y);
    }
    if f.contains('d') {
        remove(&mut call, &sn, &used);
    }
    for v in out {
        add(&mut call, &dn, Value::Int(v));
    }
    ret_code(lua, 1)
}

/// `avp_subst("$avp(src)[/$avp(dst)][/flags]", subst)`.
pub fn avp_subst(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let arg = a.str(0)?;
    let (s, rest) = cut(&arg);
    let src = avp_spec(st, &a, s)?;
    let (dst, f) = match rest.starts_with('$') {
        true => {
            let (d, f) = cut(rest);
            (Some(avp_spec(st, &a, d)?), f)
        }
        false => (None, rest),
    };
    let f = flags(&a, f, "gd")?;
    let e = crate::pv::re::subst_expr(&a.str(1)?).map_err(|e| a.err(e))?;
    let mut call = st.call.borrow_mut();
    let Some(sn) = name(&call, &src) else {
        return ret_code(lua, -1);
    };
    let dn = match &dst {
        Some(d) => match name(&call, d) {
            Some(n) => n,
            None => return ret_code(lua, -1),
        },
        None => sn.clone(),
    };
    let list = call.avps.get(&sn).cloned().unwrap_or_default();
    let (mut used, mut out) = (Vec::new(), Vec::new());
    for (i, v) in list.iter().enumerate() {
        let Value::Str(text) = v else { continue };
        match crate::modules::textops::ops::subst_string(&e, text, &call) {
            Ok(Some(r)) => {
                used.push(i);
                out.push(r);
                if !f.contains('g') {
                    break;
                }
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!("{}: {err}", a.fname);
                return ret_code(lua, -1);
            }
        }
    }
    if out.is_empty() {
        return ret_code(lua, -1);
    }
    if f.contains('d') || dst.is_none() {
        remove(&mut call, &sn, &used);
    }
    for r in out {
        add(&mut call, &dn, Value::Str(r));
    }
    ret_code(lua, 1)
}

/// `is_avp_set("$avp(x)[/flags]")`: flags e, n, s.
pub fn is_avp_set(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let arg = a.str(0)?;
    let (n, f) = cut(&arg);
    let s = avp_spec(st, &a, n)?;
    let f = flags(&a, f, "ens")?;
    if f.contains('n') && f.contains('s') {
        return Err(a.err("flags n and s exclude each other"));
    }
    let call = st.call.borrow();
    let Some(list) = name(&call, &s).and_then(|n| call.avps.get(&n)) else {
        return ret_code(lua, -1);
    };
    let v = match s.index(&call) {
        Some(Ok(i)) if i > 0 => list.get(i as usize),
        _ => list.first(),
    };
    let Some(v) = v else {
        return ret_code(lua, -1);
    };
    let ok = match v {
        _ if f.is_empty() => true,
        Value::Int(_) if f.contains('s') => false,
        Value::Str(_) if f.contains('n') => false,
        Value::Int(i) if f.contains('e') => *i == 0,
        Value::Str(t) if f.contains('e') => t.is_empty(),
        _ => true,
    };
    ret_code(lua, if ok { 1 } else { -1 })
}

/// `avp_pushto(dst, src[/g])`: into `$ru`, `$ru/username`, `$ru/domain`,
/// `$du` or `$br`.
pub fn avp_pushto(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let d = a.str(0)?;
    let (dv, df) = cut(&d);
    let target = match (dv.trim(), df.to_ascii_lowercase().as_str()) {
        ("$ru", "") => "$ru",
        ("$ru", "username") => "$rU",
        ("$ru", "domain") => "$rd",
        ("$du", "") => "$du",
        ("$br", "") => "$br",
        _ => return Err(a.err(format!("unsupported destination '{d}' ($ru, $ru/username, $ru/domain, $du, $br)"))),
    };
    let sarg = a.str(1)?;
    let (s, f) = cut(&sarg);
    let src = spec(st, &a, s)?;
    let all = flags(&a, f, "g")?.contains('g');
    let vals = values_of(&st.call.borrow(), &src, all);
    if vals.is_empty() {
        return ret_code(lua, -1);
    }
    let tspec = match target {
        "$br" => None,
        t => Some(spec(st, &a, t)?),
    };
    let mut call = st.call.borrow_mut();
    for (n, v) in vals.into_iter().enumerate() {
        if matches!(v, Value::Int(_)) && matches!(target, "$du" | "$br") {
            return ret_code(lua, -1);
        }
        let text = v.to_text().unwrap_or_default().into_owned();
        match &tspec {
            None => {
                let socket = call.socket_out;
                call.tm.branches.push(PendingBranch {
                    uri: text,
                    socket,
                    ..Default::default()
                });
            }
            Some(t) => {
                if n > 0 && target != "$du" {
                    // The R-URI so far becomes a branch (append_branch).
                    let Some(uri) = call.msg.as_ref().map(|m| m.ruri().to_string()) else {
                        return ret_code(lua, -1);
                    };
                    let b = PendingBranch {
                        uri,
                        duri: call.du.clone(),
                        q: call.ru_q,
                        path: None,
                        flags: call.bflags,
                        socket: call.socket_out,
                    };
                    call.tm.branches.push(b);
                }
                if let Err(e) = pv::set(&mut call, t, Value::Str(text)) {
                    tracing::error!("{}: {e}", a.fname);
                    return ret_code(lua, -1);
                }
            }
        }
    }
    ret_code(lua, 1)
}
