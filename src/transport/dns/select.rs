//! RFC 3263 target ordering, without I/O: which NAPTR records a SIP
//! client may follow, and the order SRV records are tried in (RFC 2782).

use crate::transport::Proto;

/// A NAPTR record as far as RFC 3263 §4.1 needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    pub replacement: String,
}

/// An SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// The transport a NAPTR service names, when lunasip speaks it
/// (`SIP+D2U` UDP, `SIP+D2T` TCP; `SIPS+D2T` needs TLS, not offered yet).
pub fn naptr_proto(services: &str) -> Option<Proto> {
    match services.to_ascii_uppercase().as_str() {
        "SIP+D2U" => Some(Proto::Udp),
        "SIP+D2T" => Some(Proto::Tcp),
        _ => None,
    }
}

/// The SRV names to query, in order, from a host's NAPTR records (§4.1):
/// only terminal `s` records of a transport we speak, by order, then
/// preference.
pub fn naptr_order(mut records: Vec<Naptr>) -> Vec<(Proto, String)> {
    records.retain(|r| r.flags.eq_ignore_ascii_case("s") && naptr_proto(&r.services).is_some());
    records.sort_by_key(|r| (r.order, r.preference));
    records
        .into_iter()
        .filter_map(|r| Some((naptr_proto(&r.services)?, r.replacement)))
        .collect()
}

/// The SRV name for `proto` at `host` when there is no NAPTR (§4.1).
pub fn srv_name(proto: Proto, host: &str) -> String {
    let t = match proto {
        Proto::Tcp => "tcp",
        _ => "udp",
    };
    format!("_sip._{t}.{}.", host.trim_end_matches('.'))
}

/// RFC 2782 order: by priority, and within a priority a weighted random
/// pick, again and again, of the records left (weight 0 rarely first).
/// `rand` gives numbers to choose with.
pub fn srv_order(mut records: Vec<Srv>, mut rand: impl FnMut() -> u32) -> Vec<Srv> {
    // A target of "." means the service is not offered there.
    records.retain(|r| r.target != "." && !r.target.is_empty());
    records.sort_by_key(|r| (r.priority, u16::MAX - r.weight));
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let prio = records[0].priority;
        let same = records.iter().take_while(|r| r.priority == prio).count();
        let total: u32 = records[..same].iter().map(|r| u32::from(r.weight)).sum();
        let pick = if total == 0 {
            0
        } else {
            let mut n = rand() % (total + 1);
            records[..same]
                .iter()
                .position(|r| {
                    let w = u32::from(r.weight);
                    if n <= w {
                        true
                    } else {
                        n -= w;
                        false
                    }
                })
                .unwrap_or(0)
        };
        out.push(records.remove(pick));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naptr(order: u16, pref: u16, flags: &str, svc: &str, repl: &str) -> Naptr {
        Naptr {
            order,
            preference: pref,
            flags: flags.into(),
            services: svc.into(),
            replacement: repl.into(),
        }
    }

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    #[test]
    fn naptr_keeps_what_we_speak_in_order() {
        let got = naptr_order(vec![
            naptr(20, 10, "s", "SIP+D2U", "_sip._udp.b."),
            naptr(10, 20, "S", "sip+d2t", "_sip._tcp.a."),
            naptr(10, 10, "s", "SIPS+D2T", "_sips._tcp.a."),
            naptr(5, 10, "u", "SIP+D2U", "!x!"),
        ]);
        assert_eq!(
            got,
            vec![
                (Proto::Tcp, "_sip._tcp.a.".to_string()),
                (Proto::Udp, "_sip._udp.b.".to_string())
            ]
        );
    }

    #[test]
    fn srv_by_priority_then_weight() {
        let got = srv_order(
            vec![
                srv(20, 0, "c."),
                srv(10, 0, "b."),
                srv(10, 100, "a."),
                srv(5, 0, "."),
            ],
            || 7,
        );
        let names: Vec<&str> = got.iter().map(|s| s.target.as_str()).collect();
        assert_eq!(names, ["a.", "b.", "c."]);
        // Weights share the picks: over many draws both come first.
        let mut seed = 1u32;
        let mut first_b = 0;
        for _ in 0..1000 {
            let got = srv_order(vec![srv(1, 30, "a."), srv(1, 10, "b.")], || {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                seed >> 8
            });
            first_b += usize::from(got[0].target == "b.");
        }
        assert!((150..350).contains(&first_b), "{first_b}");
    }

    #[test]
    fn srv_names() {
        assert_eq!(
            srv_name(Proto::Udp, "example.com"),
            "_sip._udp.example.com."
        );
        assert_eq!(
            srv_name(Proto::Tcp, "example.com."),
            "_sip._tcp.example.com."
        );
    }
}
