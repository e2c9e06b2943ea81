//! Destination blacklists (OpenSIPS `blacklists.c`): named lists of rules
//! (`[!][proto,]ip[/mask][,port[,pattern]]`) that a request copy is
//! checked against before it is sent. Which lists apply is per message: the
//! lists flagged `default`, changed by `use_blacklist`/`unuse_blacklist`
//! ([`Marker`], a call slot). The lists are shared by every worker; each
//! is behind its own read-write lock held only while rules are read or
//! changed, never across I/O.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::Proto;

/// OpenSIPS keeps the enabled lists as bits of one int.
pub const MAX_LISTS: usize = 32;

/// The transport a rule names: any, one lunasip speaks, or one it does not
/// (`tls`, `ws`…: such a rule never matches here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoSel {
    Any,
    Is(Proto),
    Other(&'static str),
}

impl ProtoSel {
    fn parse(s: &str) -> Option<ProtoSel> {
        const OTHERS: &[&str] = &[
            "tls", "sctp", "ws", "wss", "bin", "hep_udp", "hep_tcp", "smpp", "msrp_tcp", "msrp_tls",
        ];
        if s.eq_ignore_ascii_case("any") {
            return Some(ProtoSel::Any);
        }
        if let Some(p) = Proto::parse(s) {
            return Some(ProtoSel::Is(p));
        }
        OTHERS
            .iter()
            .find(|o| o.eq_ignore_ascii_case(s))
            .map(|o| ProtoSel::Other(o))
    }

    pub fn name(self) -> &'static str {
        match self {
            ProtoSel::Any => "any",
            ProtoSel::Is(p) => p.as_str(),
            ProtoSel::Other(o) => o,
        }
    }

    /// Parses the `proto` argument of the script functions and MI commands
    /// (`None`/empty: any).
    pub fn from_arg(s: Option<&str>) -> Result<ProtoSel, String> {
        match s.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(ProtoSel::Any),
            Some(s) => ProtoSel::parse(s).ok_or_else(|| format!("unknown protocol {s:?}")),
        }
    }
}

/// An address with a prefix length (`10.0.0.0/8`, a bare address is /32
/// or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub bits: u8,
}

impl Net {
    /// `ip`, `ip/bits` or `ip/mask` (OpenSIPS `parse_ip_net`).
    pub fn parse(s: &str) -> Result<Net, String> {
        let s = s.trim();
        let (ip, mask) = match s.split_once('/') {
            Some((i, m)) => (i.trim(), Some(m.trim())),
            None => (s, None),
        };
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match mask {
            None => max,
            Some("") => return Err(format!("empty netmask in {s:?}")),
            Some(m) => match m.parse::<u8>() {
                Ok(b) if b <= max => b,
                Ok(_) => return Err(format!("netmask /{m} too long in {s:?}")),
                Err(_) => mask_bits(m, addr.is_ipv4())
                    .ok_or_else(|| format!("bad netmask {m:?} in {s:?}"))?,
            },
        };
        Ok(Net { addr, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.addr.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            ip => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(u32::from(n) as u128, u32::from(a) as u128, self.bits, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                prefix_eq(u128::from(n), u128::from(a), self.bits, 128)
            }
            _ => false,
        }
    }

    /// The netmask as an address (what OpenSIPS's MI prints as `Mask`).
    pub fn mask(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => {
                IpAddr::V4(((u32::MAX.checked_shl(32 - self.bits as u32)).unwrap_or(0)).into())
            }
            IpAddr::V6(_) => {
                IpAddr::V6(((u128::MAX.checked_shl(128 - self.bits as u32)).unwrap_or(0)).into())
            }
        }
    }
}

fn prefix_eq(n: u128, a: u128, bits: u8, width: u32) -> bool {
    let shift = width - bits as u32;
    n.checked_shr(shift).unwrap_or(0) == a.checked_shr(shift).unwrap_or(0)
}

/// `255.255.0.0` → 16; None unless the mask is contiguous ones.
fn mask_bits(m: &str, v4: bool) -> Option<u8> {
    let (v, width) = match m.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) if v4 => (u32::from(a) as u128, 32),
        IpAddr::V6(a) if !v4 => (u128::from(a), 128),
        _ => return None,
    };
    let ones = if width == 32 {
        (v as u32).leading_ones()
    } else {
        v.leading_ones()
    };
    let rebuilt = if width == 32 {
        (u32::MAX.checked_shl(32 - ones).unwrap_or(0)) as u128
    } else {
        u128::MAX.checked_shl(128 - ones).unwrap_or(0)
    };
    (rebuilt == v).then_some(ones as u8)
}

/// One rule: it matches a copy whose destination is in `net`, with the
/// port (0: any) and transport, and whose text matches the glob `pattern`;
/// `contrary` (`!`) matches everything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub contrary: bool,
    pub proto: ProtoSel,
    pub net: Net,
    pub port: u16,
    pub pattern: Option<String>,
}

impl Rule {
    /// `[!][proto,]ip[/mask][,port[,pattern]]` (OpenSIPS's MI rule form);
    /// the `dst_blacklist` element form `(proto, ip, port, "pattern")`
    /// reads the same once its parentheses and quotes are dropped.
    pub fn parse(s: &str) -> Result<Rule, String> {
        let mut t = s.trim();
        let contrary = t.starts_with('!');
        if contrary {
            t = t[1..].trim_start();
        }
        if let Some(inner) = t.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
            t = inner;
        }
        let mut parts = t.splitn(4, ',').map(str::trim);
        let first = parts.next().unwrap_or("");
        let (proto, net) = match ProtoSel::parse(first) {
            Some(p) => (
                p,
                parts
                    .next()
                    .ok_or_else(|| format!("rule {s:?} names no address"))?,
            ),
            None => (ProtoSel::Any, first),
        };
        let net = Net::parse(net)?;
        let port = match parts.next() {
            None | Some("") => 0,
            Some(p) => p
                .parse()
                .map_err(|_| format!("bad port {p:?} in rule {s:?}"))?,
        };
        // The pattern keeps its commas: it is the rest of the rule.
        let rest: Vec<&str> = parts.collect();
        let pattern = rest
            .first()
            .map(|p| p.trim().trim_matches('"').to_string())
            .filter(|p| !p.is_empty());
        Ok(Rule {
            contrary,
            proto,
            net,
            port,
            pattern,
        })
    }

    /// OpenSIPS `match_bl_rule`: a copy to `dst` over `proto` whose text
    /// is `text`.
    pub fn matches(&self, proto: Proto, dst: SocketAddr, text: &[u8]) -> bool {
        let hit = (self.port == 0 || self.port == dst.port())
            && match self.proto {
                ProtoSel::Any => true,
                ProtoSel::Is(p) => p == proto,
                ProtoSel::Other(_) => false,
            }
            && self.net.contains(dst.ip())
            && self
                .pattern
                .as_deref()
                .is_none_or(|p| crate::sip::glob::glob(p.as_bytes(), text));
        hit != self.contrary
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.contrary {
            f.write_str("!")?;
        }
        write!(
            f,
            "{},{}/{},{}",
            self.proto.name(),
            self.net.addr,
            self.net.bits,
            self.port
        )?;
        if let Some(p) = &self.pattern {
            write!(f, ",{p}")?;
        }
        Ok(())
    }
}

/// A list's flags (OpenSIPS `dst_blacklist = name/flags: …`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// Rules cannot be added or removed at run time.
    pub readonly: bool,
    /// Added rules may carry a lifetime.
    pub expire: bool,
    /// Checked for every message unless `unuse_blacklist` turns it off.
    pub default: bool,
}

impl Flags {
    pub fn parse(words: &[String]) -> Result<Flags, String> {
        let mut f = Flags::default();
        for w in words {
            match w.trim().to_ascii_lowercase().as_str() {
                "readonly" | "read-only" => f.readonly = true,
                "expire" => f.expire = true,
                "default" => f.default = true,
                "" => {}
                other => {
                    return Err(format!(
                        "unknown blacklist flag {other:?} (readonly, expire, default)"
                    ))
                }
            }
        }
        if f.readonly && f.expire {
            return Err("a readonly blacklist cannot have expiring rules".into());
        }
        Ok(f)
    }

    /// The names OpenSIPS's `list_blacklists` prints.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.readonly, "read-only"),
            (self.expire, "expire"),
            (self.default, "default"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect()
    }
}

/// A list as the script's `config.blacklists` defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Def {
    pub name: String,
    pub flags: Flags,
    pub rules: Vec<Rule>,
}

/// A rule in force, with its end for an expiring list.
#[derive(Debug, Clone)]
pub struct Entry {
    pub rule: Rule,
    pub until: Option<Instant>,
}

/// A list in force.
#[derive(Debug)]
pub struct List {
    pub def: Def,
    rules: RwLock<Vec<Entry>>,
}

impl List {
    /// Its rules now (expired ones left out).
    pub fn rules(&self) -> Vec<Entry> {
        let now = Instant::now();
        read(&self.rules)
            .iter()
            .filter(|e| e.until.is_none_or(|u| u > now))
            .cloned()
            .collect()
    }

    /// The first rule matching a copy (OpenSIPS `check_against_rule_list`).
    pub fn matching(&self, proto: Proto, dst: SocketAddr, text: &[u8]) -> Option<Entry> {
        let now = Instant::now();
        read(&self.rules)
            .iter()
            .find(|e| e.until.is_none_or(|u| u > now) && e.rule.matches(proto, dst, text))
            .cloned()
    }

    /// Adds a rule (a duplicate is not added twice); `expire`: its
    /// lifetime, only on an `expire` list (OpenSIPS `add_rule_to_list` +
    /// `add_list_to_head`).
    pub fn add(&self, rule: Rule, expire: Option<Duration>) -> Result<(), String> {
        if self.def.flags.readonly {
            return Err(format!("blacklist {} is read-only", self.def.name));
        }
        if expire.is_some() && !self.def.flags.expire {
            return Err(format!("blacklist {} has no expire flag", self.def.name));
        }
        let now = Instant::now();
        let mut rules = write(&self.rules);
        rules.retain(|e| e.until.is_none_or(|u| u > now));
        // The same rule again is not added: OpenSIPS's `rm_dups` keeps the
        // older entry and its lifetime.
        if rules.iter().any(|e| e.rule == rule) {
            return Ok(());
        }
        rules.push(Entry {
            rule,
            until: expire.map(|d| now + d),
        });
        Ok(())
    }

    /// Removes a rule; false when the list has no such rule.
    pub fn del(&self, rule: &Rule) -> Result<bool, String> {
        if self.def.flags.readonly {
            return Err(format!("blacklist {} is read-only", self.def.name));
        }
        let mut rules = write(&self.rules);
        let before = rules.len();
        if let Some(i) = rules.iter().position(|e| &e.rule == rule) {
            rules.remove(i);
        }
        Ok(rules.len() != before)
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

static LISTS: RwLock<Vec<Arc<List>>> = RwLock::new(Vec::new());

/// Checks a script's definitions (names unique, at most [`MAX_LISTS`]).
pub fn check_defs(defs: &[Def]) -> Result<(), String> {
    if defs.len() > MAX_LISTS {
        return Err(format!(
            "{} blacklists defined, {MAX_LISTS} at most",
            defs.len()
        ));
    }
    Ok(())
}

/// Installs a committed script's lists. A list defined as before keeps the
/// rules added to it at run time; others start from their definition.
pub fn install(defs: &[Def]) {
    let mut lists = write(&LISTS);
    let next: Vec<Arc<List>> = defs
        .iter()
        .map(|d| {
            lists
                .iter()
                .find(|l| &l.def == d)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(List {
                        def: d.clone(),
                        rules: RwLock::new(
                            d.rules
                                .iter()
                                .map(|r| Entry {
                                    rule: r.clone(),
                                    until: None,
                                })
                                .collect(),
                        ),
                    })
                })
        })
        .collect();
    *lists = next;
}

/// Every list, in definition order.
pub fn lists() -> Vec<Arc<List>> {
    read(&LISTS).clone()
}

/// A list's index (its bit in a [`Marker`]) and the list.
pub fn by_name(name: &str) -> Option<(usize, Arc<List>)> {
    read(&LISTS)
        .iter()
        .enumerate()
        .find(|(_, l)| l.def.name == name)
        .map(|(i, l)| (i, l.clone()))
}

/// Which lists a message is checked against: None until the script
/// changes it (then the `default` lists).
#[derive(Debug, Default, Clone, Copy)]
pub struct Marker(pub Option<u32>);

/// The lists flagged `default`, as bits.
pub fn default_marker() -> u32 {
    read(&LISTS)
        .iter()
        .enumerate()
        .filter(|(_, l)| l.def.flags.default)
        .fold(0, |m, (i, _)| m | (1 << i))
}

impl Marker {
    pub fn bits(&self) -> u32 {
        self.0.unwrap_or_else(default_marker)
    }

    /// `use_blacklist`/`unuse_blacklist`: `list` None is "all".
    pub fn set(&mut self, list: Option<usize>, on: bool) {
        let bits = self.bits();
        self.0 = Some(match (list, on) {
            (None, true) => u32::MAX,
            (None, false) => 0,
            (Some(i), true) => bits | (1 << i),
            (Some(i), false) => bits & !(1 << i),
        });
    }
}

/// The first list among `marker`'s that blocks a copy to `dst` over
/// `proto` with text `text` (OpenSIPS `check_against_blacklist`).
pub fn blocked(marker: u32, proto: Proto, dst: SocketAddr, text: &[u8]) -> Option<String> {
    if marker == 0 {
        return None;
    }
    read(&LISTS)
        .iter()
        .enumerate()
        .filter(|(i, _)| marker & (1 << i) != 0)
        .find(|(_, l)| l.matching(proto, dst, text).is_some())
        .map(|(_, l)| l.def.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_as_opensips_mi_and_cfg_forms() {
        let r = Rule::parse("udp,127.0.0.2,5060").unwrap();
        assert_eq!(
            (r.proto, r.port, r.net.bits),
            (ProtoSel::Is(Proto::Udp), 5060, 32)
        );
        let r = Rule::parse("!(any, 10.0.0.0/8, 0, \"*INVITE*\")").unwrap();
        assert!(r.contrary);
        assert_eq!(r.pattern.as_deref(), Some("*INVITE*"));
        assert_eq!(Rule::parse("10.0.0.0/255.0.0.0").unwrap().net.bits, 8);
        assert_eq!(Rule::parse("::1").unwrap().net.bits, 128);
        assert!(Rule::parse("gw.example.com").is_err());
        assert!(Rule::parse("udp,1.2.3.4,99999").is_err());
        assert!(Rule::parse("1.2.3.4/33").is_err());
    }

    #[test]
    fn matching_follows_match_bl_rule() {
        let dst: SocketAddr = "10.1.2.3:5060".parse().unwrap();
        let m = |s: &str, p| {
            Rule::parse(s)
                .unwrap()
                .matches(p, dst, b"INVITE sip:x SIP/2.0")
        };
        assert!(m("10.0.0.0/8", Proto::Udp));
        assert!(m("tcp,10.0.0.0/8,5060", Proto::Tcp));
        assert!(!m("tcp,10.0.0.0/8,5060", Proto::Udp));
        assert!(!m("10.0.0.0/8,5080", Proto::Udp));
        assert!(!m("!10.0.0.0/8", Proto::Udp));
        assert!(m("!192.168.0.0/16", Proto::Udp));
        assert!(m("10.1.2.3,0,INVITE*", Proto::Udp));
        assert!(!m("10.1.2.3,0,BYE*", Proto::Udp));
        assert!(!m("tls,10.1.2.3", Proto::Tcp));
    }

    #[test]
    fn markers() {
        let mut m = Marker(Some(0b01));
        m.set(Some(1), true);
        assert_eq!(m.bits(), 0b11);
        m.set(Some(0), false);
        assert_eq!(m.bits(), 0b10);
        m.set(None, true);
        assert_eq!(m.bits(), u32::MAX);
    }
}
