//! Subscriber sockets in OpenSIPS 3.x syntax: `udp:host:port`
//! (event_datagram) and
//! `rabbitmq:[user[:password]@]host[:port]/[params?]routing_key`
//! (event_rabbitmq, params `exchange=NAME` and `persistent`, `;`
//! separated; user and password default to guest, the port to 5672).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use super::deliver::Rabbit;

/// A parsed subscriber socket; `spec` is the text it was given.
#[derive(Clone)]
pub struct Socket {
    pub spec: String,
    pub kind: Kind,
}

#[derive(Clone)]
pub enum Kind {
    Udp(SocketAddr),
    Rabbit(Arc<Rabbit>),
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
        let (proto, rest) = spec
            .split_once(':')
            .ok_or_else(|| format!("socket {spec:?}: no transport (udp: or rabbitmq:)"))?;
        let kind = match proto {
            "udp" => Kind::Udp(udp(rest)?),
            "rabbitmq" => Kind::Rabbit(Rabbit::new(rabbit(rest)?)),
            _ => return Err(format!("socket {spec:?}: unknown transport {proto:?}")),
        };
        Ok(Socket {
            spec: spec.to_string(),
            kind,
        })
    }
}

fn udp(rest: &str) -> Result<SocketAddr, String> {
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
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("udp socket: cannot resolve host {host:?}"))
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
