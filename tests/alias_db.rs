//! alias_db on OpenSIPS 3.4's `dbaliases` table in MariaDB (made by
//! `lunasip db init`): an INVITE to an alias reaches the SIPp callee the
//! alias stands for (`alias_db_lookup` rewrites the R-URI, then the
//! registrar looks the user up); `alias_db_find` answers both ways into
//! an AVP, shown in a reply's reason.

mod common;

use common::mysql::{sql, Tables, URL};
use common::*;
use std::time::Duration;

fn script(t: &Tables, mi_port: u16) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    alias_db = {{ db_url = "{URL}", append_branches = 1 }},
  }},
}}

function route.main()
  if sip.is_method("REGISTER") then
    sip.registrar.save("location")
    sip.exit()
  end
  if sip.is_method("OPTIONS") then
    local _, f = sip.alias_db.alias_db_find("{ali}", "$ru", "$avp(x)")
    local _, r = sip.alias_db.alias_db_find("{ali}", "$ru", "$avp(y)", "r")
    local _, d = sip.alias_db.alias_db_find("{ali}", "$ru", "$avp(z)", "d")
    sip.sl.sl_send_reply(200, "f=" .. f .. " " .. tostring(sip.pv.get("$avp(x)")) ..
      " r=" .. r .. " " .. tostring(sip.pv.get("$(avp(y)[0])")) .. "," .. tostring(sip.pv.get("$(avp(y)[1])")) ..
      " d=" .. d .. " " .. tostring(sip.pv.get("$(avp(z)[0])")) .. "," .. tostring(sip.pv.get("$(avp(z)[1])")))
    sip.exit()
  end
  if sip.has_totag() then
    sip.tm.t_relay()
    sip.exit()
  end
  local ok, rc = sip.alias_db.alias_db_lookup("{ali}")
  if not ok then
    sip.sl.sl_send_reply(404, "No Alias " .. rc)
    sip.exit()
  end
  if not sip.registrar.lookup("location") then
    sip.sl.sl_send_reply(404, "Not Registered")
    sip.exit()
  end
  sip.tm.t_relay()
end
"#,
        ali = t.dbaliases
    )
}

fn options(port: u16, user: &str, host: &str) -> String {
    let msg = format!(
        "OPTIONS sip:{user}@{host} SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-al{user}\r\n\
         From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:{user}@{host}>\r\nCall-ID: al-{user}-{host}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let r = udp_exchange(&format!("127.0.0.1:{port}"), &msg, Duration::from_secs(3))
        .unwrap_or_default();
    r.lines().next().unwrap_or("").to_string()
}

#[test]
fn calls_to_an_alias_reach_the_user_it_stands_for() {
    let t = Tables::new("al");
    sql(&format!(
        "INSERT INTO {} (alias_username, alias_domain, username, domain) VALUES \
         ('100', '127.0.0.1', 'alice', '127.0.0.1'), ('sales', 'example.com', 'alice', 'example.com'), \
         ('support', 'example.com', 'alice', 'example.com'), ('sales', 'other.org', 'bob', 'other.org')",
        t.dbaliases
    ));
    let mi_port = free_port();
    let p = Proxy::start(&script(&t, mi_port));
    let callee = uas("uas.xml", "u1");
    let reg = uac(
        "reg_register.xml",
        p.port,
        "u1",
        1,
        1,
        &[
            "-s",
            "alice",
            "-key",
            "contact_port",
            &callee.port.to_string(),
            "-key",
            "expires",
            "60",
        ],
    );
    assert_eq!(reg.successful, 1, "{}", reg.errors);
    // A call to the alias 100 is a call to alice.
    let call = uac("uac.xml", p.port, "u1", 1, 1, &["-s", "100"]);
    assert_eq!(call.successful, 1, "{}\n{}", call.errors, p.log_text());
    assert_eq!(callee.counts(1).0, 1, "{}", callee.errors());
    // No such alias: -1.
    let none = uac("uac.xml", p.port, "u1", 1, 1, &["-s", "nobody"]);
    assert_eq!(none.successful, 0);
    assert!(
        none.messages.contains("404 No Alias -1"),
        "{}",
        none.messages
    );

    // Without the domain both "sales" rows match: both kept.
    let r = options(p.port, "sales", "example.com");
    assert!(
        r.starts_with("SIP/2.0 200 f=1 sip:alice@example.com r=-1 nil,nil d=1 "),
        "{r}"
    );
    let d = r.split(" d=1 ").nth(1).unwrap_or("");
    assert!(
        d.contains("sip:alice@example.com") && d.contains("sip:bob@other.org"),
        "{r}"
    );
    // Reverse with append_branches: every alias of alice@example.com.
    let r = options(p.port, "alice", "example.com");
    assert!(r.starts_with("SIP/2.0 200 f=-1 nil r=1 "), "{r}");
    assert!(
        r.contains("sip:sales@example.com") && r.contains("sip:support@example.com"),
        "{r}"
    );
    let r = options(p.port, "sales", "nowhere.net");
    assert!(
        r.starts_with("SIP/2.0 200 f=-1 nil r=-1 nil,nil d=1 "),
        "{r}"
    );
    let d = r.split(" d=1 ").nth(1).unwrap_or("");
    assert!(
        d.contains("sip:alice@example.com") && d.contains("sip:bob@other.org"),
        "{r}"
    );
}
