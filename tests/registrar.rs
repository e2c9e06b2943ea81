//! registrar + usrloc in memory (db_mode 0), end to end: the built binary,
//! SIPp registering and calling, a SIPp callee, and single datagrams for
//! the exact replies (RFC 3261 §10.3: 200 listing the bindings, 423 with
//! Min-Expires, `*` removing all; OpenSIPS lookup codes). What is asserted
//! is what went on the wire and what the MI answers.

mod common;

use common::ds::mi;
use common::*;
use std::time::{Duration, Instant};

/// A registrar: REGISTERs saved in `location`; other requests looked up
/// and relayed, 404 for lookup -1 (the code goes into a header of the
/// reply so the tests can read it).
fn script(mi_port: u16, extra: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    registrar = {{ min_expires = 10, max_contacts = 3 }},
    usrloc = {{ timer_interval = 1 {extra} }},
  }},
}}

function route.main()
  if sip.is_method("REGISTER") then
    sip.registrar.save("location")
    sip.exit()
  end
  if sip.is_method("OPTIONS") then
    sip.sl.sl_send_reply(200, "Alive")
    sip.exit()
  end
  if sip.has_totag() then
    sip.tm.t_relay()
    sip.exit()
  end
  local ok, rc = sip.registrar.lookup("location", "m")
  if not ok then
    if rc == -1 then
      sip.sl.sl_send_reply(404, "Not Found")
    else
      sip.sl.sl_send_reply(480, "Lookup " .. rc)
    end
    sip.exit()
  end
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
"#
    )
}

/// A REGISTER datagram for `user` with the given Contact and Expires lines.
pub fn register(
    user: &str,
    callid: &str,
    cseq: u32,
    contact: &str,
    expires: Option<u32>,
) -> String {
    let exp = expires.map_or(String::new(), |e| format!("Expires: {e}\r\n"));
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-{callid}-{cseq}\r\nFrom: <sip:{user}@127.0.0.1>;tag=r{cseq}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {callid}\r\nCSeq: {cseq} REGISTER\r\n{contact}{exp}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn invite(user: &str, callid: &str) -> String {
    format!(
        "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-{callid}\r\nFrom: <sip:caller@127.0.0.1>;tag=c1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {callid}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{{LOCAL}}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends `msg`, returns the first final answer (skipping 100 Trying).
pub fn ask(port: u16, msg: &str) -> String {
    let to = format!("127.0.0.1:{port}");
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let local = s.local_addr().expect("addr");
    let msg = msg.replace("{LOCAL}", &local.to_string());
    s.send_to(msg.as_bytes(), &to).expect("send");
    let mut buf = [0u8; 65536];
    loop {
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            return String::new();
        };
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 100") {
            return r;
        }
    }
}

fn status(reply: &str) -> &str {
    reply.lines().next().unwrap_or("")
}

fn sipp_register(proxy: u16, user: &str, contact_port: u16, expires: u32) -> SippRun {
    uac(
        "reg_register.xml",
        proxy,
        "u1",
        1,
        1,
        &[
            "-s",
            user,
            "-key",
            "contact_port",
            &contact_port.to_string(),
            "-key",
            "expires",
            &expires.to_string(),
        ],
    )
}

#[test]
fn register_then_call_reaches_the_registered_uas() {
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, ""));
    let callee = uas("uas.xml", "u1");
    let r = sipp_register(p.port, "alice", callee.port, 60);
    assert_eq!(r.successful, 1, "REGISTER: {}\n{}", r.errors, p.log_text());
    assert!(
        r.messages.contains(";expires=60") || r.messages.contains(";expires=59"),
        "{}",
        r.messages
    );

    let call = uac("uac.xml", p.port, "u1", 2, 5, &["-s", "alice"]);
    assert_eq!(
        call.successful,
        2,
        "calls: {}\n{}",
        call.errors,
        p.log_text()
    );
    assert_eq!(callee.counts(2).0, 2, "{}", callee.errors());

    // The MI shows the binding as it was saved.
    let (ok, dump) = mi(mi_port, &["ul_dump"]);
    assert!(ok, "{dump}");
    assert!(
        dump.contains("\"AOR\": \"alice\"") || dump.contains("\"AOR\":\"alice\""),
        "{dump}"
    );
    assert!(
        dump.contains(&format!("127.0.0.1:{}", callee.port)),
        "{dump}"
    );
    assert!(dump.contains("sipp-registrar-test"), "{dump}");
    let (ok, show) = mi(mi_port, &["ul_show_contact", "location", "alice"]);
    assert!(ok && show.contains("Contacts"), "{show}");
    let (ok, _) = mi(mi_port, &["ul_show_contact", "location", "nobody"]);
    assert!(!ok);

    let log = p.stop();
    assert_eq!(stat(&log, "registrar:accepted_regs"), 1, "{log}");
    assert_eq!(stat(&log, "usrloc:registered_users"), 1, "{log}");
    assert_eq!(stat(&log, "usrloc:location-contacts"), 1, "{log}");
}

#[test]
fn unregistered_user_gets_404_and_lookup_codes() {
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, ""));
    // lib/reg/lookup.c: no contacts → LOOKUP_NO_RESULTS (-1).
    let r = ask(p.port, &invite("nobody", "c-404"));
    assert_eq!(status(&r), "SIP/2.0 404 Not Found", "{r}");
    // Contacts that allow only MESSAGE: an INVITE with method filtering
    // finds them but none fits → LOOKUP_METHOD_UNSUP (-2).
    let reg = register(
        "bob",
        "c-bob",
        1,
        "Contact: <sip:bob@127.0.0.1:5999>;methods=\"MESSAGE\"\r\n",
        Some(60),
    );
    assert!(status(&ask(p.port, &reg)).starts_with("SIP/2.0 200"));
    let r = ask(p.port, &invite("bob", "c-bob-inv"));
    assert_eq!(status(&r), "SIP/2.0 480 Lookup -2", "{r}");
}

#[test]
fn interval_too_brief_star_and_binding_list() {
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, ""));
    // §10.3 step 7: below min_expires (10) → 423 with Min-Expires.
    let r = ask(
        p.port,
        &register(
            "carol",
            "c-c",
            1,
            "Contact: <sip:carol@127.0.0.1:6001>\r\n",
            Some(5),
        ),
    );
    assert_eq!(status(&r), "SIP/2.0 423 Interval Too Brief", "{r}");
    assert!(r.contains("Min-Expires: 10\r\n"), "{r}");

    // Two contacts, then a third from another Call-ID: the 200 lists all.
    let two =
        "Contact: <sip:carol@127.0.0.1:6001>;expires=100, <sip:carol@127.0.0.1:6002>;q=0.5\r\n";
    let r = ask(p.port, &register("carol", "c-c", 2, two, Some(200)));
    assert_eq!(status(&r), "SIP/2.0 200 OK", "{r}");
    assert!(
        r.contains("Contact: <sip:carol@127.0.0.1:6001>;expires=100"),
        "{r}"
    );
    assert!(
        r.contains("Contact: <sip:carol@127.0.0.1:6002>;expires=200;q=0.50"),
        "{r}"
    );
    let r = ask(
        p.port,
        &register(
            "carol",
            "c-d",
            1,
            "Contact: <sip:carol@127.0.0.1:6003>\r\n",
            Some(300),
        ),
    );
    assert_eq!(r.matches("\r\nContact: ").count(), 3, "{r}");
    // No Contact: a query answered with the bindings.
    let r = ask(p.port, &register("carol", "c-e", 1, "", None));
    assert_eq!(status(&r), "SIP/2.0 200 OK");
    assert_eq!(r.matches("\r\nContact: ").count(), 3, "{r}");
    // max_contacts 3: a fourth is refused, nothing changes.
    let r = ask(
        p.port,
        &register(
            "carol",
            "c-f",
            1,
            "Contact: <sip:carol@127.0.0.1:6004>\r\n",
            Some(300),
        ),
    );
    assert!(status(&r).starts_with("SIP/2.0 503"), "{r}");
    // A malformed Expires → 400 with a reason.
    let r = ask(
        p.port,
        &register(
            "carol",
            "c-g",
            1,
            "Contact: <sip:carol@127.0.0.1:6005>;expires=soon\r\n",
            None,
        ),
    );
    assert_eq!(
        status(&r),
        "SIP/2.0 400 Invalid expires param in Contact",
        "{r}"
    );
    // "*" needs Expires: 0…
    let r = ask(
        p.port,
        &register("carol", "c-h", 1, "Contact: *\r\n", Some(60)),
    );
    assert!(status(&r).starts_with("SIP/2.0 400"), "{r}");
    // …and with it removes every binding.
    let r = ask(
        p.port,
        &register("carol", "c-h", 2, "Contact: *\r\n", Some(0)),
    );
    assert_eq!(status(&r), "SIP/2.0 200 OK", "{r}");
    assert!(!r.contains("\r\nContact: "), "{r}");
    let r = ask(p.port, &invite("carol", "c-carol-inv"));
    assert_eq!(status(&r), "SIP/2.0 404 Not Found", "{r}");
    let log = p.stop();
    assert_eq!(stat(&log, "registrar:accepted_regs"), 4, "{log}");
    assert_eq!(stat(&log, "registrar:rejected_regs"), 4, "{log}");
}

#[test]
fn stale_cseq_is_ignored_and_expires_0_removes() {
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, ""));
    let ct = "Contact: <sip:dave@127.0.0.1:6010>\r\n";
    assert!(status(&ask(p.port, &register("dave", "c-x", 5, ct, Some(60)))).ends_with("200 OK"));
    // The same Call-ID with an older CSeq does not remove it (§10.3 step 6).
    let r = ask(p.port, &register("dave", "c-x", 4, ct, Some(0)));
    assert_eq!(r.matches("\r\nContact: ").count(), 1, "{r}");
    // A newer one with expires 0 does.
    let r = ask(p.port, &register("dave", "c-x", 6, ct, Some(0)));
    assert_eq!(r.matches("\r\nContact: ").count(), 0, "{r}");
}

#[test]
fn registrations_expire() {
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, "").replace("min_expires = 10", "min_expires = 1"));
    let r = ask(
        p.port,
        &register(
            "erin",
            "c-e1",
            1,
            "Contact: <sip:erin@127.0.0.1:6020>\r\n",
            Some(2),
        ),
    );
    assert_eq!(status(&r), "SIP/2.0 200 OK", "{r}");
    let (_, dump) = mi(mi_port, &["ul_dump"]);
    assert!(dump.contains("erin"), "{dump}");
    std::thread::sleep(Duration::from_millis(3200));
    // Gone for lookup at once, and from memory by the timer (1 s).
    let r = ask(p.port, &invite("erin", "c-erin-inv"));
    assert_eq!(status(&r), "SIP/2.0 404 Not Found", "{r}");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (_, dump) = mi(mi_port, &["ul_dump"]);
        if !dump.contains("erin") {
            break;
        }
        assert!(Instant::now() < deadline, "still there: {dump}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = p.stop();
    assert_eq!(stat(&log, "usrloc:location-expires"), 1, "{log}");
    assert_eq!(stat(&log, "usrloc:registered_users"), 0, "{log}");
}

#[test]
fn path_is_saved_and_used_as_route() {
    // RFC 3327: a balancer in front adds Path; the registrar saves it
    // (path-lazy), echoes it, and a lookup sends the call through it.
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, "").replace(
        "sip.registrar.save(\"location\")",
        "sip.registrar.save(\"location\", \"path-lazy\")",
    ));
    let lb = std::net::UdpSocket::bind("127.0.0.1:0").expect("lb");
    lb.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("t");
    let lb_port = lb.local_addr().expect("a").port();
    let path = format!("Path: <sip:lb@127.0.0.1:{lb_port};lr>\r\nSupported: path\r\n");
    let reg = register(
        "frank",
        "c-p",
        1,
        &format!("{path}Contact: <sip:frank@10.9.9.9:5060>\r\n"),
        Some(60),
    );
    let r = ask(p.port, &reg);
    assert_eq!(status(&r), "SIP/2.0 200 OK", "{r}");
    assert!(
        r.contains(&format!("Path: <sip:lb@127.0.0.1:{lb_port};lr>")),
        "{r}"
    );
    // The INVITE goes to the Path hop with the Path as its Route.
    let inv = invite("frank", "c-p-inv").replace("{LOCAL}", "127.0.0.1:9");
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("c");
    s.send_to(inv.as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let mut buf = [0u8; 65536];
    let (n, _) = lb.recv_from(&mut buf).expect("INVITE at the Path hop");
    let got = String::from_utf8_lossy(&buf[..n]);
    assert!(
        got.starts_with("INVITE sip:frank@10.9.9.9:5060 SIP/2.0"),
        "{got}"
    );
    assert!(
        got.contains(&format!("Route: <sip:lb@127.0.0.1:{lb_port};lr>")),
        "{got}"
    );
}

#[test]
fn parallel_fork_to_every_contact() {
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, ""));
    let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("a");
    let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("b");
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_secs(3))).expect("t");
    }
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let cts =
        format!("Contact: <sip:gina@127.0.0.1:{pa}>;q=0.9, <sip:gina@127.0.0.1:{pb}>;q=0.1\r\n");
    assert!(status(&ask(p.port, &register("gina", "c-g", 1, &cts, Some(60)))).ends_with("200 OK"));
    let inv = invite("gina", "c-g-inv").replace("{LOCAL}", "127.0.0.1:9");
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("c");
    s.send_to(inv.as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let mut buf = [0u8; 65536];
    for (sock, port) in [(&a, pa), (&b, pb)] {
        let (n, _) = sock
            .recv_from(&mut buf)
            .expect("each contact gets the INVITE");
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(
            got.starts_with(&format!("INVITE sip:gina@127.0.0.1:{port} SIP/2.0")),
            "{got}"
        );
    }
}

#[test]
fn mi_removes_contacts() {
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, ""));
    let cts = "Contact: <sip:hal@127.0.0.1:6031>, <sip:hal@127.0.0.1:6032>\r\n";
    assert!(status(&ask(p.port, &register("hal", "c-h", 1, cts, Some(60)))).ends_with("200 OK"));
    let (ok, out) = mi(
        mi_port,
        &["ul_rm_contact", "location", "hal", "sip:hal@127.0.0.1:6031"],
    );
    assert!(ok, "{out}");
    let (_, show) = mi(mi_port, &["ul_show_contact", "location", "hal"]);
    assert!(!show.contains(":6031") && show.contains(":6032"), "{show}");
    let (ok, out) = mi(mi_port, &["ul_rm", "location", "hal"]);
    assert!(ok, "{out}");
    let (ok, _) = mi(mi_port, &["ul_rm", "location", "hal"]);
    assert!(!ok, "an AoR removed twice is not found");
    let r = ask(p.port, &invite("hal", "c-h-inv"));
    assert_eq!(status(&r), "SIP/2.0 404 Not Found", "{r}");

    // ul_add: a permanent binding a call then reaches.
    let ua = std::net::UdpSocket::bind("127.0.0.1:0").expect("ua");
    ua.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("t");
    let contact = format!("sip:hal@{}", ua.local_addr().expect("a"));
    let (ok, out) = mi(
        mi_port,
        &["ul_add", "location", "hal", &contact, "0", "0.5"],
    );
    assert!(ok, "{out}");
    let (_, show) = mi(mi_port, &["ul_show_contact", "location", "hal"]);
    assert!(
        show.contains("permanent") && show.contains("0.50"),
        "{show}"
    );
    let inv = invite("hal", "c-h-inv2").replace("{LOCAL}", "127.0.0.1:9");
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("c");
    s.send_to(inv.as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let mut buf = [0u8; 65536];
    let (n, _) = ua
        .recv_from(&mut buf)
        .expect("INVITE to the MI-added contact");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with(&format!("INVITE {contact} SIP/2.0")));
}

#[test]
fn use_domain_keeps_domains_apart() {
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, ", use_domain = true"));
    let ua = std::net::UdpSocket::bind("127.0.0.1:0").expect("ua");
    ua.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("t");
    let contact = format!("sip:ann@{}", ua.local_addr().expect("a"));
    let reg = register(
        "ann",
        "c-dom",
        1,
        &format!("Contact: <{contact}>\r\n"),
        Some(60),
    )
    .replace("@127.0.0.1>", "@a.example>");
    assert_eq!(status(&ask(p.port, &reg)), "SIP/2.0 200 OK");
    let (_, dump) = mi(mi_port, &["ul_dump"]);
    assert!(dump.contains("ann@a.example"), "{dump}");
    // Another domain's ann is not registered.
    let r = ask(
        p.port,
        &invite("ann", "c-dom-b").replace("ann@127.0.0.1 SIP", "ann@b.example SIP"),
    );
    assert_eq!(status(&r), "SIP/2.0 404 Not Found", "{r}");
    let inv = invite("ann", "c-dom-a")
        .replace("ann@127.0.0.1 SIP", "ann@a.example SIP")
        .replace("{LOCAL}", "127.0.0.1:9");
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("c");
    s.send_to(inv.as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let mut buf = [0u8; 65536];
    let (n, _) = ua.recv_from(&mut buf).expect("INVITE for ann@a.example");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with(&format!("INVITE {contact} SIP/2.0")));
}

#[test]
fn bad_flags_fail_naming_the_script_line() {
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, "").replace(
        "sip.registrar.save(\"location\")",
        "sip.registrar.save(\"location\", \"memory-only,bogus\")",
    ));
    let r = ask(
        p.port,
        &register(
            "ivy",
            "c-i",
            1,
            "Contact: <sip:ivy@127.0.0.1:6040>\r\n",
            Some(60),
        ),
    );
    assert!(status(&r).starts_with("SIP/2.0 500"), "{r}");
    let log = p.log_text();
    assert!(
        log.contains("script.lua:14:") && log.contains("unknown save flag 'bogus'"),
        "{log}"
    );
}

#[test]
fn lookup_in_a_failure_route_fails_over_to_the_registered_user() {
    // In memory a lookup never waits, so it works where a route cannot
    // suspend: a voicemail-style failover to a registered user.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("dead");
    let dead_port = dead.local_addr().expect("a").port();
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{ tm = {{ fr_timeout = 1, fr_inv_timeout = 2 }} }},
}}

function route.main()
  if sip.is_method("REGISTER") then
    sip.registrar.save("location")
    sip.exit()
  end
  if sip.has_totag() then
    sip.tm.t_relay()
    sip.exit()
  end
  sip.tm.t_check_trans()
  sip.tm.t_on_failure("to_vm")
  sip.pv.du = "sip:127.0.0.1:{dead_port}"
  sip.tm.t_relay()
end

function failure_route.to_vm()
  local ok, rc = sip.registrar.lookup("location", nil, "sip:vm@127.0.0.1")
  if ok then sip.tm.t_relay() else sip.tm.t_reply(500, "lookup " .. rc) end
end
"#
    );
    let p = Proxy::start(&script);
    let vm = uas("uas.xml", "u1");
    let r = uac(
        "reg_register.xml",
        p.port,
        "u1",
        1,
        1,
        &[
            "-s",
            "vm",
            "-key",
            "contact_port",
            &vm.port.to_string(),
            "-key",
            "expires",
            "60",
        ],
    );
    assert_eq!(r.successful, 1, "{}", r.errors);
    let call = uac("uac.xml", p.port, "u1", 1, 1, &["-s", "nobody-answers"]);
    assert_eq!(call.successful, 1, "{}\n{}", call.errors, p.log_text());
    assert_eq!(vm.counts(1).0, 1, "{}", vm.errors());
    drop(dead);
}

#[test]
fn ua_filtering_selects_contacts_by_user_agent() {
    // lib/reg/lookup.c: `ua-filtering=/re/` keeps the contacts whose
    // User-Agent the pattern finds; a basic POSIX pattern (no
    // `extended-regexp`), so `\|` is the alternation and `(` is plain.
    let mi_port = free_port();
    let flags = r#""method-filtering,ua-filtering=/Yealink\\|Poly (VVX)/""#;
    let p = Proxy::start(&script(mi_port, "").replace(r#""m")"#, &format!("{flags})")));
    let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("a");
    let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("b");
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .expect("t");
    }
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    for (callid, port, ua) in [
        ("c-ua1", pa, "Yealink SIP-T46S 66.86"),
        ("c-ua2", pb, "Grandstream GXP2170"),
    ] {
        let ct = format!("Contact: <sip:uma@127.0.0.1:{port}>\r\nUser-Agent: {ua}\r\n");
        let r = ask(p.port, &register("uma", callid, 1, &ct, Some(60)));
        assert!(status(&r).ends_with("200 OK"), "{r}");
    }
    let inv = invite("uma", "c-ua-inv").replace("{LOCAL}", "127.0.0.1:9");
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("c");
    s.send_to(inv.as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let mut buf = [0u8; 65536];
    let (n, _) = a
        .recv_from(&mut buf)
        .expect("the Yealink contact gets the INVITE");
    let got = String::from_utf8_lossy(&buf[..n]);
    assert!(
        got.starts_with(&format!("INVITE sip:uma@127.0.0.1:{pa} SIP/2.0")),
        "{got}"
    );
    assert!(
        b.recv_from(&mut buf).is_err(),
        "the Grandstream contact is filtered out"
    );
    // "(VVX)" is literal in a basic pattern: "Poly VVX" does not match it.
    let ct = format!("Contact: <sip:umb@127.0.0.1:{pb}>\r\nUser-Agent: Poly VVX 450\r\n");
    assert!(status(&ask(p.port, &register("umb", "c-ub", 1, &ct, Some(60)))).ends_with("200 OK"));
    let r = ask(p.port, &invite("umb", "c-ub-inv"));
    assert_eq!(status(&r), "SIP/2.0 404 Not Found", "lookup -1: {r}");
    let ct = format!("Contact: <sip:umc@127.0.0.1:{pb}>\r\nUser-Agent: Poly (VVX) 450\r\n");
    assert!(status(&ask(p.port, &register("umc", "c-uc", 1, &ct, Some(60)))).ends_with("200 OK"));
    let inv = invite("umc", "c-uc-inv").replace("{LOCAL}", "127.0.0.1:9");
    s.send_to(inv.as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let (n, _) = b.recv_from(&mut buf).expect("'Poly (VVX)' matches");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("INVITE sip:umc@"));
}

#[test]
fn lookup_branch_replaces_each_branch_with_its_aors_contacts() {
    // lib/reg/lookup.c with `branch`: the branches are taken aside, the
    // R-URI's AoR is looked up, then each branch's; the first contact
    // found becomes the R-URI, every other one a branch, and a branch
    // whose AoR has none is dropped.
    let mi_port = free_port();
    let sock = || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .expect("t");
        let port = s.local_addr().expect("addr").port();
        (s, port)
    };
    let ((a, pa), (b, pb), (c, pc), (caller, pcaller)) = (sock(), sock(), sock(), sock());
    // Unregistered, so dropped; were it sent, socket c would get it.
    let route = format!(
        r#"if sip.pv.rU ~= "cid" then sip.append_branch("sip:bea@127.0.0.1") end
  sip.append_branch("sip:nobody@127.0.0.1:{pc}")
  local ok, rc = sip.registrar.lookup("location", "branch")"#
    );
    let p = Proxy::start(&script(mi_port, "").replace(
        r#"local ok, rc = sip.registrar.lookup("location", "m")"#,
        &route,
    ));
    let mut buf = [0u8; 65536];
    let mut recv = |s: &std::net::UdpSocket, what: &str| -> String {
        let (n, _) = s
            .recv_from(&mut buf)
            .unwrap_or_else(|_| panic!("{what}\n{}", p.log_text()));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let call = |user: &str, callid: &str| {
        let inv = invite(user, callid).replace("{LOCAL}", &format!("127.0.0.1:{pcaller}"));
        caller
            .send_to(inv.as_bytes(), ("127.0.0.1", p.port))
            .expect("send");
    };
    // Only the branch's AoR is registered: nothing for the R-URI's, so
    // bea's contact becomes the R-URI.
    let ct = format!("Contact: <sip:bea@127.0.0.1:{pb}>\r\n");
    assert!(status(&ask(p.port, &register("bea", "c-br1", 1, &ct, Some(60)))).ends_with("200 OK"));
    call("ann", "c-br-inv1");
    let got = recv(&b, "bea's contact gets the INVITE");
    assert!(
        got.starts_with(&format!("INVITE sip:bea@127.0.0.1:{pb} SIP/2.0")),
        "{got}"
    );
    b.send_to(
        reply_to(&got, "486 Busy Here").as_bytes(),
        ("127.0.0.1", p.port),
    )
    .expect("send");
    let fin = loop {
        let r = recv(&caller, "the caller gets the final reply");
        if !r.starts_with("SIP/2.0 100") {
            break r;
        }
    };
    assert!(fin.starts_with("SIP/2.0 486"), "{fin}");
    // Now the R-URI's AoR has a contact too: it keeps the R-URI, bea's
    // becomes a branch.
    let ct = format!("Contact: <sip:ann@127.0.0.1:{pa}>\r\n");
    assert!(status(&ask(p.port, &register("ann", "c-br2", 1, &ct, Some(60)))).ends_with("200 OK"));
    call("ann", "c-br-inv2");
    let got_a = recv(&a, "ann's contact gets the INVITE");
    assert!(
        got_a.starts_with(&format!("INVITE sip:ann@127.0.0.1:{pa} SIP/2.0")),
        "{got_a}"
    );
    let got_b = loop {
        let r = recv(&b, "and bea's");
        if r.contains("c-br-inv2") {
            break r;
        }
    };
    assert!(
        got_b.starts_with(&format!("INVITE sip:bea@127.0.0.1:{pb} SIP/2.0")),
        "{got_b}"
    );
    for (s, got) in [(&a, &got_a), (&b, &got_b)] {
        s.send_to(
            reply_to(got, "486 Busy Here").as_bytes(),
            ("127.0.0.1", p.port),
        )
        .expect("send");
    }
    // No AoR, the R-URI's nor the branch's, has a contact: -1, 404.
    let r = ask(p.port, &invite("cid", "c-br-inv3"));
    assert_eq!(status(&r), "SIP/2.0 404 Not Found", "{r}");
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("t");
    assert!(
        c.recv_from(&mut buf).is_err(),
        "the unregistered branch was never sent"
    );
}

#[test]
fn a_refreshing_register_raises_e_ul_contact_update() {
    // usrloc ucontact.c `update_ucontact` raises E_UL_CONTACT_UPDATE for
    // every REGISTER that reaches an existing contact, a plain refresh
    // too, with ul_evi.c's parameters.
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, ""));
    let (l, lport) = udp_listener();
    let r = common::rpc::rpc(
        mi_port,
        "event_subscribe",
        serde_json::json!(["E_UL_CONTACT_UPDATE", format!("udp:127.0.0.1:{lport}"), 60]),
    );
    assert_eq!(r["result"], "OK", "{r}");
    let ct = "Contact: <sip:upd@127.0.0.1:5999>\r\n";
    for cseq in [1, 2] {
        let r = ask(p.port, &register("upd", "c-upd", cseq, ct, Some(60)));
        assert!(status(&r).ends_with("200 OK"), "{r}");
    }
    let mut buf = [0u8; 65536];
    let (n, _) = l.recv_from(&mut buf).expect("E_UL_CONTACT_UPDATE");
    let ev: serde_json::Value = serde_json::from_slice(&buf[..n]).expect("JSON");
    assert_eq!(ev["method"], "E_UL_CONTACT_UPDATE", "{ev}");
    let want = serde_json::json!({"domain": "location", "aor": "upd", "uri": "sip:upd@127.0.0.1:5999",
        "cseq": 2, "callid": "c-upd", "attr": "", "shtag": "", "latency": 0});
    for (k, v) in want.as_object().expect("object") {
        assert_eq!(&ev["params"][k], v, "{k}: {ev}");
    }
}
