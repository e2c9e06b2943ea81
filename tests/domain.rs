//! The domain module on OpenSIPS 3.4's `domain` table in MariaDB (made by
//! `lunasip db init`), end to end: requests from and to local and foreign
//! domains, what the route learnt written into the reply's reason, the MI
//! `domain_reload`/`domain_dump` answers, db_mode 0 (each check queries)
//! and 1 (cached until reloaded).

mod common;

use common::ds::mi;
use common::mysql::{sql, Tables, URL};
use common::*;
use std::time::Duration;

fn tables(tag: &str) -> Tables {
    let t = Tables::new(tag);
    assert!(
        t.init_output
            .contains(&format!("version of {} set to 3", t.domain)),
        "{}",
        t.init_output
    );
    sql(&format!(
        "INSERT INTO {} (domain, attrs) VALUES ('example.com', 'tier=gold'), ('Local.Test', NULL)",
        t.domain
    ));
    t
}

/// Answers every request with `from=<code> ruri=<code> dom=<code>
/// attrs=<$var(a)>` in the reason (the codes of the three functions).
fn script(t: &Tables, db_mode: u8, mi_port: u16) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    domain = {{ db_url = "{URL}", db_mode = {db_mode}, domain_table = "{table}" }},
  }},
}}

function route.main()
  sip.var.a = "-"
  local _, f = sip.domain.is_from_local("$var(a)")
  local _, r = sip.domain.is_uri_host_local()
  local _, d = sip.domain.is_domain_local("$hdr(X-Domain)")
  sip.sl.sl_send_reply(200, "from=" .. f .. " ruri=" .. r .. " dom=" .. d .. " attrs=" .. sip.var.a)
end
"#,
        table = t.domain
    )
}

fn ask(port: u16, from_host: &str, ruri_host: &str, xdom: &str) -> String {
    let msg = format!(
        "OPTIONS sip:bob@{ruri_host} SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-d{}\r\n\
         From: <sip:alice@{from_host}>;tag=1\r\nTo: <sip:bob@{ruri_host}>\r\nCall-ID: dom-{}\r\n\
         CSeq: 1 OPTIONS\r\nX-Domain: {xdom}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        std::process::id(),
        rand_id()
    );
    let r = udp_exchange(&format!("127.0.0.1:{port}"), &msg, Duration::from_secs(3))
        .unwrap_or_default();
    r.lines().next().unwrap_or("").to_string()
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn cached_domains_answer_until_reloaded() {
    let t = tables("c");
    let mi_port = free_port();
    let p = Proxy::start(&script(&t, 1, mi_port));
    assert_eq!(
        ask(p.port, "example.com", "LOCAL.test", "nowhere.net"),
        "SIP/2.0 200 from=1 ruri=1 dom=-1 attrs=tier=gold"
    );
    assert_eq!(
        ask(p.port, "other.org", "x.example.com", "example.com"),
        "SIP/2.0 200 from=-1 ruri=-1 dom=1 attrs=-"
    );
    let (ok, dump) = mi(mi_port, &["domain_dump"]);
    assert!(ok, "{dump}");
    let d: String = dump.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        d.contains(r#"{"name":"example.com","attributes":"tier=gold"}"#),
        "{dump}"
    );
    assert!(d.contains(r#"{"name":"Local.Test"}"#), "{dump}");

    // A new row is not seen before domain_reload, then it is.
    sql(&format!(
        "INSERT INTO {} (domain, attrs) VALUES ('new.example', 'n=1')",
        t.domain
    ));
    assert_eq!(
        ask(p.port, "new.example", "a.b", "x"),
        "SIP/2.0 200 from=-1 ruri=-1 dom=-1 attrs=-"
    );
    let (ok, r) = mi(mi_port, &["domain_reload"]);
    assert!(ok && r.contains("OK"), "{r}");
    assert_eq!(
        ask(p.port, "new.example", "a.b", "x"),
        "SIP/2.0 200 from=1 ruri=-1 dom=-1 attrs=n=1"
    );
}

#[test]
fn db_mode_0_asks_the_table_every_time() {
    let t = tables("q");
    let mi_port = free_port();
    let p = Proxy::start(&script(&t, 0, mi_port));
    assert_eq!(
        ask(p.port, "Example.COM", "local.test", "example.com"),
        "SIP/2.0 200 from=1 ruri=1 dom=1 attrs=tier=gold"
    );
    sql(&format!(
        "INSERT INTO {} (domain) VALUES ('fresh.example')",
        t.domain
    ));
    assert_eq!(
        ask(p.port, "a.b", "fresh.example", "x"),
        "SIP/2.0 200 from=-1 ruri=1 dom=-1 attrs=-"
    );
    // SQL metacharacters stay data.
    assert_eq!(
        ask(p.port, "a.b", "c.d", "x' OR '1'='1"),
        "SIP/2.0 200 from=-1 ruri=-1 dom=-1 attrs=-"
    );
    for cmd in ["domain_reload", "domain_dump"] {
        let (ok, r) = mi(mi_port, &[cmd]);
        assert!(!ok && r.contains("command not activated"), "{cmd}: {r}");
    }
    // The table gone: -3, and the route goes on.
    sql(&format!("RENAME TABLE {0} TO {0}_x", t.domain));
    let r = ask(p.port, "a.b", "c.d", "x");
    sql(&format!("RENAME TABLE {0}_x TO {0}", t.domain));
    assert_eq!(r, "SIP/2.0 200 from=-3 ruri=-3 dom=-3 attrs=-");
}

#[test]
fn a_missing_table_stops_a_cached_start_with_its_name() {
    let mi_port = free_port();
    let mut t = Tables::new("m");
    sql(&format!("DROP TABLE {}", t.domain));
    sql(&format!(
        "DELETE FROM version WHERE table_name = '{}'",
        t.domain
    ));
    t.domain.push_str("_x");
    let err = Proxy::try_start(&script(&t, 1, mi_port))
        .err()
        .expect("refused");
    assert!(err.contains(&t.domain), "{err}");
}
