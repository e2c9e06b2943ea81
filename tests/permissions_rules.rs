//! permissions' allow/deny files and partitions (OpenSIPS 3.4
//! modules/permissions/permissions.c, parse_config.c, rule.c,
//! partitions.c): `allow_routing`, `allow_register` and `allow_uri`
//! judging raw requests by rule files written by the test, with
//! `check_all_branches` on and off; address tables in two partitions on
//! MariaDB asked by `check_source_address` / `check_address` /
//! `get_source_group` and dumped and reloaded per partition over MI.
//! The codes the route got go back in the reply's reason.

mod common;

use common::ds::mi;
use common::mysql::{sql, Tables, URL};
use common::*;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

/// Sends `msg` (`{LOCAL}` replaced) from `from_ip`; the reply's first line.
fn ask(port: u16, from_ip: &str, msg: &str) -> String {
    let s = UdpSocket::bind((from_ip, 0)).expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let local = s.local_addr().expect("addr").to_string();
    let msg = msg.replace("{LOCAL}", &local);
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

/// An OPTIONS from `from` to `ruri` with extra header lines.
fn options(from: &str, ruri: &str, extra: &str) -> String {
    format!(
        "OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-pr\r\nFrom: <{from}>;tag=1\r\n\
         To: <{ruri}>\r\nCall-ID: pr-{{LOCAL}}\r\nCSeq: 1 OPTIONS\r\n{extra}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn register(to: &str, contact: &str) -> String {
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-prr\r\nFrom: <{to}>;tag=1\r\n\
         To: <{to}>\r\nCall-ID: prr-{{LOCAL}}\r\nCSeq: 1 REGISTER\r\n{contact}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write rules");
}

fn files_script(dir: &Path, check_all_branches: u8, mi_port: u16) -> String {
    let d = dir.display();
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    permissions = {{
      default_allow_file = "{d}/permissions.allow",
      default_deny_file = "{d}/permissions.deny",
      check_all_branches = {check_all_branches},
    }},
  }},
}}

function route.main()
  if sip.is_method("REGISTER") then
    local _, r = sip.permissions.allow_register("{d}/register")
    sip.sl.sl_send_reply(200, "reg=" .. r)
    sip.exit()
  end
  local br = sip.pv.get("$hdr(X-Branch)")
  if br then sip.append_branch(br) end
  local _, r = sip.permissions.allow_routing()
  local _, u = sip.permissions.allow_uri("{d}/uri", "$hdr(X-Uri)")
  local _, m = sip.permissions.allow_routing("{d}/missing")
  sip.sl.sl_send_reply(200, "route=" .. r .. " uri=" .. u .. " missing=" .. m)
end
"#
    )
}

fn rule_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    write(
        p,
        "permissions.allow",
        "# the boss may call anything; anyone may call 911\n\
         \"^sip:boss@\" : ALL\n\
         ALL : \"^sip:911@\"   # emergency\n",
    );
    write(
        p,
        "permissions.deny",
        "ALL : \"^sip:900[0-9]*@\", \"^sip:.*@premium\\.example$\"\n\
         \"^sip:spam\" : ALL EXCEPT \"^sip:alice@\"\n\
         this line has no colon and is skipped\n",
    );
    write(p, "register.allow", "ALL : \"^sip:.*@127\\.0\\.0\\.1$\"\n");
    write(p, "register.deny", "ALL : ALL\n");
    write(p, "uri.allow", "\"^sip:alice@\" : \"gw1\\.example\"\n");
    write(p, "uri.deny", "ALL : \"gw[0-9]\\.example\"\n");
    dir
}

#[test]
fn allow_and_deny_files_judge_routing_registrations_and_uris() {
    let dir = rule_files();
    let mi_port = free_port();
    let p = Proxy::start(&files_script(dir.path(), 1, mi_port));
    let q =
        |from: &str, ruri: &str, extra: &str| ask(p.port, "127.0.0.1", &options(from, ruri, extra));
    // A deny rule (the port does not take part: sip:user@host).
    assert_eq!(
        q("sip:bob@h", "sip:9001@h:5070", ""),
        "SIP/2.0 200 route=-1 uri=1 missing=1"
    );
    // An allow rule comes first.
    assert_eq!(
        q("sip:boss@h", "sip:9001@h", ""),
        "SIP/2.0 200 route=1 uri=1 missing=1"
    );
    // Neither: allowed, unless a branch is denied (check_all_branches).
    assert_eq!(
        q("sip:bob@h", "sip:carol@h", ""),
        "SIP/2.0 200 route=1 uri=1 missing=1"
    );
    assert_eq!(
        q(
            "sip:bob@h",
            "sip:carol@h",
            "X-Branch: sip:x@PREMIUM.example:5060\r\n"
        ),
        "SIP/2.0 200 route=-1 uri=1 missing=1"
    );
    // The boss's allow rule covers the branch too.
    assert_eq!(
        q(
            "sip:boss@h",
            "sip:carol@h",
            "X-Branch: sip:x@premium.example\r\n"
        ),
        "SIP/2.0 200 route=1 uri=1 missing=1"
    );
    // EXCEPT, and an allow rule before a deny rule.
    assert_eq!(
        q("sip:spammer@h", "sip:carol@h", ""),
        "SIP/2.0 200 route=-1 uri=1 missing=1"
    );
    assert_eq!(
        q("sip:spammer@h", "sip:alice@h", ""),
        "SIP/2.0 200 route=1 uri=1 missing=1"
    );
    assert_eq!(
        q("sip:spammer@h", "sip:911@h", ""),
        "SIP/2.0 200 route=1 uri=1 missing=1"
    );
    // allow_uri compares the URI as given.
    assert_eq!(
        q(
            "sip:alice@h",
            "sip:carol@h",
            "X-Uri: sip:out@gw1.example;transport=tcp\r\n"
        ),
        "SIP/2.0 200 route=1 uri=1 missing=1"
    );
    assert_eq!(
        q("sip:bob@h", "sip:carol@h", "X-Uri: sip:out@gw1.example\r\n"),
        "SIP/2.0 200 route=1 uri=-1 missing=1"
    );

    // MI allow_uri (permissions/mi.c): the same pair, uri as the From side.
    let base = format!("{}/uri", dir.path().display());
    let (ok, r) = mi(
        mi_port,
        &["allow_uri", &base, "sip:alice@h", "sip:out@gw1.example"],
    );
    assert!(ok && r.contains("OK"), "{r}");
    let (ok, r) = mi(
        mi_port,
        &["allow_uri", &base, "sip:bob@h", "sip:out@gw1.example"],
    );
    assert!(!ok && r.contains("403") && r.contains("Forbidden"), "{r}");
    let (ok, r) = mi(
        mi_port,
        &["allow_uri", &base, "sip:bob@h", "sip:out@elsewhere.example"],
    );
    assert!(ok && r.contains("OK"), "{r}");
    let (ok, r) = mi(mi_port, &["allow_uri", "", "sip:bob@h", "sip:x@y"]);
    assert!(
        !ok && r.contains("404") && r.contains("Basename is empty"),
        "{r}"
    );

    let r = |contact: &str| ask(p.port, "127.0.0.1", &register("sip:u@h", contact));
    assert_eq!(
        r("Contact: <sip:u@127.0.0.1:5099>\r\n"),
        "SIP/2.0 200 reg=1"
    );
    assert_eq!(
        r("Contact: <sip:u@10.0.0.1:5060>\r\n"),
        "SIP/2.0 200 reg=-1"
    );
    assert_eq!(
        r("Contact: <sip:u@127.0.0.1:5099>, <sip:u@10.0.0.1>\r\n"),
        "SIP/2.0 200 reg=-1"
    );
    assert_eq!(r("Contact: *\r\nExpires: 0\r\n"), "SIP/2.0 200 reg=1");
    assert_eq!(r(""), "SIP/2.0 200 reg=1");
    let log = p.stop();
    assert!(log.contains("permissions.deny: line 3"), "{log}");
}

#[test]
fn check_all_branches_off() {
    let dir = rule_files();
    let p = Proxy::start(&files_script(dir.path(), 0, free_port()));
    // The branch is not looked at.
    assert_eq!(
        ask(
            p.port,
            "127.0.0.1",
            &options(
                "sip:bob@h",
                "sip:carol@h",
                "X-Branch: sip:x@premium.example\r\n"
            )
        ),
        "SIP/2.0 200 route=1 uri=1 missing=1"
    );
    // permissions.c: without check_all_branches an allow match does not
    // skip the deny file in allow_register.
    assert_eq!(
        ask(
            p.port,
            "127.0.0.1",
            &register("sip:u@h", "Contact: <sip:u@127.0.0.1:5099>\r\n")
        ),
        "SIP/2.0 200 reg=-1"
    );
}

fn parts_script(main: &Tables, inbound: &Tables, mi_port: u16) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    permissions = {{
      db_url = "{URL}",
      address_table = "{a}",
      partition = {{ "inbound: table_name = {b}", "outbound: db_url = {URL}; table_name = {a}" }},
    }},
  }},
}}

function route.main()
  sip.var.g = "-"
  local _, d = sip.permissions.check_source_address(1)
  local _, i = sip.permissions.check_source_address(7, nil, nil, "inbound")
  local _, o = sip.permissions.check_source_address(1, nil, nil, "outbound")
  local _, a = sip.permissions.check_address(8, "$hdr(X-IP)", 0, "any", nil, nil, "inbound")
  local _, g = sip.permissions.get_source_group("$var(g)", "inbound")
  sip.sl.sl_send_reply(200, "d=" .. d .. " i=" .. i .. " o=" .. o .. " a=" .. a .. " g=" .. g .. ":" .. sip.var.g)
end
"#,
        a = main.address,
        b = inbound.address
    )
}

#[test]
fn partitions_have_their_own_address_tables() {
    let main = Tables::new("pp");
    let inbound = Tables::new("pi");
    sql(&format!(
        "INSERT INTO {} (grp, ip, mask, port, proto) VALUES (1, '127.0.0.2', 32, 0, 'any')",
        main.address
    ));
    sql(&format!(
        "INSERT INTO {} (grp, ip, mask, port, proto) VALUES (7, '127.0.0.3', 32, 0, 'any'), (8, '10.0.0.0', 8, 0, 'any')",
        inbound.address
    ));
    let mi_port = free_port();
    let p = Proxy::start(&parts_script(&main, &inbound, mi_port));
    let q = |from_ip: &str, xip: &str| {
        ask(
            p.port,
            from_ip,
            &options("sip:a@h", "sip:b@h", &format!("X-IP: {xip}\r\n")),
        )
    };
    assert_eq!(
        q("127.0.0.2", "10.1.2.3"),
        "SIP/2.0 200 d=1 i=-1 o=1 a=1 g=-1:-"
    );
    assert_eq!(
        q("127.0.0.3", "192.168.0.1"),
        "SIP/2.0 200 d=-1 i=1 o=-1 a=-1 g=1:7"
    );

    let (ok, all) = mi(mi_port, &["address_dump"]);
    assert!(ok, "{all}");
    let all: String = all.chars().filter(|c| !c.is_whitespace()).collect();
    for name in [
        "\"name\":\"default\"",
        "\"name\":\"inbound\"",
        "\"name\":\"outbound\"",
    ] {
        assert!(all.contains(name), "{all}");
    }
    let (ok, one) = mi(mi_port, &["address_dump", "inbound"]);
    let one: String = one.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        ok && one.contains("\"part\":\"inbound\"") && one.contains("127.0.0.3"),
        "{one}"
    );
    assert!(!one.contains("127.0.0.2"), "{one}");
    let (ok, sub) = mi(mi_port, &["subnet_dump", "inbound"]);
    assert!(ok && sub.contains("10.0.0.0"), "{sub}");

    // A reload of one partition reads only its table.
    sql(&format!(
        "INSERT INTO {} (grp, ip) VALUES (7, '127.0.0.2')",
        inbound.address
    ));
    sql(&format!(
        "INSERT INTO {} (grp, ip) VALUES (1, '127.0.0.3')",
        main.address
    ));
    let (ok, r) = mi(mi_port, &["address_reload", "inbound"]);
    assert!(ok && r.contains("OK"), "{r}");
    assert_eq!(
        q("127.0.0.2", "10.1.2.3"),
        "SIP/2.0 200 d=1 i=1 o=1 a=1 g=1:7"
    );
    assert_eq!(
        q("127.0.0.3", "10.1.2.3"),
        "SIP/2.0 200 d=-1 i=1 o=-1 a=1 g=1:7"
    );
    let (ok, r) = mi(mi_port, &["address_reload"]);
    assert!(ok && r.contains("OK"), "{r}");
    assert_eq!(
        q("127.0.0.3", "10.1.2.3"),
        "SIP/2.0 200 d=1 i=1 o=1 a=1 g=1:7"
    );
    let (ok, r) = mi(mi_port, &["address_reload", "nosuch"]);
    assert!(!ok && r.contains("No such partition"), "{r}");
    p.stop();
}

#[test]
fn bad_partitions_are_refused_at_start() {
    let base = |part: &str| {
        format!(
            r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  modules = {{ mi_fifo = false, permissions = {{ partition = "{part}" }} }},
}}
function route.main()
  sip.permissions.check_source_address(1, nil, nil, "nosuch")
end
"#
        )
    };
    let e = Proxy::try_start(&base("inbound: table = x"))
        .err()
        .expect("bad token");
    assert!(e.contains("invalid token 'table = x'"), "{e}");
    let e = Proxy::try_start(&base("inbound: table_name = x"))
        .err()
        .expect("no db_url");
    assert!(e.contains("partition 'inbound' has no db_url"), "{e}");
}

/// OpenSIPS permissions.c get_pathname: an opensips.cfg naming its rule
/// files without a '/' (the default pair and a basename argument) finds
/// them in its own directory, not in the working directory lunasip was
/// started from (here an empty one of its own).
#[test]
fn relative_rule_files_are_found_beside_the_config() {
    let port = free_port();
    let cfg = r#"listen=udp:127.0.0.1:{PORT}
loadmodule "sl.so"
loadmodule "permissions.so"
modparam("permissions", "default_allow_file", "rules.allow")
modparam("permissions", "default_deny_file", "rules.deny")

route {
    if (!allow_routing()) {
        sl_send_reply(403, "default pair denies");
        exit;
    }
    if (!allow_routing("dial")) {
        sl_send_reply(403, "dial pair denies");
        exit;
    }
    sl_send_reply(200, "allowed");
}
"#;
    let p = Proxy::try_start_beside(
        "opensips.cfg",
        cfg,
        port,
        &[
            ("rules.allow", "\"^sip:boss@\" : ALL\n"),
            ("rules.deny", "ALL : \"^sip:900[0-9]*@\"\n"),
            ("dial.allow", "# nothing\n"),
            ("dial.deny", "ALL : \"^sip:premium@\"\n"),
        ],
    )
    .unwrap_or_else(|log| panic!("lunasip did not start:\n{log}"));
    let ask_as = |from: &str, to: &str| ask(port, "127.0.0.1", &options(from, to, ""));
    assert_eq!(
        ask_as("sip:alice@127.0.0.1", "sip:9001@127.0.0.1"),
        "SIP/2.0 403 default pair denies",
        "{}",
        p.log_text()
    );
    assert_eq!(
        ask_as("sip:boss@127.0.0.1", "sip:9001@127.0.0.1"),
        "SIP/2.0 200 allowed"
    );
    assert_eq!(
        ask_as("sip:alice@127.0.0.1", "sip:premium@127.0.0.1"),
        "SIP/2.0 403 dial pair denies"
    );
    assert_eq!(
        ask_as("sip:alice@127.0.0.1", "sip:bob@127.0.0.1"),
        "SIP/2.0 200 allowed"
    );
    let log = p.stop();
    assert!(!log.contains("not found: empty rule set"), "{log}");
}
