//! Names a synchronous caller found uncached (`{ip.resolve}`): it answers
//! null at once and leaves the name here; the script host then either
//! suspends the route until they are looked up and asks again, or, where
//! the route cannot wait, looks them up in the background for next time.

use std::cell::RefCell;
use std::net::IpAddr;

use super::{current, Hop};

thread_local! {
    static WANTED: RefCell<Vec<Hop>> = const { RefCell::new(Vec::new()) };
}

/// The hop an address lookup of `host` uses: A/AAAA only (RFC 3263
/// §4.2, as an explicit port), shared with SIP URIs `host:5060`.
pub fn address_hop(host: &str) -> Hop {
    Hop {
        host: host.trim().trim_end_matches('.').to_ascii_lowercase(),
        port: Some(5060),
        proto: None,
    }
}

/// The first address of `host` from this worker's cache: `Ok(None)` when
/// the name is known not to resolve, `Err(())` when it is not cached (the
/// name is then remembered as wanted) or there is no worker resolver.
#[allow(clippy::result_unit_err)]
pub fn cached_address(host: &str) -> Result<Option<IpAddr>, ()> {
    let Some(dns) = current() else { return Err(()) };
    let hop = address_hop(host);
    match dns.cached(&hop) {
        Some(t) => Ok(t.first().map(|t| t.addr.ip())),
        None => {
            WANTED.with(|w| {
                let mut w = w.borrow_mut();
                if !w.contains(&hop) {
                    w.push(hop);
                }
            });
            Err(())
        }
    }
}

/// Whether a name was found uncached since the last [`take`].
pub fn any() -> bool {
    WANTED.with(|w| !w.borrow().is_empty())
}

/// The names found uncached, forgotten here.
pub fn take() -> Vec<Hop> {
    WANTED.with(|w| std::mem::take(&mut *w.borrow_mut()))
}

/// Looks `hops` up into this worker's cache (failures are cached too).
pub async fn lookup(hops: Vec<Hop>) {
    let Some(dns) = current() else { return };
    for hop in hops {
        if let Err(e) = dns.locate(&hop).await {
            tracing::debug!("dns: {e}");
        }
    }
}

/// Looks `hops` up in a task of the worker, for a later call.
pub fn prefetch(hops: Vec<Hop>) {
    if hops.is_empty() || current().is_none() {
        return;
    }
    tokio::task::spawn_local(lookup(hops));
}
