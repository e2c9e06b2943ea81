//! Global parameters (`listen=`, `children=`, `dst_blacklist=`, …) → the
//! `config` table's entries.

use super::config::Entry;
use super::expr::lua_str;
use super::{is_lua_ident, Lower};
use crate::ast::Span;
use crate::report::Kind;

/// Globals lunasip has no use for, with the reason said in the Lua.
static NOT_NEEDED: &[(&str, &str)] = &[
    ("mpath", "lunasip's modules are built in"),
    (
        "fork",
        "systemd (or the terminal) runs lunasip in the foreground",
    ),
    ("daemonize", "systemd runs lunasip in the foreground"),
    (
        "log_stderror",
        "lunasip logs to stderr, or the journal under systemd",
    ),
    (
        "stderror_enabled",
        "lunasip logs to stderr, or the journal under systemd",
    ),
    (
        "syslog_enabled",
        "lunasip logs to stderr, or the journal under systemd",
    ),
    (
        "syslog_facility",
        "lunasip logs to stderr, or the journal under systemd",
    ),
    (
        "log_facility",
        "lunasip logs to stderr, or the journal under systemd",
    ),
    (
        "log_name",
        "lunasip logs to stderr, or the journal under systemd",
    ),
    (
        "syslog_name",
        "lunasip logs to stderr, or the journal under systemd",
    ),
    ("xlog_level", "xlog lines are logged at their own level"),
    ("disable_core_dump", "set by the systemd unit"),
    ("open_files_limit", "set by the systemd unit (LimitNOFILE)"),
    ("user", "the systemd unit runs lunasip as its own user"),
    ("group", "the systemd unit runs lunasip as its own user"),
    ("uid", "the systemd unit runs lunasip as its own user"),
    ("gid", "the systemd unit runs lunasip as its own user"),
    ("wdir", "not used"),
    ("rundir", "lunasip uses /run/lunasip"),
    ("chroot", "use the systemd unit's sandboxing"),
    ("auto_aliases", "lunasip knows its listening addresses"),
    ("mhomed", "the kernel picks the source address"),
    ("dns", "lunasip does no reverse lookups of sources"),
    ("rev_dns", "lunasip does no reverse lookups of sources"),
    (
        "dns_use_search_list",
        "the resolver follows /etc/resolv.conf",
    ),
    ("disable_dns_blacklist", "lunasip has no DNS blacklist"),
    (
        "disable_tcp",
        "TCP is on exactly when a tcp: listen entry is given",
    ),
    ("tcp_children", "one pool of workers serves every transport"),
    ("tcp_workers", "one pool of workers serves every transport"),
    (
        "auto_scaling_profile",
        "lunasip runs a fixed number of workers",
    ),
    ("sip_warning", "lunasip sends no Warning headers"),
    ("memlog", "not used"),
    ("memdump", "not used"),
    ("db_version_table", "not used"),
    ("check_via", "not used by OpenSIPS since 1.x"),
    ("disable_tls", "lunasip has no TLS listener to disable"),
];

/// The value of a global as written: number, yes/no, or a (quoted) string.
fn global_value(raw: &str) -> GValue {
    let t = raw.trim();
    if let Ok(n) = t.parse::<i64>() {
        return GValue::Int(n);
    }
    match t.to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" => return GValue::Bool(true),
        "no" | "off" | "false" => return GValue::Bool(false),
        _ => {}
    }
    let unq = t
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| t.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(t);
    GValue::Str(unq.to_string())
}

enum GValue {
    Int(i64),
    Bool(bool),
    Str(String),
}

/// `udp:1.2.3.4:5060 as 5.6.7.8:5060` → lunasip's listen entry, or why not.
fn listen_entry(raw: &str) -> Result<String, String> {
    let v = match global_value(raw) {
        GValue::Str(s) => s,
        GValue::Int(n) => n.to_string(),
        GValue::Bool(_) => return Err("not an address".into()),
    };
    let mut words = v.split_whitespace();
    let spec = words.next().ok_or("empty")?;
    let mut adv = None;
    let mut opts = String::new();
    while let Some(w) = words.next() {
        match w {
            "as" => adv = words.next(),
            // Kept as they are: lunasip's listen takes them (tm anycast).
            "anycast" => opts.push_str(" anycast"),
            "tag" => {
                let t = words.next().ok_or("'tag' needs a name")?;
                opts.push_str(&format!(" tag {t}"));
            }
            other => return Err(format!("'{other}' in a socket definition is not supported")),
        }
    }
    let (proto, rest) = match spec.split_once(':') {
        Some((p, r)) if p.chars().all(|c| c.is_ascii_alphabetic() || c == '_') => (p, r),
        _ => ("udp", spec),
    };
    if proto != "udp" && proto != "tcp" {
        return Err(format!("lunasip listens on udp and tcp only, not {proto}"));
    }
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, p) = r.split_once(']').ok_or("bad IPv6 address")?;
        (
            format!("[{h}]"),
            p.strip_prefix(':').unwrap_or("5060").to_string(),
        )
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => (rest.to_string(), "5060".to_string()),
        }
    };
    let host = if host == "*" {
        "0.0.0.0".to_string()
    } else {
        host
    };
    let is_ip = host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok();
    if !is_ip {
        return Err(format!(
            "'{host}' is not an IP address (interface and host names are not supported in listen)"
        ));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!("'{port}' is not a port"));
    }
    let mut s = format!("{proto}:{host}:{port}");
    if let Some(a) = adv {
        s.push_str(&format!(" as {a}"));
    }
    s.push_str(&opts);
    Ok(s)
}

/// A rule without the spaces outside its quotes, `, ` between fields:
/// `( udp , 10.0.0.1 ,5060 )` → `(udp, 10.0.0.1, 5060)`.
fn tidy_rule(r: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    for ch in r.trim().chars() {
        match (quote, ch) {
            (None, '"' | '\'') => {
                quote = Some(ch);
                out.push(ch);
            }
            (Some(q), _) if ch == q => {
                quote = None;
                out.push(ch);
            }
            (None, c) if c.is_whitespace() => {}
            (None, ',') => out.push_str(", "),
            (_, c) => out.push(c),
        }
    }
    out
}

/// OpenSIPS's `dst_blacklist = name[/flags][:{ rule, … }]` (3.4 cfg.y
/// `blst_def`) → one list of `config.blacklists`: `name = { "rule", …,
/// flags = { … } }`. Rules keep OpenSIPS's element form
/// (`(udp, 10.0.0.1, 5060, "pattern")`, `!(any, 10.0.0.0/8)`, `ip`), which
/// lunasip reads as is; a list given no flags is read-only in both.
fn blacklist_entry(raw: &str) -> Result<String, String> {
    let (head, def) = match raw.split_once(':') {
        Some((h, d)) => (h.trim(), Some(d.trim())),
        None => (raw.trim(), None),
    };
    let (name, flags) = match head.split_once('/') {
        Some((n, f)) => (n.trim(), Some(f)),
        None => (head, None),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!("'{name}' is not a blacklist name"));
    }
    let mut parts = Vec::new();
    if let Some(def) = def {
        let inner = def
            .strip_prefix('{')
            .and_then(|d| d.strip_suffix('}'))
            .ok_or("the rules must be between { and }")?;
        let (mut depth, mut quote, mut start) = (0i32, None, 0);
        let mut rules = Vec::new();
        for (i, ch) in inner.char_indices() {
            match (quote, ch) {
                (None, '"' | '\'') => quote = Some(ch),
                (Some(q), _) if ch == q => quote = None,
                (None, '(') => depth += 1,
                (None, ')') => depth -= 1,
                (None, ',') if depth == 0 => {
                    rules.push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        rules.push(&inner[start..]);
        for r in rules.iter().map(|r| tidy_rule(r)) {
            if !r.is_empty() {
                parts.push(lua_str(&r));
            }
        }
    }
    if let Some(f) = flags {
        let words: Vec<String> = f
            .split(',')
            .map(|w| w.trim().to_ascii_lowercase())
            .collect();
        if let Some(w) = words
            .iter()
            .find(|w| !["readonly", "expire", "default"].contains(&w.as_str()))
        {
            return Err(format!("unknown blacklist flag '{w}'"));
        }
        let list: Vec<String> = words.iter().map(|w| lua_str(w)).collect();
        parts.push(format!("flags = {{ {} }}", list.join(", ")));
    }
    let key = if is_lua_ident(name) {
        name.to_string()
    } else {
        format!("[{}]", lua_str(name))
    };
    if parts.is_empty() {
        return Ok(format!("{key} = {{}},"));
    }
    Ok(format!("{key} = {{ {} }},", parts.join(", ")))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn global(
    l: &mut Lower,
    span: Span,
    name: &str,
    raw: &str,
    comments: Vec<String>,
    entries: &mut Vec<Entry>,
    listens: &mut Vec<String>,
    aliases: &mut Vec<String>,
    blacklists: &mut Vec<String>,
) {
    let v = global_value(raw);
    let key_int = |key: &str, v: &GValue| match v {
        GValue::Int(n) => Some(format!("{key} = {n},")),
        _ => None,
    };
    let line = match name {
        "listen" | "socket" if matches!(&v, GValue::Str(s) if s.starts_with("bin:")) => {
            l.report.not_needed += 1;
            entries.push(Entry::Note(
                comments,
                format!("-- {name}={raw}: the clusterer listens on my_node_info's url"),
            ));
            return;
        }
        "listen" | "socket" => {
            match listen_entry(raw) {
                Ok(e) => {
                    l.report.count("globals");
                    if listens.is_empty() {
                        entries.push(Entry::Listen(comments));
                    } else if !comments.is_empty() {
                        entries.push(Entry::Note(
                            comments,
                            "-- (listen entry merged above)".into(),
                        ));
                    }
                    listens.push(e);
                }
                Err(why) => {
                    l.unsupported(
                        span,
                        Kind::Global,
                        &format!("{name}={raw}"),
                        None,
                        why.clone(),
                    );
                    entries.push(Entry::Note(comments, format!("-- {name}={raw}: {why}")));
                }
            }
            return;
        }
        "alias" => {
            let s = match v {
                GValue::Str(s) => s,
                GValue::Int(n) => n.to_string(),
                GValue::Bool(b) => b.to_string(),
            };
            // 3.x writes `alias=udp:host:port`; lunasip takes host[:port].
            let s = match s.split_once(':') {
                Some((p, r)) if ["udp", "tcp", "tls", "ws", "wss", "sctp"].contains(&p) => {
                    r.to_string()
                }
                _ => s,
            };
            if s.is_empty() {
                l.report.not_needed += 1;
                entries.push(Entry::Note(comments, format!("-- {name} = {raw}: empty")));
                return;
            }
            l.report.count("globals");
            if aliases.is_empty() {
                entries.push(Entry::Alias(comments));
            } else if !comments.is_empty() {
                entries.push(Entry::Note(comments, "-- (alias merged above)".into()));
            }
            aliases.push(s);
            return;
        }
        "dst_blacklist" => {
            match blacklist_entry(raw) {
                Ok(e) => {
                    l.report.count("globals");
                    if blacklists.is_empty() {
                        entries.push(Entry::Blacklists(comments));
                    } else if !comments.is_empty() {
                        entries.push(Entry::Note(
                            comments,
                            "-- (dst_blacklist merged above)".into(),
                        ));
                    }
                    blacklists.push(e);
                }
                Err(why) => {
                    let raw = raw.replace('\n', " ");
                    l.unsupported(span, Kind::Global, name, None, why.clone());
                    entries.push(Entry::Note(comments, format!("-- {name} = {raw}: {why}")));
                }
            }
            return;
        }
        "children" | "udp_workers" => key_int("children", &v),
        "port" if matches!(v, GValue::Int(5060)) => {
            l.report.not_needed += 1;
            entries.push(Entry::Note(
                comments,
                format!("-- {name} = {raw}: 5060 is lunasip's default port too"),
            ));
            return;
        }
        "debug" | "log_level" => key_int("log_level", &v),
        "dns_retr_time"
        | "dns_retr_no"
        | "tcp_connection_lifetime"
        | "tcp_max_msg_size"
        | "tcp_connect_timeout" => key_int(name, &v),
        "maxbuffer" => key_int("udp_rcvbuf", &v),
        "dns_try_ipv6" | "disable_dns_failover" => match v {
            GValue::Bool(b) => Some(format!("{name} = {b},")),
            GValue::Int(n) => Some(format!("{name} = {},", n != 0)),
            GValue::Str(_) => None,
        },
        _ => {
            if let Some((_, why)) = NOT_NEEDED.iter().find(|(n, _)| *n == name) {
                l.report.not_needed += 1;
                let raw = raw.replace('\n', " ");
                entries.push(Entry::Note(comments, format!("-- {name} = {raw}: {why}")));
                return;
            }
            l.unsupported(span, Kind::Global, name, None, "no lunasip setting");
            entries.push(Entry::Note(
                comments,
                format!("-- {name} = {raw}: no lunasip setting"),
            ));
            return;
        }
    };
    match line {
        Some(line) => {
            l.report.count("globals");
            entries.push(Entry::Line(comments, line));
        }
        None => {
            l.unsupported(
                span,
                Kind::Global,
                name,
                None,
                format!("value '{raw}' is not a number"),
            );
            entries.push(Entry::Note(
                comments,
                format!("-- {name} = {raw}: not a number"),
            ));
        }
    }
}
