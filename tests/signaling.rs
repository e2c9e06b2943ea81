//! signaling's `send_reply` on the wire (OpenSIPS 3.4
//! `modules/signaling/signaling.c`): statefully through the transaction
//! when the request has one, statelessly otherwise.

mod common;

use common::Proxy;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Every reply counts the route runs in its reason (`$var` is per worker
/// and kept between messages; one worker), so a reply the transaction
/// sends again is told apart from one the route made again.
const SCRIPT: &str = r#"
config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1 }

function route.main()
  if sip.is_method("ACK") then sip.exit() end
  sip.var.n = (sip.var.n or 0) + 1
  -- OpenSIPS's t_newtran ends the script for a retransmission (it
  -- returns 0) after the transaction sent its reply again.
  if sip.pv.rU == "stateful" and not sip.tm.t_newtran() then sip.exit() end
  if sip.pv.rU == "bad" then
    sip.var.code = 99
    sip.signaling.send_reply(sip.var.code, "Nope")
  end
  sip.signaling.send_reply(486, "Busy run $var(n)")
end
"#;

fn invite(user: &str, local: std::net::SocketAddr, port: u16) -> String {
    format!(
        "INVITE sip:{user}@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{user}-1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: sig-{user}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Everything received for `secs`.
fn drain(s: &UdpSocket, secs: f64) -> Vec<String> {
    let mut got = vec![];
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut buf = [0u8; 65536];
    while Instant::now() < end {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

fn caller() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s
}

fn first_line(m: &str) -> &str {
    m.split("\r\n").next().unwrap_or("")
}

fn to_tag(m: &str) -> String {
    m.split("\r\n")
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split("tag=").nth(1))
        .unwrap_or("")
        .to_string()
}

#[test]
fn send_reply_without_a_transaction_is_stateless() {
    let proxy = Proxy::start(SCRIPT);
    let c = caller();
    let msg = invite("stateless", c.local_addr().unwrap(), proxy.port);
    c.send_to(msg.as_bytes(), ("127.0.0.1", proxy.port))
        .unwrap();
    let first = drain(&c, 1.2);
    // No transaction: one reply, no retransmission of it (UDP Timer G is
    // a transaction's), as sl_send_reply.
    assert_eq!(first.len(), 1, "{first:?}\n{}", proxy.log_text());
    assert_eq!(first_line(&first[0]), "SIP/2.0 486 Busy run 1");
    // The caller's retransmission runs the route again: a new reply, with
    // the same To tag (sl derives it from the request).
    c.send_to(msg.as_bytes(), ("127.0.0.1", proxy.port))
        .unwrap();
    let second = drain(&c, 0.5);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(first_line(&second[0]), "SIP/2.0 486 Busy run 2");
    assert_eq!(to_tag(&first[0]), to_tag(&second[0]));
    assert!(!to_tag(&first[0]).is_empty());
}

#[test]
fn send_reply_after_t_newtran_answers_retransmissions_from_the_transaction() {
    let proxy = Proxy::start(SCRIPT);
    let c = caller();
    let msg = invite("stateful", c.local_addr().unwrap(), proxy.port);
    c.send_to(msg.as_bytes(), ("127.0.0.1", proxy.port))
        .unwrap();
    let got = drain(&c, 0.3);
    assert!(got.len() >= 2, "{got:?}\n{}", proxy.log_text());
    // t_newtran answers a new INVITE 100 at once (OpenSIPS t_lookup.c
    // `auto_100trying`), then the route's reply follows.
    assert_eq!(first_line(&got[0]), "SIP/2.0 100 Giving it a try");
    let first = &got[1..];
    assert_eq!(first_line(&first[0]), "SIP/2.0 486 Busy run 1");
    // The caller's retransmission is absorbed by the transaction, which
    // sends its reply again: no reply of a second route run.
    c.send_to(msg.as_bytes(), ("127.0.0.1", proxy.port))
        .unwrap();
    // Unacknowledged, the transaction also retransmits the 486 over UDP
    // (RFC 3261 Timer G, 500 ms).
    let more = drain(&c, 1.5);
    assert!(more.len() >= 2, "{more:?}");
    for m in &more {
        assert_eq!(m, &first[0], "the transaction's own reply, byte for byte");
    }
}

#[test]
fn send_reply_refuses_a_code_outside_100_699_at_run_time_with_500() {
    let proxy = Proxy::start(SCRIPT);
    let c = caller();
    let msg = invite("bad", c.local_addr().unwrap(), proxy.port);
    c.send_to(msg.as_bytes(), ("127.0.0.1", proxy.port))
        .unwrap();
    let got = drain(&c, 0.5);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(first_line(&got[0]), "SIP/2.0 500 Server Internal Error");
    let log = proxy.log_text();
    assert!(
        log.contains("sip.signaling.send_reply: code 99 is not a SIP status code"),
        "{log}"
    );
}

/// A literal code outside 100..699 is refused by `lunasip check` with the
/// script line, as OpenSIPS's fixup refuses it at startup.
#[test]
fn check_refuses_a_literal_code_outside_100_699() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.lua");
    std::fs::write(
        &path,
        "config = { listen = { \"udp:127.0.0.1:5999\" } }\nfunction route.main()\n  sip.signaling.send_reply(99, \"Nope\")\nend\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["check", "-c", p])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "{p}:3: send_reply(99, …): 99 is not a SIP status code (100-699)"
        )),
        "{err}"
    );
}
