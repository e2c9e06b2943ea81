//! Branch injection into a waiting INVITE transaction (OpenSIPS 3.4
//! tm.c `t_wait_for_new_branches`, `t_wait_no_more_branches`,
//! `w_t_inject_branches`) as the caller and the callees see it: a
//! callee's refusal is held while the transaction waits, and a callee
//! injected a second later answers the call.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn proxy(routes: &str) -> Proxy {
    Proxy::start(&format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{ mi_http = false, mi_fifo = false, tm = {{ fr_timeout = 2, fr_inv_timeout = 4 }} }},
}}
{routes}
"#
    ))
}

/// A callee on a socket of its own: answers each INVITE with `status`
/// and tells when it came.
fn callee(status: &'static str) -> (u16, std::thread::JoinHandle<Option<Instant>>) {
    let (s, port) = udp_listener();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        let mut first = None;
        let end = Instant::now() + Duration::from_secs(7);
        while Instant::now() < end {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                break;
            };
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.starts_with("INVITE ") {
                first.get_or_insert_with(Instant::now);
                answer(&s, &m, from, status);
            }
        }
        first
    });
    (port, h)
}

fn answer(s: &UdpSocket, req: &str, to: SocketAddr, status: &str) {
    let mut r = format!("SIP/2.0 {status}\r\n");
    for l in req.split("\r\n") {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" => {
                r.push_str(l);
                r.push_str("\r\n");
            }
            "to" => {
                r.push_str(l);
                r.push_str(";tag=callee\r\n");
            }
            _ => {}
        }
    }
    r.push_str("Contact: <sip:callee@127.0.0.1>\r\nContent-Length: 0\r\n\r\n");
    s.send_to(r.as_bytes(), to).expect("answer");
}

/// Sends an INVITE and returns the first final reply and when it came.
fn call(port: u16, tag: &str) -> (String, Duration) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    let local = s.local_addr().expect("addr");
    let inv = format!(
        "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{tag}\r\n\
         From: <sip:alice@127.0.0.1>;tag={tag}\r\nTo: <sip:bob@127.0.0.1>\r\n\
         Call-ID: {tag}@127.0.0.1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:alice@{local}>\r\nContent-Length: 0\r\n\r\n"
    );
    let sent = Instant::now();
    s.send_to(inv.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = [0u8; 65536];
    loop {
        let n = s.recv(&mut buf).expect("no final reply");
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 1") {
            return (r, sent.elapsed());
        }
    }
}

const ROUTES: &str = r#"function route.main()
  if sip.is_method("ACK") then sip.exit() end
  sip.tm.t_newtran()
  WAIT
  sip.pv.du = "sip:127.0.0.1:{BUSY}"
  sip.tm.t_relay()
  sip.cfgutils.sleep(1)
  LATER
end"#;

fn routes(wait: &str, later: &str, busy: u16) -> String {
    ROUTES
        .replace("WAIT", wait)
        .replace("LATER", later)
        .replace("{BUSY}", &busy.to_string())
}

/// The busy callee's 486 is held by the wait; the callee injected a
/// second later gets the INVITE and its 200 is what the caller gets.
#[test]
fn injected_callee_answers_while_the_first_refused() {
    let (busy, busy_seen) = callee("486 Busy Here");
    let (late, late_seen) = callee("200 OK");
    let p = proxy(&routes(
        "sip.tm.t_wait_for_new_branches()",
        &format!("sip.pv.du = \"sip:127.0.0.1:{late}\"\n  sip.tm.t_inject_branches(\"msg\")"),
        busy,
    ));
    let (fin, _) = call(p.port, "inj1");
    let log = p.stop();
    let (b, l) = (
        busy_seen.join().expect("busy"),
        late_seen.join().expect("late"),
    );
    assert!(fin.starts_with("SIP/2.0 200 OK\r\n"), "{fin}\n{log}");
    let (b, l) = (
        b.expect("busy callee got the INVITE"),
        l.expect("late callee got the INVITE"),
    );
    assert!(
        l.duration_since(b) >= Duration::from_millis(900),
        "injected a second later"
    );
}

/// `t_wait_no_more_branches` ends the wait: the held 486 goes up then,
/// not at fr_inv_timeout; without the wait it goes up at once.
#[test]
fn no_more_branches_sends_the_held_answer() {
    let (busy, busy_seen) = callee("486 Busy Here");
    let p = proxy(&routes(
        "sip.tm.t_wait_for_new_branches()",
        "sip.tm.t_wait_no_more_branches()",
        busy,
    ));
    let (fin, took) = call(p.port, "inj2");
    drop(p);
    let _ = busy_seen.join();
    assert!(fin.starts_with("SIP/2.0 486 Busy Here\r\n"), "{fin}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(3000),
        "held until the wait ended, not {took:?}"
    );

    let (busy, busy_seen) = callee("486 Busy Here");
    let p = proxy(&routes("", "", busy));
    let (fin, took) = call(p.port, "inj3");
    drop(p);
    let _ = busy_seen.join();
    assert!(fin.starts_with("SIP/2.0 486 Busy Here\r\n"), "{fin}");
    assert!(
        took < Duration::from_millis(700),
        "no wait: at once, not {took:?}"
    );
}

/// The phony branch ends at fr_inv_timeout: with nothing injected the
/// caller gets the held answer then.
#[test]
fn the_wait_ends_at_fr_inv_timeout() {
    let (busy, busy_seen) = callee("486 Busy Here");
    let p = proxy(&routes("sip.tm.t_wait_for_new_branches()", "", busy));
    let (fin, took) = call(p.port, "inj4");
    drop(p);
    let _ = busy_seen.join();
    assert!(fin.starts_with("SIP/2.0 486 Busy Here\r\n"), "{fin}");
    assert!(
        took >= Duration::from_millis(3800),
        "held until fr_inv_timeout (4 s), not {took:?}"
    );
}

/// A CANCEL ends the wait (OpenSIPS cancels the phony branch too): the
/// caller gets 200 for the CANCEL and 487 for the INVITE at once, not
/// the held 486 at fr_inv_timeout.
#[test]
fn cancel_ends_the_wait_with_487() {
    let (busy, busy_seen) = callee("486 Busy Here");
    let p = proxy(&format!(
        "function route.main()\n  if sip.is_method(\"CANCEL\") then\n    if sip.tm.t_check_trans() then sip.tm.t_relay() end\n    sip.exit()\n  end\n{}",
        routes("sip.tm.t_wait_for_new_branches()", "", busy).replace("function route.main()\n", "")
    ));
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    let local = s.local_addr().expect("addr");
    let req = |method: &str| {
        format!(
            "{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKinjc\r\n\
             From: <sip:alice@127.0.0.1>;tag=injc\r\nTo: <sip:bob@127.0.0.1>\r\n\
             Call-ID: injc@127.0.0.1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n\
             Contact: <sip:alice@{local}>\r\nContent-Length: 0\r\n\r\n"
        )
    };
    s.send_to(req("INVITE").as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    std::thread::sleep(Duration::from_millis(1500));
    let cancelled = Instant::now();
    s.send_to(req("CANCEL").as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while !got
        .iter()
        .any(|r: &String| r.contains("CSeq: 1 INVITE") && !r.starts_with("SIP/2.0 1"))
    {
        let n = s.recv(&mut buf).expect("no final reply to the INVITE");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let took = cancelled.elapsed();
    let log = p.stop();
    let _ = busy_seen.join();
    assert!(
        got.iter()
            .any(|r| r.starts_with("SIP/2.0 200 ") && r.contains("CSeq: 1 CANCEL")),
        "{got:?}"
    );
    let fin = got.last().cloned().unwrap_or_default();
    assert!(fin.starts_with("SIP/2.0 487 "), "{fin}\n{log}");
    assert!(took < Duration::from_millis(1000), "at once, not {took:?}");
}
