//! Translated opensips.cfg constructs at work under lunasip, on the wire:
//! the bitwise operators and OpenSIPS's flat precedences (cfg.y),
//! `launch` (async.c: the function runs detached, the route goes on, the
//! report route runs when it is done) and the `<request>`/`<reply>`
//! pseudo-variable contexts (tm.c) in reply and failure routes.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{free_port, Proxy};

/// One request from `s` to the proxy; the first final reply.
fn ask(s: &UdpSocket, port: u16, msg: &str) -> String {
    let local = s.local_addr().unwrap();
    s.send_to(
        msg.replace("{LOCAL}", &local.to_string()).as_bytes(),
        ("127.0.0.1", port),
    )
    .unwrap();
    let mut buf = [0u8; 65536];
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 1") {
            return r;
        }
    }
    String::new()
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn options(callid: &str, step: &str) -> String {
    format!(
        "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-{callid}\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: {callid}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nX-Step: {step}\r\nContent-Length: 0\r\n\r\n"
    )
}

fn header<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    reply
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

const BITS: &str = r#"listen=udp:127.0.0.1:{PORT}
loadmodule "sl.so"

route {
    $var(f) = 12;
    $var(a) = $var(f) & 4;
    $var(o) = $var(f) | 3;
    $var(x) = $var(f) ^ 5;
    $var(l) = 1 << 31;
    $var(r) = -16 >> 2;
    $var(n) = ~0;
    # one precedence per operator family, left to right (cfg.y)
    $var(p) = 1 + 2 * 3;
    $var(q) = $var(f) | 1 & 2;
    $var(g) = 6;
    $var(g) ^= 3;
    $var(g) %= 3;
    if ([$var(f) & 16]) {
        $var(t) = "yes";
    } else {
        $var(t) = "no";
    }
    if ($var(a) == 4 || $var(o) == 0 && $var(x) == 0) {
        $var(u) = "yes";
    } else {
        $var(u) = "no";
    }
    # strings of one length work byte by byte; a null left operand gives none
    $var(s) = "ab" ^ "  ";
    $var(z) = $var(unset) | 1;
    # int division and remainder truncate as C's (route.c eval_expr)
    $var(d1) = 7 / 2;
    $var(d2) = -7 / 2;
    $var(m1) = -7 % 3;
    $var(d3) = $var(f) / 4;
    append_to_reply("X-Bits: $var(a) $var(o) $var(x) $var(l) $var(r) $var(n)\r\n");
    append_to_reply("X-More: $var(s) $var(z)\r\n");
    append_to_reply("X-Div: $var(d1) $var(d2) $var(m1) $var(d3)\r\n");
    append_to_reply("X-Prec: $var(p) $var(q) $var(g) $var(t) $var(u)\r\n");
    sl_send_reply(200, "OK");
}
"#;

/// OpenSIPS route.c `eval_elem` on C `int`s: `1 << 31` is negative, `>>`
/// keeps the sign, `~0` is -1; `+ - * / %` share one precedence, so do
/// the bitwise operators and `||`/`&&`, all left to right.
#[test]
fn bitwise_operators_compute_as_opensips() {
    let port = free_port();
    let p = Proxy::try_start_file("opensips.cfg", BITS, port, &[])
        .unwrap_or_else(|log| panic!("lunasip did not start:\n{log}"));
    let r = ask(&client(), port, &options("bits-1", "bits"));
    assert!(r.starts_with("SIP/2.0 200"), "{r}\n{}", p.log_text());
    assert_eq!(
        header(&r, "X-Bits"),
        Some("4 15 9 -2147483648 -4 -1"),
        "{r}"
    );
    // 1 + 2 * 3 is (1 + 2) * 3; 12 | 1 & 2 is (12 | 1) & 2; 6 ^ 3 = 5,
    // 5 % 3 = 2; [12 & 16] is 0, false; (true || …) && false is false.
    assert_eq!(header(&r, "X-Prec"), Some("9 0 2 no no"), "{r}");
    assert_eq!(header(&r, "X-More"), Some("AB <null>"), "{r}");
    // 7 / 2 is 3 (not 3.5), -7 / 2 is -3, -7 % 3 is -1 (not Lua's 2).
    assert_eq!(header(&r, "X-Div"), Some("3 -3 -1 3"), "{r}");
}

const LAUNCH: &str = r#"listen=udp:127.0.0.1:{PORT}
loadmodule "sl.so"
loadmodule "cfgutils.so"

route {
    if ($hdr(X-Step) == "launch") {
        $shv(done) = "pending";
        launch(usleep(300000), report, "job-1");
        append_to_reply("X-At-Reply: $shv(done)\r\n");
        sl_send_reply(200, "OK");
        exit;
    }
    append_to_reply("X-Done: $shv(done)\r\n");
    sl_send_reply(200, "OK");
}

route[report] {
    $shv(done) = $param(1) + " rc=" + $rc;
}
"#;

/// `launch(usleep(…), report, "job-1")`: the route answers while the
/// function still sleeps (the report route has not run: `pending`), and
/// the report route runs once it is done, with its parameter and `$rc`.
#[test]
fn launch_runs_the_function_detached_then_its_report_route() {
    let port = free_port();
    let p = Proxy::try_start_file("opensips.cfg", LAUNCH, port, &[])
        .unwrap_or_else(|log| panic!("lunasip did not start:\n{log}"));
    let s = client();
    let r = ask(&s, port, &options("launch-1", "launch"));
    assert!(r.starts_with("SIP/2.0 200"), "{r}\n{}", p.log_text());
    assert_eq!(header(&r, "X-At-Reply"), Some("pending"), "{r}");
    let until = Instant::now() + Duration::from_secs(10);
    let mut done = String::new();
    for i in 0.. {
        let r = ask(&s, port, &options(&format!("launch-poll-{i}"), "poll"));
        done = header(&r, "X-Done").unwrap_or("").to_string();
        if done != "pending" || Instant::now() > until {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(done, "job-1 rc=1", "{}", p.log_text());
}

const CONTEXTS: &str = r#"listen=udp:127.0.0.1:{PORT}
loadmodule "tm.so"
loadmodule "sl.so"

route {
    t_on_reply("rpl");
    t_on_failure("fail");
    $du = "sip:127.0.0.1:{CALLEE}";
    t_relay();
}

onreply_route[rpl] {
    $shv(seen) = $(<request>rm) + "/" + $(<request>ru{uri.user}) + "/" + $rs;
}

failure_route[fail] {
    append_to_reply("X-Ctx: $(<reply>hdr(X-Why)) $(<reply>rs) $(<request>rU) $shv(seen)\r\n");
    t_reply(480, "Gone");
}
"#;

/// `$(<request>…)` in a reply route reads the transaction's request, and
/// `$(<reply>…)` in a failure route the winning reply (OpenSIPS tm.c
/// `tm_pv_context_request`/`_reply`), while plain specs read the route's
/// own message.
#[test]
fn request_and_reply_contexts_read_the_transactions_messages() {
    let port = free_port();
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    callee
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let cport = callee.local_addr().unwrap().port();
    let cfg = CONTEXTS.replace("{CALLEE}", &cport.to_string());
    let p = Proxy::try_start_file("opensips.cfg", &cfg, port, &[])
        .unwrap_or_else(|log| panic!("lunasip did not start:\n{log}"));
    let caller = client();
    let local = caller.local_addr().unwrap();
    let invite = format!("INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ctx1\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: ctx-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    caller
        .send_to(invite.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = [0u8; 65536];
    let (n, from) = callee
        .recv_from(&mut buf)
        .expect("the INVITE reaches the callee");
    let req = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(req.starts_with("INVITE "), "{req}");
    // The callee answers busy, with the header the failure route reads.
    let mut busy = String::from("SIP/2.0 486 Busy Here\r\n");
    for l in req.lines().filter(|l| {
        ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
            .iter()
            .any(|h| l.starts_with(h))
    }) {
        busy.push_str(l);
        if l.starts_with("To:") {
            busy.push_str(";tag=b1");
        }
        busy.push_str("\r\n");
    }
    busy.push_str("X-Why: on-the-phone\r\nContent-Length: 0\r\n\r\n");
    callee.send_to(busy.as_bytes(), from).unwrap();
    let mut got = String::new();
    caller
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while let Ok((n, _)) = caller.recv_from(&mut buf) {
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 1") {
            got = r;
            break;
        }
    }
    assert!(got.starts_with("SIP/2.0 480"), "{got}\n{}", p.log_text());
    assert_eq!(
        header(&got, "X-Ctx"),
        Some("on-the-phone 486 bob INVITE/bob/486"),
        "{got}\n{}",
        p.log_text()
    );
}
