//! From a source's rows to checked destinations grouped into sets: URI
//! host and port, the socket a row names (one of `config.listen`), rows
//! skipped with a logged reason, and the state a reload keeps.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use super::{parse_list, Dest, Row, Set, Sets, Source};
use crate::config::Listen;

/// Host and port of a SIP URI (`sip:host:port;params`), brackets removed.
pub fn uri_hostport(uri: &str) -> Option<(String, u16)> {
    let lower = uri.to_ascii_lowercase();
    let (rest, default_port) = if let Some(r) = lower.strip_prefix("sips:") {
        (&uri[uri.len() - r.len()..], 5061)
    } else if let Some(r) = lower.strip_prefix("sip:") {
        (&uri[uri.len() - r.len()..], 5060)
    } else {
        return None;
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    let hp = &rest[..end];
    let (host, port) = crate::config::split_hostport(hp)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.unwrap_or(default_port)))
}

/// Whether a SIP URI names its port (`sip:h:5070`, not `sip:h`).
pub fn uri_port_given(uri: &str) -> bool {
    let rest = uri.split_once(':').map_or("", |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    crate::config::split_hostport(&rest[..end]).is_some_and(|(_, p)| p.is_some())
}

/// Checks a row (its `socket` must be one of `listen`); the error names
/// what is wrong.
pub fn build_dest(r: &Row, listen: &[Listen]) -> Result<Dest, String> {
    let (host, port) =
        uri_hostport(&r.uri).ok_or_else(|| format!("bad destination URI '{}'", r.uri))?;
    if let Some(s) = &r.socket {
        let l = crate::config::parse_listen(s).map_err(|_| format!("bad socket '{s}'"))?;
        if !listener_in(listen, &l) {
            return Err(format!("socket '{s}' is not one of config.listen"));
        }
    }
    Ok(Dest {
        uri: r.uri.clone(),
        ip: host.parse().ok(),
        resolved: std::sync::OnceLock::new(),
        host,
        port,
        socket: r.socket.clone(),
        state: AtomicU8::new(r.state),
        weight: r.weight,
        priority: r.priority,
        attrs: r.attrs.clone(),
        description: r.description.clone(),
        hits: AtomicU64::new(0),
        failures: Default::default(),
        port_given: uri_port_given(&r.uri),
        script_attrs: Default::default(),
    })
}

/// The daemon's listening sockets, which a destination's `socket` must be
/// one of (as in OpenSIPS). Empty (unit tests, benches): no such check.
/// (Settings in the registry, committed with the dispatcher's.)
#[derive(Default)]
struct Listeners(Vec<Listen>);

/// Stages the sockets destinations may name (from `config.listen`).
pub fn set_listeners(listen: &[Listen], staged: &mut crate::state::Staged) {
    staged.put(Listeners(listen.to_vec()));
}

/// The sockets set by [`set_listeners`] (the registry of this thread's
/// environment).
pub fn listeners() -> Vec<Listen> {
    crate::state::module::<Listeners>().0.clone()
}

/// Whether `l` is one of `all`: same protocol and port, and the same
/// address or a listener on the wildcard address (`all` empty: yes).
fn listener_in(all: &[Listen], l: &Listen) -> bool {
    all.is_empty()
        || all.iter().any(|m| {
            m.proto == l.proto
                && m.addr.port() == l.addr.port()
                && (m.addr.ip() == l.addr.ip() || m.addr.ip().is_unspecified())
        })
}

/// Groups rows into sets (in order of first appearance), skipping bad rows
/// with a logged reason naming the row (its `id` column for database rows,
/// its position otherwise).
pub fn build_sets(part: &str, rows: &[Row], listen: &[Listen]) -> (Vec<Set>, usize) {
    let mut by_id: Vec<(i64, Vec<Dest>)> = Vec::new();
    let mut bad = 0;
    for (i, r) in rows.iter().enumerate() {
        match build_dest(r, listen) {
            Ok(d) => match by_id.iter_mut().find(|(id, _)| *id == r.setid) {
                Some((_, v)) => v.push(d),
                None => by_id.push((r.setid, vec![d])),
            },
            Err(e) => {
                bad += 1;
                let which = match r.id {
                    Some(id) => format!("row id {id}"),
                    None => format!("row {}", i + 1),
                };
                super::super::report(
                    tracing::Level::ERROR,
                    format!("dispatcher: partition {part}: {which} skipped: {e}"),
                );
            }
        }
    }
    (
        by_id.into_iter().map(|(id, d)| Set::new(id, d)).collect(),
        bad,
    )
}

/// Reads a partition's rows from its source, with the number of rows (or
/// lines) skipped because they did not read (each one logged).
pub fn read_source(part: &str, src: &Source) -> Result<(Vec<Row>, usize), String> {
    let (rows, errs, what) = match src {
        Source::Rows(r) => return Ok((r.clone(), 0)),
        Source::ListFile(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let (rows, errs) = parse_list(&text);
            (rows, errs, p.display().to_string())
        }
        Source::Db { url, table, .. } => {
            let (rows, errs) = super::super::db::read(url, table).map_err(|e| e.to_string())?;
            (rows, errs, format!("table {table}"))
        }
    };
    for e in &errs {
        super::super::report(
            tracing::Level::ERROR,
            format!("dispatcher: partition {part}: {what}: {e}, skipped"),
        );
    }
    Ok((rows, errs.len()))
}

/// Copies the state of destinations that survive (same partition, set and
/// URI) from `old` into `new`.
pub fn inherit_state(old: &Sets, new: &Sets) {
    for np in &new.partitions {
        let Some(op) = old.partition(Some(&np.name)) else {
            continue;
        };
        for ns in np.sets.iter() {
            let Some(os) = op.set(ns.id) else { continue };
            for nd in &ns.dests {
                if let Some(od) = os.dests.iter().find(|d| d.uri == nd.uri) {
                    nd.set_state(od.state());
                    nd.hits
                        .store(od.hits.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rows_are_skipped() {
        let rows = vec![
            Row {
                setid: 1,
                uri: "nonsense".into(),
                ..Row::default()
            },
            Row {
                setid: 1,
                uri: "sip:h.example".into(),
                ..Row::default()
            },
        ];
        let (sets, bad) = build_sets("default", &rows, &[]);
        assert_eq!(bad, 1);
        assert_eq!(sets[0].dests.len(), 1);
        assert_eq!(sets[0].dests[0].port, 5060);
    }

    #[test]
    fn sockets_must_be_listeners() {
        use crate::config::parse_listen;
        let l = |s: &str| parse_listen(s).expect("listen");
        let ours = [l("udp:10.0.0.1:5060"), l("tcp:0.0.0.0:5070")];
        assert!(listener_in(&ours, &l("udp:10.0.0.1:5060")));
        assert!(listener_in(&ours, &l("tcp:10.9.9.9:5070")), "wildcard");
        assert!(!listener_in(&ours, &l("udp:10.0.0.2:5060")));
        assert!(!listener_in(&ours, &l("tcp:10.0.0.1:5060")));
        assert!(
            listener_in(&[], &l("udp:10.0.0.2:5060")),
            "no list: no check"
        );
    }
}
