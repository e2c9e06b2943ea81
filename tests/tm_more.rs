//! The rest of tm's script functions as the caller and the callee see
//! them (OpenSIPS 3.4 `modules/tm/tm.c`, `t_reply.c`, `t_fwd.c`,
//! `t_cancel.c`): `t_reply` and `t_reply_with_body` on a request
//! without a transaction (the 100 `t_newtran` sends first), the Reason and extra headers of
//! the CANCELs tm sends (`t_add_hdrs`, `t_add_cancel_reason`,
//! `t_relay("pass-reason-hdr")`), `t_flush_flags`, `t_relay`'s numeric
//! flags, `t_reply_by_callid`.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn proxy(routes: &str) -> Proxy {
    Proxy::start(&format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{ mi_http = false, mi_fifo = false, tm = {{ fr_timeout = 2, fr_inv_timeout = 3 }} }},
}}
{routes}
"#
    ))
}

fn invite(local: &str, tag: &str) -> String {
    format!(
        "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{tag}\r\n\
         From: <sip:alice@127.0.0.1>;tag={tag}\r\nTo: <sip:bob@127.0.0.1>\r\n\
         Call-ID: {tag}@127.0.0.1\r\nCSeq: 7 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:alice@{local}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends `msg` ({LOCAL} replaced) from a fresh socket and collects what
/// comes back for `wait`.
fn exchange(port: u16, msg: &dyn Fn(&str) -> String, wait: Duration) -> Vec<String> {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = s.local_addr().expect("addr").to_string();
    s.send_to(msg(&local).as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let end = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match s.recv_from(&mut buf) {
            Ok((n, _)) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    got
}

/// OpenSIPS t_reply.c `w_t_reply_body`: the body goes out with the
/// Content-Type `append_to_reply` gave and its own Content-Length;
/// pseudo-variables expand in reason and body.
#[test]
fn t_reply_with_body_sends_body_and_type() {
    let p = proxy(
        r#"function route.main()
  sip.append_to_reply("Content-Type: text/plain\r\n")
  sip.tm.t_reply_with_body(486, "Busy $fU", "busy $fU\n")
end"#,
    );
    let got = exchange(p.port, &|l| invite(l, "body1"), Duration::from_millis(800));
    let log = p.stop();
    // 100, then the 486 (and its retransmissions: nobody ACKs it).
    assert!(got.len() >= 2, "100 then 486: {got:?}\n{log}");
    // The transaction t_reply_with_body made answered 100 first
    // (t_newtran's auto_100trying), without a To tag and without a body;
    // like OpenSIPS's (t_reply.c `_reply`), it carries the
    // append_to_reply headers already added.
    assert!(
        got[0].starts_with("SIP/2.0 100 Giving it a try\r\n"),
        "{got:?}"
    );
    let to = got[0].lines().find(|l| l.starts_with("To:")).unwrap_or("");
    assert!(!to.contains(";tag="), "{got:?}");
    assert!(got[0].ends_with("\r\nContent-Length: 0\r\n\r\n"), "{got:?}");
    let r = &got[1];
    assert!(r.starts_with("SIP/2.0 486 Busy alice\r\n"), "{r}");
    assert!(r.contains("\r\nContent-Type: text/plain\r\n"), "{r}");
    assert!(r.contains("\r\nContent-Length: 11\r\n"), "{r}");
    assert!(r.ends_with("\r\n\r\nbusy alice\n"), "{r}");
    assert!(r.contains(";tag="), "a final reply carries a To tag: {r}");
}

/// What the callee's CANCEL carried, echoed in the 487 reason phrase
/// the caller receives (tests/scenarios/uas_ring_cancel_echo.xml).
fn cancel_seen(routes: &str, caller: &str) -> String {
    let ringer = uas("uas_ring_cancel_echo.xml", "u1");
    let p = proxy(&routes.replace("{CALLEE}", &ringer.port.to_string()));
    let run = uac(caller, p.port, "u1", 1, 1, &[]);
    let log = p.stop();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{log}\ncallee: {}",
        run.errors,
        ringer.errors()
    );
    run.messages
        .lines()
        .find(|l| l.starts_with("SIP/2.0 487 "))
        .unwrap_or_else(|| panic!("no 487:\n{}", run.messages))
        .to_string()
}

const CANCEL_ROUTES: &str = r#"function route.main()
  if sip.is_method("CANCEL") then
    EXTRA_CANCEL
    if sip.tm.t_check_trans() then sip.tm.t_relay() end
    sip.exit()
  end
  sip.tm.t_newtran()
  sip.tm.t_add_hdrs("X-Cancel-Why: from $fU\r\n")
  sip.pv.du = "sip:127.0.0.1:{CALLEE}"
  sip.tm.t_relay(RELAY_FLAGS)
end"#;

fn cancel_routes(extra: &str, flags: &str) -> String {
    CANCEL_ROUTES
        .replace("EXTRA_CANCEL", extra)
        .replace("RELAY_FLAGS", flags)
}

/// OpenSIPS t_fwd.c `get_cancel_reason` and t_msgbuilder.c
/// `build_local`: a CANCEL tm sends carries `Reason: SIP;cause=487`
/// unless the script named another (`t_add_cancel_reason`) or passes the
/// caller's (`pass-reason-hdr`), and `t_add_hdrs`'s lines always.
#[test]
fn cancels_carry_reason_and_added_headers() {
    let line = cancel_seen(&cancel_routes("", ""), "uac_cancel.xml");
    assert!(
        line.contains(r#"reason=SIP;cause=487;text="ORIGINATOR_CANCEL" extra=from caller"#),
        "{line}"
    );
    // The caller's own Reason stays behind without the flag ...
    let line = cancel_seen(&cancel_routes("", ""), "uac_cancel_reason.xml");
    assert!(line.contains("reason=SIP;cause=487;"), "{line}");
    // ... and goes on with it (also as 2.x's 0x08).
    for flags in ["\"pass-reason-hdr\"", "\"0x08\""] {
        let line = cancel_seen(&cancel_routes("", flags), "uac_cancel_reason.xml");
        assert!(
            line.contains(r#"reason=Q.850;cause=16;text="Normal call clearing" extra=from caller"#),
            "{flags}: {line}"
        );
    }
    let line = cancel_seen(
        &cancel_routes(
            r#"sip.tm.t_add_cancel_reason("Reason: SIP;cause=600;text=\"Busy Everywhere\"\r\n")"#,
            "\"pass-reason-hdr\"",
        ),
        "uac_cancel_reason.xml",
    );
    assert!(
        line.contains(r#"reason=SIP;cause=600;text="Busy Everywhere" extra=from caller"#),
        "{line}"
    );
}

/// OpenSIPS tm.c `t_flush_flags`: a flag set after the transaction took
/// the request's flags reaches the failure route only when flushed.
#[test]
fn t_flush_flags_hands_later_flags_to_the_failure_route() {
    for (flush, want) in [(true, "499 Flag Kept"), (false, "498 Flag Lost")] {
        let busy = uas("uas_busy.xml", "u1");
        let p = proxy(&format!(
            r#"function route.main()
  if sip.is_method("ACK") then sip.tm.t_relay() sip.exit() end
  sip.tm.t_on_failure("f")
  sip.pv.du = "sip:127.0.0.1:{}"
  sip.tm.t_relay()
  sip.setflag(5)
  {}
end
function failure_route.f()
  if sip.isflagset(5) then sip.tm.t_reply(499, "Flag Kept") else sip.tm.t_reply(498, "Flag Lost") end
end"#,
            busy.port,
            if flush { "sip.tm.t_flush_flags()" } else { "" }
        ));
        let got = exchange(
            p.port,
            &|l| invite(l, "flush1"),
            Duration::from_millis(1500),
        );
        let log = p.stop();
        assert!(
            got.iter()
                .any(|r| r.starts_with(&format!("SIP/2.0 {want}\r\n"))),
            "flush={flush}: {got:?}\n{log}\ncallee: {}",
            busy.errors()
        );
    }
}

/// t_relay's 2.x numeric flags: 0x01 (1.x's "no 100 Trying"); without
/// it the INVITE gets 100 Trying at once (RFC 3261 §16.2).
#[test]
fn t_relay_0x01_sends_no_100_trying() {
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let sport = silent.local_addr().expect("addr").port();
    for (flags, trying) in [
        ("\"0x01\"", false),
        ("", true),
        ("\"no-dns-failover\"", true),
    ] {
        let p = proxy(&format!(
            r#"function route.main()
  sip.pv.du = "sip:127.0.0.1:{sport}"
  sip.tm.t_relay({flags})
end"#
        ));
        let got = exchange(
            p.port,
            &|l| invite(l, "trying1"),
            Duration::from_millis(600),
        );
        let log = p.stop();
        assert_eq!(
            got.iter().any(|r| r.starts_with("SIP/2.0 100 ")),
            trying,
            "{flags}: {got:?}\n{log}"
        );
    }
}

/// A flag name t_relay does not know is a script error naming it.
#[test]
fn t_relay_refuses_an_unknown_flag_name() {
    let p = proxy(
        r#"function route.main()
  sip.tm.t_relay("no-such-flag|no-dns-failover")
end"#,
    );
    let got = exchange(
        p.port,
        &|l| invite(l, "badflag"),
        Duration::from_millis(600),
    );
    let log = p.stop();
    assert!(
        got.iter().any(|r| r.starts_with("SIP/2.0 500 ")),
        "{got:?}\n{log}"
    );
    assert!(log.contains("no-such-flag"), "{log}");
}

/// OpenSIPS tm.c `t_reply_by_callid`: another request's route answers
/// the INVITE transaction with that Call-ID and CSeq number; -4 when
/// there is none.
#[test]
fn t_reply_by_callid_answers_the_invite_transaction() {
    use common::worker::{run, worker, Proto, INVITE};
    let w = worker(
        r#"function route.main()
  if sip.is_method("INVITE") then sip.tm.t_newtran() sip.exit() end
  local ok, rc = sip.tm.t_reply_by_callid(603, "Declined $rm")
  local ok2, rc2 = sip.tm.t_reply_by_callid(603, "Declined", "other-call", "1")
  sip.sl.sl_send_reply(200, tostring(ok) .. rc .. " " .. tostring(ok2) .. rc2)
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    let first: Vec<&str> = out.iter().map(|o| o.2.as_str()).collect();
    assert!(
        first.len() == 1 && first[0].starts_with("SIP/2.0 100 "),
        "t_newtran alone answers a new INVITE 100 only (t_lookup.c auto_100trying): {first:?}"
    );
    let info = INVITE
        .replace("INVITE sip:", "INFO sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 INFO")
        .replace("branch=z9hG4bKabc", "branch=z9hG4bKinfo");
    let out = run(&w, &info, Proto::Udp);
    let texts: Vec<&str> = out.iter().map(|o| o.2.as_str()).collect();
    let declined = texts
        .iter()
        .find(|t| t.starts_with("SIP/2.0 603 Declined INFO\r\n"))
        .unwrap_or_else(|| panic!("{texts:?}"));
    assert!(declined.contains("\r\nCSeq: 1 INVITE\r\n"), "{declined}");
    assert!(declined.contains("branch=z9hG4bKabc"), "{declined}");
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("SIP/2.0 200 true1 false-4\r\n")),
        "{texts:?}"
    );
}

/// OpenSIPS t_fwd.c `t_replicate`: the replica gets the request, its 200
/// stays at the proxy, the caller gets the route's own answer only.
#[test]
fn t_replicate_keeps_the_replicas_answer() {
    let replica = uas("options_uas.xml", "u1");
    let p = proxy(&format!(
        r#"function route.main()
  if not sip.tm.t_replicate("sip:127.0.0.1:{}") then sip.sl.sl_send_reply(500, "Not Replicated") sip.exit() end
  sip.sl.sl_send_reply(202, "Replicated to $du")
end"#,
        replica.port
    ));
    let options = |local: &str| {
        format!(
            "OPTIONS sip:reg@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKrepl1\r\n\
             From: <sip:alice@127.0.0.1>;tag=r1\r\nTo: <sip:reg@127.0.0.1>\r\n\
             Call-ID: repl1@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let got = exchange(p.port, &options, Duration::from_millis(1000));
    let log = p.stop();
    let firsts: Vec<&str> = got.iter().filter_map(|r| r.lines().next()).collect();
    assert_eq!(
        firsts,
        [format!(
            "SIP/2.0 202 Replicated to sip:127.0.0.1:{}",
            replica.port
        )],
        "{log}"
    );
    assert_eq!(replica.counts(1), (1, 0), "{}", replica.errors());
}

/// OpenSIPS tm `restart_fr_on_each_reply` (t_reply.c): on (the
/// default), the second 180 restarts fr_inv and the 200 that comes 3 s
/// after the first 180 gets through; off, fr_inv (2 s) ends the branch
/// (408 to the caller) before it.
#[test]
fn restart_fr_on_each_reply_keeps_a_ringing_branch() {
    for (setting, ok) in [("", true), ("restart_fr_on_each_reply = false,", false)] {
        let callee = uas("uas_ring_twice.xml", "u1");
        let p = Proxy::start(&format!(
            r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{ mi_http = false, mi_fifo = false, tm = {{ fr_timeout = 2, fr_inv_timeout = 2, {setting} }} }},
}}
function route.main()
  if sip.has_totag() then sip.rr.loose_route() sip.tm.t_relay() sip.exit() end
  sip.rr.record_route()
  sip.pv.du = "sip:127.0.0.1:{}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end"#,
            callee.port
        ));
        let run = uac("uac_ring_twice.xml", p.port, "u1", 1, 1, &[]);
        let log = p.stop();
        let want = if ok { (1, 0) } else { (0, 1) };
        assert_eq!(
            (run.successful, run.failed),
            want,
            "{setting}: {}\n{log}",
            run.errors
        );
        if !ok {
            assert!(run.errors.contains("408"), "{}", run.errors);
        }
    }
}

/// What a SIPp caller receives when the route answers a new INVITE with
/// `reply` and no transaction exists yet: OpenSIPS tm.c `w_t_reply` and
/// t_reply.c `w_t_reply_body` create it with `t_newtran`, whose
/// `auto_100trying` (t_lookup.c) answers `100 Giving it a try` first.
/// tests/scenarios/uac_t_reply.xml fails a call whose 486 comes without
/// that 100 before it.
fn t_reply_seen_by_sipp(reply: &str) -> String {
    let p = proxy(&format!(
        r#"function route.main()
  if sip.tm.t_check_trans() then sip.exit() end
  sip.append_to_reply("Content-Type: text/plain\r\n")
  {reply}
end"#
    ));
    let run = uac("uac_t_reply.xml", p.port, "u1", 2, 2, &[]);
    let log = p.stop();
    assert_eq!(
        (run.successful, run.failed),
        (2, 0),
        "{}\n{}\n{log}",
        run.errors,
        run.messages
    );
    let m = &run.messages;
    let trying = m.find("SIP/2.0 100 Giving it a try\r\n").expect("a 100");
    let busy = m.find("SIP/2.0 486 Busy Here\r\n").expect("a 486");
    assert!(trying < busy, "the 100 comes first:\n{m}");
    assert_eq!(
        m.matches("SIP/2.0 100 ").count(),
        2,
        "one 100 per call:\n{m}"
    );
    // The 100 is the transaction's, not a dialog's: no To tag (RFC 3261
    // §8.2.6.2 leaves it out of a 100).
    let hundred = &m[trying..];
    let hundred = &hundred[..hundred.find("\r\n\r\n").unwrap_or(hundred.len())];
    let to = hundred.lines().find(|l| l.starts_with("To:")).unwrap_or("");
    assert!(!to.contains(";tag="), "{hundred}");
    run.messages
}

#[test]
fn t_reply_on_a_new_invite_sends_100_first_as_opensips() {
    let m = t_reply_seen_by_sipp(r#"sip.tm.t_reply(486, "Busy Here")"#);
    assert!(!m.contains("busy body"), "{m}");
}

#[test]
fn t_reply_with_body_on_a_new_invite_sends_100_first_as_opensips() {
    let m = t_reply_seen_by_sipp(r#"sip.tm.t_reply_with_body(486, "Busy Here", "busy body\n")"#);
    assert!(m.contains("\r\n\r\nbusy body\n"), "{m}");
    assert!(m.contains("Content-Type: text/plain"), "{m}");
}

#[test]
fn t_reply_on_a_new_options_sends_no_100() {
    // auto_100trying is for INVITEs only: options.xml fails on a 100.
    let p = proxy(
        r#"function route.main()
  sip.tm.t_reply(200, "Here")
end"#,
    );
    let run = uac("options.xml", p.port, "u1", 2, 2, &[]);
    let log = p.stop();
    assert_eq!(
        (run.successful, run.failed),
        (2, 0),
        "{}\n{log}",
        run.errors
    );
    assert!(!run.messages.contains("SIP/2.0 100 "), "{}", run.messages);
    assert!(
        run.messages.contains("SIP/2.0 200 Here\r\n"),
        "{}",
        run.messages
    );
}
