//! The selection algorithms, OpenSIPS numbering: 0 Call-ID hash, 1 From
//! URI hash, 2 To URI hash, 3 R-URI hash, 4 weighted round-robin, 5 auth
//! username hash (round-robin without one), 6 random, 7 `hash_pvar` hash,
//! 8 first, 9 lowest load by `pvar_algo_pattern`, 10 ordering by the
//! `algo_route` function; other numbers take the first entry.
//!
//! Pure functions over a [`Set`]: the Lua side computes the key.

use std::sync::atomic::Ordering;

use super::sets::Set;

/// What an algorithm chooses with.
#[derive(Debug, Clone)]
pub enum Key {
    /// A hash of the message part the algorithm names.
    Hash(u32),
    RoundRobin,
    Random(u32),
    First,
    /// Load of each destination (index-aligned with `set.dests`; lowest wins).
    Load(Vec<i64>),
    /// Weight of each destination from `algo_route` (highest first; a
    /// negative weight leaves the destination out).
    Order(Vec<i64>),
}

/// Stable 32-bit hash (FNV-1a) of a key.
pub fn hash(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    // Final avalanche so consecutive keys spread over small sets.
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h
}

/// The hash key of a SIP URI: `user@host:port`, or only the user part with
/// the `u` flag (OpenSIPS hashes the same parts, ignoring parameters).
pub fn uri_key(uri: &str, user_only: bool) -> String {
    let u = uri.trim().trim_start_matches('<');
    let rest = u.split_once(':').map_or(u, |(_, r)| r);
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    let rest = &rest[..end];
    let (user, host) = match rest.rsplit_once('@') {
        Some((us, h)) => (us.split(':').next().unwrap_or(""), h),
        None => ("", rest),
    };
    if user_only {
        user.to_string()
    } else {
        format!("{user}@{}", host.to_ascii_lowercase())
    }
}

/// The username of an Authorization / Proxy-Authorization header value.
pub fn auth_username(hdr: &str) -> Option<String> {
    let lower = hdr.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find("username") {
        let at = from + pos;
        let before_ok = at == 0 || matches!(lower.as_bytes()[at - 1], b' ' | b',' | b'\t');
        let rest = hdr[at + 8..].trim_start();
        if before_ok {
            if let Some(v) = rest.strip_prefix('=') {
                let v = v.trim_start();
                let name = match v.strip_prefix('"') {
                    Some(q) => q.split('"').next().unwrap_or(""),
                    None => v.split([',', ' ']).next().unwrap_or(""),
                };
                return Some(name.to_string());
            }
        }
        from = at + 8;
    }
    None
}

/// Options of one selection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Opts {
    /// `d`: the last destination of the set is the default, used only
    /// after every other one.
    pub use_default: bool,
    /// Most destinations returned (0 = all).
    pub max_results: usize,
}

/// The destinations to try, in order: the chosen one first, then the
/// other active ones (the failover list). Empty when none is active.
pub fn select(set: &Set, key: &Key, opts: Opts) -> Vec<usize> {
    let n = set.dests.len();
    if n == 0 {
        return Vec::new();
    }
    // With `d`, the last destination takes no part in the choice.
    let pool = if opts.use_default && n > 1 { n - 1 } else { n };
    let active = |i: usize| set.dests[i].is_active();
    let mut out: Vec<usize> = match key {
        Key::Order(w) => {
            let mut v: Vec<(std::cmp::Reverse<i64>, usize)> = (0..pool)
                .filter_map(|i| {
                    let wi = w.get(i).copied().unwrap_or(-1);
                    (active(i) && wi >= 0).then_some((std::cmp::Reverse(wi), i))
                })
                .collect();
            v.sort_unstable();
            v.into_iter().map(|(_, i)| i).collect()
        }
        Key::Load(l) => {
            // Lowest load per unit of weight first; ties keep set order.
            let mut v: Vec<(i64, usize)> = (0..pool)
                .filter(|&i| active(i))
                .map(|i| {
                    let w = i64::from(set.dests[i].weight.max(1));
                    let load = l.get(i).copied().unwrap_or(i64::MAX / 200);
                    (load.saturating_mul(100) / w, i)
                })
                .collect();
            v.sort_unstable();
            v.into_iter().map(|(_, i)| i).collect()
        }
        _ => {
            let first = match key {
                Key::First => 0,
                Key::Hash(h) => pick_weighted(set, pool, *h as usize),
                Key::Random(r) => pick_weighted(set, pool, *r as usize),
                Key::RoundRobin => {
                    let c = set.rr.fetch_add(1, Ordering::Relaxed);
                    pick_weighted(set, pool, c)
                }
                Key::Load(_) | Key::Order(_) => 0,
            };
            // The chosen one, or the next active one after it; then the
            // others in set order after it.
            let it = (0..pool).map(|k| (first + k) % pool).filter(|&i| active(i));
            if opts.max_results == 1 {
                it.take(1).collect()
            } else {
                it.collect()
            }
        }
    };
    if pool < n && active(n - 1) {
        out.push(n - 1);
    }
    if opts.max_results > 0 {
        out.truncate(opts.max_results);
    }
    out
}

/// Destination index for slot `k` of the weighted list, within the pool.
fn pick_weighted(set: &Set, pool: usize, k: usize) -> usize {
    let list: Vec<usize>;
    let wl = if pool == set.dests.len() {
        &set.wlist
    } else {
        list = set.wlist.iter().copied().filter(|&i| i < pool).collect();
        &list
    };
    if wl.is_empty() {
        return k % pool;
    }
    wl[k % wl.len()]
}

#[cfg(test)]
mod tests {
    use super::super::sets::{build_sets, Row, INACTIVE};
    use super::*;

    fn set(weights: &[u32]) -> Set {
        let rows: Vec<Row> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Row {
                setid: 1,
                uri: format!("sip:10.0.0.{}:5060", i + 1),
                weight: w,
                ..Row::default()
            })
            .collect();
        build_sets("default", &rows, &[]).0.remove(0)
    }

    fn first(s: &Set, k: Key) -> Option<usize> {
        select(s, &k, Opts::default()).first().copied()
    }

    #[test]
    fn round_robin_alternates_and_skips_inactive() {
        let s = set(&[1, 1, 1]);
        let got: Vec<_> = (0..6).filter_map(|_| first(&s, Key::RoundRobin)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2]);
        s.dests[1].set_state(INACTIVE);
        let got: Vec<_> = (0..6).filter_map(|_| first(&s, Key::RoundRobin)).collect();
        assert!(!got.contains(&1), "{got:?}");
        assert_eq!(got.len(), 6);
    }

    #[test]
    fn weights_spread_round_robin_and_hash() {
        let s = set(&[1, 3]);
        let mut c = [0usize; 2];
        for _ in 0..2000 {
            c[first(&s, Key::RoundRobin).expect("one")] += 1;
        }
        assert_eq!(c, [500, 1500]);
        let mut c = [0usize; 2];
        for i in 0..4000 {
            c[first(&s, Key::Hash(hash(&format!("call-{i}@host")))).expect("one")] += 1;
        }
        let share = c[0] as f64 / 4000.0;
        assert!((0.22..0.28).contains(&share), "{c:?}");
    }

    #[test]
    fn hash_is_stable_and_skips_to_next_active_then_takes_back_its_share() {
        let s = set(&[1, 1, 1, 1]);
        let keys: Vec<u32> = (0..400).map(|i| hash(&format!("k{i}"))).collect();
        let before: Vec<_> = keys.iter().map(|&h| first(&s, Key::Hash(h))).collect();
        // Same key, same destination.
        assert_eq!(before[7], first(&s, Key::Hash(keys[7])));
        let mut c = [0usize; 4];
        for b in before.iter().flatten() {
            c[*b] += 1;
        }
        assert!(c.iter().all(|&n| n > 60), "{c:?}");
        s.dests[2].set_state(INACTIVE);
        for (h, b) in keys.iter().zip(&before) {
            let now = first(&s, Key::Hash(*h));
            if *b == Some(2) {
                assert_eq!(now, Some(3), "moves to the next active one");
            } else {
                assert_eq!(now, *b, "others keep their destination");
            }
        }
        s.dests[2].set_state(super::super::sets::ACTIVE);
        let after: Vec<_> = keys.iter().map(|&h| first(&s, Key::Hash(h))).collect();
        assert_eq!(before, after);
    }

    #[test]
    fn failover_list_first_default_and_max_results() {
        let s = set(&[1, 1, 1]);
        assert_eq!(select(&s, &Key::Hash(1), Opts::default()), vec![1, 2, 0]);
        assert_eq!(select(&s, &Key::First, Opts::default()), vec![0, 1, 2]);
        s.dests[0].set_state(INACTIVE);
        assert_eq!(select(&s, &Key::First, Opts::default()), vec![1, 2]);
        let o = Opts {
            use_default: true,
            max_results: 0,
        };
        assert_eq!(select(&s, &Key::First, o), vec![1, 2]);
        assert_eq!(select(&s, &Key::Hash(0), o), vec![1, 2]);
        let o = Opts {
            use_default: false,
            max_results: 1,
        };
        assert_eq!(select(&s, &Key::First, o), vec![1]);
        for d in &s.dests {
            d.set_state(INACTIVE);
        }
        assert!(select(&s, &Key::RoundRobin, Opts::default()).is_empty());
    }

    #[test]
    fn random_spreads_and_load_and_order() {
        let s = set(&[1, 1]);
        let mut c = [0usize; 2];
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            c[first(&s, Key::Random(x >> 8)).expect("one")] += 1;
        }
        assert!(c[0] > 850 && c[1] > 850, "{c:?}");
        assert_eq!(first(&s, Key::Load(vec![10, 3])), Some(1));
        assert_eq!(
            select(&s, &Key::Order(vec![1, 5]), Opts::default()),
            vec![1, 0]
        );
        assert_eq!(
            select(&s, &Key::Order(vec![-1, 5]), Opts::default()),
            vec![1]
        );
    }

    #[test]
    fn keys() {
        assert_eq!(
            uri_key("sip:alice@Example.com:5060;transport=tcp", false),
            "alice@example.com:5060"
        );
        assert_eq!(uri_key("<sip:alice@example.com>", true), "alice");
        assert_eq!(
            auth_username("Digest username=\"bob\", realm=\"x\"").as_deref(),
            Some("bob")
        );
        assert_eq!(auth_username("Digest realm=\"x\""), None);
    }
}
