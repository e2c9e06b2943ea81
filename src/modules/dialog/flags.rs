//! Dialog flags from the script (OpenSIPS 3.4 dialog.c `set_dlg_flag`,
//! `reset_dlg_flag`, `is_dlg_flag_set`, `test_and_set_dlg_flag`; the
//! same bits `$DLG_flags` reads). A flag is an index 0-31 or a name,
//! given the next free index on first use, as OpenSIPS's named flags.

use mlua::{IntoLua, Lua, MultiValue};
use std::sync::Mutex;

use super::lua::current;
use super::store::lock;
use crate::script::exports::{ret, Args};
use crate::script::host::State;

/// Named dialog flags in the order they were first used (long-lived
/// state in the module registry).
#[derive(Default)]
struct Names(Mutex<Vec<String>>);

/// The bit of flag `f` (an index or a name).
fn mask(a: &Args, f: &str) -> mlua::Result<u64> {
    let f = f.trim();
    if let Ok(i) = f.parse::<u32>() {
        return if i < 32 {
            Ok(1 << i)
        } else {
            Err(a.err(format!("flag {i} is not 0-31")))
        };
    }
    if f.is_empty() {
        return Err(a.err("an empty flag name"));
    }
    let names = crate::state::state::<Names>();
    let mut names = names.0.lock().unwrap_or_else(|e| e.into_inner());
    let i = match names.iter().position(|n| n == f) {
        Some(i) => i,
        None if names.len() < 32 => {
            names.push(f.to_string());
            names.len() - 1
        }
        None => return Err(a.err(format!("no dialog flag left for '{f}' (32 in use)"))),
    };
    Ok(1 << i)
}

/// The names of the set bits of `bits`, space-separated as OpenSIPS's
/// `bitmask_to_flag_list` (an index never named is left out).
pub fn names_of(bits: u64) -> String {
    let names = crate::state::state::<Names>();
    let names = names.0.lock().unwrap_or_else(|e| e.into_inner());
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| n.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn set_dlg_flag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let m = mask(&a, &a.str(0)?)?;
    let Some(d) = current(st) else { return ret(lua, false) };
    lock(&d).user_flags |= m;
    ret(lua, true)
}

pub(super) fn reset_dlg_flag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let m = mask(&a, &a.str(0)?)?;
    let Some(d) = current(st) else { return ret(lua, false) };
    lock(&d).user_flags &= !m;
    ret(lua, true)
}

pub(super) fn is_dlg_flag_set(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let m = mask(&a, &a.str(0)?)?;
    let set = current(st).is_some_and(|d| lock(&d).user_flags & m != 0);
    ret(lua, set)
}

/// OpenSIPS dlg_handlers.c `test_and_set_dlg_flag`: when the flag is
/// `value` (0 or 1) it flips, under the dialog's lock; 1 flipped, -1
/// not, -2 no dialog.
pub(super) fn test_and_set_dlg_flag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let m = mask(&a, &a.str(0)?)?;
    let value = match a.opt_int(1)? {
        Some(v @ 0..=1) => v == 1,
        Some(v) => return Err(a.err(format!("value {v} is not 0 or 1"))),
        None => return Err(a.err("a value (0 or 1) is needed")),
    };
    let rc: i64 = match current(st) {
        None => -2,
        Some(d) => {
            let mut d = lock(&d);
            if (d.user_flags & m != 0) == value {
                d.user_flags ^= m;
                1
            } else {
                -1
            }
        }
    };
    Ok(MultiValue::from_iter([(rc > 0).into_lua(lua)?, rc.into_lua(lua)?]))
}
