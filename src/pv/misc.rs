//! Pseudo-variables that do not come from the message: time, process,
//! statistics, return code, script position, and the transaction and
//! branch ones that stay null until the transaction layer lands.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{PvDef, Spec, Value};
use crate::script::call::Call;

fn null(_: &Call, _: &Spec) -> Value {
    Value::Null
}

/// `$T_reply_code`: the reply being handled in a reply route, the winning
/// one in a failure route.
fn t_reply_code(c: &Call, _: &Spec) -> Value {
    c.tm.reply_code
        .map_or(Value::Null, |v| Value::Int(v as i64))
}

/// `$T_branch_idx`: the branch a reply route's reply came from; in a branch
/// route, the index the branch being built gets.
fn t_branch_idx(c: &Call, _: &Spec) -> Value {
    match (c.tm.branch, &c.tm.txn) {
        (Some(i), _) => Value::Int(i as i64),
        (None, Some(t)) => Value::Int(crate::proxy::tm::lock(t).branches.len() as i64),
        _ => Value::Null,
    }
}

/// `$T_ruri`: the R-URI of the transaction's request.
fn t_ruri(c: &Call, _: &Spec) -> Value {
    c.tm.txn.as_ref().map_or(Value::Null, |t| {
        Value::Str(crate::proxy::tm::lock(t).request.ruri().to_string())
    })
}

/// `$T_id`: the transaction's id.
fn t_id(c: &Call, _: &Spec) -> Value {
    c.tm.txn.as_ref().map_or(Value::Null, |t| {
        Value::Int(crate::proxy::tm::lock(t).id as i64)
    })
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

/// Civil date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `strftime` for the usual conversions, in UTC.
pub fn strftime(fmt: &str, t: i64) -> String {
    use std::fmt::Write;
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, mo, d) = civil(days);
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let wd = days.rem_euclid(7) as usize;
    let yday = days - {
        // Days from the epoch to Jan 1 of year y.
        let mut lo = days - 366;
        while civil(lo + 1).0 < y {
            lo += 1;
        }
        lo + 1
    } + 1;
    let month = MONTHS[(mo as usize).saturating_sub(1) % 12];
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut it = fmt.chars();
    while let Some(ch) = it.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        let _ = match it.next() {
            Some('Y') => write!(out, "{y}"),
            Some('y') => write!(out, "{:02}", y.rem_euclid(100)),
            Some('m') => write!(out, "{mo:02}"),
            Some('d') => write!(out, "{d:02}"),
            Some('e') => write!(out, "{d:2}"),
            Some('H') => write!(out, "{h:02}"),
            Some('I') => write!(out, "{:02}", (h + 11) % 12 + 1),
            Some('p') => write!(out, "{}", if h < 12 { "AM" } else { "PM" }),
            Some('M') => write!(out, "{mi:02}"),
            Some('S') => write!(out, "{s:02}"),
            Some('j') => write!(out, "{yday:03}"),
            Some('a') => write!(out, "{}", &DAYS[wd][..3]),
            Some('A') => write!(out, "{}", DAYS[wd]),
            Some('b') | Some('h') => write!(out, "{}", &month[..3]),
            Some('B') => write!(out, "{month}"),
            Some('s') => write!(out, "{t}"),
            Some('T') => write!(out, "{h:02}:{mi:02}:{s:02}"),
            Some('R') => write!(out, "{h:02}:{mi:02}"),
            Some('D') => write!(out, "{mo:02}/{d:02}/{:02}", y.rem_euclid(100)),
            Some('F') => write!(out, "{y}-{mo:02}-{d:02}"),
            Some('Z') => write!(out, "UTC"),
            Some('z') => write!(out, "+0000"),
            Some('n') => writeln!(out),
            Some('t') => write!(out, "\t"),
            Some('%') => write!(out, "%"),
            Some(other) => write!(out, "%{other}"),
            None => write!(out, "%"),
        };
    }
    out
}

fn get_time(c: &Call, spec: &Spec) -> Value {
    let fmt = spec.name(c);
    Value::Str(strftime(fmt.as_deref().unwrap_or("%c"), now().0))
}
fn get_ts(_: &Call, _: &Spec) -> Value {
    Value::Int(now().0)
}
fn get_tsm(_: &Call, _: &Spec) -> Value {
    Value::Int(now().1 as i64)
}
fn get_tf(_: &Call, _: &Spec) -> Value {
    Value::Str(strftime("%a %b %e %H:%M:%S %Y", now().0))
}
fn get_tstart(_: &Call, _: &Spec) -> Value {
    Value::Int(started())
}
fn get_pp(_: &Call, _: &Spec) -> Value {
    Value::Int(std::process::id() as i64)
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

fn secs(d: Option<std::time::Duration>) -> Value {
    d.map_or(Value::Null, |d| Value::Int(d.as_secs() as i64))
}

fn set_secs(v: Value, what: &str) -> Result<Option<std::time::Duration>, String> {
    match v {
        Value::Null => Ok(None),
        v => match v.to_int() {
            Some(n) if (1..=86_400).contains(&n) => {
                Ok(Some(std::time::Duration::from_secs(n as u64)))
            }
            _ => Err(format!("${what} takes seconds, 1..86400")),
        },
    }
}

/// `$T_fr_timeout`: seconds without a reply before a branch times out, for
/// the transactions this request creates (null: the config value).
fn get_t_fr(c: &Call, _: &Spec) -> Value {
    secs(c.tm.fr)
}
fn set_t_fr(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    c.tm.fr = set_secs(v, "T_fr_timeout")?;
    Ok(())
}
fn get_t_fr_inv(c: &Call, _: &Spec) -> Value {
    secs(c.tm.fr_inv)
}
fn set_t_fr_inv(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    c.tm.fr_inv = set_secs(v, "T_fr_inv_timeout")?;
    Ok(())
}

fn set_rc(c: &mut Call, _: &Spec, v: Value) -> Result<(), String> {
    c.rc = v.to_int();
    Ok(())
}

fn get_log_level(_: &Call, _: &Spec) -> Value {
    Value::Int(crate::logging::global_level())
}

fn get_route_type(c: &Call, _: &Spec) -> Value {
    let t = c.route.table();
    Value::Str(match t {
        "route" => "request".to_string(),
        other => other.trim_end_matches("_route").to_string(),
    })
}

/// `$branch(uri|duri|q|path|flags|socket)`: branch 0 is the R-URI branch.
fn get_branch(c: &Call, spec: &Spec) -> Value {
    if let Some(Ok(i)) = spec.index(c) {
        if i != 0 && i != -1 {
            return Value::Null;
        }
    }
    let field = spec.name(c);
    let m = c.msg.as_ref().filter(|m| m.is_request());
    match field.as_deref().map(str::trim) {
        Some("uri") => m.map_or(Value::Null, |m| Value::Str(m.ruri().to_string())),
        Some("duri") => c.du.clone().map_or(Value::Null, Value::Str),
        Some("q") => c.ru_q.map_or(Value::Null, Value::Int),
        Some("flags") => Value::Int(c.bflags as i64),
        _ => Value::Null,
    }
}

macro_rules! ro {
    ($name:literal, $get:ident, $doc:literal) => {
        PvDef {
            name: $name,
            get: $get,
            set: None,
            takes_inner: false,
            doc: $doc,
            peek: None,
        }
    };
    ($name:literal, $get:ident, inner, $doc:literal) => {
        PvDef {
            name: $name,
            get: $get,
            set: None,
            takes_inner: true,
            doc: $doc,
            peek: None,
        }
    };
}

pub static DEFS: &[PvDef] = &[
    ro!(
        "time",
        get_time,
        inner,
        "current time (UTC) by strftime format: $time(%H:%M)"
    ),
    ro!("Ts", get_ts, "current Unix time, seconds"),
    ro!("Tsm", get_tsm, "microseconds of the current second"),
    ro!("Tf", get_tf, "current time, ctime format (UTC)"),
    ro!("TS", get_tstart, "Unix time lunasip started"),
    ro!("pp", get_pp, "process id"),
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
    ro!(
        "log_level",
        get_log_level,
        "current log level (OpenSIPS number)"
    ),
    ro!(
        "route.type",
        get_route_type,
        "type of the running route: request, onreply, failure, …"
    ),
    ro!(
        "route.name",
        null,
        "name of the running route (null: not tracked yet)"
    ),
    ro!(
        "cfg_line",
        null,
        "script line (null: use debug.getinfo in Lua)"
    ),
    ro!(
        "cfg_file",
        null,
        "script file (null: use debug.getinfo in Lua)"
    ),
    ro!(
        "argv",
        null,
        inner,
        "command-line argument (null: lunasip takes none)"
    ),
    ro!(
        "param",
        null,
        inner,
        "route parameter (null: Lua routes take arguments)"
    ),
    ro!("err.class", err_class, "error class: 1 for a message that did not parse (OpenSIPS) (set in error_route)"),
    ro!("err.level", err_level, "error level (1) (set in error_route)"),
    ro!("err.info", err_info, "what was wrong, e.g. \"bad header from\" (set in error_route)"),
    ro!("err.rcode", err_rcode, "reply code recommended for the error (400, 505) (set in error_route)"),
    ro!("err.rreason", err_rreason, "reply reason recommended for the error (set in error_route)"),
    ro!(
        "branch",
        get_branch,
        inner,
        "branch field: uri, duri, q, path, flags, socket; [0] is the R-URI branch"
    ),
    ro!(
        "ds",
        null,
        inner,
        "dispatcher field (null until dispatcher lands)"
    ),
    ro!(
        "T_branch_idx",
        t_branch_idx,
        "tm: index of the branch a reply came from (reply routes) or being built (branch routes)"
    ),
    ro!(
        "T_reply_code",
        t_reply_code,
        "tm: code of the reply being handled, or the winning one in a failure route"
    ),
    ro!("T_ruri", t_ruri, "tm: R-URI of the transaction's request"),
    ro!(
        "T_id",
        t_id,
        "tm: transaction id (null outside a transaction)"
    ),
    PvDef {
        name: "T_fr_timeout",
        get: get_t_fr,
        set: Some(set_t_fr),
        takes_inner: false,
        doc: "tm: seconds without any reply before a branch times out, for this request's transaction (writable; null: the config's fr_timeout)",
        peek: None,
    },
    PvDef {
        name: "T_fr_inv_timeout",
        get: get_t_fr_inv,
        set: Some(set_t_fr_inv),
        takes_inner: false,
        doc: "tm: seconds an INVITE branch may ring without a final reply (writable; null: the config's fr_inv_timeout)",
        peek: None,
    },
    ro!("bavp", null, inner, "tm: branch AVP (null until tm lands)"),
    ro!("null", null, "always null"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_utc() {
        // 2026-11-27 22:40:39 UTC, a Friday, day 331.
        let t = 1_795_819_239;
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S", t), "2026-11-27 22:40:39");
        assert_eq!(strftime("%a %b %e %j %%", t), "Fri Nov 27 331 %");
        assert_eq!(strftime("%F %T", 0), "1970-01-01 00:00:00");
        assert_eq!(strftime("%A %B", 0), "Thursday January");
    }
}
