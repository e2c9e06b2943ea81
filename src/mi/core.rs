//! Core MI commands with OpenSIPS 3.x names, parameters and result shapes
//! (`mi/mi_core.c`, `statistics.c`, `net/net_tcp.c`), plus lunasip's
//! `reload_routes`, which takes the same path as SIGHUP.

use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{opt, req, Command, Ctx, Kind, MiError, Params};
use crate::stats;

/// `ctime()`-style text ("Fri Nov 27 22:40:39 2026"), in UTC.
pub fn ctime(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        WD[days.rem_euclid(7) as usize],
        MON[(month - 1).clamp(0, 11) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        year
    )
}

fn ok() -> Result<Value, MiError> {
    Ok(Value::String("OK".into()))
}

fn uptime(ctx: &Ctx, _: &Params) -> Result<Value, MiError> {
    let now = SystemTime::now();
    let up = now.duration_since(ctx.started).map_or(0, |d| d.as_secs());
    Ok(json!({
        "Now": ctime(now),
        "Up since": ctime(ctx.started),
        "Up time": format!("{up} [sec]"),
    }))
}

fn version(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let mut v = json!({ "Server": format!("lunasip {}", env!("CARGO_PKG_VERSION")) });
    if p.has("revision") {
        v["Version"] = Value::String(env!("CARGO_PKG_VERSION").into());
    }
    Ok(v)
}

fn pwd(_: &Ctx, _: &Params) -> Result<Value, MiError> {
    let wd =
        std::env::current_dir().map_err(|e| MiError::new(500, format!("getcwd failed: {e}")))?;
    Ok(json!({ "WD": wd.display().to_string() }))
}

fn arg(ctx: &Ctx, _: &Params) -> Result<Value, MiError> {
    Ok(json!(ctx.args))
}

fn which(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    match p.str("command") {
        None => Ok(json!(super::commands().map(|c| c.name).collect::<Vec<_>>())),
        Some(name) => {
            let c = super::lookup(name).ok_or_else(|| MiError::new(404, "unknown MI command"))?;
            Ok(json!(c.recipes()))
        }
    }
}

fn help(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    match p.str("mi_cmd") {
        None => Ok(Value::String(
            "Usage: help mi_cmd - returns information about 'mi_cmd'".into(),
        )),
        Some(name) => {
            let c = super::lookup(name).ok_or_else(|| MiError::new(404, "unknown MI command"))?;
            Ok(json!({ "Help": c.help, "Exported by": c.module }))
        }
    }
}

fn ps(ctx: &Ctx, _: &Params) -> Result<Value, MiError> {
    let procs: Vec<Value> = ctx
        .procs()
        .iter()
        .enumerate()
        .map(|(i, p)| json!({ "ID": i, "PID": p.pid, "Type": p.kind }))
        .collect();
    Ok(json!({ "Processes": procs }))
}

fn kill(ctx: &Ctx, _: &Params) -> Result<Value, MiError> {
    match &ctx.shutdown {
        Some(n) => {
            tracing::info!("MI kill: shutting down");
            // Give the transport a moment to send this reply first.
            let n = n.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(300));
                n.notify_one();
            });
            ok()
        }
        None => Err(MiError::new(500, "no daemon to stop")),
    }
}

fn log_level(ctx: &Ctx, p: &Params) -> Result<Value, MiError> {
    use crate::logging;
    let Some(level) = p.str("level") else {
        let procs: Vec<Value> = ctx
            .procs()
            .iter()
            .map(|pr| {
                let lvl = pr
                    .worker
                    .map_or_else(logging::global_level, logging::worker_level);
                json!({ "PID": pr.pid, "Log level": lvl, "Type": pr.kind })
            })
            .collect();
        return Ok(json!({ "Processes": procs }));
    };
    let level = logging::parse_number(level).map_err(|e| {
        MiError::params(format!(
            "Bad type for parameter 'level' (want integer): {e}"
        ))
    })?;
    match p.int("pid") {
        None => {
            logging::set_global_level(level);
            tracing::info!("MI log_level: global level set to {level}");
            Ok(json!({ "New global log level": level }))
        }
        Some(pid) => {
            let worker = ctx
                .procs()
                .iter()
                .find(|pr| pr.pid == pid)
                .and_then(|pr| pr.worker)
                .ok_or_else(|| MiError::params("Bad PID"))?;
            logging::set_worker_level(worker, level);
            Ok(json!({ "Log level": level }))
        }
    }
}

/// `xlog_level [level]` (OpenSIPS mi_core.c): the shared xlog level, or
/// sets it for every worker.
fn xlog_level(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    use crate::logging;
    let Some(n) = p.int("level") else {
        return Ok(json!({ "xLog Level": logging::xlog_shared() }));
    };
    logging::set_xlog_shared(n);
    Ok(json!({ "New xLog level": logging::xlog_shared() }))
}

/// `log_level_filter` (OpenSIPS 3.4 mi/mi_core.c, dprint.c): a log
/// consumer's level filter, read or set (0: none).
fn log_level_filter(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    use crate::logging;
    let consumer = p.str("consumer").unwrap_or("");
    let unknown = || MiError::new(404, "Unknown log consumer");
    match p.int("level_filter") {
        None => {
            let n = logging::level_filter(consumer).ok_or_else(unknown)?;
            Ok(json!({ "Log level filter": n }))
        }
        Some(n) => match logging::set_level_filter(consumer, n) {
            true => ok(),
            false => Err(unknown()),
        },
    }
}

/// `log_mute_state` (OpenSIPS 3.4 mi/mi_core.c, dprint.c): whether a log
/// consumer is muted, read or set (any non-zero number mutes).
fn log_mute_state(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    use crate::logging;
    let consumer = p.str("consumer").unwrap_or("");
    let unknown = || MiError::new(404, "Unknown log consumer");
    match p.int("mute_state") {
        None => {
            let m = logging::muted(consumer).ok_or_else(unknown)?;
            Ok(json!({ "mute state": i64::from(m) }))
        }
        Some(n) => match logging::set_muted(consumer, n != 0) {
            true => ok(),
            false => Err(unknown()),
        },
    }
}

/// `reset_all_statistics` (OpenSIPS statistics.c): every statistic that
/// may be reset goes back to 0.
fn reset_all_statistics(_: &Ctx, _: &Params) -> Result<Value, MiError> {
    stats::reset_all();
    ok()
}

/// `group:name` of a statistic.
fn full(s: &stats::Stat) -> String {
    format!("{}:{}", s.group, s.name)
}

/// Statistics matching one OpenSIPS selector: `all`, `group:`, `name`, `group:name`.
fn select(sel: &str, mut f: impl FnMut(&stats::Stat)) -> bool {
    let mut found = false;
    stats::each_stat(|s| {
        let hit = if sel == "all" {
            true
        } else if let Some(g) = sel.strip_suffix(':').filter(|g| !g.is_empty()) {
            s.group.eq_ignore_ascii_case(g)
        } else if let Some((g, n)) = sel.split_once(':') {
            s.group.eq_ignore_ascii_case(g) && s.name.eq_ignore_ascii_case(n)
        } else {
            s.name.eq_ignore_ascii_case(sel)
        };
        if hit {
            found = true;
            f(&s);
        }
    });
    found
}

fn not_found() -> MiError {
    MiError::new(404, "Statistics Not Found")
}

fn get_statistics(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let mut out = Map::new();
    let mut found = false;
    for sel in p.strings("statistics") {
        found |= select(sel, |s| {
            out.insert(full(s), json!(s.value));
        });
    }
    if !found {
        return Err(not_found());
    }
    Ok(Value::Object(out))
}

fn list_statistics(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let mut out = Map::new();
    if !p.has("statistics") {
        stats::each_stat(|s| {
            out.insert(full(&s), json!(s.kind.opensips_name()));
        });
        return Ok(Value::Object(out));
    }
    let mut found = false;
    for sel in p.strings("statistics") {
        // OpenSIPS names a single statistic without its group here.
        let grouped = sel.ends_with(':');
        found |= select(sel, |s| {
            let key = if grouped { full(s) } else { s.name.to_string() };
            out.insert(key, json!(s.kind.opensips_name()));
        });
    }
    if !found {
        return Err(not_found());
    }
    Ok(Value::Object(out))
}

fn reset_statistics(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let mut found = false;
    for sel in p.strings("statistics") {
        found |= stats::reset(sel);
    }
    if !found {
        return Err(not_found());
    }
    ok()
}

fn list_tcp_conns(ctx: &Ctx, _: &Params) -> Result<Value, MiError> {
    let Some(table) = &ctx.tcp else {
        return Ok(Value::Null);
    };
    let mut conns = table.snapshot();
    conns.sort_by_key(|c| c.2);
    let list: Vec<Value> = conns
        .iter()
        .map(|(remote, local, id, outgoing)| {
            json!({
                "ID": id,
                "Type": "tcp",
                "State": 0,
                "Remote": remote.to_string(),
                "Local": local.to_string(),
                "Outgoing": outgoing,
            })
        })
        .collect();
    Ok(json!({ "Connections": list }))
}

fn reload_routes(ctx: &Ctx, _: &Params) -> Result<Value, MiError> {
    let control = ctx
        .control
        .as_ref()
        .ok_or_else(|| MiError::new(500, "reload failed").with_data("no script to reload"))?;
    match control.reload() {
        Ok(()) => {
            tracing::info!("MI reload_routes: script reloaded");
            ok()
        }
        Err(e) => {
            tracing::error!("MI reload_routes: reload refused, the running script stays: {e}");
            Err(MiError::new(500, "reload failed").with_data(e))
        }
    }
}

const STATS: &[super::Param] = &[req("statistics", Kind::Array)];

/// The core's commands.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "uptime",
        help: "prints various time information about lunasip - when it started to run, for how long it runs",
        module: "core",
        params: &[],
        result: r#"`{"Now": ctime, "Up since": ctime, "Up time": "N [sec]"}` (UTC)"#,
        handler: uptime,
    },
    Command {
        name: "version",
        help: "prints the version string of a running lunasip",
        module: "core",
        params: &[opt("revision", Kind::Str)],
        result: r#"`{"Server": "lunasip X.Y.Z"}`; with `revision` also `"Version"`"#,
        handler: version,
    },
    Command {
        name: "pwd",
        help: "prints the working directory of lunasip",
        module: "core",
        params: &[],
        result: r#"`{"WD": "/path"}`"#,
        handler: pwd,
    },
    Command {
        name: "arg",
        help: "returns the full list of arguments used at startup",
        module: "core",
        params: &[],
        result: r#"`["lunasip", "run", …]`"#,
        handler: arg,
    },
    Command {
        name: "which",
        help: "lists all available MI commands; with a command, its parameter sets",
        module: "core",
        params: &[opt("command", Kind::Str)],
        result: r#"`["uptime", …]`; with `command`: `[[], ["level"], ["level", "pid"]]`"#,
        handler: which,
    },
    Command {
        name: "ps",
        help: "lists all threads used by lunasip",
        module: "core",
        params: &[],
        result: r#"`{"Processes": [{"ID": 0, "PID": tid, "Type": "SIP worker 0"}, …]}`"#,
        handler: ps,
    },
    Command {
        name: "kill",
        help: "terminates lunasip (as SIGTERM does)",
        module: "core",
        params: &[],
        result: r#"`"OK"`"#,
        handler: kill,
    },
    Command {
        name: "log_level",
        help: "gets/sets the per worker or global log level (OpenSIPS numbers -3..4, 5 = trace, or names)",
        module: "core",
        params: &[opt("level", Kind::Str), opt("pid", Kind::Int)],
        result: r#"none: `{"Processes": [{"PID", "Log level", "Type"}]}`; `level`: `{"New global log level": n}`; `level, pid`: `{"Log level": n}`"#,
        handler: log_level,
    },
    Command {
        name: "xlog_level",
        help: "gets/sets the global xlog level: an xlog message whose level number is above it is not printed",
        module: "core",
        params: &[opt("level", Kind::Int)],
        result: r#"none: `{"xLog Level": n}`; `level`: `{"New xLog level": n}`"#,
        handler: xlog_level,
    },
    Command {
        name: "log_level_filter",
        help: "gets/sets the level filter of a log consumer (`stderror`, `syslog` = the journal under systemd, `event` = E_CORE_LOG): lines less important than it are not given to that consumer; 0: no filter",
        module: "core",
        params: &[req("consumer", Kind::Str), opt("level_filter", Kind::Int)],
        result: r#"`consumer`: `{"Log level filter": n}`; with `level_filter`: `"OK"`; unknown consumer: error 404 "Unknown log consumer""#,
        handler: log_level_filter,
    },
    Command {
        name: "log_mute_state",
        help: "gets/sets whether a log consumer (`stderror`, `syslog`, `event`) is muted (1) or not (0); of stderr and the journal, the one not in use reads muted",
        module: "core",
        params: &[req("consumer", Kind::Str), opt("mute_state", Kind::Int)],
        result: r#"`consumer`: `{"mute state": 0|1}`; with `mute_state`: `"OK"`; unknown consumer: error 404 "Unknown log consumer""#,
        handler: log_mute_state,
    },
    Command {
        name: "reset_all_statistics",
        help: "resets the value of all resetable statistics",
        module: "statistics",
        params: &[],
        result: r#"`"OK"`"#,
        handler: reset_all_statistics,
    },
    Command {
        name: "get_statistics",
        help: "prints the statistics (all, group or one) realtime values.",
        module: "statistics",
        params: STATS,
        result: r#"`{"core:rcv_requests": 12, …}`; 404 "Statistics Not Found""#,
        handler: get_statistics,
    },
    Command {
        name: "list_statistics",
        help: "lists all the registered statistics and their types",
        module: "statistics",
        params: &[opt("statistics", Kind::Array)],
        result: r#"`{"core:rcv_requests": "incremental", "memory:rss_size": "non-incremental", …}`"#,
        handler: list_statistics,
    },
    Command {
        name: "reset_statistics",
        help: "resets the value of a statistic variable",
        module: "statistics",
        params: STATS,
        result: r#"`"OK"`; 404 "Statistics Not Found""#,
        handler: reset_statistics,
    },
    Command {
        name: "list_tcp_conns",
        help: "list all ongoing TCP based connections",
        module: "core",
        params: &[],
        result: r#"`{"Connections": [{"ID", "Type": "tcp", "State", "Remote": "ip:port", "Local": "ip:port", "Outgoing"}]}`"#,
        handler: list_tcp_conns,
    },
    Command {
        name: "reload_routes",
        help: "checks the script file again and swaps it into every worker (as SIGHUP); a bad script is refused and the running one stays",
        module: "core",
        params: &[],
        result: r#"`"OK"`; error 500 "reload failed" with the script error as `data`"#,
        handler: reload_routes,
    },
    Command {
        name: "help",
        help: "prints information about MI commands usage",
        module: "core",
        params: &[opt("mi_cmd", Kind::Str)],
        result: r#"usage string; with `mi_cmd`: `{"Help": "…", "Exported by": "core"}`"#,
        handler: help,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mi::jsonrpc::handle;

    fn call(method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        handle(&Ctx::detached(), body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn ctime_format() {
        assert_eq!(ctime(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_820_439);
        assert_eq!(ctime(t), "Fri Nov 27 23:00:39 2026");
    }

    #[test]
    fn shapes() {
        crate::modules::register();
        let v = call("uptime", json!([]));
        assert!(v["result"]["Up time"].as_str().unwrap().ends_with(" [sec]"));
        assert!(call("version", json!([]))["result"]["Server"]
            .as_str()
            .unwrap()
            .starts_with("lunasip "));
        assert!(call("which", json!([]))["result"]
            .as_array()
            .unwrap()
            .contains(&json!("reload_routes")));
        assert_eq!(
            call("which", json!(["log_level"]))["result"],
            json!([[], ["level"], ["level", "pid"]])
        );
        assert_eq!(
            call("help", json!(["pwd"]))["result"]["Exported by"],
            "core"
        );
        assert_eq!(call("help", json!(["nope"]))["error"]["code"], 404);
        assert!(call("pwd", json!([]))["result"]["WD"].is_string());
        assert!(call("arg", json!([]))["result"].is_array());
        let v = call("get_statistics", json!(["core:", "sl:1xx_replies"]));
        assert!(v["result"]["core:rcv_requests"].is_u64());
        assert!(v["result"]["sl:1xx_replies"].is_u64());
        assert_eq!(
            call("get_statistics", json!(["nope"]))["error"]["code"],
            404
        );
        let v = call("list_statistics", json!([]));
        assert_eq!(v["result"]["core:rcv_requests"], "incremental");
        assert_eq!(
            call("reset_statistics", json!(["sl:2xx_replies"]))["result"],
            "OK"
        );
        assert_eq!(call("reload_routes", json!([]))["error"]["code"], 500);
        assert!(call("list_tcp_conns", json!([]))["result"].is_null());
    }
}
