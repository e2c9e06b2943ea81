//! One binding of an address of record (OpenSIPS `ucontact_t`) and how it
//! maps to a row of OpenSIPS 3.4's `location` table (version 1013:
//! `expires` is a Unix time, 0 for a permanent binding).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{Row, Value};

/// A contact bound to an address of record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contact {
    /// The row's key (`contact_id`), unique per table.
    pub id: u64,
    /// The Contact URI as registered.
    pub uri: String,
    /// Where the REGISTER came from when behind NAT (`received`).
    pub received: Option<String>,
    /// The Path header values (RFC 3327), comma-joined.
    pub path: Option<String>,
    /// Unix time the binding ends; 0: never.
    pub expires: i64,
    /// q-value × 1000, -1 when not given.
    pub q: i32,
    pub callid: String,
    pub cseq: i64,
    /// usrloc's own flags (`flags` column).
    pub flags: u32,
    /// Branch flags saved with the contact (`cflags`, e.g. the NAT flag).
    pub cflags: u64,
    pub user_agent: String,
    /// The socket it registered through (`udp:127.0.0.1:5060`).
    pub socket: Option<String>,
    /// Methods the UA accepts (bit mask, OpenSIPS's METHOD_* order).
    pub methods: Option<u32>,
    /// `+sip.instance` (RFC 5626).
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626); kept in memory.
    pub reg_id: u32,
    pub last_modified: i64,
    /// µs the last OPTIONS ping took to be answered (nathelper's
    /// `sipping_latency_flag`); 0 until one is. Memory only, as
    /// OpenSIPS's `sipping_latency`: not a column, lost at restart.
    pub latency: i32,
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Contact {
    /// Still bound at `now`.
    pub fn valid(&self, now: i64) -> bool {
        self.expires == 0 || self.expires > now
    }

    /// Seconds left, as a 200 OK's `expires` parameter shows them.
    pub fn left(&self, now: i64) -> i64 {
        match self.expires {
            0 => 0,
            e => (e - now).max(0),
        }
    }

    /// A new id: unique enough per table (time, a counter, the binding).
    pub fn new_id(aor: &str, uri: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        // The process id once: std asks the kernel on every call.
        static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        let pid = *PID.get_or_init(std::process::id);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (aor, uri, SEQ.fetch_add(1, Ordering::Relaxed), pid).hash(&mut h);
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .hash(&mut h);
        // Positive in a signed BIGINT, non-zero.
        (h.finish() >> 1).max(1)
    }

    /// `cflags` as the column holds it: the set branch flag numbers,
    /// comma-separated.
    pub fn cflags_text(&self) -> Option<String> {
        if self.cflags == 0 {
            return None;
        }
        let list: Vec<String> = (0..64)
            .filter(|b| self.cflags & (1u64 << b) != 0)
            .map(|b| b.to_string())
            .collect();
        Some(list.join(","))
    }

    fn parse_cflags(s: Option<String>) -> u64 {
        s.map_or(0, |s| {
            s.split(',')
                .filter_map(|p| p.trim().parse::<u32>().ok())
                .filter(|b| *b < 64)
                .fold(0, |acc, b| acc | (1u64 << b))
        })
    }

    /// A row of the `location` table (None when it has no contact).
    pub fn from_row(r: &Row) -> Option<Contact> {
        Some(Contact {
            id: r.int("contact_id").map_or(0, |i| i as u64),
            uri: r.text("contact")?,
            received: r.text("received"),
            path: r.text("path"),
            expires: r.int("expires").unwrap_or(0),
            q: r
                .float("q")
                .map_or(-1, |q| if q < 0.0 { -1 } else { (q * 1000.0).round() as i32 }),
            callid: r.text("callid").unwrap_or_default(),
            cseq: r.int("cseq").unwrap_or(0),
            flags: r.int("flags").unwrap_or(0) as u32,
            cflags: Self::parse_cflags(r.text("cflags")),
            user_agent: r.text("user_agent").unwrap_or_default(),
            socket: r.text("socket"),
            methods: r.int("methods").map(|m| m as u32),
            instance: r.text("sip_instance"),
            reg_id: 0,
            latency: 0,
            last_modified: match r.get("last_modified") {
                Value::Time(t) => *t,
                v => v
                    .as_text()
                    .and_then(|s| crate::db::value_parse_civil(&s))
                    .unwrap_or(0),
            },
        })
    }

    /// The q column's value (1.0 when not given, as OpenSIPS writes it).
    pub fn q_value(&self) -> f64 {
        match self.q {
            q if q < 0 => 1.0,
            q => f64::from(q) / 1000.0,
        }
    }
}

/// The columns written for a contact, in the order of [`values`].
pub const COLUMNS: &[&str] = &[
    "contact_id",
    "username",
    "domain",
    "contact",
    "received",
    "path",
    "expires",
    "q",
    "callid",
    "cseq",
    "last_modified",
    "flags",
    "cflags",
    "user_agent",
    "socket",
    "methods",
    "sip_instance",
];

/// The values of [`COLUMNS`] for a contact of `(username, domain)`.
pub fn values(c: &Contact, user: &str, domain: Option<&str>) -> Vec<Value> {
    vec![
        Value::Int(c.id as i64),
        Value::text(user),
        Value::opt_text(domain),
        Value::text(&c.uri),
        Value::opt_text(c.received.as_deref()),
        Value::opt_text(c.path.as_deref()),
        Value::Int(c.expires),
        Value::Float(c.q_value()),
        Value::text(&c.callid),
        Value::Int(c.cseq),
        Value::Time(c.last_modified),
        Value::Int(i64::from(c.flags)),
        Value::opt_text(c.cflags_text().as_deref()),
        Value::text(&c.user_agent),
        Value::opt_text(c.socket.as_deref()),
        c.methods.map_or(Value::Null, |m| Value::Int(i64::from(m))),
        Value::opt_text(c.instance.as_deref()),
    ]
}

/// The address of record of a `location` row: `username`, with
/// `use_domain` `username@domain`.
pub fn aor_of_row(r: &Row, use_domain: bool) -> String {
    let user = r.text("username").unwrap_or_default();
    match (use_domain, r.text("domain")) {
        (true, Some(d)) => format!("{user}@{d}"),
        _ => user,
    }
}

/// Splits an address of record into the `username` and `domain` columns:
/// with `use_domain` `user@host` is both, else all of it is the username.
pub fn split_aor(aor: &str, use_domain: bool) -> (&str, Option<&str>) {
    match (use_domain, aor.rsplit_once('@')) {
        (true, Some((u, d))) => (u, Some(d)),
        _ => (aor, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aor_and_flags() {
        assert_eq!(split_aor("alice@example.com", true), ("alice", Some("example.com")));
        assert_eq!(split_aor("alice", true), ("alice", None));
        assert_eq!(split_aor("alice@example.com", false), ("alice@example.com", None));
        let c = Contact {
            id: 1,
            uri: "sip:a@b".into(),
            received: None,
            path: None,
            expires: 0,
            q: -1,
            callid: String::new(),
            cseq: 1,
            flags: 0,
            cflags: (1 << 6) | (1 << 7),
            user_agent: String::new(),
            socket: None,
            methods: None,
            instance: None,
            reg_id: 0,
            last_modified: 0,
            latency: 0,
        };
        assert_eq!(c.cflags_text().as_deref(), Some("6,7"));
        assert_eq!(Contact::parse_cflags(c.cflags_text()), c.cflags);
        assert!(c.valid(now()));
        assert_eq!(c.q_value(), 1.0);
        assert!(Contact::new_id("a", "b") != Contact::new_id("a", "b"));
    }
}
