//! The address table in memory (OpenSIPS permissions hash.c): exact
//! addresses (mask 32/128) and subnets, each with group, port, transport,
//! an optional shell pattern and context info, and the matching rules of
//! `check_address` / `get_source_group`.

use std::net::IpAddr;

use crate::db::Row;

/// Group 0 and port 0 match any.
const ANY: u32 = 0;

/// One usable row of the `address` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub grp: u32,
    pub ip: IpAddr,
    pub mask: u8,
    pub port: u16,
    /// None: any transport.
    pub proto: Option<String>,
    pub pattern: Option<String>,
    pub info: Option<String>,
}

impl Entry {
    /// A row as OpenSIPS takes it; None for rows it skips (bad IP, mask
    /// too long, proto `none` or unknown).
    pub fn from_row(r: &Row) -> Option<Entry> {
        let ip: IpAddr = r.text("ip")?.trim().parse().ok()?;
        let grp = u32::try_from(r.int("grp")?).ok()?;
        let mask = u8::try_from(r.int("mask")?).ok()?;
        if mask > if ip.is_ipv4() { 32 } else { 128 } {
            return None;
        }
        let port = u16::try_from(r.int("port")?).ok()?;
        let proto = match r.text("proto")?.to_ascii_lowercase().as_str() {
            "any" => None,
            p @ ("udp" | "tcp" | "tls" | "sctp" | "ws" | "wss") => Some(p.to_string()),
            _ => return None,
        };
        Some(Entry {
            grp,
            ip,
            mask,
            port,
            proto,
            pattern: r.text("pattern"),
            info: r.text("context_info"),
        })
    }

    fn exact(&self) -> bool {
        self.mask == if self.ip.is_ipv4() { 32 } else { 128 }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.ip, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = if self.mask == 0 { 0 } else { u32::MAX << (32 - u32::from(self.mask)) };
                u32::from(n) & m == u32::from(a) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = if self.mask == 0 { 0 } else { u128::MAX << (128 - u32::from(self.mask)) };
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }

    fn fits(&self, grp: u32, port: u16, proto: Option<&str>) -> bool {
        (self.grp == ANY || self.grp == grp || grp == ANY)
            && (self.port == 0 || self.port == port || port == 0)
            && (self.proto.is_none() || proto.is_none() || self.proto.as_deref() == proto)
    }
}

/// What was loaded: exact addresses and subnets (by group, as OpenSIPS
/// keeps its subnet table sorted).
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub exact: Vec<Entry>,
    pub subnets: Vec<Entry>,
}

impl Table {
    pub fn new(entries: Vec<Entry>) -> Table {
        let (exact, mut subnets): (Vec<_>, Vec<_>) = entries.into_iter().partition(Entry::exact);
        subnets.sort_by_key(|e| e.grp);
        Table { exact, subnets }
    }

    /// check_address's match: Ok(info) for the entry that matched; Err(-1)
    /// no match, Err(-2) the group is in neither list.
    pub fn check(
        &self,
        grp: u32,
        ip: IpAddr,
        port: u16,
        proto: Option<&str>,
        pattern: Option<&str>,
    ) -> Result<Option<String>, i64> {
        let pat_ok = |e: &Entry| match (&e.pattern, pattern) {
            (Some(p), Some(s)) => fnmatch(p, s),
            _ => true,
        };
        let hash = if grp != ANY && !self.exact.iter().any(|e| e.grp == grp) {
            -2
        } else {
            match self
                .exact
                .iter()
                .find(|e| e.fits(grp, port, proto) && e.ip == ip && pat_ok(e))
            {
                Some(e) => return Ok(e.info.clone()),
                None => -1,
            }
        };
        let subnet = if self.subnets.is_empty() || (grp != ANY && !self.subnets.iter().any(|e| e.grp == grp)) {
            -2
        } else {
            match self
                .subnets
                .iter()
                .find(|e| e.fits(grp, port, proto) && e.contains(ip) && pat_ok(e))
            {
                Some(e) => return Ok(e.info.clone()),
                None => -1,
            }
        };
        Err(hash.max(subnet))
    }

    /// get_source_group: the group of the first entry holding `ip` (and
    /// `port`, 0 in the table matching any).
    pub fn group_of(&self, ip: IpAddr, port: u16) -> Option<u32> {
        let port_ok = |e: &&Entry| e.port == 0 || e.port == port;
        self.exact
            .iter()
            .filter(port_ok)
            .find(|e| e.ip == ip)
            .or_else(|| self.subnets.iter().filter(port_ok).find(|e| e.contains(ip)))
            .map(|e| e.grp)
    }
}

/// fnmatch(3) with FNM_PERIOD and no other flag: `*`, `?`, `[...]`
/// (with `!`/`^` negation and ranges), `\` escapes; a leading `.` must be
/// matched by a literal `.`.
pub fn fnmatch(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    glob(&p, &t, 0, 0)
}

fn glob(p: &[char], t: &[char], mut pi: usize, mut ti: usize) -> bool {
    let leading_dot = |ti: usize| ti == 0 && t.first() == Some(&'.');
    while pi < p.len() {
        match p[pi] {
            '*' => {
                if leading_dot(ti) {
                    return false;
                }
                while pi < p.len() && p[pi] == '*' {
                    pi += 1;
                }
                if pi == p.len() {
                    return true;
                }
                return (ti..=t.len()).any(|k| glob(p, t, pi, k));
            }
            '?' => {
                if ti >= t.len() || leading_dot(ti) {
                    return false;
                }
                pi += 1;
                ti += 1;
            }
            '[' => {
                let Some(&c) = t.get(ti) else { return false };
                if leading_dot(ti) {
                    return false;
                }
                match class(p, pi + 1, c) {
                    Some((hit, next)) if hit => {
                        pi = next;
                        ti += 1;
                    }
                    Some(_) => return false,
                    // No closing ']': a literal '['.
                    None if c == '[' => {
                        pi += 1;
                        ti += 1;
                    }
                    None => return false,
                }
            }
            '\\' if pi + 1 < p.len() => {
                if t.get(ti) != Some(&p[pi + 1]) {
                    return false;
                }
                pi += 2;
                ti += 1;
            }
            c => {
                if t.get(ti) != Some(&c) {
                    return false;
                }
                pi += 1;
                ti += 1;
            }
        }
    }
    ti == t.len()
}

/// A bracket expression starting after '[': whether `c` is in it and
/// where the pattern goes on; None when it is not closed.
fn class(p: &[char], mut i: usize, c: char) -> Option<(bool, usize)> {
    let neg = matches!(p.get(i), Some('!') | Some('^'));
    if neg {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((hit != neg, i + 1));
        }
        first = false;
        let lo = p[i];
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            hit |= lo <= c && c <= p[i + 2];
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(grp: u32, ip: &str, mask: u8, port: u16, proto: Option<&str>, pattern: Option<&str>) -> Entry {
        Entry {
            grp,
            ip: ip.parse().expect("ip"),
            mask,
            port,
            proto: proto.map(str::to_string),
            pattern: pattern.map(str::to_string),
            info: Some(format!("{grp}:{ip}/{mask}")),
        }
    }

    #[test]
    fn globs() {
        assert!(fnmatch("sip:*@example.com", "sip:alice@example.com"));
        assert!(!fnmatch("sip:*@example.com", "sip:alice@example.org"));
        assert!(fnmatch("a?c", "abc"));
        assert!(fnmatch("[a-c]x", "bx"));
        assert!(!fnmatch("[!a-c]x", "bx"));
        assert!(!fnmatch("*", ".hidden"));
        assert!(fnmatch(".*", ".hidden"));
        assert!(fnmatch("a\\*", "a*"));
    }

    #[test]
    fn addresses_subnets_groups() {
        let t = Table::new(vec![
            e(1, "10.0.0.1", 32, 0, None, None),
            e(1, "10.0.0.2", 32, 5060, Some("udp"), Some("sip:*@trusted")),
            e(2, "192.168.0.0", 16, 0, Some("tcp"), None),
            e(0, "172.16.0.0", 12, 0, None, None),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(t.check(1, ip("10.0.0.1"), 9999, Some("tcp"), None), Ok(Some("1:10.0.0.1/32".into())));
        assert_eq!(t.check(1, ip("10.0.0.2"), 5061, Some("udp"), None), Err(-1));
        assert!(t.check(1, ip("10.0.0.2"), 5060, Some("udp"), Some("sip:a@trusted")).is_ok());
        assert_eq!(t.check(1, ip("10.0.0.2"), 5060, Some("udp"), Some("sip:a@other")), Err(-1));
        assert!(t.check(1, ip("10.0.0.2"), 0, None, None).is_ok());
        assert!(t.check(2, ip("192.168.3.4"), 1, Some("tcp"), None).is_ok());
        assert_eq!(t.check(2, ip("192.168.3.4"), 1, Some("udp"), None), Err(-1));
        // Group 0 rows match any group; group 0 asked matches any row.
        assert!(t.check(2, ip("172.20.1.1"), 1, None, None).is_ok());
        assert!(t.check(0, ip("10.0.0.1"), 1, None, None).is_ok());
        assert_eq!(t.check(7, ip("10.0.0.1"), 1, None, None), Err(-2));
        assert_eq!(t.group_of(ip("192.168.9.9"), 77), Some(2));
        assert_eq!(t.group_of(ip("10.0.0.2"), 5061), None);
        assert_eq!(t.group_of(ip("8.8.8.8"), 1), None);
    }
}
