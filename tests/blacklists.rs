//! Destination blacklists as the caller, the callee and the MI see them
//! (OpenSIPS 3.4 `blacklists.c`, `core_cmds.c`, tm `t_fwd.c`,
//! `forward.c`): a copy to a blacklisted address is never sent, the caller
//! gets 473 "Filtered destination" from `sl_reply_error`; rules added or
//! removed at run time (script or MI) apply to the next call.

mod common;

use common::rpc::{mi_script, rpc};
use common::*;
use serde_json::json;
use std::net::UdpSocket;
use std::time::Duration;

/// A script whose callee is 127.0.0.1:`callee`: `blocked` names a list
/// the route uses; `gw` lists the callee, `learned` (expire, default)
/// starts empty.
fn script(mi: u16, callee: u16) -> String {
    let routes = format!(
        r#"config.blacklists = {{
  gw = {{ "udp,127.0.0.1,{callee}", "!(any, 127.0.0.0/8)" }},
  learned = {{ flags = {{ "expire", "default" }} }},
}}
function route.main()
  if sip.pv.rm == "ACK" then return end
  if sip.pv.rU == "blocked" then sip.use_blacklist("gw") end
  if sip.pv.rU == "stateless" then
    sip.use_blacklist("gw")
    if not sip.forward("sip:127.0.0.1:{callee}") then sip.sl.sl_reply_error() end
    return
  end
  sip.pv.du = "sip:127.0.0.1:{callee}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end"#
    );
    mi_script(mi, "", &routes)
}

fn invite(user: &str, local: &str, tag: &str) -> String {
    format!(
        "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{tag}\r\n\
         From: <sip:alice@127.0.0.1>;tag={tag}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: {tag}@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:alice@{local}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends an INVITE for `user` and returns the first final answer's
/// status line (None: no final answer within 2 s).
fn call(port: u16, user: &str, tag: &str) -> Option<String> {
    final_reply(port, user, tag).and_then(|r| r.lines().next().map(str::to_string))
}

/// The first final answer to an INVITE for `user`.
fn final_reply(port: u16, user: &str, tag: &str) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let local = s.local_addr().expect("addr").to_string();
    s.send_to(invite(user, &local, tag).as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = [0u8; 65536];
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 1") {
            return Some(r);
        }
    }
    None
}

/// The request line of what the callee socket received within `wait`.
fn received(callee: &UdpSocket, wait: Duration) -> Option<String> {
    callee.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 65536];
    let (n, _) = callee.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().map(str::to_string)
}

/// OpenSIPS t_fwd.c/error.c: with the list in use the INVITE never
/// reaches the callee and the caller (SIPp) gets 473 Filtered
/// destination; without it the same callee gets the INVITE.
#[test]
fn blacklisted_callee_never_receives_the_invite() {
    let (callee, callee_port) = udp_listener();
    let mi = free_port();
    let p = Proxy::start(&script(mi, callee_port));
    let run = uac("uac_473.xml", p.port, "u1", 1, 1, &["-s", "blocked"]);
    let leaked = received(&callee, Duration::from_millis(500));
    // Stateless forward is checked too (forward.c).
    let stateless = call(p.port, "stateless", "bl-sl");
    let leaked_sl = received(&callee, Duration::from_millis(300));
    // The control: a call that does not use the list reaches the callee.
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = s.local_addr().expect("addr").to_string();
    s.send_to(
        invite("open", &local, "bl-open").as_bytes(),
        ("127.0.0.1", p.port),
    )
    .expect("send");
    let open = received(&callee, Duration::from_secs(2));
    let log = p.stop();
    assert_eq!(run.successful, 1, "{run:?}\n{log}");
    assert_eq!(leaked, None, "{log}");
    assert_eq!(
        stateless.as_deref(),
        Some("SIP/2.0 473 Filtered destination"),
        "{log}"
    );
    assert_eq!(leaked_sl, None, "{log}");
    assert_eq!(
        open.as_deref(),
        Some("INVITE sip:open@127.0.0.1 SIP/2.0"),
        "{log}"
    );
}

/// blacklists.c MI: a rule added to the `default` list blocks the next
/// call, `list_blacklists` shows it, `check_blacklist` finds it, and once
/// deleted calls go through again; read-only lists refuse changes.
#[test]
fn mi_rules_apply_to_the_next_call() {
    let (callee, callee_port) = udp_listener();
    let mi = free_port();
    let p = Proxy::start(&script(mi, callee_port));
    let rule = format!("udp,127.0.0.1,{callee_port}");
    let added = rpc(
        mi,
        "add_blacklist_rule",
        json!({"name": "learned", "rule": rule, "expire": 60}),
    );
    let listed = rpc(mi, "list_blacklists", json!({"name": "learned"}));
    let checked = rpc(
        mi,
        "check_blacklist",
        json!({"name": "learned", "ip": "127.0.0.1", "port": callee_port, "proto": "udp"}),
    );
    let missed = rpc(
        mi,
        "check_blacklist",
        json!({"name": "learned", "ip": "127.0.0.2", "port": callee_port}),
    );
    let which = rpc(
        mi,
        "check_blacklists",
        json!({"ip": "127.0.0.1", "port": callee_port, "proto": "udp"}),
    );
    let refused = rpc(
        mi,
        "add_blacklist_rule",
        json!({"name": "gw", "rule": "10.0.0.1"}),
    );
    let blocked = call(p.port, "open", "bl-mi1");
    let leaked = received(&callee, Duration::from_millis(300));
    let deleted = rpc(
        mi,
        "del_blacklist_rule",
        json!({"name": "learned", "rule": rule}),
    );
    let again = rpc(
        mi,
        "del_blacklist_rule",
        json!({"name": "learned", "rule": rule}),
    );
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = s.local_addr().expect("addr").to_string();
    s.send_to(
        invite("open", &local, "bl-mi2").as_bytes(),
        ("127.0.0.1", p.port),
    )
    .expect("send");
    let through = received(&callee, Duration::from_secs(2));
    let log = p.stop();
    assert_eq!(added["result"], json!("OK"), "{added}");
    let rules = &listed["result"]["Rules"];
    assert_eq!(
        listed["result"]["flags"],
        json!(["expire", "default"]),
        "{listed}"
    );
    assert_eq!(rules[0]["IP"], json!("127.0.0.1"), "{listed}");
    assert_eq!(rules[0]["Mask"], json!("255.255.255.255"), "{listed}");
    assert_eq!(rules[0]["Proto"], json!("udp"), "{listed}");
    assert_eq!(rules[0]["Port"], json!(callee_port), "{listed}");
    assert!(
        rules[0]["Expire"]
            .as_u64()
            .is_some_and(|e| e <= 60 && e > 50),
        "{listed}"
    );
    assert_eq!(checked["result"]["IP"], json!("127.0.0.1"), "{checked}");
    assert_eq!(missed["error"]["code"], json!(404), "{missed}");
    assert_eq!(which["result"], json!(["gw", "learned"]), "{which}");
    assert_eq!(refused["error"]["code"], json!(403), "{refused}");
    assert_eq!(
        blocked.as_deref(),
        Some("SIP/2.0 473 Filtered destination"),
        "{log}"
    );
    assert_eq!(leaked, None, "{log}");
    assert_eq!(deleted["result"], json!("OK"), "{deleted}");
    assert_eq!(again["error"]["code"], json!(404), "{again}");
    assert_eq!(
        through.as_deref(),
        Some("INVITE sip:open@127.0.0.1 SIP/2.0"),
        "{log}"
    );
}

/// core_cmds.c `check_blacklist_rule`, `add_blacklist_rule`,
/// `del_blacklist_rule`, `unuse_blacklist` from a route, answered in
/// reply headers.
#[test]
fn script_functions_answer_in_headers() {
    let mi = free_port();
    let routes = r#"config.blacklists = {
  gw = { "tcp,10.0.0.0/8,5060", "udp,192.168.1.1,0,*X-Bad*" },
  learned = { flags = "expire" },
}
function route.main()
  local r = {}
  r[#r + 1] = tostring(sip.check_blacklist_rule("gw", "10.1.1.1", 5060, "tcp"))
  r[#r + 1] = tostring(sip.check_blacklist_rule("gw", "10.1.1.1", 5060, "udp"))
  r[#r + 1] = tostring(sip.check_blacklist_rule("gw", "192.168.1.1", 5080, "udp", "INVITE X-Bad: 1"))
  r[#r + 1] = tostring(sip.check_blacklist_rule("gw", "192.168.1.1", 5080, "udp", "INVITE"))
  r[#r + 1] = tostring(sip.add_blacklist_rule("gw", "1.2.3.4"))
  r[#r + 1] = tostring(sip.add_blacklist_rule("learned", "1.2.3.0/24", 0, "udp", nil, 30))
  r[#r + 1] = tostring(sip.check_blacklist_rule("learned", "1.2.3.9", 5060, "udp"))
  r[#r + 1] = tostring(sip.check_blacklist_rule("all", "1.2.3.9", 5060, "udp"))
  sip.use_blacklist("all")
  r[#r + 1] = tostring(sip.check_blacklist_rule("all", "1.2.3.9", 5060, "udp"))
  sip.unuse_blacklist("learned")
  r[#r + 1] = tostring(sip.check_blacklist_rule("all", "1.2.3.9", 5060, "udp"))
  r[#r + 1] = tostring(sip.del_blacklist_rule("learned", "1.2.3.0/24", 0, "udp"))
  r[#r + 1] = tostring(sip.del_blacklist_rule("learned", "1.2.3.0/24", 0, "udp"))
  sip.append_to_reply("X-Bl: " .. table.concat(r, ",") .. "\r\n")
  sip.sl.sl_send_reply(200, "OK")
end"#;
    let p = Proxy::start(&mi_script(mi, "", routes));
    let r = final_reply(p.port, "x", "bl-fn");
    let log = p.stop();
    let r = r.unwrap_or_else(|| panic!("no reply\n{log}"));
    assert!(
        r.contains(
            "\r\nX-Bl: true,false,true,false,false,true,true,false,true,false,true,false\r\n"
        ),
        "{r}\n{log}"
    );
}

/// `lunasip check` refuses a bad rule, naming the list and the rule's
/// position.
#[test]
fn bad_rules_are_refused_at_load() {
    let bad = "config = { listen = { \"udp:127.0.0.1:{PORT}\" },\n  blacklists = { gw = { \"udp,127.0.0.1\", \"gw.example.com\" } } }\nfunction route.main() end\n";
    let err = Proxy::try_start(bad)
        .err()
        .expect("a bad rule must be refused");
    assert!(
        err.contains("config.blacklists.gw[2]: \"gw.example.com\" is not an IP address"),
        "{err}"
    );
    let flags = "config = { listen = { \"udp:127.0.0.1:{PORT}\" },\n  blacklists = { gw = { flags = { \"readonly\", \"expire\" } } } }\nfunction route.main() end\n";
    let err = Proxy::try_start(flags)
        .err()
        .expect("readonly+expire must be refused");
    assert!(err.contains("cannot have expiring rules"), "{err}");
}
