//! `lunasip check`: load a script, read its `config` table, and check that
//! every route and function it names exists — all before a socket is bound.

use mlua::{Table, Value};
use std::sync::Arc;
use std::time::Duration;

use super::host::{Env, Host, Source};
use super::route::RouteType;
use super::ScriptError;
use crate::config::{self, Config};
use crate::transport::Sockets;

/// Loads and checks a script; returns its validated config.
pub fn check(source: &Source) -> Result<Config, ScriptError> {
    let probe_env = Env {
        worker: usize::MAX,
        sockets: Arc::new(Sockets::new(&Config::default())),
        config: Arc::new(Config::default()),
        tm: Arc::new(crate::proxy::tm::Tm::new(Default::default())),
    };
    let host = Host::new(source, probe_env)?;
    let cfg = read_config(&host, source)?;
    if host.routes.main.is_none() {
        return Err(ScriptError::new(
            &source.name,
            None,
            "route.main is not defined (the request route)",
        ));
    }
    check_references(&host, source)?;
    check_timer_routes(&host, source)?;
    Ok(cfg)
}

/// `timer_route.x = { interval = S, fn = function … }`: both present and sane.
fn check_timer_routes(host: &Host, source: &Source) -> Result<(), ScriptError> {
    let Ok(t) = host.lua.globals().get::<Table>(RouteType::Timer.table()) else {
        return Ok(());
    };
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| ScriptError::new(&source.name, None, e))?;
        let name = match &k {
            Value::String(s) => s.to_str().map(|s| s.to_string()).unwrap_or_default(),
            _ => {
                return Err(ScriptError::new(
                    &source.name,
                    None,
                    "timer_route keys must be names",
                ))
            }
        };
        let line = line_of(&source.code, &format!("timer_route.{name}"));
        let bad = |msg: &str| {
            Err(ScriptError::new(
                &source.name,
                line,
                format!("timer_route.{name}: {msg}"),
            ))
        };
        let Value::Table(entry) = v else {
            return bad("must be a table { interval = seconds, fn = function }");
        };
        match entry.get::<Value>("interval") {
            Ok(Value::Integer(i)) if i > 0 => {}
            Ok(Value::Number(n)) if n > 0.0 => {}
            _ => return bad("interval must be a positive number of seconds"),
        }
        if !matches!(entry.get::<Value>("fn"), Ok(Value::Function(_))) {
            return bad("fn must be a function");
        }
    }
    Ok(())
}

/// Line (1-based) of the first occurrence of `key =` in the source, to point
/// config errors somewhere useful.
fn line_of(code: &str, key: &str) -> Option<usize> {
    code.lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(key) && t[key.len()..].trim_start().starts_with('=')
        })
        .map(|i| i + 1)
}

fn strings(v: Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::Nil => Ok(vec![]),
        Value::String(s) => Ok(vec![s.to_str().map_err(|e| e.to_string())?.to_string()]),
        Value::Table(t) => t
            .sequence_values::<Value>()
            .map(|v| match v {
                Ok(Value::String(s)) => Ok(s.to_str().map_err(|e| e.to_string())?.to_string()),
                Ok(other) => Err(format!(
                    "config.{what}: entries must be strings, not {}",
                    other.type_name()
                )),
                Err(e) => Err(e.to_string()),
            })
            .collect(),
        other => Err(format!(
            "config.{what} must be a string or a list of strings, not {}",
            other.type_name()
        )),
    }
}

fn number(t: &Table, key: &str) -> Result<Option<u64>, String> {
    match t.get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        Value::Integer(i) if i >= 0 => Ok(Some(i as u64)),
        Value::Number(n) if n >= 0.0 && n.fract() == 0.0 => Ok(Some(n as u64)),
        other => Err(format!(
            "config.{key} must be a non-negative integer, not {}",
            other.type_name()
        )),
    }
}

/// Reads `config` into a [`Config`], with OpenSIPS defaults for what is absent.
pub fn read_config(host: &Host, source: &Source) -> Result<Config, ScriptError> {
    let mut cfg = Config::default();
    let t: Table = match host.lua.globals().get::<Value>("config") {
        Ok(Value::Table(t)) => t,
        Ok(Value::Nil) => {
            return Err(ScriptError::new(
                &source.name,
                None,
                "the script defines no config table",
            ))
        }
        _ => {
            return Err(ScriptError::new(
                &source.name,
                line_of(&source.code, "config"),
                "config must be a table",
            ))
        }
    };
    let err =
        |key: &str, msg: String| ScriptError::new(&source.name, line_of(&source.code, key), msg);
    let listen =
        strings(t.get("listen").unwrap_or(Value::Nil), "listen").map_err(|m| err("listen", m))?;
    if listen.is_empty() {
        return Err(err(
            "listen",
            "config.listen is empty: nothing to listen on".into(),
        ));
    }
    for l in &listen {
        cfg.listen.push(
            config::parse_listen(l).map_err(|m| err("listen", format!("config.listen: {m}")))?,
        );
    }
    if let Some(n) = number(&t, "children").map_err(|m| err("children", m))? {
        if n == 0 || n > 256 {
            return Err(err(
                "children",
                "config.children must be between 1 and 256".into(),
            ));
        }
        cfg.children = n as usize;
    }
    match t.get::<Value>("log_level") {
        Ok(Value::String(s)) => {
            let s = s
                .to_str()
                .map_err(|e| err("log_level", e.to_string()))?
                .to_string();
            crate::logging::parse_level(&s).map_err(|m| err("log_level", m))?;
            cfg.log_level = s;
        }
        Ok(Value::Integer(i)) => cfg.log_level = crate::logging::opensips_level_name(i).to_string(),
        Ok(Value::Nil) => {}
        _ => {
            return Err(err(
                "log_level",
                "config.log_level must be a string like \"info\"".into(),
            ))
        }
    }
    for a in strings(t.get("alias").unwrap_or(Value::Nil), "alias").map_err(|m| err("alias", m))? {
        let (h, p) = config::split_hostport(&a)
            .ok_or_else(|| err("alias", format!("config.alias: bad alias '{a}'")))?;
        cfg.aliases.push((
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p,
        ));
    }
    if let Some(n) = number(&t, "udp_rcvbuf").map_err(|m| err("udp_rcvbuf", m))? {
        cfg.udp_rcvbuf = n as usize;
    }
    if let Some(n) =
        number(&t, "tcp_connection_lifetime").map_err(|m| err("tcp_connection_lifetime", m))?
    {
        cfg.tcp_idle_timeout = Duration::from_secs(n.max(1));
    }
    if let Some(n) = number(&t, "tcp_max_msg_size").map_err(|m| err("tcp_max_msg_size", m))? {
        cfg.tcp_max_msg_size = (n as usize).clamp(1024, crate::sip::MAX_MESSAGE_SIZE);
    }
    if let Some(n) = number(&t, "tcp_connect_timeout").map_err(|m| err("tcp_connect_timeout", m))? {
        cfg.tcp_connect_timeout = Duration::from_millis(n.max(1));
    }
    if let Some(n) = number(&t, "max_suspended").map_err(|m| err("max_suspended", m))? {
        cfg.max_suspended = n as usize;
    }
    if let Some(n) = number(&t, "resume_timeout").map_err(|m| err("resume_timeout", m))? {
        cfg.resume_timeout = Duration::from_millis(n.max(1));
    }
    read_mi_config(&t, &mut cfg).map_err(|m| err("modules", m))?;
    if let Ok(Value::Table(modules)) = t.get::<Value>("modules") {
        crate::modules::dispatcher::sets::set_listeners(&cfg.listen);
        crate::modules::dispatcher::configure(&modules).map_err(|m| err("dispatcher", m))?;
        if let Ok(Value::Table(tm)) = modules.get::<Value>("tm") {
            let ms =
                |k: &str| number(&tm, k).map_err(|m| err(k, format!("config.modules.tm: {m}")));
            if let Some(v) = ms("T1")?.or(ms("t1")?).or(ms("T1_timer")?) {
                cfg.tm.t1 = Duration::from_millis(v.max(1));
            }
            if let Some(v) = ms("T2")?.or(ms("t2")?).or(ms("T2_timer")?) {
                cfg.tm.t2 = Duration::from_millis(v.max(1));
            }
            if let Some(v) = ms("T4")?.or(ms("t4")?).or(ms("T4_timer")?) {
                cfg.tm.t4 = Duration::from_millis(v.max(1));
            }
            if let Some(v) = ms("fr_timeout")? {
                cfg.tm.fr = Duration::from_secs(v.max(1));
            }
            if let Some(v) = ms("fr_inv_timeout")? {
                cfg.tm.fr_inv = Duration::from_secs(v.max(1));
            }
            if let Some(v) = ms("wait_timer")? {
                cfg.tm.wait = Duration::from_secs(v.max(1));
            }
        }
    }
    Ok(cfg)
}

/// `config.modules.mi_http` / `config.modules.mi_fifo`: a table of
/// settings, `false` to turn the transport off, absent for the defaults.
fn read_mi_config(t: &Table, cfg: &mut Config) -> Result<(), String> {
    let modules = match t.get::<Value>("modules").map_err(|e| e.to_string())? {
        Value::Table(m) => m,
        Value::Nil => return Ok(()),
        other => {
            return Err(format!(
                "config.modules must be a table, not {}",
                other.type_name()
            ))
        }
    };
    let text = |m: &Table, key: &str, what: &str| -> Result<Option<String>, String> {
        match m.get::<Value>(key).map_err(|e| e.to_string())? {
            Value::Nil => Ok(None),
            Value::String(s) => Ok(Some(s.to_str().map_err(|e| e.to_string())?.to_string())),
            other => Err(format!(
                "config.modules.{what}.{key} must be a string, not {}",
                other.type_name()
            )),
        }
    };
    match modules.get::<Value>("mi_http").map_err(|e| e.to_string())? {
        Value::Nil => {}
        Value::Boolean(false) => cfg.mi_http = None,
        Value::Boolean(true) => {}
        Value::Table(m) => {
            let mut h = config::MiHttp {
                explicit: true,
                ..Default::default()
            };
            if let Some(ip) = text(&m, "ip", "mi_http")? {
                let ip: std::net::IpAddr = ip
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| format!("config.modules.mi_http.ip: bad address '{ip}'"))?;
                h.addr.set_ip(ip);
            }
            if let Some(p) =
                number(&m, "port").map_err(|e| format!("config.modules.mi_http: {e}"))?
            {
                h.addr.set_port(
                    u16::try_from(p)
                        .map_err(|_| "config.modules.mi_http.port must be 0..65535".to_string())?,
                );
            }
            if let Some(r) = text(&m, "root", "mi_http")? {
                h.root = r.trim_matches('/').to_string();
            }
            h.token = text(&m, "token", "mi_http")?.filter(|t| !t.is_empty());
            cfg.mi_http = Some(h);
        }
        other => {
            return Err(format!(
                "config.modules.mi_http must be a table or false, not {}",
                other.type_name()
            ))
        }
    }
    match modules.get::<Value>("mi_fifo").map_err(|e| e.to_string())? {
        Value::Nil => {}
        Value::Boolean(false) => cfg.mi_fifo = None,
        Value::Boolean(true) => {}
        Value::Table(m) => {
            let mut f = config::MiFifo {
                explicit: true,
                ..Default::default()
            };
            if let Some(p) = text(&m, "fifo_name", "mi_fifo")? {
                f.path = p.into();
                if let Some(dir) = f.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    f.reply_dir = dir.to_path_buf();
                }
            }
            if let Some(d) = text(&m, "reply_dir", "mi_fifo")? {
                f.reply_dir = d.into();
            }
            // Lua has no octal literals: 600 (or "0600") means rw-------.
            let mode = match m.get::<Value>("fifo_mode").map_err(|e| e.to_string())? {
                Value::Nil => None,
                Value::Integer(i) => Some(i.to_string()),
                Value::Number(n) if n.fract() == 0.0 => Some((n as i64).to_string()),
                Value::String(s) => Some(s.to_str().map_err(|e| e.to_string())?.to_string()),
                other => {
                    return Err(format!(
                        "config.modules.mi_fifo.fifo_mode must be octal digits like 600, not {}",
                        other.type_name()
                    ))
                }
            };
            if let Some(mode) = mode {
                f.mode = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| {
                        format!("config.modules.mi_fifo.fifo_mode: '{mode}' is not a mode like 600")
                    })?;
            }
            cfg.mi_fifo = Some(f);
        }
        other => {
            return Err(format!(
                "config.modules.mi_fifo must be a table or false, not {}",
                other.type_name()
            ))
        }
    }
    Ok(())
}

/// Removes comments (`--` to end of line, `--[[ ]]` blocks) but keeps line
/// numbering; strings are left alone (a rare `--` inside one only hides
/// the rest of that line from these checks).
fn strip_comments(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in code.lines() {
        let mut l = line.to_string();
        if in_block {
            match l.find("]]") {
                Some(p) => {
                    l = l[p + 2..].to_string();
                    in_block = false;
                }
                None => {
                    out.push(String::new());
                    continue;
                }
            }
        }
        if let Some(p) = l.find("--") {
            if l[p..].starts_with("--[[") && !l[p..].contains("]]") {
                in_block = true;
            }
            l.truncate(p);
        }
        out.push(l);
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

fn prev_is_ident(line: &str, pos: usize) -> bool {
    line[..pos]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == ':')
}

fn is_function(t: &Table, key: &str) -> bool {
    matches!(t.raw_get::<Value>(key), Ok(Value::Function(_)))
}

/// Checks names used in the script: routes named by string in
/// `t_on_failure("x")`-style calls (see `route_args`), `route.x()` calls,
/// and `sip.*` calls.
fn check_references(host: &Host, source: &Source) -> Result<(), ScriptError> {
    let g = host.lua.globals();
    let table = |name: &str| g.get::<Table>(name).ok();
    let sip: Option<Table> = table("sip");
    let defined =
        |rt: RouteType, name: &str| table(rt.table()).is_some_and(|t| is_function(&t, name));
    for (n, line) in strip_comments(&source.code).iter().enumerate() {
        let lineno = n + 1;
        let fail = |msg: String| Err(ScriptError::new(&source.name, Some(lineno), msg));
        if let Err(m) = crate::pv::lint::check_line(line) {
            return fail(m);
        }
        if let Err(m) = super::route_args::check_line(line, defined) {
            return fail(m);
        }
        let mut from = 0;
        while let Some(p) = line[from..].find("route.") {
            let at = from + p;
            from = at + 6;
            if prev_is_ident(line, at) {
                continue;
            }
            let name = ident_at(&line[at + 6..]);
            let after = line[at + 6 + name.len()..].trim_start();
            if name.is_empty() || !after.starts_with('(') {
                continue;
            }
            if line[..at].trim_end().ends_with("function") {
                continue;
            }
            if !table("route").is_some_and(|t| is_function(&t, name)) {
                return fail(format!("route.{name} is called but not defined"));
            }
        }
        let mut from = 0;
        while let Some(p) = line[from..].find("sip.") {
            let at = from + p;
            from = at + 4;
            if prev_is_ident(line, at) {
                continue;
            }
            let Some(sip) = &sip else { break };
            let first = ident_at(&line[at + 4..]);
            let rest = &line[at + 4 + first.len()..];
            if first.is_empty() {
                continue;
            }
            if rest.trim_start().starts_with('(') {
                if !is_function(sip, first) {
                    return fail(format!("sip.{first} is not a lunasip function"));
                }
            } else if let Some(r) = rest.strip_prefix('.') {
                let second = ident_at(r);
                if second.is_empty() || !r[second.len()..].trim_start().starts_with('(') {
                    continue;
                }
                match sip.raw_get::<Value>(first) {
                    Ok(Value::Table(t)) => {
                        if !is_function(&t, second) {
                            return fail(format!("sip.{first}.{second} is not a lunasip function"));
                        }
                    }
                    _ => return fail(format!("sip.{first} is not a lunasip module")),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(code: &str) -> Source {
        Source {
            name: "t.lua".into(),
            code: code.into(),
        }
    }

    const HEAD: &str = "config = { listen = { \"udp:127.0.0.1:5999\" } }\n";

    #[test]
    fn good_script_passes() {
        let code = format!("{HEAD}function route.main()\n  route.relay()\nend\nfunction route.relay() sip.forward() end\n");
        let cfg = check(&src(&code)).unwrap();
        assert_eq!(cfg.listen.len(), 1);
    }

    #[test]
    fn syntax_error_has_file_and_line() {
        let code = format!("{HEAD}function route.main()\n  if then\nend\n");
        let e = check(&src(&code)).unwrap_err().0;
        assert!(e.starts_with("t.lua:3:"), "{e}");
    }

    #[test]
    fn missing_route_is_reported_with_line() {
        let code = format!("{HEAD}function route.main()\n  route.nowhere()\nend\n");
        let e = check(&src(&code)).unwrap_err().0;
        assert_eq!(e, "t.lua:3: route.nowhere is called but not defined");
        let code =
            format!("{HEAD}function route.main()\n  sip.tm.t_on_failure(\"missing\")\nend\n");
        let e = check(&src(&code)).unwrap_err().0;
        assert!(e.starts_with("t.lua:3: t_on_failure(\"missing\")"), "{e}");
    }

    #[test]
    fn unknown_sip_function_is_reported() {
        let code = format!("{HEAD}function route.main()\n  sip.forwrd()\nend\n");
        let e = check(&src(&code)).unwrap_err().0;
        assert_eq!(e, "t.lua:3: sip.forwrd is not a lunasip function");
        let code =
            format!("{HEAD}function route.main()\n  sip.sl.sl_send_rply(200, \"OK\")\nend\n");
        let e = check(&src(&code)).unwrap_err().0;
        assert_eq!(e, "t.lua:3: sip.sl.sl_send_rply is not a lunasip function");
    }

    #[test]
    fn malformed_literal_spec_is_reported_with_line() {
        let code = format!(
            "{HEAD}function route.main()\n  local u = sip.pv.get(\"$(ru{{uri.usr}})\")\nend\n"
        );
        let e = check(&src(&code)).unwrap_err().0;
        assert!(
            e.starts_with("t.lua:3: sip.pv.get:") && e.contains("{uri.usr}"),
            "{e}"
        );
    }

    #[test]
    fn comments_are_ignored() {
        let code = format!(
            "{HEAD}function route.main()\n  -- route.nowhere()\n  --[[\n sip.nope()\n ]]\nend\n"
        );
        check(&src(&code)).unwrap();
    }

    #[test]
    fn config_errors() {
        let e = check(&src("function route.main() end\n")).unwrap_err().0;
        assert_eq!(e, "t.lua: the script defines no config table");
        let e = check(&src(
            "config = {\n  listen = \"udp:nowhere\"\n}\nfunction route.main() end\n",
        ))
        .unwrap_err()
        .0;
        assert!(e.starts_with("t.lua:2: config.listen"), "{e}");
        let e = check(&src(
            "config = { listen = \"udp:127.0.0.1\",\n children = 0 }\nfunction route.main() end\n",
        ))
        .unwrap_err()
        .0;
        assert!(e.contains("children"), "{e}");
        let e = check(&src(HEAD)).unwrap_err().0;
        assert!(e.contains("route.main is not defined"), "{e}");
    }

    #[test]
    fn mi_settings() {
        let code = format!("{HEAD}config.modules = {{ mi_http = {{ port = 9999, token = \"s\" }}, mi_fifo = false }}\nfunction route.main() end\n");
        let cfg = check(&src(&code)).unwrap();
        let h = cfg.mi_http.unwrap();
        assert_eq!(h.addr, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(h.token.as_deref(), Some("s"));
        assert!(h.explicit && cfg.mi_fifo.is_none());
        let code = format!("{HEAD}config.modules = {{ mi_http = false, mi_fifo = {{ fifo_name = \"/tmp/x\", fifo_mode = 660 }} }}\nfunction route.main() end\n");
        let cfg = check(&src(&code)).unwrap();
        assert!(cfg.mi_http.is_none());
        let f = cfg.mi_fifo.unwrap();
        assert_eq!(f.mode, 0o660);
        assert_eq!(f.reply_dir, std::path::Path::new("/tmp"));
        let code = format!("{HEAD}config.modules = {{ mi_fifo = {{ fifo_mode = 999 }} }}\nfunction route.main() end\n");
        assert!(check(&src(&code)).is_err());
        let code = format!("{HEAD}config.modules = {{ mi_http = {{ port = 70000 }} }}\nfunction route.main() end\n");
        assert!(check(&src(&code)).is_err());
    }

    #[test]
    fn runtime_error_at_load_has_line() {
        let code = format!("{HEAD}local x = nil\nx.y = 1\nfunction route.main() end\n");
        let e = check(&src(&code)).unwrap_err().0;
        assert!(e.starts_with("t.lua:3:"), "{e}");
    }
}
