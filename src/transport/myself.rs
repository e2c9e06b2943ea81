//! The local sockets as routes see them, and "is this host:port myself"
//! (OpenSIPS `check_self`): listen addresses, advertised names and aliases.

use dashmap::DashSet;
use std::net::{IpAddr, SocketAddr};

use super::listen::Listen;
use super::Proto;

/// One listening socket: what it is bound to and what it advertises.
#[derive(Debug, Clone)]
pub struct SocketInfo {
    pub id: usize,
    pub proto: Proto,
    pub addr: SocketAddr,
    /// Host for Via / Record-Route; `[v6]` bracketed. For a wildcard bind
    /// without `as`, the local address chosen per destination is used instead.
    pub adv_host: String,
    pub adv_port: u16,
    pub wildcard: bool,
    /// OpenSIPS `anycast` (see [`Listen::anycast`]).
    pub anycast: bool,
    /// OpenSIPS `tag` (see [`Listen::tag`]).
    pub tag: Option<String>,
    /// [`SocketInfo::spec`], made once (registrar saves it per contact).
    spec: String,
}

impl SocketInfo {
    /// `udp:127.0.0.1:5060`, as `$socket_in` and logs show it.
    pub fn spec(&self) -> String {
        self.spec.clone()
    }
}

/// Every socket of the daemon plus the names it answers to.
#[derive(Debug)]
pub struct Sockets {
    pub list: Vec<SocketInfo>,
    aliases: Vec<(String, Option<u16>)>,
    /// Local addresses learnt at run time behind wildcard binds.
    learnt: DashSet<IpAddr>,
    /// OpenSIPS `mhomed`: a UDP copy leaves from the listener on the
    /// address the kernel routes its destination from.
    mhomed: bool,
}

/// Writes an IP as a SIP host (IPv6 in brackets).
pub fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl Sockets {
    /// The sockets of `listen`, in order, and the names this proxy also
    /// answers to (`alias`).
    pub fn new(listen: &[Listen], aliases: &[(String, Option<u16>)]) -> Sockets {
        let list = listen
            .iter()
            .enumerate()
            .map(|(id, l): (usize, &Listen)| {
                let wildcard = l.addr.ip().is_unspecified();
                let (adv_host, adv_port) = match &l.advertise {
                    Some((h, p)) => (h.clone(), *p),
                    None => (ip_host(l.addr.ip()), l.addr.port()),
                };
                SocketInfo {
                    id,
                    proto: l.proto,
                    addr: l.addr,
                    adv_host,
                    adv_port,
                    wildcard: wildcard && l.advertise.is_none(),
                    anycast: l.anycast,
                    tag: l.tag.clone(),
                    spec: format!("{}:{}", l.proto.as_str(), l.addr),
                }
            })
            .collect();
        Sockets {
            list,
            aliases: aliases.to_vec(),
            learnt: DashSet::new(),
            mhomed: false,
        }
    }

    /// Turns OpenSIPS's `mhomed` on or off.
    pub fn with_mhomed(mut self, on: bool) -> Sockets {
        self.mhomed = on;
        self
    }

    /// OpenSIPS `grep_sock_info`: the listener of `proto` on `host:port`,
    /// `host` being its address or the name it advertises.
    pub fn find(&self, proto: Proto, host: &str, port: u16) -> Option<&SocketInfo> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip: Option<IpAddr> = bare.parse().ok();
        self.list.iter().find(|s| {
            s.proto == proto
                && (s.addr.port() == port || s.adv_port == port)
                && (ip == Some(s.addr.ip())
                    || s.adv_host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .eq_ignore_ascii_case(bare))
        })
    }

    /// OpenSIPS `grep_internal_sock_info`: [`Sockets::find`], or, with
    /// port 0, the listener of `proto` whose `tag` is `host`.
    pub fn find_internal(&self, proto: Proto, host: &str, port: u16) -> Option<&SocketInfo> {
        if port == 0 {
            let tagged = self.list.iter().find(|s| {
                s.proto == proto
                    && s.tag
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case(host))
            });
            if tagged.is_some() {
                return tagged;
            }
        }
        self.find(proto, host, port)
    }

    /// A listener named as `$socket_out` / `force_send_socket` /
    /// the dispatcher's `socket` column write it: `[proto:]host[:port]`
    /// (udp and 5060 when absent).
    pub fn by_spec(&self, spec: &str) -> Option<&SocketInfo> {
        let spec = spec.trim();
        if let Some(s) = self
            .list
            .iter()
            .find(|s| s.spec().eq_ignore_ascii_case(spec))
        {
            return Some(s);
        }
        let (proto, rest) = match spec.split_once(':') {
            Some((p, r)) if Proto::parse(p).is_some() => (Proto::parse(p)?, r),
            _ => (Proto::Udp, spec),
        };
        let (host, port) = super::listen::split_hostport(rest)?;
        self.find(proto, host, port.unwrap_or(5060))
    }

    /// OpenSIPS `get_send_socket`: the socket a copy of `proto` towards
    /// `dest` leaves from. A forced socket (`$socket_out`) wins, or its
    /// twin of `proto` on the same address and port; with `mhomed` a UDP
    /// copy takes the listener on the address the kernel routes `dest`
    /// from; else the receiving socket when it fits, else the first
    /// listener of `proto` and `dest`'s family.
    pub fn choose(
        &self,
        proto: Proto,
        dest: IpAddr,
        forced: Option<usize>,
        received: Option<usize>,
    ) -> Option<&SocketInfo> {
        if let Some(f) = forced.and_then(|i| self.list.get(i)) {
            let twin = if f.proto == proto {
                Some(f)
            } else {
                self.list
                    .iter()
                    .find(|s| s.proto == proto && s.addr == f.addr)
            };
            match twin.filter(|s| same_family(s.addr.ip(), dest)) {
                Some(s) => return Some(s),
                None => tracing::debug!(
                    "forced socket {} does not fit a {} copy to {dest}",
                    f.spec(),
                    proto.as_str()
                ),
            }
        }
        if self.mhomed && proto == Proto::Udp {
            if let Some(local) = local_addr_towards(dest) {
                let hit = self
                    .list
                    .iter()
                    .find(|s| s.proto == proto && s.addr.ip() == local);
                if hit.is_some() {
                    return hit;
                }
            }
        }
        self.pick(proto, dest, received)
    }

    /// RFC 3261 §16.4 / OpenSIPS check_self: whether `host[:port]` names this
    /// proxy. An absent port means 5060.
    pub fn is_myself(&self, host: &str, port: Option<u16>) -> bool {
        self.is_myself_port(host, Some(port.unwrap_or(5060)))
    }

    /// Whether `host` names this proxy on `port`, or on any of its ports
    /// when `port` is None (OpenSIPS `check_self` with port 0, as the
    /// script function `is_myself(host)` asks).
    pub fn is_myself_port(&self, host: &str, port: Option<u16>) -> bool {
        let on = |p: u16| port.is_none_or(|want| want == p);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip: Option<IpAddr> = bare.parse().ok();
        for s in &self.list {
            if !on(s.adv_port) && !on(s.addr.port()) {
                continue;
            }
            if s.adv_host.eq_ignore_ascii_case(host)
                || s.adv_host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .eq_ignore_ascii_case(bare)
            {
                return true;
            }
            if let Some(ip) = ip {
                if ip == s.addr.ip() {
                    return true;
                }
                if s.addr.ip().is_unspecified()
                    && (ip.is_loopback() || self.learnt.contains(&ip))
                    && same_family(ip, s.addr.ip())
                {
                    return true;
                }
            }
        }
        self.aliases
            .iter()
            .any(|(h, p)| h.eq_ignore_ascii_case(bare) && p.is_none_or(on))
    }

    /// The socket to send from: `prefer` when it fits `proto` and the family
    /// of `dest`, else the first that does.
    pub fn pick(&self, proto: Proto, dest: IpAddr, prefer: Option<usize>) -> Option<&SocketInfo> {
        let fits = |s: &&SocketInfo| s.proto == proto && same_family(s.addr.ip(), dest);
        prefer
            .and_then(|i| self.list.get(i))
            .filter(|s| fits(s))
            .or_else(|| self.list.iter().find(fits))
    }

    /// Host to advertise from `sock` towards `dest`: the configured one, or
    /// for a wildcard bind the local address the kernel routes `dest` from.
    pub fn via_host(&self, sock: &SocketInfo, dest: IpAddr) -> String {
        if !sock.wildcard {
            return sock.adv_host.clone();
        }
        let local = local_addr_towards(dest).unwrap_or(if dest.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
        });
        self.learnt.insert(local);
        ip_host(local)
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

thread_local! {
    static ROUTE_CACHE: std::cell::RefCell<std::collections::HashMap<IpAddr, IpAddr>> = Default::default();
}

/// The kernel's source address for `dest`: a connected UDP socket learns it
/// without sending anything. Cached per thread.
fn local_addr_towards(dest: IpAddr) -> Option<IpAddr> {
    if let Some(ip) = ROUTE_CACHE.with(|c| c.borrow().get(&dest).copied()) {
        return Some(ip);
    }
    let bind: SocketAddr = if dest.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(SocketAddr::new(dest, 9)).ok()?;
    let ip = s.local_addr().ok()?.ip();
    ROUTE_CACHE.with(|c| c.borrow_mut().insert(dest, ip));
    Some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::listen::parse_listen;

    fn sockets(specs: &[&str], aliases: &[&str]) -> Sockets {
        let listen: Vec<Listen> = specs.iter().map(|s| parse_listen(s).unwrap()).collect();
        let aliases: Vec<(String, Option<u16>)> =
            aliases.iter().map(|a| (a.to_string(), None)).collect();
        Sockets::new(&listen, &aliases)
    }

    #[test]
    fn myself_by_address_alias_and_port() {
        let s = sockets(
            &["udp:127.0.0.1:5070", "tcp:127.0.0.1:5070"],
            &["proxy.example.com"],
        );
        assert!(s.is_myself("127.0.0.1", Some(5070)));
        assert!(!s.is_myself("127.0.0.1", Some(5080)));
        assert!(!s.is_myself("127.0.0.1", None));
        assert!(s.is_myself_port("127.0.0.1", None), "any port");
        assert!(!s.is_myself_port("127.0.0.2", None));
        assert!(s.is_myself("PROXY.example.com", Some(5070)));
        assert!(!s.is_myself("other.example.com", Some(5070)));
    }

    #[test]
    fn myself_ipv6_and_wildcard() {
        let s = sockets(&["udp:[::1]:5060", "udp:0.0.0.0:5062"], &[]);
        assert!(s.is_myself("[::1]", None));
        assert!(s.is_myself("127.0.0.1", Some(5062)));
        assert!(!s.is_myself("[::1]", Some(5062)));
    }

    #[test]
    fn pick_prefers_receiving_socket_of_same_family() {
        let s = sockets(
            &["udp:127.0.0.1:5060", "udp:[::1]:5060", "tcp:127.0.0.1:5060"],
            &[],
        );
        let v6: IpAddr = "::1".parse().unwrap();
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(s.pick(Proto::Udp, v6, Some(0)).unwrap().id, 1);
        assert_eq!(s.pick(Proto::Udp, v4, Some(0)).unwrap().id, 0);
        assert_eq!(s.pick(Proto::Tcp, v4, Some(0)).unwrap().id, 2);
        assert!(s.pick(Proto::Tcp, v6, None).is_none());
    }

    /// OpenSIPS forward.c `get_send_socket`: a forced socket wins, its
    /// twin of another transport on the same address serves that
    /// transport, one of the wrong family is ignored.
    #[test]
    fn choose_honours_the_forced_socket() {
        let s = sockets(
            &[
                "udp:127.0.0.10:5060",
                "udp:127.0.0.11:5060",
                "tcp:127.0.0.11:5060",
                "udp:[::1]:5060",
            ],
            &[],
        );
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(s.choose(Proto::Udp, v4, None, Some(0)).unwrap().id, 0);
        assert_eq!(s.choose(Proto::Udp, v4, Some(1), Some(0)).unwrap().id, 1);
        assert_eq!(s.choose(Proto::Tcp, v4, Some(1), Some(0)).unwrap().id, 2);
        assert_eq!(s.choose(Proto::Udp, v4, Some(2), Some(0)).unwrap().id, 1);
        assert_eq!(s.choose(Proto::Udp, v6, Some(1), Some(0)).unwrap().id, 3);
        assert_eq!(s.by_spec("tcp:127.0.0.11:5060").unwrap().id, 2);
        assert_eq!(s.by_spec("127.0.0.11").unwrap().id, 1);
        assert_eq!(s.by_spec("tcp:127.0.0.11").unwrap().id, 2);
        assert!(s.by_spec("tcp:127.0.0.10:5060").is_none());
        assert_eq!(s.find(Proto::Udp, "[::1]", 5060).unwrap().id, 3);
    }
}
