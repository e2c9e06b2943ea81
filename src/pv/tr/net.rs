//! `{ip.*}` and `{re.subst}` (OpenSIPS 3.4). Binary addresses (`ip.pton`
//! output, `ip.ntop`/`ip.family` input) are carried as one character per
//! byte (U+0000–U+00FF), since lunasip values are text.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{arg_str, text, Arg, TrDef};
use crate::proxy::context::Call;
use crate::pv::Value;

type R = Result<Value, String>;

/// An IP literal; IPv6 may be bracketed.
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

fn flag(b: bool) -> R {
    Ok(Value::Int(b as i64))
}

fn binary(v: &Value) -> Option<Vec<u8>> {
    text(v)
        .chars()
        .map(|c| u8::try_from(c as u32).ok())
        .collect()
}

fn family(_: &Call, _: &[Arg], v: Value) -> R {
    match binary(&v).map(|b| b.len()) {
        Some(4) => Ok(Value::Str("INET".into())),
        Some(16) => Ok(Value::Str("INET6".into())),
        _ => Err("binary address expected (4 or 16 bytes)".into()),
    }
}

fn ntop(_: &Call, _: &[Arg], v: Value) -> R {
    let b = binary(&v).unwrap_or_default();
    let ip = match b.len() {
        4 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b);
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return Err("binary address expected (4 or 16 bytes)".into()),
    };
    Ok(Value::Str(ip.to_string()))
}

fn pton(_: &Call, _: &[Arg], v: Value) -> R {
    let t = text(&v);
    let bytes = match parse_ip(&t) {
        Some(IpAddr::V4(a)) => a.octets().to_vec(),
        Some(IpAddr::V6(a)) => a.octets().to_vec(),
        None => return Err(format!("'{t}' is not an IP address")),
    };
    Ok(Value::Str(bytes.into_iter().map(char::from).collect()))
}

fn isip(_: &Call, _: &[Arg], v: Value) -> R {
    flag(parse_ip(&text(&v)).is_some())
}
fn isip4(_: &Call, _: &[Arg], v: Value) -> R {
    flag(text(&v).trim().parse::<Ipv4Addr>().is_ok())
}
fn isip6(_: &Call, _: &[Arg], v: Value) -> R {
    flag(matches!(parse_ip(&text(&v)), Some(IpAddr::V6(_))))
}

/// `{ip.resolve}`: the first address of a name (an IP stays itself; null
/// when it does not resolve). On a worker the answer comes from the DNS
/// cache: an uncached name answers null and is left wanted, and the
/// script host suspends the route for it and reads again
/// (`transport::dns::wanted`). Off the workers (`lunasip eval`) the
/// system resolver answers.
fn resolve(_: &Call, _: &[Arg], v: Value) -> R {
    use crate::transport::dns::wanted;
    let t = text(&v);
    if let Some(ip) = parse_ip(&t) {
        return Ok(Value::Str(ip.to_string()));
    }
    if t.len() > 253 {
        return Err("name too long".into());
    }
    match wanted::cached_address(&t) {
        Ok(found) => Ok(found.map_or(Value::Null, |ip| Value::Str(ip.to_string()))),
        Err(()) if crate::transport::dns::current().is_some() => Ok(Value::Null),
        Err(()) => Ok(system_address(t.trim())),
    }
}

/// A blocking lookup, only where no worker resolver runs (`lunasip
/// eval`): never on a worker thread, which installs its resolver before it
/// serves anything (`runtime.rs`).
fn system_address(host: &str) -> Value {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map_or(Value::Null, |a| Value::Str(a.ip().to_string()))
}

fn matches(c: &Call, a: &[Arg], v: Value) -> R {
    let t = text(&v);
    let ip = parse_ip(&t).ok_or_else(|| format!("'{t}' is not an IP address"))?;
    let net = arg_str(c, a, 0)?;
    let (n, len) = net
        .split_once('/')
        .ok_or_else(|| format!("'{net}' is not ip/len"))?;
    let nip = parse_ip(n).ok_or_else(|| format!("'{n}' is not an IP address"))?;
    let len: u32 = len
        .trim()
        .parse()
        .map_err(|_| format!("bad mask length in '{net}'"))?;
    let (a, b, bits) = match (ip, nip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return Err("address families differ".into()),
    };
    if len > bits {
        return Err(format!("bad mask length in '{net}'"));
    }
    let shift = bits - len;
    let m = if shift >= 128 { 0 } else { (a ^ b) >> shift };
    flag(m == 0)
}

fn isprivate(_: &Call, _: &[Arg], v: Value) -> R {
    flag(match text(&v).trim().parse::<Ipv4Addr>() {
        Ok(ip) => ip.is_private(),
        Err(_) => false,
    })
}

fn subst(c: &Call, a: &[Arg], v: Value) -> R {
    let expr = arg_str(c, a, 0)?;
    let t = text(&v);
    Ok(match crate::pv::re::subst(&t, &expr)? {
        Some(s) => Value::Str(s),
        None => v,
    })
}

pub(super) static DEFS: &[TrDef] = &[
    tr!(
        "ip.family",
        family,
        0,
        0,
        "",
        "INET or INET6 of a binary address"
    ),
    tr!("ip.ntop", ntop, 0, 0, "", "binary address to text"),
    tr!(
        "ip.pton",
        pton,
        0,
        0,
        "",
        "text address to binary (one char per byte)"
    ),
    tr!(
        "ip.isip",
        isip,
        0,
        0,
        "",
        "1 if an IPv4 or IPv6 address, else 0"
    ),
    tr!("ip.isip4", isip4, 0, 0, "", "1 if an IPv4 address"),
    tr!(
        "ip.isip6",
        isip6,
        0,
        0,
        "",
        "1 if an IPv6 address (brackets allowed)"
    ),
    tr!(
        "ip.resolve",
        resolve,
        0,
        0,
        "",
        "first address of a host name (DNS cache; `sip.pv.get`, `sip.pv.fmt` and `sip.tr` wait for an uncached name, other formats answer null and look it up for next time)"
    ),
    tr!(
        "ip.matches",
        matches,
        1,
        1,
        ",net/len",
        "1 if the address is in the network"
    ),
    tr!(
        "ip.isprivate",
        isprivate,
        0,
        0,
        "",
        "1 if an RFC 1918 address"
    ),
    tr!(
        "re.subst",
        subst,
        1,
        1,
        ",/re/repl/flags",
        "sed-like substitution (flags i, g); unchanged when nothing matches"
    ),
];
