//! registrar's `tcp_persistent_flag` (OpenSIPS registrar/save.c): a
//! REGISTER over TCP with the flag set keeps its connection open for as
//! long as its TCP contact is registered, past `tcp_connection_lifetime`,
//! so a call to the user reaches it on that same connection. Without the
//! flag the idle connection is closed.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::Proxy;

const SCRIPT: &str = r#"config = {
  listen = { "udp:127.0.0.1:{PORT}", "tcp:127.0.0.1:{PORT}" },
  tcp_connection_lifetime = 1,
  modules = {
    mi_http = false,
    mi_fifo = false,
    registrar = { min_expires = 10, tcp_persistent_flag = "TCP_PERSIST" },
  },
}

function route.main()
  if sip.is_method("REGISTER") then
    if sip.pv.fU == "keep" then
      sip.setflag("TCP_PERSIST")
    end
    sip.registrar.save("location")
    sip.exit()
  end
  if not sip.registrar.lookup("location") then
    sip.sl.sl_send_reply(404, "Not Found")
    sip.exit()
  end
  sip.tm.t_relay()
end
"#;

/// A UA on TCP: connects from a port of its own and registers
/// `sip:user@127.0.0.1:<that port>;transport=tcp` for 60 s.
fn register(port: u16, user: &str) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = c.local_addr().unwrap();
    let reg = format!("REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bK-reg-{user}\r\nFrom: <sip:{user}@127.0.0.1>;tag=r1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{user}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{me};transport=tcp>;expires=60\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    c.write_all(reg.as_bytes()).unwrap();
    let got = read_message(&mut c);
    assert!(got.starts_with("SIP/2.0 200"), "REGISTER {user}: {got}");
    c
}

/// One message read from a stream ("" at EOF or timeout).
fn read_message(c: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return String::from_utf8_lossy(&buf[..end + 4 + len]).into_owned();
            }
        }
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&buf).into_owned(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn invite_to(port: u16, user: &str) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = s.local_addr().unwrap();
    let inv = format!("INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-inv-{user}\r\nFrom: <sip:carol@127.0.0.1>;tag=c1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: inv-{user}\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    s.send_to(inv.as_bytes(), ("127.0.0.1", port)).unwrap();
    s
}

#[test]
fn tcp_persistent_flag_keeps_the_registered_connection_for_calls() {
    let p = Proxy::start(SCRIPT);
    let port = p.port;
    let mut kept = register(port, "keep");
    let mut plain = register(port, "plain");
    // Idle well past tcp_connection_lifetime (1 s).
    std::thread::sleep(Duration::from_millis(3500));
    // Without the flag the proxy closed the idle connection.
    plain
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut one = [0u8; 1];
    assert!(
        matches!(plain.read(&mut one), Ok(0)),
        "the proxy closed the connection registered without the flag"
    );
    // With it, a call to the user comes down the connection it registered on.
    let _caller = invite_to(port, "keep");
    let got = read_message(&mut kept);
    assert!(
        got.starts_with("INVITE sip:keep@"),
        "the INVITE on the kept connection: {got:?}\n{}",
        p.log_text()
    );
}
