//! Locating SIP servers (RFC 3263): NAPTR → SRV → A/AAAA, with a cache
//! that keeps each answer for its TTL. Lookups are async and run on the
//! worker's own runtime: a route that needs one suspends, the worker does
//! not wait. `/etc/hosts` is honoured; the servers are those of
//! `/etc/resolv.conf` unless `config.dns_servers` names others.

pub mod select;
pub mod wanted;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::Proto;
use select::{Naptr, Srv};

/// DNS settings, with OpenSIPS's names where it has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConf {
    /// `dns_try_ipv6`: also look up AAAA records (OpenSIPS default off).
    pub try_ipv6: bool,
    /// `dns_retr_time`: seconds to wait for one answer.
    pub retr_time: Duration,
    /// `dns_retr_no`: attempts per query.
    pub retr_no: usize,
    /// `!disable_dns_failover`: a branch that gets 503 or times out goes
    /// on to the next address of its destination (RFC 3263 §4.3).
    pub failover: bool,
    /// lunasip `dns_servers`: name servers to ask instead of resolv.conf's.
    pub servers: Vec<SocketAddr>,
    /// `exec_dns_threshold`: a lookup that took longer is logged and
    /// raises E_CORE_THRESHOLD (source "dns").
    pub exec_threshold: Option<Duration>,
}

impl Default for DnsConf {
    fn default() -> Self {
        DnsConf {
            try_ipv6: false,
            retr_time: Duration::from_secs(2),
            retr_no: 2,
            failover: true,
            exec_threshold: None,
            servers: Vec::new(),
        }
    }
}

/// A next hop as a URI gives it (RFC 3263 §4): what it fixes decides
/// which lookups run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hop {
    /// Host name, lower case, or an IP literal without brackets.
    pub host: String,
    /// An explicit port: A/AAAA only.
    pub port: Option<u16>,
    /// An explicit `transport=`: SRV for it, no NAPTR.
    pub proto: Option<Proto>,
}

/// One address to try, in the order RFC 3263 gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub proto: Proto,
    pub addr: SocketAddr,
}

/// Why a hop has no address.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The name exists nowhere, or has no usable record (OpenSIPS's E_BAD_ADDRESS: SIP 476).
    #[error("{0}: no address (NAPTR, SRV, A)")]
    NotFound(String),
    /// The servers did not answer or failed; asking again may work.
    #[error("{host}: lookup failed: {reason}")]
    Failed { host: String, reason: String },
}

impl DnsError {
    /// A later lookup may succeed (time-outs, server failures).
    pub fn is_retryable(&self) -> bool {
        matches!(self, DnsError::Failed { .. })
    }
}

/// Answers kept per worker; the table is emptied when it reaches this.
const CACHE_MAX: usize = 4096;

/// How long a failed lookup is remembered (as an empty answer), so the
/// calls behind it do not each wait for the same dead server.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// The least time a positive answer is kept, whatever its TTL (0 is
/// allowed): the route that waited for it reads it from the cache when it
/// resumes, a moment later.
const MIN_HOLD: Duration = Duration::from_secs(1);

/// An answer and until when it holds.
type Cached = (Rc<[Target]>, Instant);

/// One worker's resolver and cache.
pub struct Dns {
    resolver: TokioResolver,
    conf: DnsConf,
    cache: RefCell<HashMap<Hop, Cached>>,
    seed: Cell<u32>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Dns>>> = const { RefCell::new(None) };
}

/// Sets up this worker thread's resolver.
pub fn install(conf: &DnsConf) -> Result<(), DnsError> {
    let dns = Rc::new(Dns::new(conf)?);
    CURRENT.with(|c| *c.borrow_mut() = Some(dns));
    Ok(())
}

/// This thread's resolver (none outside workers: tests, `lunasip eval`).
pub fn current() -> Option<Rc<Dns>> {
    CURRENT.with(|c| c.borrow().clone())
}

fn failed(host: &str, e: impl std::fmt::Display) -> DnsError {
    DnsError::Failed {
        host: host.to_string(),
        reason: e.to_string(),
    }
}

/// "No such record" is an empty answer, not a failure.
fn empty_or<T>(host: &str, r: Result<T, ResolveError>) -> Result<Option<T>, DnsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(None),
        Err(e) => Err(failed(host, e)),
    }
}

fn fqdn(host: &str) -> String {
    if host.ends_with('.') {
        host.to_string()
    } else {
        format!("{host}.")
    }
}

impl Dns {
    pub fn new(conf: &DnsConf) -> Result<Dns, DnsError> {
        let provider = TokioConnectionProvider::default();
        let mut builder = if conf.servers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| failed("resolv.conf", e))?
        } else {
            let mut rc = ResolverConfig::new();
            for s in &conf.servers {
                rc.add_name_server(NameServerConfig::new(*s, Protocol::Udp));
            }
            TokioResolver::builder_with_config(rc, provider)
        };
        let o: &mut ResolverOpts = builder.options_mut();
        o.timeout = conf.retr_time;
        o.attempts = conf.retr_no.max(1);
        o.use_hosts_file = ResolveHosts::Always;
        o.ip_strategy = if conf.try_ipv6 {
            LookupIpStrategy::Ipv4AndIpv6
        } else {
            LookupIpStrategy::Ipv4Only
        };
        Ok(Dns {
            resolver: builder.build(),
            conf: conf.clone(),
            cache: RefCell::new(HashMap::new()),
            seed: Cell::new(std::process::id() ^ 0x9e37_79b9),
        })
    }

    pub fn conf(&self) -> &DnsConf {
        &self.conf
    }

    /// A cached answer still within its TTL (empty when the lookup failed
    /// or found nothing). Callers take IP literals as they are first.
    pub fn cached(&self, hop: &Hop) -> Option<Rc<[Target]>> {
        let mut cache = self.cache.borrow_mut();
        match cache.get(hop) {
            Some((t, until)) if *until > Instant::now() => Some(t.clone()),
            Some(_) => {
                cache.remove(hop);
                None
            }
            None => None,
        }
    }

    /// Every address of `hop`, in RFC 3263 order.
    pub async fn locate(&self, hop: &Hop) -> Result<Rc<[Target]>, DnsError> {
        if let Ok(ip) = hop.host.parse::<IpAddr>() {
            return Ok(Rc::from([Target {
                proto: hop.proto.unwrap_or(Proto::Udp),
                addr: SocketAddr::new(ip, hop.port.unwrap_or(5060)),
            }]));
        }
        if let Some(t) = self.cached(hop) {
            return Ok(t);
        }
        let mut until = Instant::now() + Duration::from_secs(3600);
        let start = Instant::now();
        let found = self.lookup(hop, &mut until).await;
        if let Some(limit) = self.conf.exec_threshold {
            let took = start.elapsed();
            if took > limit {
                crate::core_events::threshold("dns", took, limit, &hop.host);
            }
        }
        let targets: Rc<[Target]> = match &found {
            Ok(t) if !t.is_empty() => {
                until = until.max(Instant::now() + MIN_HOLD);
                t.clone().into()
            }
            _ => {
                until = Instant::now() + NEGATIVE_TTL;
                Rc::from([])
            }
        };
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(hop.clone(), (targets.clone(), until));
        match found {
            Err(e) => Err(e),
            Ok(_) if targets.is_empty() => Err(DnsError::NotFound(hop.host.clone())),
            Ok(_) => Ok(targets),
        }
    }

    async fn lookup(&self, hop: &Hop, until: &mut Instant) -> Result<Vec<Target>, DnsError> {
        let host = hop.host.as_str();
        // §4.2: an explicit port means A/AAAA only.
        if let Some(port) = hop.port {
            return self
                .addrs(host, port, hop.proto.unwrap_or(Proto::Udp), until)
                .await;
        }
        // §4.1: an explicit transport means SRV for it, no NAPTR.
        if let Some(proto) = hop.proto {
            let via_srv = self
                .srv(proto, &select::srv_name(proto, host), until)
                .await?;
            if !via_srv.is_empty() {
                return Ok(via_srv);
            }
            return self.addrs(host, 5060, proto, until).await;
        }
        let naptr = self.naptr(host, until).await?;
        let mut out = Vec::new();
        for (proto, name) in select::naptr_order(naptr) {
            out.extend(self.srv(proto, &name, until).await?);
        }
        if out.is_empty() {
            for proto in [Proto::Udp, Proto::Tcp] {
                out.extend(
                    self.srv(proto, &select::srv_name(proto, host), until)
                        .await?,
                );
            }
        }
        if out.is_empty() {
            out = self.addrs(host, 5060, Proto::Udp, until).await?;
        }
        Ok(out)
    }

    async fn naptr(&self, host: &str, until: &mut Instant) -> Result<Vec<Naptr>, DnsError> {
        let r = self.resolver.lookup(fqdn(host), RecordType::NAPTR).await;
        let Some(l) = empty_or(host, r)? else {
            return Ok(Vec::new());
        };
        *until = (*until).min(l.valid_until());
        Ok(l.iter()
            .filter_map(|d| match d {
                RData::NAPTR(n) => Some(Naptr {
                    order: n.order(),
                    preference: n.preference(),
                    flags: String::from_utf8_lossy(n.flags()).into_owned(),
                    services: String::from_utf8_lossy(n.services()).into_owned(),
                    replacement: n.replacement().to_ascii(),
                }),
                _ => None,
            })
            .collect())
    }

    async fn srv(
        &self,
        proto: Proto,
        name: &str,
        until: &mut Instant,
    ) -> Result<Vec<Target>, DnsError> {
        let r = self.resolver.srv_lookup(fqdn(name)).await;
        let Some(l) = empty_or(name, r)? else {
            return Ok(Vec::new());
        };
        *until = (*until).min(l.as_lookup().valid_until());
        let records = l
            .iter()
            .map(|s| Srv {
                priority: s.priority(),
                weight: s.weight(),
                port: s.port(),
                target: s.target().to_ascii(),
            })
            .collect();
        let ordered = select::srv_order(records, || self.next_rand());
        let mut out = Vec::new();
        for s in ordered {
            // A target that does not resolve is skipped; the others stay.
            match self.addrs(&s.target, s.port, proto, until).await {
                Ok(t) => out.extend(t),
                Err(e) => tracing::info!("dns: SRV target of {name}: {e}"),
            }
        }
        Ok(out)
    }

    async fn addrs(
        &self,
        host: &str,
        port: u16,
        proto: Proto,
        until: &mut Instant,
    ) -> Result<Vec<Target>, DnsError> {
        let r = self.resolver.lookup_ip(fqdn(host)).await;
        let Some(l) = empty_or(host, r)? else {
            return Ok(Vec::new());
        };
        *until = (*until).min(l.valid_until());
        Ok(l.iter()
            .map(|ip| Target {
                proto,
                addr: SocketAddr::new(ip, port),
            })
            .collect())
    }

    fn next_rand(&self) -> u32 {
        // xorshift: SRV weights only need a fair spread.
        let mut x = self.seed.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.seed.set(x);
        x
    }
}
