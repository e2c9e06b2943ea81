//! permissions' address table on MariaDB (OpenSIPS 3.4's `address`,
//! made by `lunasip db init`): requests from 127.0.0.2 and 127.0.0.3
//! judged by `check_source_address`, `check_address` and
//! `get_source_group`, the codes in the reply's reason; MI
//! `address_dump`, `subnet_dump` and `address_reload`.

mod common;

use common::ds::mi;
use common::mysql::{sql, Tables, URL};
use common::*;
use std::net::UdpSocket;
use std::time::Duration;

fn script(t: &Tables, mi_port: u16) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    permissions = {{ db_url = "{URL}", address_table = "{adr}" }},
  }},
}}

function route.main()
  sip.var.info = "-"
  sip.var.g = "-"
  local _, s1 = sip.permissions.check_source_address(1, "$var(info)")
  local _, s2 = sip.permissions.check_source_address(2, nil, "$ru")
  local _, a = sip.permissions.check_address(3, "$hdr(X-IP)", 5060, "udp")
  local _, g = sip.permissions.get_source_group("$var(g)")
  sip.sl.sl_send_reply(200, "s1=" .. s1 .. " info=" .. sip.var.info .. " s2=" .. s2 .. " a=" .. a .. " g=" .. g .. ":" .. sip.var.g)
end
"#,
        adr = t.address
    )
}

fn ask(port: u16, from_ip: &str, ruri: &str, xip: &str) -> String {
    let s = UdpSocket::bind((from_ip, 0)).expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let local = s.local_addr().expect("addr");
    let msg = format!(
        "OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-pm{}\r\nFrom: <sip:a@{from_ip}>;tag=1\r\n\
         To: <{ruri}>\r\nCall-ID: pm-{}\r\nCSeq: 1 OPTIONS\r\nX-IP: {xip}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        local.port(),
        local.port()
    );
    s.send_to(msg.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = [0u8; 65536];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        Err(_) => String::new(),
    }
}

#[test]
fn source_addresses_groups_subnets_patterns_and_reload() {
    let t = Tables::new("pm");
    sql(&format!(
        "INSERT INTO {} (grp, ip, mask, port, proto, pattern, context_info) VALUES \
         (1, '127.0.0.2', 32, 0, 'udp', NULL, 'trunk-a'), \
         (2, '127.0.0.0', 8, 0, 'any', 'sip:*@trusted.example', 'lo'), \
         (3, '10.1.0.0', 16, 5060, 'udp', NULL, NULL), \
         (4, '127.0.0.9', 32, 0, 'none', NULL, NULL), \
         (5, 'not-an-ip', 32, 0, 'any', NULL, NULL)",
        t.address
    ));
    let mi_port = free_port();
    let p = Proxy::start(&script(&t, mi_port));
    assert_eq!(
        ask(p.port, "127.0.0.2", "sip:x@trusted.example", "10.1.2.3"),
        "SIP/2.0 200 s1=1 info=trunk-a s2=1 a=1 g=1:1"
    );
    // 127.0.0.3: not in group 1; group 2's pattern refuses this R-URI;
    // 10.2.0.1 is outside group 3's subnet; the subnet gives group 2.
    assert_eq!(
        ask(p.port, "127.0.0.3", "sip:x@other.example", "10.2.0.1"),
        "SIP/2.0 200 s1=-1 info=- s2=-1 a=-1 g=1:2"
    );
    let (ok, dump) = mi(mi_port, &["address_dump"]);
    assert!(ok, "{dump}");
    let d: String = dump.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        d.contains(r#""grp":1,"ip":"127.0.0.2","mask":"32","port":0,"proto":"udp","pattern":"","context_info":"trunk-a""#),
        "{dump}"
    );
    assert!(
        !d.contains("127.0.0.9") && !d.contains("not-an-ip"),
        "skipped rows: {dump}"
    );
    let (ok, subnets) = mi(mi_port, &["subnet_dump"]);
    assert!(ok && subnets.contains("10.1.0.0"), "{subnets}");

    // A new row counts once reloaded.
    sql(&format!(
        "INSERT INTO {} (grp, ip) VALUES (1, '127.0.0.3')",
        t.address
    ));
    assert!(ask(p.port, "127.0.0.3", "sip:x@h", "1.1.1.1").starts_with("SIP/2.0 200 s1=-1 "));
    let (ok, r) = mi(mi_port, &["address_reload"]);
    assert!(ok && r.contains("OK"), "{r}");
    assert!(ask(p.port, "127.0.0.3", "sip:x@h", "1.1.1.1").starts_with("SIP/2.0 200 s1=1 "));
    let (ok, r) = mi(mi_port, &["address_dump", "nosuch"]);
    assert!(!ok && r.contains("No such partition"), "{r}");
}
