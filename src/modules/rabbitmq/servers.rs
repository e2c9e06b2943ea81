//! `server_id` definitions as OpenSIPS 3.4's rabbitmq module reads them
//! (`rmq_servers.c`): `[ID] uri = amqp://user:pass@host:port/vhost;
//! exchange = x; heartbeat = 5; frames = 131072; retries = 2; immediate;
//! mandatory; non-persistent`. Parameter names match case-insensitively
//! by prefix, spaces around `=` are allowed, and a `;` piece that names no
//! parameter while the URI is still open belongs to the URI.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::event::rabbit::{Broker, Publisher};

/// The smallest frame size OpenSIPS lets `frames` go down to.
const MIN_FRAMES: u32 = 4096;
const DEFAULT_FRAMES: u32 = 131_072;

/// One `server_id` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub id: String,
    pub broker: Broker,
}

/// Parses one `server_id` value.
pub fn parse(spec: &str) -> Result<Server, String> {
    let s = spec.trim_start();
    let rest = s
        .strip_prefix('[')
        .ok_or_else(|| format!("server_id {spec:?}: no [id] at the start"))?;
    let (id, rest) = rest
        .split_once(']')
        .ok_or_else(|| format!("server_id {spec:?}: no ']' after the id"))?;
    let id = id.trim();
    if id.is_empty() {
        return Err(format!("server_id {spec:?}: empty id"));
    }
    let mut uri: Option<String> = None;
    let mut uri_open = false;
    let (mut exchange, mut heartbeat, mut frames, mut retries) =
        (String::new(), 0u32, DEFAULT_FRAMES, 0u32);
    let (mut immediate, mut mandatory, mut persistent) = (false, false, true);
    for piece in rest.split(';') {
        let p = piece.trim();
        if p.is_empty() {
            continue;
        }
        let lower = p.to_ascii_lowercase();
        let key = ["uri", "tls_domain", "frames", "retries", "exchange", "heartbeat"]
            .into_iter()
            .find(|k| lower.starts_with(k));
        let flag = ["immediate", "mandatory", "non-persistent"]
            .into_iter()
            .find(|k| lower.starts_with(k));
        let value = |k: &str| -> Result<String, String> {
            let v = p[k.len()..].trim_start();
            v.strip_prefix('=')
                .map(|v| v.trim().to_string())
                .ok_or_else(|| format!("server_id [{id}]: no '=' after {k}"))
        };
        match (key, flag) {
            (Some("uri"), _) => {
                uri = Some(value("uri")?);
                uri_open = true;
                continue;
            }
            (Some(k), _) => {
                uri_open = false;
                let v = value(k)?;
                let num = || {
                    v.parse::<u32>()
                        .map_err(|_| format!("server_id [{id}]: {k} must be a number, not {v:?}"))
                };
                match k {
                    "exchange" => exchange = v.clone(),
                    "heartbeat" => heartbeat = num()?,
                    "frames" => frames = num()?.max(MIN_FRAMES),
                    "retries" => retries = num()?,
                    _ => return Err(format!("server_id [{id}]: TLS (tls_domain) is not supported")),
                }
            }
            (None, Some(f)) => {
                uri_open = false;
                match f {
                    "immediate" => immediate = true,
                    "mandatory" => mandatory = true,
                    _ => persistent = false,
                }
            }
            (None, None) if uri_open => {
                if let Some(u) = uri.as_mut() {
                    u.push(';');
                    u.push_str(p);
                }
            }
            (None, None) => return Err(format!("server_id [{id}]: unknown parameter {p:?}")),
        }
    }
    let uri = uri.ok_or_else(|| format!("server_id [{id}]: no uri"))?;
    Ok(Server {
        id: id.to_string(),
        broker: Broker {
            uri: amqp_uri(id, &uri, heartbeat, frames)?,
            exchange,
            persistent,
            mandatory,
            immediate,
            retries,
            connect_timeout: std::time::Duration::from_secs(5),
        },
    })
}

/// Completes an `amqp://` URI with OpenSIPS's defaults (guest:guest,
/// localhost, 5672, vhost `/`) and adds `heartbeat` and `frame_max`.
fn amqp_uri(id: &str, uri: &str, heartbeat: u32, frames: u32) -> Result<String, String> {
    let rest = match uri.split_once("://") {
        Some(("amqp", r)) => r,
        Some(("amqps", _)) => {
            return Err(format!("server_id [{id}]: amqps (TLS) is not supported"));
        }
        _ => return Err(format!("server_id [{id}]: {uri:?} is not an amqp:// URI")),
    };
    let (authority, vhost) = match rest.split_once('/') {
        Some((a, v)) => (a, v),
        None => (rest, ""),
    };
    let (cred, hostport) = match authority.rsplit_once('@') {
        Some((c, h)) => (c, h),
        None => ("guest:guest", authority),
    };
    let cred = if cred.contains(':') {
        cred.to_string()
    } else {
        format!("{cred}:guest")
    };
    let hostport = match hostport {
        "" => "localhost:5672".to_string(),
        h if h.contains(':') && !h.ends_with(']') => h.to_string(),
        h => format!("{h}:5672"),
    };
    let vhost = if vhost.is_empty() { "%2f" } else { vhost };
    let mut out = format!("amqp://{cred}@{hostport}/{vhost}?frame_max={frames}");
    if heartbeat > 0 {
        out.push_str(&format!("&heartbeat={heartbeat}"));
    }
    Ok(out)
}

/// The publishers by server id (long-lived state in the module registry:
/// `commit` runs on a thread serving it).
#[derive(Default)]
struct Servers(RwLock<Option<HashMap<String, Arc<Publisher>>>>);

/// Starts a publisher per server; a reload keeps those whose definition
/// did not change (their connection stays up).
pub fn install(servers: Vec<Server>) {
    let state = crate::state::state::<Servers>();
    let mut g = state.0.write().unwrap_or_else(|e| e.into_inner());
    let old = g.take().unwrap_or_default();
    let mut new = HashMap::new();
    for s in servers {
        let p = match old.get(&s.id) {
            Some(p) if p.broker == s.broker => p.clone(),
            _ => Publisher::start(s.broker, &super::RABBITMQ.published, &super::RABBITMQ.dropped),
        };
        new.insert(s.id, p);
    }
    *g = Some(new);
}

/// The publisher of server `id`.
pub fn get(id: &str) -> Option<Arc<Publisher>> {
    crate::state::state::<Servers>()
        .0
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()?
        .get(id)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opensips_examples_parse() {
        let s = parse("[ID1] uri = amqp://127.0.0.1").unwrap();
        assert_eq!(s.id, "ID1");
        assert_eq!(
            s.broker.uri,
            "amqp://guest:guest@127.0.0.1:5672/%2f?frame_max=131072"
        );
        assert!(s.broker.persistent);
        let s = parse("[ID2] uri = amqp://u:p@h:5673/vh; heartbeat = 5; exchange=calls; non-persistent; mandatory; retries=2; frames=10").unwrap();
        assert_eq!(
            s.broker.uri,
            "amqp://u:p@h:5673/vh?frame_max=4096&heartbeat=5"
        );
        assert_eq!(s.broker.exchange, "calls");
        assert!(!s.broker.persistent && s.broker.mandatory && !s.broker.immediate);
        assert_eq!(s.broker.retries, 2);
    }

    #[test]
    fn bad_definitions_name_the_problem() {
        assert!(parse("uri=amqp://x").unwrap_err().contains("[id]"));
        assert!(parse("[a] exchange=x").unwrap_err().contains("no uri"));
        assert!(parse("[a] uri=amqps://x").unwrap_err().contains("TLS"));
        assert!(parse("[a] uri=amqp://x; heartbeat=soon").unwrap_err().contains("heartbeat"));
        assert!(parse("[a] exchange=x; bogus").unwrap_err().contains("bogus"));
    }
}
