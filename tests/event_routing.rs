//! event_routing (OpenSIPS 3.4 modules/event_routing) end to end: the
//! README's "call to a user who is not registered yet" pattern — the
//! INVITE's transaction waits (`t_newtran`, `t_wait_for_new_branches`),
//! `notify_on_event("E_UL_CONTACT_INSERT", …)` subscribes for the callee's
//! AoR, and when a SIPp callee registers, the notification route injects
//! its contact (`t_inject_branches("event")`, tm's t_fwd.c
//! `ul_contact_event_to_msg`) and the call completes. Also what the caller
//! gets when nobody registers (the phony branch's 408 at
//! `fr_inv_timeout`), a filter that does not match, and `wait_for_event`
//! resumed by `sip.raise_event` from another request.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const SCRIPT: &str = r#"config = {
  listen = { "udp:127.0.0.1:{PORT}" },
  children = 2,
  modules = {
    mi_http = false, mi_fifo = false,
    tm = { fr_timeout = 2, fr_inv_timeout = 3 },
    usrloc = { timer_interval = 1 },
  },
}

function route.main()
  if sip.is_method("REGISTER") then
    sip.registrar.save("location")
    sip.exit()
  end
  if sip.has_totag() then
    sip.tm.t_relay()
    sip.exit()
  end
  if sip.is_method("ACK") then
    sip.tm.t_check_trans()
    sip.exit()
  end
  if sip.is_method("OPTIONS") then route.events() sip.exit() end
  -- event_routing README, "Push Notification": the transaction waits for
  -- contacts that register later. A retransmission ends here (OpenSIPS:
  -- t_newtran returns 0, which ends the script).
  if not sip.tm.t_newtran() then sip.exit() end
  sip.tm.t_wait_for_new_branches()
  sip.avp.filter = "aor=" .. sip.pv.rU
  local ok, rc = sip.event_routing.notify_on_event("E_UL_CONTACT_INSERT", "$avp(filter)", "fork_call", 20)
  sip.xlog("L_INFO", "subscribed for $rU: " .. tostring(rc) .. "\n")
  -- an AoR event describes no contact: nothing to inject (-1)
  sip.event_routing.notify_on_event("E_UL_AOR_INSERT", { aor = sip.pv.rU }, "aor_only", 20)
  if sip.registrar.lookup("location") then sip.tm.t_relay() end
  sip.exit()
end

function route.fork_call()
  local ok, rc = sip.tm.t_inject_branches("event")
  sip.xlog("L_INFO", "fork_call: $avp(aor) registered $avp(uri) ($param(aor)), injected " .. tostring(rc) .. "\n")
end

function route.aor_only()
  local ok, rc = sip.tm.t_inject_branches("event")
  sip.xlog("L_INFO", "aor_only: $avp(aor) " .. tostring(rc) .. "\n")
end

function route.events()
  local who = sip.pv.rU
  if who == "waiter" then
    -- wait for a pickup in group 1 (OpenSIPS: async(wait_for_event(...)))
    local ok, rc = sip.event_routing.wait_for_event("E_CALL_PICKUP", { "group=1" }, 4)
    local picker = sip.pv.get("$avp(picker)")
    sip.sl.sl_send_reply(200, "rc " .. tostring(rc) .. " picker " .. tostring(picker))
  elseif who == "waitavp" then
    sip.avp.f = "group=" .. sip.pv.get("$hdr(X-Group)")
    local ok, rc = sip.event_routing.wait_for_event("E_CALL_PICKUP", "$avp(f)", 2)
    sip.sl.sl_send_reply(200, "rc " .. tostring(rc) .. " picker " .. tostring(sip.pv.get("$avp(picker)")))
  else
    sip.raise_event("E_CALL_PICKUP", { group = sip.pv.get("$hdr(X-Group)"), picker = who })
    sip.sl.sl_send_reply(200, "raised")
  end
end
"#;

/// A REGISTER datagram binding `user` to 127.0.0.1:`port`.
fn register(user: &str, port: u16, local: &str) -> String {
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-r{user}\r\n\
         From: <sip:{user}@127.0.0.1>;tag=r1\r\nTo: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: reg-{user}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\n\
         Expires: 60\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn request(method: &str, user: &str, tag: &str, local: &str, extra: &str) -> String {
    format!(
        "{method} sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{tag}\r\n\
         From: <sip:alice@127.0.0.1>;tag={tag}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: {tag}@127.0.0.1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}\
         Contact: <sip:alice@{local}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A caller's socket (8 s read timeout) and its address.
fn socket() -> (UdpSocket, String) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    let local = s.local_addr().expect("addr").to_string();
    (s, local)
}

/// The first final reply on `s` (provisional ones skipped), or "".
fn final_reply(s: &UdpSocket) -> String {
    let mut buf = [0u8; 65536];
    loop {
        let Ok(n) = s.recv(&mut buf) else {
            return String::new();
        };
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 1") {
            return r;
        }
    }
}

/// The README's push-notification call: bob is not registered when the
/// INVITE comes; a SIPp callee registers as bob a second later, the
/// notification route injects its contact, and the SIPp caller's call
/// completes (INVITE/180/200/ACK/BYE).
#[test]
fn a_callee_registering_later_gets_the_waiting_call() {
    let p = Proxy::start(SCRIPT);
    let callee = uas("uas.xml", "u1");
    let port = p.port;
    let caller = std::thread::spawn(move || uac("uac.xml", port, "u1", 1, 1, &["-s", "bob"]));
    std::thread::sleep(Duration::from_millis(1000));
    let reg = uac(
        "reg_register.xml",
        p.port,
        "u1",
        1,
        1,
        &[
            "-s",
            "bob",
            "-key",
            "contact_port",
            &callee.port.to_string(),
            "-key",
            "expires",
            "60",
        ],
    );
    assert_eq!(
        reg.successful,
        1,
        "REGISTER: {}\n{}",
        reg.errors,
        p.log_text()
    );
    let call = caller.join().expect("caller");
    let log = p.log_text();
    assert_eq!(call.successful, 1, "call: {}\n{log}", call.errors);
    assert_eq!(callee.counts(1).0, 1, "{}", callee.errors());
    assert!(log.contains("subscribed for bob: 1"), "{log}");
    let want = format!(
        "fork_call: bob registered sip:bob@127.0.0.1:{};transport=udp (bob), injected 1",
        callee.port
    );
    assert!(log.contains(&want), "{want}\n{log}");
    // tm t_fwd.c: the uri, received, path, qval, socket and bflags AVPs
    // must all be there; E_UL_AOR_INSERT has none of them.
    assert!(log.contains("aor_only: bob -1"), "{log}");
}

/// Nobody registers: the caller gets what OpenSIPS's phony branch gives
/// at `fr_inv_timeout` (3 s here), 408.
#[test]
fn nobody_registering_ends_in_408_at_fr_inv_timeout() {
    let p = Proxy::start(SCRIPT);
    let (s, local) = socket();
    let sent = Instant::now();
    s.send_to(
        request("INVITE", "nobody", "er408", &local, "").as_bytes(),
        ("127.0.0.1", p.port),
    )
    .expect("send");
    let fin = final_reply(&s);
    let took = sent.elapsed();
    let log = p.stop();
    assert!(fin.starts_with("SIP/2.0 408 "), "{fin}\n{log}");
    assert!(
        took >= Duration::from_millis(2800) && took < Duration::from_millis(6000),
        "at fr_inv_timeout, not {took:?}"
    );
    assert!(!log.contains("fork_call:"), "{log}");
}

/// `aor=dave` is an exact pattern: dave2 registering does not fire the
/// notification (no INVITE reaches dave2's contact), and the caller gets
/// the 408 as if nobody registered.
#[test]
fn a_filter_that_does_not_match_does_not_fire() {
    let p = Proxy::start(SCRIPT);
    let (contact, contact_port) = udp_listener();
    contact
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let (s, local) = socket();
    s.send_to(
        request("INVITE", "dave", "ernm", &local, "").as_bytes(),
        ("127.0.0.1", p.port),
    )
    .expect("send");
    std::thread::sleep(Duration::from_millis(500));
    let (r, rlocal) = socket();
    r.send_to(
        register("dave2", contact_port, &rlocal).as_bytes(),
        ("127.0.0.1", p.port),
    )
    .expect("register");
    assert!(
        final_reply(&r).starts_with("SIP/2.0 200 "),
        "REGISTER answered"
    );
    let fin = final_reply(&s);
    let mut buf = [0u8; 65536];
    let mut invites = 0;
    while let Ok(n) = contact.recv(&mut buf) {
        invites += usize::from(buf[..n].starts_with(b"INVITE "));
    }
    let log = p.stop();
    assert_eq!(invites, 0, "{log}");
    assert!(fin.starts_with("SIP/2.0 408 "), "{fin}\n{log}");
    assert!(!log.contains("fork_call:"), "{log}");
}

/// `wait_for_event` suspends the route (never the worker: the other
/// requests are served meanwhile); a raise that does not pass the filter
/// leaves it waiting, the one that does resumes it with the event's
/// parameters as AVPs; with none it resumes at its timeout, also with 1.
#[test]
fn wait_for_event_resumes_on_a_raise_from_another_request() {
    let p = Proxy::start(SCRIPT);
    let (w, wlocal) = socket();
    let start = Instant::now();
    w.send_to(
        request("OPTIONS", "waiter", "wfe1", &wlocal, "").as_bytes(),
        ("127.0.0.1", p.port),
    )
    .expect("send");
    std::thread::sleep(Duration::from_millis(300));
    for (who, group) in [("bill", "2"), ("charlie", "1")] {
        let (r, rlocal) = socket();
        let hdr = format!("X-Group: {group}\r\n");
        r.send_to(
            request("OPTIONS", who, &format!("r{who}"), &rlocal, &hdr).as_bytes(),
            ("127.0.0.1", p.port),
        )
        .expect("raise");
        assert!(
            final_reply(&r).starts_with("SIP/2.0 200 raised"),
            "{}",
            p.log_text()
        );
    }
    let fin = final_reply(&w);
    let took = start.elapsed();
    assert!(
        fin.starts_with("SIP/2.0 200 rc 1 picker charlie\r\n"),
        "{fin}\n{}",
        p.log_text()
    );
    assert!(
        took < Duration::from_millis(2000),
        "resumed by the raise, not {took:?}"
    );

    // An AVP filter, and nothing raised for it: the timeout (2 s) resumes it.
    let (w, wlocal) = socket();
    let start = Instant::now();
    w.send_to(
        request("OPTIONS", "waitavp", "wfe2", &wlocal, "X-Group: 7\r\n").as_bytes(),
        ("127.0.0.1", p.port),
    )
    .expect("send");
    let fin = final_reply(&w);
    let took = start.elapsed();
    let log = p.stop();
    assert!(
        fin.starts_with("SIP/2.0 200 rc 1 picker nil\r\n"),
        "{fin}\n{log}"
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(4000),
        "at its timeout, not {took:?}"
    );
}
