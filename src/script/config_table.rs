//! Reading a script's `config` table into a [`Config`] and the prepared
//! module settings; nothing is applied here (see [`crate::modules::Prepared`]).

use mlua::{Table, Value};
use std::time::Duration;

use super::host::{Host, Source};
use super::ScriptError;
use crate::config::{self, Config};

/// Why a value of the script's `config` table was refused; the caller
/// adds the script position (a [`ScriptError`] names file:line).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Lua could not read the value.
    #[error("{0}")]
    Lua(#[from] mlua::Error),
    /// A value of the wrong type or out of range (the message names its
    /// key).
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for ConfigError {
    fn from(e: String) -> ConfigError {
        ConfigError::Invalid(e)
    }
}

/// Line (1-based) of the first occurrence of `key =` in the source, to point
/// config errors somewhere useful.
pub(super) fn line_of(code: &str, key: &str) -> Option<usize> {
    if key.is_empty() {
        return None;
    }
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.lines()
        .position(|l| {
            l.match_indices(key).any(|(i, _)| {
                let before = l[..i].chars().next_back();
                let after = l[i + key.len()..].trim_start();
                !before.is_some_and(ident) && after.starts_with('=') && !after.starts_with("==")
            })
        })
        .map(|i| i + 1)
}

fn strings(v: Value, what: &str) -> Result<Vec<String>, ConfigError> {
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
            .collect::<Result<_, String>>()
            .map_err(ConfigError::Invalid),
        other => Err(ConfigError::Invalid(format!(
            "config.{what} must be a string or a list of strings, not {}",
            other.type_name()
        ))),
    }
}

/// `log_event_enabled` (true/1) and `log_event_level_filter` (an OpenSIPS
/// level number or name; default: every level the log shows).
fn read_log_event(t: &Table) -> Result<Option<i64>, ConfigError> {
    let on = match t
        .get::<Value>("log_event_enabled")
        .map_err(|e| e.to_string())?
    {
        Value::Nil => false,
        Value::Boolean(b) => b,
        Value::Integer(i) => i != 0,
        other => {
            return Err(ConfigError::Invalid(format!(
                "config.log_event_enabled must be true/false or 0/1, not {}",
                other.type_name()
            )))
        }
    };
    let level = match t
        .get::<Value>("log_event_level_filter")
        .map_err(|e| e.to_string())?
    {
        Value::Nil => 4,
        Value::Integer(i) => i,
        Value::String(s) => {
            let f = crate::logging::parse_level(&s.to_string_lossy())
                .map_err(|e| format!("config.log_event_level_filter: {e}"))?;
            crate::logging::number_of(f)
        }
        other => {
            return Err(ConfigError::Invalid(format!(
                "config.log_event_level_filter must be a level, not {}",
                other.type_name()
            )))
        }
    };
    Ok(on.then_some(level))
}

fn number(t: &Table, key: &str) -> Result<Option<u64>, ConfigError> {
    match t.get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        Value::Integer(i) if i >= 0 => Ok(Some(i as u64)),
        Value::Number(n) if n >= 0.0 && n.fract() == 0.0 => Ok(Some(n as u64)),
        other => Err(ConfigError::Invalid(format!(
            "config.{key} must be a non-negative integer, not {}",
            other.type_name()
        ))),
    }
}

/// A true/false key (0/1 taken too); `default` when absent.
fn flag(t: &Table, key: &str, default: bool) -> Result<bool, String> {
    match t.get::<Value>(key) {
        Ok(Value::Nil) => Ok(default),
        Ok(Value::Boolean(b)) => Ok(b),
        Ok(Value::Integer(n)) => Ok(n != 0),
        _ => Err(format!("config.{key} must be true/false or 0/1")),
    }
}

/// OpenSIPS's DNS settings (`dns_try_ipv6`, `dns_retr_time`,
/// `dns_retr_no`, `disable_dns_failover`) and lunasip's `dns_servers`.
fn read_dns(t: &Table) -> Result<crate::transport::dns::DnsConf, (&'static str, String)> {
    let mut d = crate::transport::dns::DnsConf::default();
    let flag = |k: &'static str| -> Result<Option<bool>, (&'static str, String)> {
        match t.get::<Value>(k).map_err(|e| (k, e.to_string()))? {
            Value::Nil => Ok(None),
            Value::Boolean(b) => Ok(Some(b)),
            Value::Integer(n) => Ok(Some(n != 0)),
            other => Err((
                k,
                format!(
                    "config.{k} must be true/false or 0/1, not {}",
                    other.type_name()
                ),
            )),
        }
    };
    if let Some(b) = flag("dns_try_ipv6")? {
        d.try_ipv6 = b;
    }
    if let Some(b) = flag("disable_dns_failover")? {
        d.failover = !b;
    }
    if let Some(n) = number(t, "dns_retr_time").map_err(|m| ("dns_retr_time", m.to_string()))? {
        d.retr_time = Duration::from_secs(n.max(1));
    }
    if let Some(n) = number(t, "dns_retr_no").map_err(|m| ("dns_retr_no", m.to_string()))? {
        d.retr_no = (n as usize).max(1);
    }
    let servers = strings(t.get("dns_servers").unwrap_or(Value::Nil), "dns_servers")
        .map_err(|m| ("dns_servers", m.to_string()))?;
    for s in servers {
        let addr = s
            .parse::<std::net::SocketAddr>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
            .map_err(|_| {
                (
                    "dns_servers",
                    format!("config.dns_servers: '{s}' is not ip or ip:port"),
                )
            })?;
        d.servers.push(addr);
    }
    Ok(d)
}

/// Reads `config` into a [`Config`], with OpenSIPS defaults for what is
/// absent, and the module settings, checked but not applied.
pub fn read_config(
    host: &Host,
    source: &Source,
) -> Result<(Config, crate::modules::Prepared), ScriptError> {
    let mut prepared = crate::modules::Prepared::default();
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
    let listen = strings(t.get("listen").unwrap_or(Value::Nil), "listen")
        .map_err(|m| err("listen", m.to_string()))?;
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
    // OpenSIPS 3.x splits `children` into `udp_workers` and
    // `tcp_workers`; lunasip's workers serve both transports, so the
    // larger one given is the worker count.
    let mut workers: Option<u64> = None;
    for key in ["children", "udp_workers", "tcp_workers"] {
        if let Some(n) = number(&t, key).map_err(|m| err(key, m.to_string()))? {
            if n == 0 || n > 256 {
                return Err(err(key, format!("config.{key} must be between 1 and 256")));
            }
            workers = Some(workers.map_or(n, |w| w.max(n)));
        }
    }
    if let Some(n) = workers {
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
    for a in strings(t.get("alias").unwrap_or(Value::Nil), "alias")
        .map_err(|m| err("alias", m.to_string()))?
    {
        let (h, p) = config::split_hostport(&a)
            .ok_or_else(|| err("alias", format!("config.alias: bad alias '{a}'")))?;
        cfg.aliases.push((
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p,
        ));
    }
    if let Some(n) = number(&t, "udp_rcvbuf").map_err(|m| err("udp_rcvbuf", m.to_string()))? {
        cfg.udp_rcvbuf = n as usize;
    }
    if let Some(n) = number(&t, "tcp_connection_lifetime")
        .map_err(|m| err("tcp_connection_lifetime", m.to_string()))?
    {
        cfg.tcp_idle_timeout = Duration::from_secs(n.max(1));
    }
    if let Some(n) =
        number(&t, "tcp_max_msg_size").map_err(|m| err("tcp_max_msg_size", m.to_string()))?
    {
        cfg.tcp_max_msg_size = (n as usize).clamp(1024, crate::sip::MAX_MESSAGE_SIZE);
    }
    if let Some(n) =
        number(&t, "tcp_connect_timeout").map_err(|m| err("tcp_connect_timeout", m.to_string()))?
    {
        cfg.tcp_connect_timeout = Duration::from_millis(n.max(1));
    }
    if let Some(n) =
        number(&t, "tcp_read_timeout").map_err(|m| err("tcp_read_timeout", m.to_string()))?
    {
        cfg.tcp_read_timeout = Duration::from_millis(n.max(1));
    }
    if let Some(n) =
        number(&t, "tcp_max_bad_msgs").map_err(|m| err("tcp_max_bad_msgs", m.to_string()))?
    {
        cfg.tcp_max_bad_msgs = n.clamp(1, u64::from(u32::MAX)) as u32;
    }
    for (key, cap) in [
        ("max_header_size", &mut cfg.limits.header),
        ("max_headers_size", &mut cfg.limits.headers),
        ("max_uri_size", &mut cfg.limits.uri),
        ("max_host_size", &mut cfg.limits.host),
    ] {
        if let Some(n) = number(&t, key).map_err(|m| err(key, m.to_string()))? {
            *cap = (n as usize).clamp(64, crate::sip::MAX_MESSAGE_SIZE);
        }
    }
    if let Some(n) = number(&t, "max_suspended").map_err(|m| err("max_suspended", m.to_string()))? {
        if n == 0 {
            // 0 would refuse every request with 503.
            return Err(err(
                "max_suspended",
                "config.max_suspended must be at least 1".into(),
            ));
        }
        cfg.max_suspended = n as usize;
    }
    if let Some(n) =
        number(&t, "resume_timeout").map_err(|m| err("resume_timeout", m.to_string()))?
    {
        cfg.resume_timeout = Duration::from_millis(n.max(1));
    }
    if let Some(n) = number(&t, "route_timeout").map_err(|m| err("route_timeout", m.to_string()))? {
        cfg.route_timeout = (n > 0).then(|| Duration::from_millis(n));
    }
    if let Some(n) = number(&t, "worker_stall_timeout")
        .map_err(|m| err("worker_stall_timeout", m.to_string()))?
    {
        cfg.worker_stall_timeout = (n > 0).then(|| Duration::from_millis(n.max(100)));
    }
    if let Some(n) =
        number(&t, "script_memory_limit").map_err(|m| err("script_memory_limit", m.to_string()))?
    {
        cfg.script_memory_limit = (n as usize).saturating_mul(1024 * 1024);
    }
    let micros = |n: u64| (n > 0).then(|| Duration::from_micros(n));
    if let Some(n) =
        number(&t, "exec_msg_threshold").map_err(|m| err("exec_msg_threshold", m.to_string()))?
    {
        cfg.exec_msg_threshold = micros(n);
    }
    if let Some(n) =
        number(&t, "event_pkg_threshold").map_err(|m| err("event_pkg_threshold", m.to_string()))?
    {
        cfg.event_pkg_threshold = u8::try_from(n).ok().filter(|p| *p <= 100).ok_or_else(|| {
            err(
                "event_pkg_threshold",
                "config.event_pkg_threshold is a percentage, 0 to 100".into(),
            )
        })?;
    }
    if let Some(n) =
        number(&t, "event_shm_threshold").map_err(|m| err("event_shm_threshold", m.to_string()))?
    {
        cfg.event_shm_threshold = u8::try_from(n).ok().filter(|p| *p <= 100).ok_or_else(|| {
            err(
                "event_shm_threshold",
                "config.event_shm_threshold is a percentage, 0 to 100".into(),
            )
        })?;
    }
    if let Some(n) = number(&t, "shm_memory").map_err(|m| err("shm_memory", m.to_string()))? {
        cfg.shm_memory = n.saturating_mul(1024 * 1024);
    }
    if let Some(n) = number(&t, "overload_queue_delay")
        .map_err(|m| err("overload_queue_delay", m.to_string()))?
    {
        cfg.overload_queue_delay = Duration::from_millis(n);
    }
    cfg.log_event_level =
        read_log_event(&t).map_err(|m| err("log_event_enabled", m.to_string()))?;
    cfg.dns = read_dns(&t).map_err(|(k, m)| err(k, m))?;
    if let Some(n) =
        number(&t, "exec_dns_threshold").map_err(|m| err("exec_dns_threshold", m.to_string()))?
    {
        cfg.dns.exec_threshold = micros(n);
    }
    match t.get::<Value>("xlog_level") {
        Ok(Value::Nil) => {}
        Ok(Value::Integer(n)) => cfg.xlog_level = n,
        Ok(Value::String(s)) => {
            let s = s.to_str().map_err(|e| err("xlog_level", e.to_string()))?;
            cfg.xlog_level = crate::logging::xlog_number(&s).ok_or_else(|| {
                err(
                    "xlog_level",
                    format!("config.xlog_level: unknown level '{}'", &*s),
                )
            })?;
        }
        _ => {
            return Err(err(
                "xlog_level",
                "config.xlog_level must be a number (-3..4) or a level name".into(),
            ))
        }
    }
    cfg.mhomed = flag(&t, "mhomed", false).map_err(|m| err("mhomed", m))?;
    cfg.udp_pack = flag(&t, "udp_pack", true).map_err(|m| err("udp_pack", m))?;
    cfg.blacklists =
        super::config_blacklists::read_blacklists(&t).map_err(|m| err("blacklists", m))?;
    read_mi_config(&t, &mut cfg).map_err(|m| err("modules", m))?;
    if let Ok(Value::Table(modules)) = t.get::<Value>("modules") {
        // File parameters are read relative to the script's directory.
        prepared = super::cfg_path::with(&source.name, || crate::modules::prepare(&modules))
            .map_err(|m| {
                let m = m.to_string();
                // The line of the key the message names (`config.modules.tm.x: …`).
                let path = m.split([':', ' ']).next().unwrap_or("");
                let key = path.rsplit('.').next().filter(|k| !k.is_empty());
                err(key.unwrap_or("modules"), m.clone())
            })?;
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
            match tm.get::<Value>("onreply_avp_mode") {
                Ok(Value::Nil) => {}
                Ok(Value::Boolean(b)) => cfg.tm.onreply_avp_mode = b,
                Ok(Value::Integer(n)) => cfg.tm.onreply_avp_mode = n != 0,
                _ => {
                    return Err(err(
                        "onreply_avp_mode",
                        "config.modules.tm.onreply_avp_mode must be true/false or 0/1".into(),
                    ))
                }
            }
            match tm.get::<Value>("restart_fr_on_each_reply") {
                Ok(Value::Nil) => {}
                Ok(Value::Boolean(b)) => cfg.tm.restart_fr = b,
                Ok(Value::Integer(n)) => cfg.tm.restart_fr = n != 0,
                _ => {
                    return Err(err(
                        "restart_fr_on_each_reply",
                        "config.modules.tm.restart_fr_on_each_reply must be true/false or 0/1"
                            .into(),
                    ))
                }
            }
        }
    }
    Ok((cfg, prepared))
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
            h.token = match m.get::<Value>("token").map_err(|e| e.to_string())? {
                Value::Nil | Value::Boolean(true) => config::MiToken::Generated,
                Value::Boolean(false) => config::MiToken::Off,
                Value::String(s) => {
                    let t = s.to_str().map_err(|e| e.to_string())?.trim().to_string();
                    if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                        return Err("config.modules.mi_http.token must be a non-empty word (no spaces), true or false".into());
                    }
                    config::MiToken::Fixed(t)
                }
                other => {
                    return Err(format!(
                        "config.modules.mi_http.token must be a string or a boolean, not {}",
                        other.type_name()
                    ))
                }
            };
            h.token_file = text(&m, "token_file", "mi_http")?.map(Into::into);
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
