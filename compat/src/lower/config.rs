//! Global parameters, `loadmodule` and `modparam` → the `config` table.

use vocab::params::ParamKind;

use super::expr::lua_str;
use super::globals::global;
use super::{is_lua_ident, Lower};
use crate::ast::{Item, ItemKind, Span, Value};
use crate::mapping;
use crate::report::Kind;

pub(super) enum Entry {
    Line(Vec<String>, String),
    Listen(Vec<String>),
    /// Where `blacklists = { … }` goes (the first `dst_blacklist`).
    Blacklists(Vec<String>),
    Alias(Vec<String>),
    Modules,
    Note(Vec<String>, String),
}

/// Comments before an item go with the item, unless the next item is a
/// route (then the route takes them).
fn comments_for(items: &[Item], i: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut j = i;
    while j > 0 {
        match &items[j - 1].kind {
            ItemKind::Comment(c) => out.push(c.clone()),
            ItemKind::Blank => {}
            _ => break,
        }
        j -= 1;
    }
    out.reverse();
    out
}

pub(super) fn lower_config(l: &mut Lower) -> Vec<String> {
    let items = &l.script.items;
    let first_config = items.iter().position(|i| {
        !matches!(
            i.kind,
            ItemKind::Comment(_) | ItemKind::Blank | ItemKind::Route(_)
        )
    });
    let mut header = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut listens: Vec<String> = Vec::new();
    let mut aliases: Vec<String> = Vec::new();
    let mut blacklists: Vec<String> = Vec::new();
    // Per module, in order of first appearance: its lines.
    let mut modules: Vec<(String, Vec<String>)> = Vec::new();
    let module_at = |modules: &mut Vec<(String, Vec<String>)>, m: &str| -> usize {
        match modules.iter().position(|(n, _)| n == m) {
            Some(i) => i,
            None => {
                modules.push((m.to_string(), Vec::new()));
                modules.len() - 1
            }
        }
    };
    let mut modules_placed = false;
    let mut loaded: Vec<String> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let mut comments = comments_for(items, i);
        if Some(i) == first_config {
            header = std::mem::take(&mut comments);
        }
        match &it.kind {
            ItemKind::Global { name, value } => global(
                l,
                it.span,
                name,
                value,
                comments,
                &mut entries,
                &mut listens,
                &mut aliases,
                &mut blacklists,
            ),
            ItemKind::LoadModule(path) => {
                let m = module_name(path);
                loaded.push(m.clone());
                if !modules_placed {
                    entries.push(Entry::Modules);
                    modules_placed = true;
                }
                let k = module_at(&mut modules, &m);
                modules[k]
                    .1
                    .extend(comments.iter().flat_map(|c| comment_lines(c)));
                if let Some((_, why)) = mapping::BUILT_IN.iter().find(|(b, _)| *b == m) {
                    l.report.not_needed += 1;
                    modules[k]
                        .1
                        .push(format!("-- loadmodule \"{path}\": {why}"));
                } else if mapping::module_known(&m) {
                    l.report.count("modules");
                } else {
                    l.missing_modules.insert(m.clone(), it.span.line);
                    l.unsupported(
                        it.span,
                        Kind::Module,
                        &m,
                        Some(&m),
                        "lunasip has no such module",
                    );
                    modules[k]
                        .1
                        .push(format!("-- loadmodule \"{path}\": not in lunasip"));
                }
            }
            ItemKind::ModParam {
                module,
                name,
                value,
            } => {
                if !modules_placed {
                    entries.push(Entry::Modules);
                    modules_placed = true;
                }
                // The MI transports' settings live under mi_fifo / mi_http.
                let target = match (module.as_str(), name.as_str()) {
                    ("httpd", "ip" | "port") => "mi_http",
                    (m, _) => m,
                };
                let k = module_at(&mut modules, target);
                modules[k]
                    .1
                    .extend(comments.iter().flat_map(|c| comment_lines(c)));
                let line = match mi_param(module, name, value) {
                    Some(Ok(line)) => {
                        l.report.count("modparams");
                        line
                    }
                    Some(Err(why)) => {
                        l.unsupported(
                            it.span,
                            Kind::Parameter,
                            &format!("{module}.{name}"),
                            Some(module),
                            why.clone(),
                        );
                        format!("-- modparam(\"{module}\", \"{name}\", …): {why}")
                    }
                    None => modparam(l, it.span, module, name, value),
                };
                // A parameter OpenSIPS takes once per line and lunasip as
                // a list: the lines become one list.
                if let (Some(key), Value::Str(v)) = (repeatable(module, name), value) {
                    if let Some(at) = modules[k]
                        .1
                        .iter()
                        .position(|x| x.starts_with(&format!("{key} = ")))
                    {
                        let prev = &modules[k].1[at];
                        let items = prev[key.len() + 3..].trim_end_matches(',');
                        let items = items
                            .strip_prefix("{ ")
                            .and_then(|x| x.strip_suffix(" }"))
                            .unwrap_or(items);
                        modules[k].1[at] = format!("{key} = {{ {items}, {} }},", lua_str(v));
                        continue;
                    }
                }
                modules[k].1.push(line);
            }
            _ => {}
        }
    }
    // OpenSIPS runs no management interface it did not load.
    for (m, what) in [("mi_fifo", "MI FIFO"), ("mi_http", "MI over HTTP")] {
        if !loaded.iter().any(|x| x == m) {
            if !modules_placed {
                entries.push(Entry::Modules);
                modules_placed = true;
            }
            let k = module_at(&mut modules, m);
            modules[k].1.clear();
            modules[k].1.push(format!(
                "{m} = false, -- the script loads no {m}: no {what}"
            ));
        }
    }
    let mut out = Vec::new();
    for c in header {
        out.extend(comment_lines(&c));
    }
    out.push("config = {".into());
    for e in entries {
        match e {
            Entry::Line(cs, text) | Entry::Note(cs, text) => {
                for c in cs {
                    out.extend(comment_lines(&c).into_iter().map(|l| format!("  {l}")));
                }
                out.push(format!("  {text}"));
            }
            Entry::Listen(cs) => {
                for c in cs {
                    out.extend(comment_lines(&c).into_iter().map(|l| format!("  {l}")));
                }
                let list: Vec<String> = listens.iter().map(|s| lua_str(s)).collect();
                out.push(format!("  listen = {{ {} }},", list.join(", ")));
            }
            Entry::Blacklists(cs) => {
                for c in cs {
                    out.extend(comment_lines(&c).into_iter().map(|l| format!("  {l}")));
                }
                out.push("  blacklists = {".into());
                for b in &blacklists {
                    out.push(format!("    {b}"));
                }
                out.push("  },".into());
            }
            Entry::Alias(cs) => {
                for c in cs {
                    out.extend(comment_lines(&c).into_iter().map(|l| format!("  {l}")));
                }
                let list: Vec<String> = aliases.iter().map(|s| lua_str(s)).collect();
                out.push(format!("  alias = {{ {} }},", list.join(", ")));
            }
            Entry::Modules => {
                out.push("  modules = {".into());
                for (m, lines) in &modules {
                    // `mi_fifo = false,` turns a module off: no table of keys.
                    let off = format!("{m} = false,");
                    let has_keys = lines
                        .iter()
                        .any(|l| !l.starts_with("--") && !l.starts_with(&off));
                    if has_keys {
                        let key = if is_lua_ident(m) {
                            m.clone()
                        } else {
                            format!("[{}]", lua_str(m))
                        };
                        out.push(format!("    {key} = {{"));
                        for line in lines {
                            out.push(format!("      {line}"));
                        }
                        out.push("    },".into());
                    } else {
                        for line in lines {
                            out.push(format!("    {line}"));
                        }
                    }
                }
                out.push("  },".into());
            }
        }
    }
    if listens.is_empty() {
        out.push("  -- No socket lunasip can use was given: OpenSIPS's default, every".into());
        out.push("  -- interface on port 5060.".into());
        out.push("  listen = { \"udp:0.0.0.0:5060\" },".into());
    }
    out.push("}".into());
    out
}

/// A comment as Lua comment lines (block comments span lines).
fn comment_lines(c: &str) -> Vec<String> {
    if c.is_empty() {
        return vec!["--".into()];
    }
    c.lines().map(|l| format!("--{l}")).collect()
}

/// Parameters given on several `modparam` lines that lunasip takes as a
/// list (statistics `stat_series_profile`, tm `tw_append`, permissions
/// `partition`, clusterer's node descriptions and sharing tags).
fn repeatable(module: &str, name: &str) -> Option<&'static str> {
    match (module, name) {
        ("statistics", "stat_series_profile") => Some("stat_series_profile"),
        ("tm", "tw_append") => Some("tw_append"),
        // One line per partition (permissions.c `parse_partition`).
        ("permissions", "partition") => Some("partition"),
        // One line per node (clusterer node_info.c).
        ("clusterer", "neighbor_node_info" | "neighbor_info") => Some("neighbor_node_info"),
        ("clusterer", "my_node_info" | "current_info") => Some("my_node_info"),
        // One line per tag (sharing_tags.c `shtag_modparam_func`).
        ("clusterer", "sharing_tag") => Some("sharing_tag"),
        _ => None,
    }
}

/// `modparam`s of the MI transports lunasip has built in, as their
/// `config.modules.mi_fifo` / `mi_http` keys.
fn mi_param(module: &str, name: &str, value: &Value) -> Option<Result<String, String>> {
    let v = match value {
        Value::Str(s) => lua_str(s),
        Value::Int(n) => n.to_string(),
    };
    let key = match (module, name, value) {
        ("mi_fifo", "fifo_name", Value::Str(_)) => "fifo_name",
        ("mi_fifo", "fifo_mode", Value::Int(_)) => "fifo_mode",
        ("httpd", "ip", Value::Str(_)) => "ip",
        ("httpd", "port", Value::Int(_)) => "port",
        ("mi_http", "root", Value::Str(_)) => "root",
        _ => return None,
    };
    if let ("ip", Value::Str(ip)) = (key, value) {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Some(Err(format!("'{ip}' is not an IP address")));
        }
    }
    Some(Ok(format!("{key} = {v},")))
}

/// The DB layer's URL schemes.
fn db_scheme_ok(url: &str) -> bool {
    ["mysql://", "postgres://", "postgresql://", "sqlite://"]
        .iter()
        .any(|p| url.starts_with(p))
}

fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.strip_suffix(".so").unwrap_or(base).to_string()
}

fn modparam(l: &mut Lower, span: Span, module: &str, name: &str, value: &Value) -> String {
    let shown = match value {
        Value::Str(s) => lua_str(s),
        Value::Int(n) => n.to_string(),
    };
    let orig = format!("modparam(\"{module}\", \"{name}\", {shown})");
    if let Some((_, why)) = mapping::BUILT_IN.iter().find(|(b, _)| *b == module) {
        l.report.not_needed += 1;
        return format!("-- {orig}: {why}");
    }
    if !mapping::module_known(module) {
        l.unsupported(
            span,
            Kind::Parameter,
            &format!("{module}.{name}"),
            Some(module),
            format!("{module} is not in lunasip"),
        );
        return format!("-- {orig}: {module} is not in lunasip");
    }
    let Some(p) = vocab::params::lookup(module, name) else {
        l.unsupported(
            span,
            Kind::Parameter,
            &format!("{module}.{name}"),
            Some(module),
            "lunasip's module has no such parameter",
        );
        return format!("-- {orig}: lunasip's {module} has no such parameter");
    };
    let v = match (p.kind, value) {
        (ParamKind::Int, Value::Int(n)) => Some(n.to_string()),
        (ParamKind::Int, Value::Str(s)) if s.trim().parse::<i64>().is_ok() => {
            Some(s.trim().to_string())
        }
        (ParamKind::Bool, Value::Int(n)) => Some((*n != 0).to_string()),
        (ParamKind::Bool, Value::Str(s)) => match s.as_str() {
            "1" | "yes" | "true" | "on" => Some("true".into()),
            "0" | "no" | "false" | "off" => Some("false".into()),
            _ => None,
        },
        (ParamKind::Str, Value::Str(s)) if p.name == "db_url" && !db_scheme_ok(s) => None,
        (ParamKind::Str, Value::Str(s)) => Some(lua_str(s)),
        (ParamKind::Str, Value::Int(n)) => Some(lua_str(&n.to_string())),
        _ => None,
    };
    match v {
        Some(v) => {
            l.report.count("modparams");
            let key = if is_lua_ident(p.name) {
                p.name.to_string()
            } else {
                format!("[{}]", lua_str(p.name))
            };
            format!("{key} = {v},")
        }
        None => {
            l.unsupported(
                span,
                Kind::Parameter,
                &format!("{module}.{name}"),
                Some(module),
                if p.name == "db_url" {
                    "lunasip's DB layer takes mysql://, postgres:// and sqlite:// URLs".to_string()
                } else {
                    format!("lunasip takes a {:?} here", p.kind).to_lowercase()
                },
            );
            format!("-- {orig}: lunasip cannot take this value")
        }
    }
}
