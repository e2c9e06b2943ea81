//! Pseudo-variables that do not come from the message: time, process,
//! statistics, return code, script position (route, file and line),
//! command-line options, errors and the destination set. tm's `$T_*`
//! are declared by the tm module.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{PvDef, Spec, Value};
use crate::proxy::context::Call;

fn null(_: &Call, _: &Spec) -> Value {
    Value::Null
}

fn now() -> (i64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_micros())
}

/// When the process first used the registry (close to its start).
pub(crate) fn started() -> i64 {
    static T: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T.get_or_init(|| now().0)
}

/// `strftime` in local time, as OpenSIPS's `localtime_r` + `strftime`:
/// the zone comes from `TZ` (a zone name or a POSIX rule such as
/// `CET-1CEST,M3.5.0,M10.5.0/3`), else `/etc/localtime`, else UTC. None
/// (null) for a conversion the formatter does not know, an empty result,
/// or one longer than OpenSIPS's 127-byte buffer.
pub fn strftime(fmt: &str, t: i64) -> Option<String> {
    let ts = jiff::Timestamp::from_second(t).ok()?;
    let local = ts.to_zoned_datetime(jiff::tz::TimeZone::system());
    let out = jiff::fmt::strtime::format(fmt, &local).ok()?;
    (!out.is_empty() && out.len() <= 127).then_some(out)
}

fn get_time(c: &Call, spec: &Spec) -> Value {
    let fmt = spec.name(c);
    strftime(fmt.as_deref().unwrap_or("%c"), now().0).map_or(Value::Null, Value::Str)
}
fn get_ts(_: &Call, _: &Spec) -> Value {
    Value::Int(now().0)
}
fn get_tsm(_: &Call, _: &Spec) -> Value {
    Value::Int(now().1 as i64)
}
/// `$Tf`: `ctime_r` of now, local time, without the newline.
fn get_tf(_: &Call, _: &Spec) -> Value {
    strftime("%a %b %e %H:%M:%S %Y", now().0).map_or(Value::Null, Value::Str)
}
fn get_tstart(_: &Call, _: &Spec) -> Value {
    Value::Int(started())
}
/// The worker thread's kernel id: as OpenSIPS's process id, it tells the
/// workers apart, and it is the PID the MI `ps` lists.
fn get_pp(_: &Call, _: &Spec) -> Value {
    Value::Int(rustix::thread::gettid().as_raw_nonzero().get() as i64)
}

/// `$C(fb)`: ANSI colours, foreground then background: x default, s black,
/// r red, g green, y yellow, b blue, p purple, c cyan, w white.
fn get_color(c: &Call, spec: &Spec) -> Value {
    let Some(fb) = spec.name(c) else {
        return Value::Str("\x1b[0m".into());
    };
    let code = |ch: char| "srgybpcw".find(ch);
    let mut out = String::from("\x1b[0");
    let mut it = fb.chars();
    if let Some(n) = it.next().and_then(code) {
        out.push_str(&format!(";3{n}"));
    }
    if let Some(n) = it.next().and_then(code) {
        out.push_str(&format!(";4{n}"));
    }
    out.push('m');
    Value::Str(out)
}

fn get_stat(c: &Call, spec: &Spec) -> Value {
    spec.name(c)
        .and_then(|n| crate::stats::get(n.trim()))
        .map_or(Value::Null, |v| Value::Int(v as i64))
}

fn get_rc(c: &Call, _: &Spec) -> Value {
    c.rc.map_or(Value::Null, Value::Int)
}
fn err_class(c: &Call, _: &Spec) -> Value {
    c.err.as_ref().map_or(Value::Null, |_| Value::Int(1))
}
fn err_level(c: &Call, _: &Spec) -> Value {
    c.err.as_ref().map_or(Value::Null, |_| Value::Int(1))
}
fn err_info(c: &Call, _: &Spec) -> Value {
    c.err
        .as_ref()
        .map_or(Value::Null, |e| Value::Str(e.info.clone()))
}
fn err_rcode(c: &Call, _: &Spec) -> Value {
    c.err
        .as_ref()
        .map_or(Value::Null, |e| Value::Int(e.rcode as i64))
}
fn err_rreason(c: &Call, _: &Spec) -> Value {
    c.err
        .as_ref()
        .map_or(Value::Null, |e| Value::Str(e.rreason.clone()))
}

fn set_rc(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    c.rc = v.to_int();
    Ok(())
}

fn get_log_level(_: &Call, _: &Spec) -> Value {
    Value::Int(crate::logging::own_level())
}

/// A level given to `$log_level` / `$xlog_level`: a number, or null to reset.
fn level_value(v: Value, what: &str) -> Result<Option<i64>, String> {
    match v {
        Value::Null => Ok(None),
        other => other
            .to_int()
            .map(Some)
            .ok_or_else(|| format!("${what}: wants an integer level or null")),
    }
}

fn set_log_level(_: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    let n = level_value(v, "log_level")?;
    crate::logging::set_own_level(n);
    Ok(())
}

fn get_xlog_level(_: &Call, _: &Spec) -> Value {
    Value::Int(crate::logging::xlog_level_now())
}

fn set_xlog_level(_: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    crate::logging::set_xlog_local(level_value(v, "xlog_level")?);
    Ok(())
}

/// The route stack as OpenSIPS 3.4 pvar.c indexes it: the entry route,
/// then each `route` function called under it that is still running
/// (walked from the Lua stack only when read).
fn route_stack(c: &Call) -> Vec<String> {
    c.route_stack.as_ref().map(|f| (f.0)()).unwrap_or_default()
}

/// OpenSIPS's position in the stack for index `i` (`[0]` the running
/// route, `[-1]` the entry route): None out of bounds. Position 0 is the
/// entry route.
fn stack_pos(c: &Call, spec: &Spec, depth: usize) -> Option<usize> {
    let n = depth as i64 + 1;
    let i = match spec.index(c) {
        None => 0,
        Some(Ok(i)) => i,
        Some(Err(())) => return None,
    };
    let i = if i < 0 { i + n } else { i };
    (0..n).contains(&i).then(|| (n - i - 1) as usize)
}

/// `$route.type`: the entry route's table (`route`, `failure_route`,
/// `onreply_route`, …, as route.c `get_top_route_type`); `route` for a
/// sub-route.
fn get_route_type(c: &Call, spec: &Spec) -> Value {
    let subs = route_stack(c);
    match stack_pos(c, spec, subs.len()) {
        Some(0) => Value::Str(c.route.table().to_string()),
        Some(_) => Value::Str("route".into()),
        None => Value::Null,
    }
}

/// `$route.name`: the key of the route at that position (`main` for
/// `route.main`, `x` for `failure_route.x` or `route.x`).
fn get_route_name(c: &Call, spec: &Spec) -> Value {
    let subs = route_stack(c);
    match stack_pos(c, spec, subs.len()) {
        Some(0) => Value::Str(c.route_name.to_string()),
        Some(p) => subs
            .get(p - 1)
            .map_or(Value::Null, |n| Value::Str(n.clone())),
        None => Value::Null,
    }
}

/// `$route`: the running route as OpenSIPS prints it (`route[relay]`);
/// `$(route[*])` the whole stack, `route > route[relay] > route[check]`
/// (pvar.c `pv_get_route`): the entry route by its table, with `[name]`
/// unless OpenSIPS leaves it unnamed (request and reply `main`, error,
/// local and startup routes); `$(route[n])` one entry.
fn get_route(c: &Call, spec: &Spec) -> Value {
    let subs = route_stack(c);
    let table = c.route.table();
    let unnamed = matches!(table, "error_route" | "local_route" | "startup_route")
        || (matches!(table, "route" | "onreply_route") && c.route_name == "main");
    let top = if unnamed {
        table.to_string()
    } else {
        format!("{table}[{}]", c.route_name)
    };
    if matches!(spec.index(c), Some(Err(()))) {
        let mut out = top;
        for s in &subs {
            out.push_str(&format!(" > route[{s}]"));
        }
        return Value::Str(out);
    }
    match stack_pos(c, spec, subs.len()) {
        Some(0) => Value::Str(top),
        Some(p) => subs
            .get(p - 1)
            .map_or(Value::Null, |n| Value::Str(format!("route[{n}]"))),
        None => Value::Null,
    }
}

/// The script position of the code evaluating a spec, as the script
/// host reports it. None outside a script (`lunasip eval`).
fn script_pos(c: &Call) -> Option<(String, i64)> {
    (c.script_pos.as_ref()?.0)()
}

/// `$cfg_line`: the script line evaluating the spec (an integer).
fn get_cfg_line(c: &Call, _: &Spec) -> Value {
    script_pos(c).map_or(Value::Null, |(_, l)| Value::Int(l))
}
/// `$cfg_file`: the script file evaluating the spec.
fn get_cfg_file(c: &Call, _: &Spec) -> Value {
    script_pos(c).map_or(Value::Null, |(f, _)| Value::Str(f))
}

/// `-o name=value` options of the command line (`lunasip run`/`eval`).
static ARGV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Stores the `-o name=value` options `$argv(name)` reads; an option
/// without `=` or with an empty name is an error. Set once per process.
pub fn set_argv(opts: &[String]) -> Result<(), String> {
    let mut list = Vec::with_capacity(opts.len());
    for o in opts {
        match o.split_once('=') {
            Some((n, v)) if !n.trim().is_empty() => {
                list.push((n.trim().to_string(), v.to_string()))
            }
            _ => return Err(format!("-o '{o}': expected name=value")),
        }
    }
    let _ = ARGV.set(list);
    Ok(())
}

/// `$argv(name)`: the value of `-o name=value` (given twice, the last).
fn get_argv(c: &Call, spec: &Spec) -> Value {
    let Some(name) = spec.name(c) else {
        return Value::Null;
    };
    ARGV.get()
        .and_then(|l| l.iter().rev().find(|(n, _)| *n == name.trim()))
        .map_or(Value::Null, |(_, v)| Value::Str(v.clone()))
}

/// `$param(name)` / `$param(n)` in `event_route` (OpenSIPS event_route
/// module: a number is the parameter's position from 1, anything else its
/// name; an integer parameter reads as an integer).
fn get_param(c: &Call, spec: &Spec) -> Value {
    let (Some(params), Some(name)) = (c.event_params.as_ref(), spec.name(c)) else {
        return Value::Null;
    };
    let name = name.trim();
    let v = match name.parse::<usize>() {
        Ok(n) => n.checked_sub(1).and_then(|i| params.values().nth(i)),
        Err(_) => params.get(name),
    };
    match v {
        None | Some(serde_json::Value::Null) => Value::Null,
        Some(serde_json::Value::String(s)) => Value::Str(s.clone()),
        Some(serde_json::Value::Number(n)) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Str(n.to_string()),
        },
        Some(serde_json::Value::Bool(b)) => Value::Int(i64::from(*b)),
        Some(other) => Value::Str(other.to_string()),
    }
}

/// OpenSIPS's `q2str`: 1000 → `1`, 0 → `0`, 500 → `0.5`, 25 → `0.025`.
fn q_text(q: i64, out: &mut String) {
    use std::fmt::Write;
    if q >= 1000 {
        out.push('1');
    } else if q <= 0 {
        out.push('0');
    } else {
        let _ = write!(out, "0.{:03}", q);
        while out.ends_with('0') {
            out.pop();
        }
    }
}

/// `$ds`: the destination set as OpenSIPS prints it for a redirect
/// (`print_dset`): the R-URI when the script changed it, then each branch
/// added with `append_branch`, as `Contact: <uri>;q=0.5, <uri>`; null
/// when there is neither.
fn get_ds(c: &Call, _: &Spec) -> Value {
    let Some(m) = c.msg.as_ref().filter(|m| m.is_request()) else {
        return Value::Null;
    };
    let mut out = String::from("Contact: ");
    let mut n = 0;
    let mut add = |out: &mut String, uri: &str, q: Option<i64>| {
        if n > 0 {
            out.push_str(", ");
        }
        n += 1;
        out.push('<');
        out.push_str(uri);
        out.push('>');
        if let Some(q) = q {
            out.push_str(";q=");
            q_text(q, out);
        }
    };
    if m.ruri() != m.original_ruri() {
        add(&mut out, m.ruri(), c.ru_q);
    }
    for b in &c.tm.branches {
        add(&mut out, &b.uri, b.q);
    }
    if n == 0 {
        Value::Null
    } else {
        Value::Str(out)
    }
}

/// The appended branch an index names (none: the first; negative: from
/// the end), as OpenSIPS counts them.
fn branch_slot(c: &Call, spec: &Spec) -> Option<usize> {
    let n = c.tm.branches.len() as i64;
    let i = match spec.index(c) {
        None | Some(Err(())) => 0,
        Some(Ok(i)) => i,
    };
    let i = if i < 0 { n + i } else { i };
    (0..n).contains(&i).then_some(i as usize)
}

/// `$branch(uri|duri|q|path|flags|socket)[i]`: the branches `append_branch`
/// added, the first being 0.
fn get_branch(c: &Call, spec: &Spec) -> Value {
    let Some(b) = branch_slot(c, spec).and_then(|i| c.tm.branches.get(i)) else {
        return Value::Null;
    };
    let field = spec.name(c);
    match field.as_deref().map(str::trim) {
        Some("uri") => Value::Str(b.uri.clone()),
        Some("duri") => b.duri.clone().map_or(Value::Null, Value::Str),
        Some("q") => b.q.map_or(Value::Null, Value::Int),
        Some("path") => b.path.clone().map_or(Value::Null, Value::Str),
        Some("flags") => Value::Int(b.flags as i64),
        Some("socket") => match (b.socket, c.sockets.as_ref()) {
            (Some(i), Some(l)) => l
                .list
                .get(i)
                .map_or(Value::Null, |sk| Value::Str(sk.spec())),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// `$(branch(field)[i]) = v`; null clears duri/q/path/socket.
fn set_branch(c: &mut Call, spec: &Spec, v: Value) -> Result<(), String> {
    let i = branch_slot(c, spec).ok_or_else(|| format!("{}: no such branch", spec.text))?;
    let field = spec
        .name(c)
        .map(|f| f.trim().to_string())
        .unwrap_or_default();
    let text = v.to_text().map(|t| t.into_owned());
    let socket = match (field.as_str(), &text, c.sockets.as_ref()) {
        ("socket", Some(t), Some(l)) => Some(
            l.list
                .iter()
                .find(|sk| sk.spec().eq_ignore_ascii_case(t.trim()))
                .map(|sk| sk.id)
                .ok_or_else(|| format!("'{t}' is not a listening socket"))?,
        ),
        _ => None,
    };
    let Some(b) = c.tm.branches.get_mut(i) else {
        return Err(format!("{}: no such branch", spec.text));
    };
    match field.as_str() {
        "uri" => {
            let t = text.ok_or_else(|| format!("{}: the URI cannot be null", spec.text))?;
            crate::sip::Uri::parse(&t).map_err(|_| format!("'{t}' is not a valid URI"))?;
            b.uri = t;
        }
        "duri" => b.duri = text,
        "q" => b.q = v.to_int(),
        "path" => b.path = text,
        "flags" => b.flags = v.to_int().unwrap_or(0) as u64,
        "socket" => b.socket = socket,
        other => return Err(format!("$branch({other}): unknown field")),
    }
    Ok(())
}

pub static DEFS: &[PvDef] = &[
    ro!(
        "time",
        get_time,
        inner,
        "current local time (TZ) by strftime format: $time(%H:%M)"
    ),
    ro!("Ts", get_ts, "current Unix time, seconds"),
    ro!("Tsm", get_tsm, "microseconds of the current second"),
    ro!("Tf", get_tf, "current local time (TZ), ctime format"),
    ro!("TS", get_tstart, "Unix time lunasip started"),
    ro!("pp", get_pp, "process id: the worker thread's id, as MI `ps` lists it"),
    ro!(
        "C",
        get_color,
        inner,
        "ANSI colour escape: $C(rx) red on default"
    ),
    ro!(
        "stat",
        get_stat,
        inner,
        "a statistic by name: $stat(rcv_requests)"
    ),
    PvDef {
        name: "rc",
        get: get_rc,
        set: Some(set_rc),
        takes_inner: false,
        doc: "return code of the last script operation that set one (writable)",
        peek: None,
    },
    PvDef {
        name: "retcode",
        get: get_rc,
        set: Some(set_rc),
        takes_inner: false,
        doc: "alias of $rc",
        peek: None,
    },
    PvDef {
        name: "log_level",
        get: get_log_level,
        set: Some(set_log_level),
        takes_inner: false,
        doc: "this worker's log level (OpenSIPS number; writable: the worker's own level, null goes back to the global one)",
        peek: None,
    },
    PvDef {
        name: "xlog_level",
        get: get_xlog_level,
        set: Some(set_xlog_level),
        takes_inner: false,
        doc: "this worker's xlog level: xlog messages above it are not printed (writable: the worker's own, null goes back to the shared one or resets it to config.xlog_level)",
        peek: None,
    },
    ro!(
        "route",
        get_route,
        "the running route as OpenSIPS names it (`route[relay]`); `$(route[n])` one of the stack ([0] the running one, [-1] the entry route), `$(route[*])` the whole stack: `route > route[relay]`"
    ),
    ro!(
        "route.type",
        get_route_type,
        "type of a route of the stack: the entry route's table (route, onreply_route, failure_route, …), route for a sub-route"
    ),
    ro!(
        "route.name",
        get_route_name,
        "name of a route of the stack ([0], the default: the running one; [-1]: the entry route): main for route.main, x for failure_route.x or route.x"
    ),
    ro!(
        "cfg_line",
        get_cfg_line,
        "script line of the Lua code reading it (null outside Lua)"
    ),
    ro!(
        "cfg_file",
        get_cfg_file,
        "script file of the Lua code reading it (null outside Lua)"
    ),
    ro!(
        "argv",
        get_argv,
        inner,
        "command-line option -o name=value: $argv(name)"
    ),
    ro!(
        "param",
        get_param,
        inner,
        "in event_route: the event's parameter by name, or by position from 1 ($param(1)); null elsewhere (Lua routes take ordinary function arguments)"
    ),
    ro!("err.class", err_class, "error class: 1 for a message that did not parse (OpenSIPS) (set in error_route)"),
    ro!("err.level", err_level, "error level (1) (set in error_route)"),
    ro!("err.info", err_info, "what was wrong, e.g. \"bad header from\" (set in error_route)"),
    ro!("err.rcode", err_rcode, "reply code recommended for the error (400, 505) (set in error_route)"),
    ro!("err.rreason", err_rreason, "reply reason recommended for the error (set in error_route)"),
    PvDef {
        name: "branch",
        get: get_branch,
        set: Some(set_branch),
        takes_inner: true,
        doc: "field of a branch added by append_branch: uri, duri, q, path, flags, socket; [0] is the first, [-1] the last",
        peek: None,
    },
    ro!(
        "ds",
        get_ds,
        "destination set: Contact: <R-URI if changed>, <appended branches>"
    ),
    PvDef {
        name: "bavp",
        get: super::vars::get_bavp,
        set: Some(super::vars::set_bavp),
        takes_inner: true,
        doc: "tm: AVP of the current branch (branch route: the branch being built; reply route: the branch the reply came from; failure route: the winning branch)",
        peek: None,
    },
    ro!("null", null, "always null"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_print_as_opensips() {
        for (q, want) in [
            (1000, "1"),
            (0, "0"),
            (500, "0.5"),
            (25, "0.025"),
            (120, "0.12"),
        ] {
            let mut s = String::new();
            q_text(q, &mut s);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn strftime_refuses_what_opensips_would_not_print() {
        assert!(strftime("%Y-%m-%d", 0).is_some());
        assert_eq!(strftime("", 0), None);
        assert_eq!(strftime(&"%Y".repeat(40), 0), None);
    }

    #[test]
    fn argv_options_need_a_name_and_a_value() {
        assert!(set_argv(&["=x".into()]).is_err());
        assert!(set_argv(&["novalue".into()]).is_err());
    }
}
