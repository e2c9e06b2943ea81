//! `lunasip check`: load a script, read its `config` table, and check that
//! every route and function it names exists — all before a socket is bound.

use mlua::{Table, Value};
use std::sync::Arc;

use super::config_table::line_of;
pub use super::config_table::read_config;
use super::host::{Env, Host, Source};
use super::route::RouteType;
use super::ScriptError;
use crate::config::{Config, Listen};
use crate::transport::Sockets;

/// A script that passed every check: its config and its module settings,
/// read but not applied yet.
#[derive(Debug)]
pub struct Checked {
    pub config: Config,
    pub modules: crate::modules::Prepared,
    /// `file:line` of the dispatcher settings, for errors of a later load.
    origin: String,
}

impl Checked {
    /// Applies the module settings to `reg` (loads and installs the
    /// dispatcher sets); `listen`: the sockets in force. On an error the
    /// settings in `reg` did not change.
    pub fn commit(
        self,
        listen: &[Listen],
        reg: &Arc<crate::state::Registry>,
    ) -> Result<Config, crate::modules::SettingsError> {
        let origin = self.origin;
        self.modules
            .commit(listen, reg)
            .map_err(|e| crate::modules::SettingsError::At {
                origin,
                error: Box::new(e),
            })?;
        crate::transport::blacklist::install(&self.config.blacklists);
        Ok(self.config)
    }

    /// Loads what [`Checked::commit`] would without installing it (`lunasip
    /// check`); a database is opened only with `connect`.
    pub fn verify(&self, connect: bool) -> Result<Vec<String>, crate::modules::SettingsError> {
        self.modules
            .verify(&self.config.listen, connect)
            .map_err(|e| crate::modules::SettingsError::At {
                origin: self.origin.clone(),
                error: Box::new(e),
            })
    }
}

/// An environment tied to no worker, socket or loaded module: for a
/// script loaded only to be looked at.
pub(crate) fn probe_env() -> Env {
    Env {
        worker: usize::MAX,
        sockets: Arc::new(Sockets::new(&[], &[])),
        config: Arc::new(Config::default()),
        tm: Arc::new(crate::proxy::tm::Tm::new(Default::default())),
        modules: crate::state::Registry::new(),
        tcp: Default::default(),
        load: Default::default(),
    }
}

/// Loads and checks a script; returns its validated config and module
/// settings. No side effect: nothing is installed, loaded or connected.
pub fn check(source: &Source) -> Result<Checked, ScriptError> {
    let host = Host::new(source, probe_env())?;
    let (config, modules) = read_config(&host, source)?;
    if host.routes.main.is_none() {
        return Err(ScriptError::new(
            &source.name,
            None,
            "route.main is not defined (the request route)",
        ));
    }
    check_references(&host, source)?;
    check_timer_routes(&host, source)?;
    let origin = match line_of(&source.code, "dispatcher") {
        Some(l) => format!("{}:{l}", source.name),
        None => source.name.clone(),
    };
    Ok(Checked {
        config,
        modules,
        origin,
    })
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
        if let Err(m) = super::route_args::check_status_codes(line) {
            return fail(m);
        }
        if let Err(m) = super::route_args::check_cache_engines(line) {
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
        let cfg = check(&src(&code)).unwrap().config;
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
        let e = check(&src(
            "config = { listen = \"udp:127.0.0.1\",\n max_suspended = 0 }\nfunction route.main() end\n",
        ))
        .unwrap_err()
        .0;
        assert_eq!(e, "t.lua:2: config.max_suspended must be at least 1");
        let e = check(&src(
            "config = { listen = \"udp:127.0.0.1\", dns_servers = { \"nowhere\" } }\nfunction route.main() end\n",
        ))
        .unwrap_err()
        .0;
        assert!(e.contains("dns_servers") && e.contains("'nowhere'"), "{e}");
        let e = check(&src(HEAD)).unwrap_err().0;
        assert!(e.contains("route.main is not defined"), "{e}");
    }

    #[test]
    fn mi_settings() {
        let code = format!("{HEAD}config.modules = {{ mi_http = {{ port = 9999, token = \"s\" }}, mi_fifo = false }}\nfunction route.main() end\n");
        let cfg = check(&src(&code)).unwrap().config;
        let h = cfg.mi_http.unwrap();
        assert_eq!(h.addr, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(h.token, crate::config::MiToken::Fixed("s".into()));
        assert!(h.explicit && cfg.mi_fifo.is_none());
        // Closed by default; open only when said explicitly.
        let cfg = check(&src(&format!("{HEAD}function route.main() end\n")))
            .unwrap()
            .config;
        assert_eq!(
            cfg.mi_http.unwrap().token,
            crate::config::MiToken::Generated
        );
        for (v, want) in [
            ("false", Some(crate::config::MiToken::Off)),
            ("true", Some(crate::config::MiToken::Generated)),
            ("\"a b\"", None),
            ("\"\"", None),
            ("1", None),
        ] {
            let code = format!("{HEAD}config.modules = {{ mi_http = {{ token = {v} }} }}\nfunction route.main() end\n");
            let got = check(&src(&code))
                .ok()
                .and_then(|c| c.config.mi_http)
                .map(|h| h.token);
            assert_eq!(got, want, "token = {v}");
        }
        let code = format!("{HEAD}config.modules = {{ mi_http = false, mi_fifo = {{ fifo_name = \"/tmp/x\", fifo_mode = 660 }} }}\nfunction route.main() end\n");
        let cfg = check(&src(&code)).unwrap().config;
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
