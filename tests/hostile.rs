//! Peer data that used to become script errors: a function given a
//! malformed header answers false (as OpenSIPS), the route goes on.
//!
//! Hostile messages name hosts that are not ours: each test runs again
//! inside a network namespace that has only loopback (`unshare --net`),
//! so nothing it provokes can leave the machine.

mod common;

use common::netns::in_loopback_netns;
use common::*;
use std::time::Duration;

#[test]
fn a_malformed_route_header_makes_loose_route_false_not_a_script_error() {
    if !in_loopback_netns("a_malformed_route_header_makes_loose_route_false_not_a_script_error") {
        return;
    }
    let proxy = Proxy::start(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1 }
function route.main()
  if sip.has_totag() then
    if sip.rr.loose_route() then
      sip.sl.sl_send_reply(200, "Routed")
    else
      sip.sl.sl_send_reply(404, "Not Here")
    end
    sip.exit()
  end
  sip.sl.sl_send_reply(403, "No")
end
"#,
    );
    let bye = "BYE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKbadroute\r\n\
               Route: <sip:a]b.example.com;lr>\r\n\
               From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: badroute\r\n\
               CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let r = udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        bye,
        Duration::from_secs(3),
    )
    .unwrap_or_default();
    let log = proxy.stop();
    assert!(r.starts_with("SIP/2.0 404 Not Here\r\n"), "{r}\n{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

/// A proxy that forwards every request to `sink` (a UDP socket of the test)
/// over UDP and TCP, with `extra` config keys.
fn forwarding_proxy(sink: u16, extra: &str) -> Proxy {
    Proxy::start(&format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}", "tcp:127.0.0.1:{{PORT}}" }}, children = 1{extra} }}
function route.main()
  sip.forward("sip:127.0.0.1:{sink};transport=udp")
end
"#
    ))
}

fn request(via_host: &str, extra_headers: &str, body: &str, cl: &str) -> String {
    format!(
        "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {via_host};branch=z9hG4bKearly\r\n\
         From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: early\r\n\
         CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n{extra_headers}{cl}\r\n{body}"
    )
}

fn sink() -> (std::net::UdpSocket, u16) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

fn received(s: &std::net::UdpSocket) -> Option<String> {
    let mut buf = vec![0u8; 70000];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn content_length_past_the_body_or_twice_gets_400_over_udp() {
    let (sink, sink_port) = sink();
    let proxy = forwarding_proxy(sink_port, "");
    let to = format!("127.0.0.1:{}", proxy.port);
    let wait = Duration::from_secs(2);
    // RFC 4475 §3.1.2.x: Content-Length 9999 on a 5-byte body.
    let long = request("{LOCAL}", "", "hello", "Content-Length: 9999\r\n");
    let r = udp_exchange(&to, &long, wait).unwrap_or_default();
    assert!(r.starts_with("SIP/2.0 400 "), "{r}");
    assert!(r.contains("truncated body"), "{r}");
    let twice = request(
        "{LOCAL}",
        "Content-Length: 5\r\n",
        "hello",
        "Content-Length: 3\r\n",
    );
    let r = udp_exchange(&to, &twice, wait).unwrap_or_default();
    assert!(r.starts_with("SIP/2.0 400 "), "{r}");
    // Neither went on.
    assert_eq!(received(&sink), None);
    let ok = request("{LOCAL}", "", "hello", "Content-Length: 5\r\n");
    let _ = udp_exchange(&to, &ok, Duration::from_millis(300));
    assert!(received(&sink).is_some_and(|m| m.ends_with("\r\n\r\nhello")));
    let log = proxy.stop();
    assert_eq!(stat(&log, "core:err_requests"), 2, "{log}");
}

#[test]
fn a_64k_via_host_is_dropped_and_a_long_route_host_gets_400() {
    if !in_loopback_netns("a_64k_via_host_is_dropped_and_a_long_route_host_gets_400") {
        return;
    }
    let (sink, sink_port) = sink();
    let proxy = forwarding_proxy(sink_port, "");
    let to = format!("127.0.0.1:{}", proxy.port);
    // PROTOS c07-sip case 388's shape: one Via host of 64 KB.
    let host = "a".repeat(64_000);
    let huge = request(&host, "", "", "Content-Length: 0\r\n");
    let r = udp_exchange(&to, &huge, Duration::from_millis(700));
    assert_eq!(r, None);
    assert_eq!(received(&sink), None, "the 64 KB Via went downstream");
    // A Route host over 255 bytes: answered, not forwarded.
    let route = format!("Route: <sip:{}.example.com;lr>\r\n", "r".repeat(300));
    let long = request("{LOCAL}", &route, "", "Content-Length: 0\r\n");
    let r = udp_exchange(&to, &long, Duration::from_secs(2)).unwrap_or_default();
    assert!(
        r.starts_with("SIP/2.0 400 Bad Request - route host too long\r\n"),
        "{r}"
    );
    assert_eq!(received(&sink), None);
    // The cap is configurable.
    let log = proxy.stop();
    assert_eq!(stat(&log, "core:dropped_msgs"), 1, "{log}");
    let proxy = forwarding_proxy(sink_port, ", max_host_size = 400");
    let to = format!("127.0.0.1:{}", proxy.port);
    let _ = udp_exchange(&to, &long, Duration::from_millis(300));
    assert!(
        received(&sink).is_some(),
        "a 300-byte host under a 400 cap passes"
    );
    proxy.stop();
}

/// Reads from `s` until the proxy closes it (true) or `within` passes.
fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    let end = std::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < end {
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => {}
        }
    }
    false
}

#[test]
fn tcp_garbage_and_a_trickle_are_cut_off() {
    use std::io::Write;
    let (_sink, sink_port) = sink();
    let proxy = forwarding_proxy(sink_port, ", tcp_read_timeout = 800");
    let addr = format!("127.0.0.1:{}", proxy.port);
    // Unparsable text with a blank line every ~60 KB: each chunk frames as
    // a message that does not parse; the third in a row closes.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let chunk = format!("{}\r\n\r\n", "garbage ".repeat(7_500));
    let mut sent = 0;
    for _ in 0..20 {
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        sent < 20 || closed_within(&mut s, Duration::from_secs(2)),
        "the connection took 1.2 MB of garbage"
    );
    // One byte every 200 ms never completes a message: closed at 800 ms.
    let mut t = std::net::TcpStream::connect(&addr).unwrap();
    let start = std::time::Instant::now();
    let msg =
        b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx\r\n";
    let mut cut = false;
    for b in msg {
        if t.write_all(&[*b]).is_err() || closed_within(&mut t, Duration::from_millis(200)) {
            cut = true;
            break;
        }
    }
    let took = start.elapsed();
    assert!(cut, "a 1-byte trickle kept the connection for {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // A well-behaved connection is not touched.
    let mut u = std::net::TcpStream::connect(&addr).unwrap();
    let ok = request("127.0.0.1:1", "", "", "Content-Length: 0\r\n").replace("/UDP", "/TCP");
    u.write_all(ok.as_bytes()).unwrap();
    assert!(!closed_within(&mut u, Duration::from_millis(500)));
    let log = proxy.stop();
    assert_eq!(stat(&log, "core:bad_tcp_conns"), 2, "{log}");
}
