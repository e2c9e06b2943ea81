//! Subscriber sockets in OpenSIPS 3.x syntax: `udp:host:port` and
//! `unix:/path` (event_datagram), `route:NAME` (event_route),
//! `flatstore:/path/file` (event_flatstore) and
//! `rabbitmq:[user[:password]@]host[:port]/[params?]routing_key`
//! (event_rabbitmq, params `exchange=NAME` and `persistent`, `;`
//! separated; user and password default to guest, the port to 5672).
//!
//! A lunasip extension selects OpenSIPS 2.x's text payload for old
//! consumers: `;format=text` at the end of the socket
//! (`udp:127.0.0.1:9000;format=text`); `;format=json` is the default.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use super::flat::{self, FlatFile};
use super::rabbit::{Broker, Publisher};

/// A parsed subscriber socket; `spec` is the text it was given.
#[derive(Clone)]
pub struct Socket {
    pub spec: String,
    pub kind: Kind,
    pub format: Format,
}

/// The payload a subscriber gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenSIPS 3.x JSON-RPC notification.
    Json,
    /// OpenSIPS 2.x `name::value` lines.
    Text,
}

#[derive(Clone)]
pub enum Kind {
    Udp(UdpTo),
    Unix(PathBuf),
    /// `event_route.NAME` runs with the event's parameters.
    Route(String),
    Flat(Arc<FlatFile>),
    Rabbit(Arc<Publisher>, Arc<str>),
}

/// Where a `udp:` socket sends: an address, or a host name that the
/// delivery thread resolves (`deliver.rs`), so a subscription made from a
/// route never waits for DNS on a worker (OpenSIPS event_datagram
/// resolves the name when it parses the socket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UdpTo {
    Addr(SocketAddr),
    Name(Arc<str>, u16),
}

/// Where a `rabbitmq:` socket publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitTarget {
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub exchange: String,
    pub routing_key: String,
    pub persistent: bool,
}

impl RabbitTarget {
    /// The AMQP URI of the broker (default vhost).
    pub fn uri(&self) -> String {
        format!(
            "amqp://{}:{}@{}:{}/%2f",
            pct(&self.user),
            pct(&self.password),
            self.host,
            self.port
        )
    }
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Socket {
    /// Parses a subscriber socket; the error names the part that is wrong.
    pub fn parse(spec: &str) -> Result<Socket, String> {
        let (body, format) = match spec.rsplit_once(";format=") {
            Some((b, "text")) => (b, Format::Text),
            Some((b, "json")) => (b, Format::Json),
            Some((_, f)) => {
                return Err(format!(
                    "socket {spec:?}: unknown format {f:?} (json or text)"
                ))
            }
            None => (spec, Format::Json),
        };
        let (proto, rest) = body.split_once(':').ok_or_else(|| {
            format!("socket {spec:?}: no transport (udp:, unix:, route:, flatstore: or rabbitmq:)")
        })?;
        let kind = match proto {
            "udp" => Kind::Udp(udp(rest)?),
            "unix" => Kind::Unix(unix(rest)?),
            "route" if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
                Kind::Route(rest.to_string())
            }
            "route" => return Err(format!("route socket {rest:?}: no route name")),
            "flatstore" => Kind::Flat(flat::get(rest)?),
            "rabbitmq" => {
                let t = rabbit(rest)?;
                let s = super::rabbit::socket_settings();
                let mut uri = t.uri();
                if s.heartbeat > 0 {
                    uri.push_str(&format!("?heartbeat={}", s.heartbeat));
                }
                let broker = Broker {
                    uri,
                    connect_timeout: s.connect_timeout,
                    exchange: t.exchange.clone(),
                    persistent: t.persistent,
                    mandatory: false,
                    immediate: false,
                    retries: 0,
                };
                let p = Publisher::start(broker, &super::SENT, &super::DROPPED);
                Kind::Rabbit(p, t.routing_key.into())
            }
            _ => return Err(format!("socket {spec:?}: unknown transport {proto:?}")),
        };
        Ok(Socket {
            spec: spec.to_string(),
            kind,
            format,
        })
    }
}

fn unix(rest: &str) -> Result<PathBuf, String> {
    if !rest.starts_with('/') {
        return Err(format!("unix socket {rest:?}: the path must be absolute"));
    }
    Ok(PathBuf::from(rest))
}

fn udp(rest: &str) -> Result<UdpTo, String> {
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("udp socket {rest:?}: no port"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("udp socket: bad port {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("udp socket: no host".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(UdpTo::Addr(SocketAddr::new(ip, port)));
    }
    // RFC 1123 host names: letters, digits, '-' and '.', at most 253.
    let name_ok = host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !name_ok {
        return Err(format!("udp socket: bad host {host:?}"));
    }
    Ok(UdpTo::Name(host.to_ascii_lowercase().into(), port))
}

/// Parses what follows `rabbitmq:`.
pub fn rabbit(rest: &str) -> Result<RabbitTarget, String> {
    let (authority, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("rabbitmq socket {rest:?}: no '/' before the routing key"))?;
    let (cred, hostport) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, authority),
    };
    let (user, password) = match cred {
        None => ("guest".to_string(), "guest".to_string()),
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (u.to_string(), p.to_string()),
            None => (c.to_string(), String::new()),
        },
    };
    if user.is_empty() {
        return Err("rabbitmq socket: empty user".into());
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("rabbitmq socket: bad port {p:?}"))?,
        ),
        None => (hostport, 5672),
    };
    if host.is_empty() {
        return Err("rabbitmq socket: no host".into());
    }
    let (params, key) = match path.split_once('?') {
        Some((p, k)) => (Some(p), k),
        None => (None, path),
    };
    if key.is_empty() {
        return Err("rabbitmq socket: empty routing key".into());
    }
    let mut exchange = String::new();
    let mut persistent = false;
    for p in params.into_iter().flat_map(|p| p.split(';')) {
        match p.split_once('=') {
            Some(("exchange", e)) if !e.is_empty() => exchange = e.to_string(),
            None if p == "persistent" => persistent = true,
            _ => return Err(format!("rabbitmq socket: unknown parameter {p:?}")),
        }
    }
    Ok(RabbitTarget {
        user,
        password,
        host: host.to_string(),
        port,
        exchange,
        routing_key: key.to_string(),
        persistent,
    })
}
