//! The stateless proxy end to end: the built binary between SIPp peers.

mod common;

use common::*;
use std::time::Duration;

const DEFAULT: &str = include_str!("../lua/default.lua");

/// The shipped default script, listening on the test's port and sending
/// to the callee.
fn default_script(uas_port: u16) -> String {
    let s = DEFAULT
        .replace(
            r#"listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060" },"#,
            r#"listen = { "udp:127.0.0.1:{PORT}", "tcp:127.0.0.1:{PORT}" },"#,
        )
        .replace(
            "upstream = nil,",
            &format!("upstream = \"sip:127.0.0.1:{uas_port}\","),
        );
    assert!(
        s.contains("{PORT}") && s.contains(&uas_port.to_string()),
        "default.lua changed shape"
    );
    s
}

#[test]
fn two_hundred_calls_in_a_row_complete() {
    let callee = uas("uas.xml", "u1");
    let proxy = Proxy::start(&default_script(callee.port));
    let run = uac("uac.xml", proxy.port, "u1", 200, 100, &[]);
    let log = proxy.stop();
    assert_eq!(
        (run.successful, run.failed, run.status),
        (200, 0, 0),
        "sipp errors:\n{}\nproxy log:\n{log}",
        run.errors
    );
    assert_eq!(callee.counts(200), (200, 0), "{}", callee.errors());
    // INVITE, ACK and BYE of every call went through, and the replies came back.
    assert!(stat(&log, "core:fwd_requests") >= 600, "{log}");
    assert!(stat(&log, "core:fwd_replies") >= 600, "{log}");
    assert_eq!(stat(&log, "core:err_requests"), 0, "{log}");
}

#[test]
fn record_route_is_followed_by_ack_and_bye() {
    let callee = uas("uas.xml", "u1");
    let proxy = Proxy::start(&default_script(callee.port));
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    // The caller saw the proxy's Record-Route and sent ACK/BYE with a Route to it.
    let rr = format!("Record-Route: <sip:127.0.0.1:{};lr;ftag=", proxy.port);
    assert!(run.messages.contains(&rr), "{}", run.messages);
    assert!(
        run.messages
            .contains(&format!("Route: <sip:127.0.0.1:{};lr;ftag=", proxy.port)),
        "{}",
        run.messages
    );
}

#[test]
fn calls_over_tcp_complete() {
    let callee = uas("uas.xml", "t1");
    let script = default_script(callee.port).replace(
        &format!("sip:127.0.0.1:{}\"", callee.port),
        &format!("sip:127.0.0.1:{};transport=tcp\"", callee.port),
    );
    let proxy = Proxy::start(&script);
    let run = uac("uac.xml", proxy.port, "t1", 20, 20, &[]);
    let log = proxy.stop();
    assert_eq!(
        (run.successful, run.failed),
        (20, 0),
        "sipp errors:\n{}\nproxy log:\n{log}",
        run.errors
    );
}

#[test]
fn udp_caller_reaches_tcp_callee() {
    let callee = uas("uas.xml", "t1");
    let script = default_script(callee.port).replace(
        &format!("sip:127.0.0.1:{}\"", callee.port),
        &format!("sip:127.0.0.1:{};transport=tcp\"", callee.port),
    );
    let proxy = Proxy::start(&script);
    let run = uac("uac.xml", proxy.port, "u1", 5, 5, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (5, 0),
        "sipp errors:\n{}\nlog:\n{}",
        run.errors,
        proxy.log_text()
    );
}

#[test]
fn options_to_the_proxy_is_answered_locally() {
    // No upstream here: the default answers OPTIONS to itself.
    let proxy = Proxy::start(&DEFAULT.replace(
        r#"listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060" },"#,
        r#"listen = { "udp:127.0.0.1:{PORT}" },"#,
    ));
    let run = uac("options.xml", proxy.port, "u1", 3, 10, &[]);
    assert_eq!((run.successful, run.failed), (3, 0), "{}", run.errors);
    assert!(run.messages.contains("SIP/2.0 200 OK"), "{}", run.messages);
    assert!(run.messages.contains("Server: lunasip"), "{}", run.messages);
    let log = proxy.stop();
    assert_eq!(stat(&log, "sl:2xx_replies"), 3, "{log}");
}

#[test]
fn options_to_a_user_is_forwarded() {
    let callee = uas("options_uas.xml", "u1");
    let proxy = Proxy::start(&default_script(callee.port));
    let run = uac("options_fwd.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    assert!(
        !run.messages.contains("Server: lunasip"),
        "the callee answered, not the proxy: {}",
        run.messages
    );
}

#[test]
fn malformed_request_gets_400_and_the_next_call_completes() {
    let callee = uas("uas.xml", "u1");
    let proxy = Proxy::start(&default_script(callee.port));
    let bad = uac("bad_request.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!((bad.successful, bad.failed), (1, 0), "{}", bad.errors);
    assert!(
        bad.messages.contains("SIP/2.0 400 Bad Request"),
        "{}",
        bad.messages
    );
    // Garbage that is not SIP at all is dropped and counted.
    let sent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sent.send_to(b"\x00\x01garbage\r\n\r\n", ("127.0.0.1", proxy.port))
        .unwrap();
    // A Request-URI that does not parse: 400, counted as OpenSIPS's
    // core:bad_URIs_rcvd (parser/parse_uri.c) and as a bad message.
    let bad_uri = "OPTIONS sip:@@bad SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKbaduri\r\n\
                   From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: baduri\r\n\
                   CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let r = udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        bad_uri,
        std::time::Duration::from_secs(3),
    )
    .unwrap_or_default();
    assert!(r.starts_with("SIP/2.0 400 "), "{r}");
    let good = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!((good.successful, good.failed), (1, 0), "{}", good.errors);
    let log = proxy.stop();
    assert_eq!(stat(&log, "core:bad_msg_hdr"), 3, "{log}");
    assert_eq!(stat(&log, "core:bad_URIs_rcvd"), 1, "{log}");
}

#[test]
fn max_forwards_zero_gets_483() {
    let callee = uas("uas.xml", "u1");
    let proxy = Proxy::start(&default_script(callee.port));
    let run = uac("maxfwd0.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    assert!(
        run.messages.contains("SIP/2.0 483 Too Many Hops"),
        "{}",
        run.messages
    );
}

const BOOM: &str = r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1 }

function route.main()
  if sip.pv.rU == "boom" then
    local t = nil
    t.crash = 1
  end
  sip.sl.sl_send_reply(200, "OK")
end
"#;

#[test]
fn lua_error_gives_500_and_logs_the_script_line() {
    let proxy = Proxy::start(BOOM);
    let run = uac("lua_error.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    assert!(
        run.messages.contains("SIP/2.0 500 Server Internal Error"),
        "{}",
        run.messages
    );
    let log = proxy.stop();
    let script = "script.lua:6:";
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(script)),
        "no error naming {script}:\n{log}"
    );
    // Call-ID, method and worker go along as structured fields (journald: CALL_ID=…).
    assert!(
        log.lines().any(|l| l.contains(script)
            && l.contains("call_id=")
            && l.contains("method=")
            && l.contains("worker=")),
        "{log}"
    );
}

#[test]
fn ipv6_listen_answers() {
    let script = r#"config = { listen = { "udp:[::1]:{PORT}" }, children = 1 }
function route.main()
  sip.sl.sl_send_reply(200, "OK")
end
"#;
    let proxy = Proxy::start(script);
    let msg = "OPTIONS sip:[::1] SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bK6a;rport\r\nFrom: <sip:t@[::1]>;tag=1\r\nTo: <sip:[::1]>\r\nCall-ID: v6test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let reply = udp_exchange(
        &format!("[::1]:{}", proxy.port),
        msg,
        Duration::from_secs(3),
    )
    .expect("a reply over IPv6");
    assert!(reply.starts_with("SIP/2.0 200 OK\r\n"), "{reply}");
    assert!(reply.contains(";rport="), "rport filled: {reply}");
    assert!(reply.contains("To: <sip:[::1]>;tag="), "{reply}");
}

const LOOPER: &str = r#"config = { listen = { "udp:127.0.0.1:{PORT}", "tcp:127.0.0.1:{PORT}" }, children = 2, tcp_max_msg_size = 2048 }

function route.main()
  -- Every request goes back to the proxy itself: a loop.
  sip.forward("sip:127.0.0.1:{PORT}")
end
"#;

#[test]
fn a_request_that_loops_gets_482() {
    let proxy = Proxy::start(LOOPER);
    let msg = "OPTIONS sip:someone@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKloop1\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:someone@127.0.0.1>\r\nCall-ID: looptest\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let reply = udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        msg,
        Duration::from_secs(3),
    )
    .expect("a reply");
    assert!(
        reply.starts_with("SIP/2.0 482 Loop Detected\r\n"),
        "{reply}"
    );
    // The proxy's own Via was removed on the way back: one Via left, ours.
    assert_eq!(reply.matches("Via:").count(), 1, "{reply}");
    assert!(reply.contains("branch=z9hG4bKloop1"), "{reply}");
}

#[test]
fn stray_replies_and_oversize_streams_are_dropped_and_counted() {
    use std::io::{Read, Write};
    let proxy = Proxy::start(LOOPER);
    // A reply whose top Via is not ours goes nowhere.
    let stray = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: stray\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    assert!(udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        stray,
        Duration::from_millis(500)
    )
    .is_none());
    // A stream that passes tcp_max_msg_size without ending its headers is cut.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut big = String::from("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n");
    while big.len() < 4096 {
        big.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let _ = s.write_all(big.as_bytes());
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the proxy closes the connection");
    let log = proxy.stop();
    assert_eq!(stat(&log, "core:drop_replies"), 1, "{log}");
    assert_eq!(stat(&log, "core:oversize_msgs"), 1, "{log}");
}

#[test]
fn tcp_connections_are_reused_and_idle_ones_closed() {
    use std::io::Read;
    let callee = uas("uas.xml", "t1");
    let script = default_script(callee.port)
        .replace(
            &format!("sip:127.0.0.1:{}\"", callee.port),
            &format!("sip:127.0.0.1:{};transport=tcp\"", callee.port),
        )
        .replace(
            "log_level = \"info\",",
            "log_level = \"debug\",\n  tcp_connection_lifetime = 1,",
        );
    let proxy = Proxy::start(&script);
    let run = uac("uac.xml", proxy.port, "u1", 10, 10, &[]);
    assert_eq!((run.successful, run.failed), (10, 0), "{}", run.errors);
    // Thirty requests to the callee went over one connection.
    let opened = format!("tcp connection to 127.0.0.1:{} opened", callee.port);
    assert_eq!(
        proxy.log_text().matches(&opened).count(),
        1,
        "{}",
        proxy.log_text()
    );
    // A connection that stays silent is closed after tcp_connection_lifetime.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 8];
    assert_eq!(s.read(&mut buf).unwrap_or(99), 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[test]
fn sighup_reloads_a_good_script_and_refuses_a_bad_one() {
    let script = |reason: &str| {
        format!("config = {{ listen = {{ \"udp:127.0.0.1:{{PORT}}\" }}, children = 2 }}\nfunction route.main()\n  sip.sl.sl_send_reply(200, \"{reason}\")\nend\n")
    };
    let proxy = Proxy::start(&script("One"));
    let ask = || {
        let msg = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKr{LPORT}\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: reload{LPORT}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        udp_exchange(
            &format!("127.0.0.1:{}", proxy.port),
            msg,
            Duration::from_secs(3),
        )
        .unwrap_or_default()
    };
    let hup = || {
        let pid = proxy.child.as_ref().unwrap().id().to_string();
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(ask().starts_with("SIP/2.0 200 One\r\n"));
    std::fs::write(
        &proxy.script,
        script("Two").replace("{PORT}", &proxy.port.to_string()),
    )
    .unwrap();
    hup();
    // Both workers switched: several sources (ports) all see the new script.
    for _ in 0..6 {
        let r = ask();
        assert!(r.starts_with("SIP/2.0 200 Two\r\n"), "{r}");
    }
    std::fs::write(
        &proxy.script,
        "config = { listen = { \"udp:127.0.0.1:1\" } }\nfunction route.main()\n  if then\nend\n",
    )
    .unwrap();
    hup();
    assert!(ask().starts_with("SIP/2.0 200 Two\r\n"));
    let log = proxy.stop();
    assert!(
        log.contains("reload refused") && log.contains("script.lua:3:"),
        "{log}"
    );
}
