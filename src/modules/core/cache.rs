//! The key-value cache functions of OpenSIPS's core (`cache_store`,
//! `cache_fetch`, `cache_remove`, `cache_add`, `cache_sub`,
//! `cache_counter_fetch`; OpenSIPS 3.4 `core_cmds.c` and
//! `cachedb/cachedb.c`) with the `local` engine of `cachedb_local`
//! (`modules/cachedb_local/hash.c`): one in-memory store shared by every
//! worker of the process, entries that may expire.
//!
//! The first argument names the engine and, after a colon, a collection
//! (`"local"`, `"local:calls"`); each collection is its own namespace. Only
//! `local` exists in lunasip: another engine (`redis:…`) is an error that
//! names the script line.
//!
//! Results as OpenSIPS's: `cache_store` and `cache_remove` are 1 (removing
//! a missing key too); `cache_fetch` and `cache_counter_fetch` are -2 when
//! the key is missing or expired, `cache_counter_fetch` -3 when the value
//! is not an integer; `cache_add`/`cache_sub` on a missing (or expired)
//! key create it with the increment and the given expiry, on a present one
//! keep its expiry, and fail (-1) when its value is not an integer.

use dashmap::DashMap;
use mlua::{IntoLua, Lua, MultiValue};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::mi::{opt, req, Command, Ctx, Kind, MiError, Params};
use crate::modules::Module;
use crate::proxy::context::Value;
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// One cached value and when it stops being valid (None: never).
#[derive(Debug, Clone)]
struct Entry {
    value: String,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// The local cache, shared by every worker: long-lived state in the
/// module registry (it survives reloads, as OpenSIPS's cachedb_local).
#[derive(Default)]
struct Cache {
    /// (collection, key) → entry.
    map: DashMap<(String, String), Entry>,
    /// Inserts since the last sweep of expired entries.
    inserts: AtomicU32,
}

fn cache() -> std::sync::Arc<Cache> {
    crate::state::state::<Cache>()
}

/// Every this many inserts, expired entries nobody read again are dropped
/// (OpenSIPS cleans them on a timer, `cache_clean_period`).
const SWEEP_EVERY: u32 = 1024;

fn expiry(now: Instant, secs: i64) -> Option<Instant> {
    (secs > 0).then(|| now + Duration::from_secs(secs as u64))
}

fn insert(key: (String, String), value: String, secs: i64) {
    let now = Instant::now();
    let c = cache();
    c.map.insert(
        key,
        Entry {
            value,
            expires: expiry(now, secs),
        },
    );
    if c.inserts.fetch_add(1, Ordering::Relaxed) + 1 >= SWEEP_EVERY {
        c.inserts.store(0, Ordering::Relaxed);
        c.map.retain(|_, e| e.live(now));
    }
}

/// The live value of a key (an expired one is dropped).
fn get(key: &(String, String)) -> Option<String> {
    let now = Instant::now();
    let c = cache();
    let hit = c.map.get(key).map(|e| e.live(now).then(|| e.value.clone()));
    match hit {
        Some(Some(v)) => Some(v),
        Some(None) => {
            c.map.remove_if(key, |_, e| !e.live(now));
            None
        }
        None => None,
    }
}

/// `cache_add`/`cache_sub`: the new value, or None when the present
/// value is not an integer.
fn add(key: (String, String), delta: i64, secs: i64) -> Option<i64> {
    let now = Instant::now();
    let c = cache();
    let mut entry = c.map.entry(key).or_insert_with(|| Entry {
        value: "0".into(),
        expires: expiry(now, secs),
    });
    if !entry.live(now) {
        // As OpenSIPS: an expired entry starts again with the new expiry.
        *entry = Entry {
            value: "0".into(),
            expires: expiry(now, secs),
        };
    }
    let old: i64 = entry.value.trim().parse().ok()?;
    let new = old.wrapping_add(delta);
    entry.value = new.to_string();
    Some(new)
}

/// Removes the keys of `collection` matching the shell glob `glob`
/// (cachedb_local `remove_chunk_f`, `fnmatch` without flags: `*`, `?`,
/// `[a-z]`, `[!x]`, `\\` escapes; `*` matches `/` too). Returns how many.
pub fn remove_chunk(collection: &str, glob: &str) -> usize {
    let pat: Vec<char> = glob.chars().collect();
    let cache = cache();
    let before = cache.map.len();
    cache.map.retain(|(c, k), _| {
        c != collection || !glob_match(&pat, &k.chars().collect::<Vec<_>>())
    });
    before.saturating_sub(cache.map.len())
}

/// `fnmatch(3)` with no flags, iterative with backtracking on `*`.
fn glob_match(p: &[char], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') if closed(&p[pi..]) => class(&p[pi..], s[si]),
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == s[si]).then_some(2),
            Some(c) => (*c == s[si]).then_some(1),
            None => None,
        };
        match step {
            Some(n) => {
                pi += n;
                si += 1;
            }
            None => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether the `[` at the start of `p` opens a class (it is closed; a
/// `]` right after the `[` or `[!` belongs to the class). An unclosed `[`
/// is a plain character.
fn closed(p: &[char]) -> bool {
    close_of(p).is_some()
}

fn close_of(p: &[char]) -> Option<usize> {
    p.iter().skip(2).position(|x| *x == ']').map(|i| i + 2)
}

/// A `[...]` class at the start of `p` against `c`: the pattern length it
/// took when `c` is in it.
fn class(p: &[char], c: char) -> Option<usize> {
    let close = close_of(p)?;
    let body = &p[1..close];
    let (neg, body) = match body.first() {
        Some('!') | Some('^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut hit = false;
    let mut i = 0;
    while i < body.len() {
        if i + 2 < body.len() && body[i + 1] == '-' {
            hit |= body[i] <= c && c <= body[i + 2];
            i += 3;
        } else {
            hit |= body[i] == c;
            i += 1;
        }
    }
    (hit != neg).then_some(close + 1)
}

/// The (collection, key) of a call: the engine must be `local`; the key
/// expands pseudo-variables and must not be empty.
fn key_of(lua: &Lua, st: &State, a: &Args) -> mlua::Result<(String, String)> {
    let id = pv_fmt(lua, st, &a.str(0)?)?;
    let (engine, group) = match id.split_once(':') {
        Some((e, g)) => (e, g),
        None => (id.as_str(), ""),
    };
    if engine != "local" {
        return Err(a.err(format!(
            "no cachedb engine '{engine}' (lunasip has the \"local\" one)"
        )));
    }
    let attr = pv_fmt(lua, st, &a.str(1)?)?;
    if attr.is_empty() {
        return Err(a.err("the key (attribute) cannot be empty"));
    }
    Ok((group.to_string(), attr))
}

/// `cache_raw_query(engine, query, [avps])`: the local engine has no
/// raw queries (OpenSIPS cachedb_local lacks CACHEDB_CAP_RAW, so
/// `cachedb_raw_query` logs and returns -1): false, -1.
fn cache_raw_query(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let id = pv_fmt(lua, st, &a.str(0)?)?;
    let engine = id.split_once(':').map_or(id.as_str(), |(e, _)| e);
    if engine != "local" {
        return Err(a.err(format!(
            "no cachedb engine '{engine}' (lunasip has the \"local\" one)"
        )));
    }
    if a.opt_str(1)?.is_none_or(|q| q.is_empty()) {
        return Err(a.err("the raw query cannot be empty"));
    }
    tracing::error!("{}: the local cache does not support raw queries", a.fname);
    Ok(MultiValue::from_iter([false.into_lua(lua)?, (-1).into_lua(lua)?]))
}

/// Writes `v` into the pseudo-variable spec given as argument `i`, if any.
fn write_out(st: &State, a: &Args, i: usize, v: Value) -> mlua::Result<()> {
    let Some(out) = a.opt_str(i)? else {
        return Ok(());
    };
    let spec = st.pv.borrow_mut().spec(&out).map_err(|e| a.err(e))?;
    crate::pv::set(&mut st.call.borrow_mut(), &spec, v).map_err(|e| a.err(e))
}

/// `nil, code` for a failed getter.
fn miss(lua: &Lua, code: i64) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([mlua::Value::Nil, code.into_lua(lua)?]))
}

fn cache_store(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let key = key_of(lua, st, &a)?;
    let value = pv_fmt(lua, st, &a.str(2)?)?;
    let secs = a.opt_int(3)?.unwrap_or(0);
    insert(key, value, secs);
    ret(lua, true)
}

fn cache_remove(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let key = key_of(lua, st, &a)?;
    cache().map.remove(&key);
    ret(lua, true)
}

fn cache_fetch(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let key = key_of(lua, st, &a)?;
    match get(&key) {
        Some(v) => {
            write_out(st, &a, 2, Value::Str(v.clone()))?;
            ret(lua, v)
        }
        None => miss(lua, -2),
    }
}

fn cache_counter_fetch(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let key = key_of(lua, st, &a)?;
    let Some(v) = get(&key) else {
        return miss(lua, -2);
    };
    let Ok(n) = v.trim().parse::<i64>() else {
        return miss(lua, -3);
    };
    write_out(st, &a, 2, Value::Int(n))?;
    ret(lua, n)
}

fn add_or_sub(lua: &Lua, st: &State, a: Args, sign: i64) -> mlua::Result<MultiValue> {
    let key = key_of(lua, st, &a)?;
    let delta = a.int(2)?;
    let secs = a.int(3)?;
    match add(key, sign.wrapping_mul(delta), secs) {
        Some(n) => {
            write_out(st, &a, 4, Value::Int(n))?;
            ret(lua, n)
        }
        None => miss(lua, -1),
    }
}

fn cache_add(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    add_or_sub(lua, st, a, 1)
}

fn cache_sub(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    add_or_sub(lua, st, a, -1)
}

/// The (collection, key) an MI command names (`system`, `attr`), with
/// OpenSIPS's errors (`mi/mi_core.c`).
fn mi_key(p: &Params) -> Result<(String, String), MiError> {
    let system = p.str("system").unwrap_or("");
    if system.is_empty() {
        return Err(MiError::params("Empty memory cache id"));
    }
    let attr = p.str("attr").unwrap_or("");
    if attr.is_empty() {
        return Err(MiError::params("Empty attribute name"));
    }
    let (engine, group) = system.split_once(':').unwrap_or((system, ""));
    if engine != "local" {
        return Err(MiError::new(500, "Cache store command failed"));
    }
    Ok((group.to_string(), attr.to_string()))
}

fn mi_cache_store(_: &Ctx, p: &Params) -> Result<serde_json::Value, MiError> {
    let key = mi_key(p).map_err(|e| match e.code {
        500 => MiError::new(500, "Cache store command failed"),
        _ => e,
    })?;
    let value = p.str("value").unwrap_or("");
    if value.is_empty() {
        return Err(MiError::params("Empty value"));
    }
    insert(key, value.to_string(), p.int("expire").unwrap_or(0));
    Ok(serde_json::Value::String("OK".into()))
}

fn mi_cache_fetch(_: &Ctx, p: &Params) -> Result<serde_json::Value, MiError> {
    let key = mi_key(p).map_err(|e| match e.code {
        500 => MiError::new(500, "Cache fetch command failed"),
        _ => e,
    })?;
    match get(&key).filter(|v| !v.is_empty()) {
        Some(v) => Ok(serde_json::json!({ "key": key.1, "value": v })),
        None => Err(MiError::new(400, "Value not found")),
    }
}

fn mi_cache_remove(_: &Ctx, p: &Params) -> Result<serde_json::Value, MiError> {
    let key = mi_key(p).map_err(|e| match e.code {
        500 => MiError::new(500, "Cache remove command failed"),
        _ => e,
    })?;
    cache().map.remove(&key);
    Ok(serde_json::Value::String("OK".into()))
}

static MI: &[Command] = &[
    Command {
        name: "cache_store",
        help: "Stores `value` under `attr` in the cache `system` (`local` or `local:collection`), for `expire` seconds (none or 0: for ever); the routes see it at once.",
        module: "core",
        params: &[
            req("system", Kind::Str),
            req("attr", Kind::Str),
            req("value", Kind::Str),
            opt("expire", Kind::Int),
        ],
        result: "`\"OK\"`",
        handler: mi_cache_store,
    },
    Command {
        name: "cache_fetch",
        help: "Reads the value under `attr` in the cache `system`; error 400 \"Value not found\" when missing or expired.",
        module: "core",
        params: &[req("system", Kind::Str), req("attr", Kind::Str)],
        result: "`{\"key\": attr, \"value\": value}`",
        handler: mi_cache_fetch,
    },
    Command {
        name: "cache_remove",
        help: "Removes `attr` from the cache `system` (a missing key too).",
        module: "core",
        params: &[req("system", Kind::Str), req("attr", Kind::Str)],
        result: "`\"OK\"`",
        handler: mi_cache_remove,
    },
];

pub static CACHE: Module = Module {
    name: "core (cache)",
    table: None,
    doc: "Key-value cache functions of OpenSIPS's core, with the in-memory `local` engine of cachedb_local shared by every worker.",
    exports: &[
        Export {
            name: "cache_store",
            args: "(engine, key, value [, expire])",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Stores `value` under `key` in the `local` cache (`engine` is `\"local\"` or `\"local:collection\"`; key and value expand pseudo-variables), replacing what was there; it expires after `expire` seconds (0 or none: never). Every worker sees it at once.",
            func: Func::Sync(cache_store),
        },
        Export {
            name: "cache_raw_query",
            args: "(engine, query, [avps])",
            returns: "false, -1: the local engine has no raw queries",
            routes: RouteMask::ANY,
            doc: "A query in the engine's own language (OpenSIPS: Redis, MongoDB…). The only engine, `local`, has none, as OpenSIPS's cachedb_local: it logs an error and returns false, -1.",
            func: Func::Sync(cache_raw_query),
        },
        Export {
            name: "cache_fetch",
            args: "(engine, key [, out_var])",
            returns: "the value; nil, -2 when missing or expired",
            routes: RouteMask::ANY,
            doc: "Reads a cached value; with `out_var` (`\"$avp(x)\"`, `\"$var(x)\"`) it is also written there, as OpenSIPS does.",
            func: Func::Sync(cache_fetch),
        },
        Export {
            name: "cache_remove",
            args: "(engine, key)",
            returns: "true (a missing key too)",
            routes: RouteMask::ANY,
            doc: "Removes a cached key.",
            func: Func::Sync(cache_remove),
        },
        Export {
            name: "cache_add",
            args: "(engine, key, increment, expire [, out_var])",
            returns: "the new value; nil, -1 when the value is not an integer",
            routes: RouteMask::ANY,
            doc: "Adds `increment` to an integer counter, atomically across workers. A missing or expired key starts from 0 with `expire` seconds (0: never); an existing one keeps its expiry. The new value is also written to `out_var` when given.",
            func: Func::Sync(cache_add),
        },
        Export {
            name: "cache_sub",
            args: "(engine, key, decrement, expire [, out_var])",
            returns: "the new value; nil, -1 when the value is not an integer",
            routes: RouteMask::ANY,
            doc: "Subtracts `decrement` from an integer counter (see `cache_add`).",
            func: Func::Sync(cache_sub),
        },
        Export {
            name: "cache_counter_fetch",
            args: "(engine, key [, out_var])",
            returns: "the integer; nil, -2 when missing or expired; nil, -3 when not an integer",
            routes: RouteMask::ANY,
            doc: "Reads a counter as an integer (also written to `out_var` when given).",
            func: Func::Sync(cache_counter_fetch),
        },
    ],
    mi: MI,
    ..Module::NONE
};

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> (String, String) {
        ("unit".into(), s.into())
    }

    #[test]
    fn counters_keep_their_expiry_and_refuse_text() {
        assert_eq!(add(k("c"), 2, 0), Some(2));
        assert_eq!(add(k("c"), -5, 60), Some(-3));
        assert!(cache().map.get(&k("c")).unwrap().expires.is_none());
        insert(k("t"), "text".into(), 0);
        assert_eq!(add(k("t"), 1, 0), None);
        assert_eq!(get(&k("t")).as_deref(), Some("text"));
    }

    #[test]
    fn globs_as_fnmatch() {
        let m = |p: &str, s: &str| glob_match(&p.chars().collect::<Vec<_>>(), &s.chars().collect::<Vec<_>>());
        assert!(m("ipblk_*", "ipblk_10.0.0.1"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "a/x/b/y/c"));
        assert!(!m("a*b", "a/x/c"));
        assert!(m("user?", "user1") && !m("user?", "user12"));
        assert!(m("[a-c]x", "bx") && !m("[!a-c]x", "bx") && m("[!a-c]x", "dx"));
        assert!(m("\\*", "*") && !m("\\*", "x"));
        assert!(m("[x", "[x"));
    }

    #[test]
    fn expired_entries_are_gone() {
        cache().map.insert(
            k("old"),
            Entry {
                value: "v".into(),
                expires: Some(Instant::now() - Duration::from_secs(1)),
            },
        );
        assert_eq!(get(&k("old")), None);
        assert!(cache().map.get(&k("old")).is_none());
        cache().map.insert(
            k("oldc"),
            Entry {
                value: "41".into(),
                expires: Some(Instant::now() - Duration::from_secs(1)),
            },
        );
        assert_eq!(add(k("oldc"), 1, 0), Some(1), "starts again");
    }
}
