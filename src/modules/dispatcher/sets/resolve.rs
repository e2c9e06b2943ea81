//! Host names of destinations looked up once the sets are installed, so
//! address matches (`ds_is_in_list`, `ds_push_script_attrs`) find them.

use std::net::IpAddr;

use super::Sets;

/// Most addresses kept per host name (OpenSIPS's DS_MAX_IPS).
const MAX_IPS: usize = 32;

/// Resolves the host names of `sets`' destinations on a thread of its own
/// (the system resolver blocks; no SIP worker waits for it), so that
/// `ds_is_in_list` and `ds_push_script_attrs` match them by address as
/// OpenSIPS does after its load-time lookup (dispatch.c `add_dest2list`).
/// A name that does not resolve is logged and kept: lunasip looks it up
/// again when it relays to it, where OpenSIPS skips the destination.
pub fn resolve_names(sets: std::sync::Arc<Sets>) {
    let any = sets
        .partitions
        .iter()
        .flat_map(|p| p.sets.iter())
        .flat_map(|s| s.dests.iter())
        .any(|d| d.ip.is_none());
    if !any {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("ds-resolve".into())
        .spawn(move || {
            for p in &sets.partitions {
                for d in p.sets.iter().flat_map(|s| s.dests.iter()) {
                    if d.ip.is_some() || d.resolved.get().is_some() {
                        continue;
                    }
                    d.resolved.get_or_init(|| lookup(&p.name, &d.host, d.port));
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("dispatcher: cannot start the name lookup thread: {e}");
    }
}

fn lookup(part: &str, host: &str, port: u16) -> Vec<IpAddr> {
    use std::net::ToSocketAddrs;
    match (host, port).to_socket_addrs() {
        Ok(addrs) => {
            let mut v: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !v.contains(&a.ip()) && v.len() < MAX_IPS {
                    v.push(a.ip());
                }
            }
            tracing::debug!("dispatcher: partition {part}: {host} is {v:?}");
            v
        }
        Err(e) => {
            tracing::warn!(
                "dispatcher: partition {part}: could not resolve {host} ({e}); \
                 ds_is_in_list and ds_push_script_attrs will not match it by address"
            );
            Vec::new()
        }
    }
}

