//! Where a branch goes (RFC 3263) and DNS failover (§4.3): a branch to a
//! name takes the first address of the family the request came on and
//! keeps the others; a 503 or a time-out before any provisional reply
//! sends the request on to the next one.

use std::net::SocketAddr;

use super::txn::{Branch, Txn};
use super::{BranchRole, Tm, TxnRef};
use crate::proxy::context::{Call, Dest, OutKind, Outgoing};
use crate::proxy::{dest, ProxyError};
use crate::transaction::key::our_client_key;
use crate::transaction::ClientTxn;
use crate::transport::dns::{self, Hop, Target};
use crate::transport::Proto;

/// A resolved next hop: the address to use and the ones after it.
#[derive(Debug, Clone)]
pub struct Located {
    pub proto: Proto,
    pub addr: SocketAddr,
    /// Further addresses of the same transport and family, in order.
    pub alts: Vec<SocketAddr>,
}

/// Resolves `uri` for a branch now: an IP literal or a cached answer.
/// A name not cached (a route that cannot wait — branch, local — set it,
/// or a local request names it) never blocks the worker: it is
/// unresolvable now (476, logged with the name) and looked up in the
/// background for the next call. Routes that can wait (request, failure)
/// look their names up first (`pending_lookups`).
pub fn resolve(uri: &str, v4: bool) -> Result<Located, ProxyError> {
    resolve_forced(uri, v4, None)
}

/// [`resolve`] for a branch with a forced sending socket of transport
/// `forced` (used when the URI names none).
pub fn resolve_forced(uri: &str, v4: bool, forced: Option<Proto>) -> Result<Located, ProxyError> {
    let (proto, hop) = dest::hop_forced(uri, forced)?;
    if let Ok(ip) = hop.host.parse::<std::net::IpAddr>() {
        return Ok(Located {
            proto,
            addr: SocketAddr::new(ip, hop.port.unwrap_or(5060)),
            alts: Vec::new(),
        });
    }
    let targets = match dns::current().and_then(|d| d.cached(&hop)) {
        Some(t) => t,
        None => return Err(not_cached(hop)),
    };
    pick(&targets, proto, hop.proto.is_some(), v4).ok_or(ProxyError::Unresolvable(hop.host))
}

/// The first target of the family, then the others of its transport.
fn pick(targets: &[Target], proto: Proto, fixed: bool, v4: bool) -> Option<Located> {
    let mut fits = targets
        .iter()
        .filter(|t| t.addr.is_ipv4() == v4 && (!fixed || t.proto == proto));
    let first = fits.next()?;
    Some(Located {
        proto: first.proto,
        addr: first.addr,
        alts: fits
            .filter(|t| t.proto == first.proto)
            .map(|t| t.addr)
            .collect(),
    })
}

/// A name with no cached answer where nothing can wait for it: logged,
/// looked up off the receive path for next time, 476 now.
fn not_cached(hop: Hop) -> ProxyError {
    if dns::current().is_some() {
        tracing::warn!(
            "dns: {} is not cached and this route cannot wait for a lookup: \
             476 now, looked up for the next call",
            hop.host
        );
        dns::wanted::prefetch(vec![hop.clone()]);
    } else {
        // Off the workers (unit tests): there is no resolver to ask.
        tracing::warn!(
            "dns: {} not resolved (no resolver on this thread)",
            hop.host
        );
    }
    ProxyError::Unresolvable(hop.host)
}

/// Names among the current request's destinations (`$du` or R-URI, and
/// appended branches) that have no cached answer: what `t_relay` waits
/// for before it relays.
pub fn pending_lookups(call: &Call) -> Vec<Hop> {
    let Some(m) = call.msg.as_ref() else {
        return Vec::new();
    };
    let first = call.du.clone().unwrap_or_else(|| m.ruri().to_string());
    let others = call.tm.branches.iter().map(|b| {
        (
            b.duri.clone().unwrap_or_else(|| b.uri.clone()),
            call.socket_proto(b.socket),
        )
    });
    uncached_forced(std::iter::once((first, call.forced_proto())).chain(others))
}

/// The hops among `uris` that are names with no cached answer (none
/// without a worker's resolver).
pub fn uncached(uris: impl IntoIterator<Item = String>) -> Vec<Hop> {
    uncached_forced(uris.into_iter().map(|u| (u, None)))
}

/// [`uncached`] for URIs each with the transport of its forced socket.
fn uncached_forced(uris: impl IntoIterator<Item = (String, Option<Proto>)>) -> Vec<Hop> {
    let Some(dns) = dns::current() else {
        return Vec::new();
    };
    let mut out: Vec<Hop> = Vec::new();
    for (uri, forced) in uris {
        if let Ok((_, hop)) = dest::hop_forced(&uri, forced) {
            let literal = hop.host.parse::<std::net::IpAddr>().is_ok();
            if !literal && dns.cached(&hop).is_none() && !out.contains(&hop) {
                out.push(hop);
            }
        }
    }
    out
}

/// Looks up `hops` (each failure is logged; the relay then reports it).
pub async fn lookup_all(hops: Vec<Hop>) {
    let Some(dns) = dns::current() else { return };
    for hop in hops {
        if let Err(e) = dns.locate(&hop).await {
            tracing::info!("dns: {e}");
        }
    }
}

/// RFC 3263 §4.3: branch `i` failed with a 503 or timed out before any
/// provisional reply; when its destination has another address, the
/// request goes there as a new branch. True when one was sent.
pub fn failover(tm: &Tm, txn: &TxnRef, t: &mut Txn, i: usize, outbox: &mut Vec<Outgoing>) -> bool {
    let enabled =
        dns::current().is_some_and(|d| d.conf().failover) && !t.relay_flags.no_dns_failover;
    let Some(b) = t
        .branches
        .get_mut(i)
        .filter(|b| enabled && !b.got_provisional)
    else {
        return false;
    };
    if b.alts.is_empty() || t.cancelled {
        return false;
    }
    let addr = b.alts.remove(0);
    let alts = std::mem::take(&mut b.alts);
    let idx = t.branches.len();
    let Some(old) = t.branches.get(i) else {
        return false;
    };
    // Same request, new Via branch: `...x{i}.{loop hash}` → `...x{idx}.…`.
    let Some((head, loop_hash)) = old.branch_id.rsplit_once('.') else {
        return false;
    };
    let Some(stem) = head.strip_suffix(&format!("x{i}")) else {
        return false;
    };
    let branch_id = format!("{stem}x{idx}.{loop_hash}");
    let text = String::from_utf8_lossy(&old.request).replacen(&old.branch_id, &branch_id, 1);
    let request = bytes::Bytes::from(text);
    let (proto, socket, method, uri, avps, bflags) = (
        old.proto,
        old.socket,
        old.method.clone(),
        old.uri.clone(),
        old.avps.clone(),
        old.bflags,
    );
    tracing::info!("dns failover: branch {i} to {uri} goes on to {addr}");
    let (client, acts) = ClientTxn::start(t.server.kind, proto.is_stream(), t.timers);
    let mut b = Branch::sent(
        client,
        method.clone(),
        request.clone(),
        branch_id.clone(),
        uri,
        addr,
        proto,
        socket,
    );
    b.alts = alts;
    b.avps = avps;
    b.bflags = bflags;
    t.branches.push(b);
    tm.client.insert(
        our_client_key(&branch_id, &method),
        (txn.clone(), BranchRole::Request(idx)),
    );
    outbox.push(Outgoing {
        bytes: request,
        proto,
        dest: Dest::Addr(addr),
        socket,
        kind: OutKind::Request,
    });
    super::relay::apply_client(tm, txn, t, idx, acts, None, outbox);
    tm.notify(|o| o.request_out(t, idx));
    crate::stats::TM.uac_transactions.inc();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(proto: Proto, a: &str) -> Target {
        Target {
            proto,
            addr: a.parse().unwrap(),
        }
    }

    #[test]
    fn pick_keeps_family_and_transport() {
        let ts = [
            t(Proto::Udp, "[::1]:5060"),
            t(Proto::Udp, "127.0.0.2:5062"),
            t(Proto::Tcp, "127.0.0.3:5060"),
            t(Proto::Udp, "127.0.0.4:5064"),
        ];
        let l = pick(&ts, Proto::Udp, false, true).unwrap();
        assert_eq!(l.addr, "127.0.0.2:5062".parse().unwrap());
        assert_eq!(l.alts, vec!["127.0.0.4:5064".parse().unwrap()]);
        // An explicit transport=tcp keeps only TCP targets.
        let l = pick(&ts, Proto::Tcp, true, true).unwrap();
        assert_eq!(
            (l.proto, l.addr),
            (Proto::Tcp, "127.0.0.3:5060".parse().unwrap())
        );
        assert!(pick(&ts, Proto::Tcp, true, false).is_none());
    }
}
