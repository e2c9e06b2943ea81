//! `sip.dispatcher.*`: the OpenSIPS dispatcher functions.
//!
//! The failover list lives in AVPs as in OpenSIPS, so it follows the
//! transaction into a failure route: `$avp(ds_dst_failover)` holds the
//! destinations still to try (index 0 the current one), `ds_grp_failover`
//! the set and `ds_cnt_failover` their number; a partition other than
//! `default` suffixes the names with `_NAME`.

use std::sync::atomic::Ordering;

use mlua::{Function, Lua, MultiValue, Table};

use super::args::{parse_filter, parse_flags, parse_mark, parse_set, parse_sets, Flags};
use super::select::{self, Key, Opts};
use super::sets::{self, Dest, Partition, Set, INACTIVE};
use crate::pv::Value;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// The failover AVP names of a partition (defaults when it is unknown).
fn names_of(sets: &sets::Sets, part: &str) -> sets::AvpNames {
    sets.partition(Some(part))
        .map(|p| p.names.clone())
        .unwrap_or_default()
}

/// The key the algorithm chooses with; may call into Lua (9 evaluates
/// pseudo-variables, 10 calls `algo_route`).
fn key(
    lua: &Lua,
    st: &State,
    a: &Args,
    part: &Partition,
    set: &Set,
    alg: i64,
    user_only: bool,
) -> mlua::Result<Key> {
    let msg_key =
        |f: &dyn Fn(&crate::sip::Message) -> Option<String>| -> mlua::Result<Option<String>> {
            super::super::with_msg(st, a.fname, f)
        };
    let k = match alg {
        0 => msg_key(&|m| m.call_id().map(str::to_string))?.map(|s| Key::Hash(select::hash(&s))),
        1 => msg_key(&|m| m.from().map(|n| select::uri_key(n.uri, user_only)))?
            .map(|s| Key::Hash(select::hash(&s))),
        2 => msg_key(&|m| m.to().map(|n| select::uri_key(n.uri, user_only)))?
            .map(|s| Key::Hash(select::hash(&s))),
        3 => msg_key(&|m| Some(select::uri_key(m.ruri(), user_only)))?
            .map(|s| Key::Hash(select::hash(&s))),
        4 => Some(Key::RoundRobin),
        5 => Some(
            msg_key(&|m| {
                m.header("Proxy-Authorization")
                    .or_else(|| m.header("Authorization"))
                    .and_then(select::auth_username)
            })?
            .map_or(Key::RoundRobin, |u| Key::Hash(select::hash(&u))),
        ),
        6 => Some(Key::Random(crate::modules::random())),
        7 => match &part.hash_pvar {
            Some(f) => {
                let s = crate::script::api::pv_fmt(lua, st, f)?;
                Some(Key::Hash(select::hash(&s)))
            }
            None => return Err(a.err("algorithm 7 needs hash_pvar in config.modules.dispatcher")),
        },
        9 => match &part.pvar_algo_pattern {
            Some(p) => {
                let mut loads = Vec::with_capacity(set.dests.len());
                for d in &set.dests {
                    let s = crate::script::api::pv_fmt(lua, st, &p.replace("%u", &d.uri))?;
                    loads.push(s.trim().parse::<i64>().unwrap_or(0));
                }
                Some(Key::Load(loads))
            }
            None => Some(Key::First),
        },
        10 => match &part.algo_route {
            Some(name) => {
                let f = algo_fn(lua, name).ok_or_else(|| {
                    a.err(format!(
                        "algo_route '{name}' is not a function of the script"
                    ))
                })?;
                let mut w = Vec::with_capacity(set.dests.len());
                for d in &set.dests {
                    let v: Option<i64> =
                        f.call((d.uri.as_str(), d.attrs.as_str(), d.weight, set.id))?;
                    w.push(v.unwrap_or(-1));
                }
                Some(Key::Order(w))
            }
            None => return Err(a.err("algorithm 10 needs algo_route in config.modules.dispatcher")),
        },
        _ => Some(Key::First),
    };
    // A hash over a part the message lacks falls back to the first entry.
    Ok(k.unwrap_or(Key::First))
}

fn algo_fn(lua: &Lua, name: &str) -> Option<Function> {
    if let Ok(t) = lua.globals().get::<Table>("route") {
        if let Ok(f) = t.get::<Function>(name) {
            return Some(f);
        }
    }
    lua.globals().get::<Function>(name).ok()
}

/// Points the call at `d`: `$du` (dst) or the R-URI host and port (domain).
fn apply(st: &State, a: &Args, d: &Dest, domain: bool) -> mlua::Result<()> {
    let mut call = st.call.borrow_mut();
    if domain {
        let spec_rd = st.pv.borrow_mut().spec("$rd").map_err(|e| a.err(e))?;
        let spec_rp = st.pv.borrow_mut().spec("$rp").map_err(|e| a.err(e))?;
        let host = if d.host.contains(':') {
            format!("[{}]", d.host)
        } else {
            d.host.clone()
        };
        crate::pv::set(&mut call, &spec_rd, Value::Str(host)).map_err(|e| a.err(e))?;
        crate::pv::set(&mut call, &spec_rp, Value::Int(i64::from(d.port))).map_err(|e| a.err(e))?;
    } else {
        call.du = Some(d.uri.clone());
    }
    if let Some(s) = &d.socket {
        let spec = st
            .pv
            .borrow_mut()
            .spec("$socket_out")
            .map_err(|e| a.err(e))?;
        if let Err(e) = crate::pv::set(&mut call, &spec, Value::Str(s.clone())) {
            tracing::warn!("{}: socket {s} of {}: {e}", a.fname, d.uri);
        }
    }
    Ok(())
}

/// Algorithms of the second argument: a number or the 2.x list `"4,0"`
/// (one per set; the last one repeats).
fn parse_algs(a: &Args) -> mlua::Result<Vec<i64>> {
    if let Ok(Some(n)) = a.opt_int(1) {
        return Ok(vec![n]);
    }
    a.str(1)?
        .split(',')
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|_| a.err(format!("algorithm '{}' is not a number", x.trim())))
        })
        .collect()
}

fn select_common(lua: &Lua, st: &State, a: Args, domain: bool) -> mlua::Result<MultiValue> {
    let set_arg = a.str(0)?;
    let algs = parse_algs(&a)?;
    let flags = match a.opt_str(2)? {
        Some(f) => parse_flags(&f).map_err(|e| a.err(e))?,
        None => Flags::default(),
    };
    let partition = a.opt_str(3)?;
    let wanted = parse_sets(&set_arg, partition.as_deref()).map_err(|e| a.err(e))?;
    let mut flags = flags;
    if let Some(m) = a.opt_int(4)? {
        flags.max_results = usize::try_from(m).unwrap_or(0);
    }
    if flags.force && !domain && st.call.borrow().du.is_some() {
        return ret(lua, true);
    }
    let sets = super::current();
    // Each named set in turn; a missing set or partition is skipped.
    let mut chosen: Vec<(&Partition, &Set, Vec<usize>)> = Vec::with_capacity(wanted.len());
    for (i, (pname, setid)) in wanted.iter().enumerate() {
        let Some(part) = sets.partition(pname.as_deref()) else {
            continue;
        };
        let Some(set) = part.set(*setid) else {
            continue;
        };
        let alg = algs.get(i).or(algs.last()).copied().unwrap_or(0);
        let k = key(lua, st, &a, part, set, alg, flags.user_only)?;
        let order = select::select(
            set,
            &k,
            Opts {
                use_default: flags.use_default,
                // Without `f` only the chosen one is kept.
                max_results: if flags.failover { flags.max_results } else { 1 },
            },
        );
        if !order.is_empty() {
            chosen.push((part, set, order));
            if !flags.failover {
                break;
            }
        }
    }
    let Some((part, set, order)) = chosen.first() else {
        return ret(lua, false);
    };
    let (part, set) = (*part, *set);
    let d = &set.dests[order[0]];
    d.hits.fetch_add(1, Ordering::Relaxed);
    apply(st, &a, d, domain)?;
    let mut keep: Vec<Value> = if flags.failover {
        chosen
            .iter()
            .flat_map(|(_, s, o)| o.iter().map(|&i| Value::Str(s.dests[i].uri.clone())))
            .collect()
    } else {
        vec![Value::Str(d.uri.clone())]
    };
    if flags.failover && flags.max_results > 0 {
        keep.truncate(flags.max_results);
    }
    let mut call = st.call.borrow_mut();
    let dst = part.names.dst(&part.name);
    let list = call.avps.entry(dst).or_default();
    if flags.append {
        list.extend(keep);
    } else {
        *list = keep;
    }
    let n = list.len() as i64;
    call.avps
        .insert(part.names.grp(&part.name), vec![Value::Int(set.id)]);
    call.avps
        .insert(part.names.cnt(&part.name), vec![Value::Int(n)]);
    if let Some(name) = &part.attrs_avp {
        let name = name
            .trim_start_matches("$avp(")
            .trim_end_matches(')')
            .to_string();
        call.avps.insert(name, vec![Value::Str(d.attrs.clone())]);
    }
    super::script_attrs::to_avp(&mut call, &part.names, d);
    drop(call);
    ret(lua, true)
}

fn ds_select_dst(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    select_common(lua, st, a, false)
}

fn ds_select_domain(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    select_common(lua, st, a, true)
}

/// Finds a destination by set id and URI.
fn find<'a>(sets: &'a sets::Sets, part: &str, setid: Option<i64>, uri: &str) -> Option<&'a Dest> {
    let p = sets.partition(Some(part))?;
    let in_sets = |setid: Option<i64>| {
        p.sets
            .iter()
            .filter(move |s| setid.is_none_or(|id| s.id == id))
            .flat_map(|s| s.dests.iter())
            .find(|d| d.uri == uri)
    };
    // A failover list over several sets holds destinations of the others too.
    in_sets(setid).or_else(|| in_sets(None))
}

fn next_common(lua: &Lua, st: &State, a: Args, domain: bool) -> mlua::Result<MultiValue> {
    let part = a.opt_str(0)?.unwrap_or_else(|| "default".into());
    let sets = super::current();
    let names = names_of(&sets, &part);
    let (uri, setid) = {
        let mut call = st.call.borrow_mut();
        let setid = call
            .avps
            .get(&names.grp(&part))
            .and_then(|v| v.first())
            .and_then(Value::to_int);
        let Some(list) = call.avps.get_mut(&names.dst(&part)) else {
            return ret(lua, false);
        };
        if !list.is_empty() {
            list.remove(0);
        }
        let n = list.len() as i64;
        let uri = list.first().and_then(|v| v.as_str().map(str::to_string));
        call.avps.insert(names.cnt(&part), vec![Value::Int(n)]);
        (uri, setid)
    };
    let Some(uri) = uri else {
        return ret(lua, false);
    };
    match find(&sets, &part, setid, &uri) {
        Some(d) => apply(st, &a, d, domain)?,
        // Gone in a reload: the URI is still a good next hop.
        None if !domain => st.call.borrow_mut().du = Some(uri),
        None => return ret(lua, false),
    }
    ret(lua, true)
}

fn ds_next_dst(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    next_common(lua, st, a, false)
}

fn ds_next_domain(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    next_common(lua, st, a, true)
}

fn ds_mark_dst(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let state = match a.opt_str(0)? {
        Some(s) => {
            parse_mark(&s).ok_or_else(|| a.err(format!("unknown state '{s}' (i, a or p)")))?
        }
        None => INACTIVE,
    };
    let part = a.opt_str(1)?.unwrap_or_else(|| "default".into());
    let sets = super::current();
    let names = names_of(&sets, &part);
    let (uri, setid) = {
        let call = st.call.borrow();
        let uri = call
            .avps
            .get(&names.dst(&part))
            .and_then(|v| v.first())
            .and_then(|v| v.as_str().map(str::to_string));
        let setid = call
            .avps
            .get(&names.grp(&part))
            .and_then(|v| v.first())
            .and_then(Value::to_int);
        (uri, setid)
    };
    let Some(uri) = uri else {
        return ret(lua, false);
    };
    match find(&sets, &part, setid, &uri) {
        Some(d) => {
            let setid = setid.unwrap_or(-1);
            match state {
                // OpenSIPS: "p" takes ds_probing_threshold calls in a row.
                super::sets::PROBING if d.state() == super::sets::ACTIVE => {
                    let limit = super::probe::conf().threshold;
                    let n = d
                        .failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        + 1;
                    if n >= limit {
                        d.failures
                            .store(limit, std::sync::atomic::Ordering::Relaxed);
                        super::set_state(&part, setid, d, state);
                    }
                }
                _ => {
                    if state == super::sets::ACTIVE {
                        d.failures.store(0, std::sync::atomic::Ordering::Relaxed);
                    }
                    super::set_state(&part, setid, d, state);
                }
            }
            ret(lua, true)
        }
        None => ret(lua, false),
    }
}

fn ds_is_in_list(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let ip_s = a.str(0)?;
    let ip: std::net::IpAddr = match ip_s.trim_start_matches('[').trim_end_matches(']').parse() {
        Ok(ip) => ip,
        Err(_) => return ret(lua, false),
    };
    let port = a.opt_int(1)?.unwrap_or(0);
    let partition = a.opt_str(3)?;
    let (pname, setid) = match a.opt_str(2)? {
        Some(s) if s.trim() != "-1" && !s.trim().ends_with(':') => {
            let (p, id) = parse_set(&s, partition.as_deref()).map_err(|e| a.err(e))?;
            (p, Some(id))
        }
        Some(s) if s.trim().ends_with(':') => (
            Some(s.trim().trim_end_matches(':').trim().to_string()),
            None,
        ),
        _ => (partition, None),
    };
    let active_only = match a.vals.get(4) {
        Some(mlua::Value::Boolean(b)) => *b,
        Some(mlua::Value::Nil) | None => false,
        Some(_) => a.opt_int(4)?.unwrap_or(0) != 0,
    };
    let sets = super::current();
    let Some(p) = sets.partition(pname.as_deref()) else {
        return ret(lua, false);
    };
    let hit = p
        .sets
        .iter()
        .filter(|s| setid.is_none_or(|id| s.id == id))
        .find_map(|s| {
            s.dests
                .iter()
                .find(|d| {
                    d.has_ip(ip)
                        && (port == 0 || i64::from(d.port) == port)
                        && (!active_only || d.is_active())
                })
                .map(|d| (s.id, d))
        });
    let Some((group, d)) = hit else {
        return ret(lua, false);
    };
    let mut call = st.call.borrow_mut();
    // Without a set, `setid_pvar` learns which set matched; the attrs go
    // to `attrs_avp` as ds_select_dst does.
    if setid.is_none() {
        if let Some(pv) = &p.names.setid_pvar {
            let spec = st.pv.borrow_mut().spec(pv).map_err(|e| a.err(e))?;
            crate::pv::set(&mut call, &spec, Value::Int(group)).map_err(|e| a.err(e))?;
        }
    }
    if let Some(name) = &p.attrs_avp {
        let name = name
            .trim_start_matches("$avp(")
            .trim_end_matches(')')
            .to_string();
        call.avps.insert(name, vec![Value::Str(d.attrs.clone())]);
    }
    super::script_attrs::to_avp(&mut call, &p.names, d);
    drop(call);
    ret(lua, true)
}

fn ds_count(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let set_arg = a.str(0)?;
    let filter = parse_filter(&a.str(1)?).map_err(|e| a.err(e))?;
    let out = a.opt_str(2)?;
    let partition = a.opt_str(3)?;
    let (pname, setid) = parse_set(&set_arg, partition.as_deref()).map_err(|e| a.err(e))?;
    let sets = super::current();
    let Some(set) = sets.partition(pname.as_deref()).and_then(|p| p.set(setid)) else {
        return ret(lua, false);
    };
    let n = set
        .dests
        .iter()
        .filter(|d| filter.get(d.state() as usize).copied().unwrap_or(false))
        .count() as i64;
    if let Some(out) = out {
        let spec = st.pv.borrow_mut().spec(&out).map_err(|e| a.err(e))?;
        crate::pv::set(&mut st.call.borrow_mut(), &spec, Value::Int(n)).map_err(|e| a.err(e))?;
    }
    ret(lua, n)
}

const SEL: RouteMask = RouteMask::REQUEST.or(RouteMask::FAILURE);

/// The Lua functions (`sip.dispatcher.*`); the module is in `exports.rs`.
pub static EXPORTS: &[Export] = &[
        Export {
            name: "ds_select_dst",
            args: "(set, alg [, flags [, partition [, max_results]]])",
            returns: "true if a destination was chosen; false when the set does not exist or has no active destination",
            routes: SEL,
            doc: "Chooses an active destination of `set` (a number or `\"partition:set\"`) with algorithm `alg` (0 Call-ID hash, 1 From, 2 To, 3 R-URI, 4 weighted round-robin, 5 auth username, 6 random, 7 hash_pvar, 8 first, 9 pvar_algo_pattern load, 10 algo_route ordering) and sets `$du`. Flags: `f` keep the failover list for ds_next_dst, `u` hash the user part only, `s` keep an existing `$du`, `d` the last destination is the default, `a` append to the list, `M n` at most n destinations.",
            func: Func::Sync(ds_select_dst),
        },
        Export {
            name: "ds_select_domain",
            args: "(set, alg [, flags [, partition [, max_results]]])",
            returns: "true if a destination was chosen",
            routes: SEL,
            doc: "As ds_select_dst, but rewrites the host and port of the R-URI instead of setting `$du`.",
            func: Func::Sync(ds_select_domain),
        },
        Export {
            name: "ds_next_dst",
            args: "([partition])",
            returns: "true if there was another destination",
            routes: SEL,
            doc: "Drops the current destination from the failover list (`$avp(ds_dst_failover)`) and sets `$du` to the next one.",
            func: Func::Sync(ds_next_dst),
        },
        Export {
            name: "ds_next_domain",
            args: "([partition])",
            returns: "true if there was another destination",
            routes: SEL,
            doc: "As ds_next_dst, but rewrites the host and port of the R-URI.",
            func: Func::Sync(ds_next_domain),
        },
        Export {
            name: "ds_mark_dst",
            args: "([state [, partition]])",
            returns: "true if the destination was found",
            routes: SEL,
            doc: "Marks the current destination (head of the failover list) inactive (`i`, default), active (`a`) or probing (`p`). Inactive and probing destinations are not chosen.",
            func: Func::Sync(ds_mark_dst),
        },
        Export {
            name: "ds_is_in_list",
            args: "(ip, port [, set [, partition [, active_only]]])",
            returns: "true if ip:port is a destination",
            routes: RouteMask::REQUEST
                .or(RouteMask::FAILURE)
                .or(RouteMask::BRANCH)
                .or(RouteMask::ONREPLY),
            doc: "Whether `ip` and `port` (0 or nil: any port) name a destination of `set` (nil or -1: every set) whose address is that IP: the URI's IP literal, or an address its host name resolved to when the sets were loaded (the system resolver, on a thread of its own, as OpenSIPS's load-time lookup; until it answers, such a destination does not match).",
            func: Func::Sync(ds_is_in_list),
        },
        Export {
            name: "ds_count",
            args: "(set, filter [, out_var [, partition]])",
            returns: "the count, or false when the set does not exist",
            routes: RouteMask::ANY,
            doc: "Counts the destinations of `set` in the states of `filter` (`a`/`1` active, `i`/`0` inactive, `p`/`2` probing, combined: `\"ip\"`) and stores the count in the pseudo-variable `out_var`.",
            func: Func::Sync(ds_count),
        },
        Export {
            name: "ds_push_script_attrs",
            args: "(script_attrs, ip, port [, set [, partition]])",
            returns: "true, 1; false, -1 when `ip` is not an IP address",
            routes: RouteMask::ANY,
            doc: "Stores the opaque string `script_attrs` on every destination of `set` (nil: every set) whose address is `ip` (its IP literal, or an address its host name resolved to at load, as for `ds_is_in_list`) and whose port is `port` (0, or a URI without a port: any). As in OpenSIPS, finding no destination is still true. MI `ds_list` shows it as `script_attr`; `script_attrs_avp` gets it when the destination is chosen. A reload forgets it.",
            func: Func::Sync(super::script_attrs::ds_push_script_attrs),
        },
        Export {
            name: "ds_get_script_attrs",
            args: "(uri, set [, partition [, out_var]])",
            returns: "true, 1, attrs; false, -1 when no destination of `set` (-1: any) has exactly this URI",
            routes: RouteMask::ANY,
            doc: "The script attrs of the destination whose URI is `uri` (compared as written), also written to the pseudo-variable `out_var` when given (`\"\"` when none were pushed).",
            func: Func::Sync(super::script_attrs::ds_get_script_attrs),
        },
];
