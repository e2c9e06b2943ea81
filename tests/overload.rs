//! Overload without a cliff (issue 17): a worker that is behind on its
//! socket answers new INVITEs 503 with Retry-After before routing, while
//! in-dialog requests still run, and counts them in core:shed_requests.

mod common;

use common::rpc::rpc;
use common::*;
use serde_json::json;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn request(method: &str, callid: &str, to_tag: &str, port: u16) -> String {
    format!(
        "{method} sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{callid}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:bob@127.0.0.1>{to_tag}\r\n\
         Call-ID: {callid}\r\nCSeq: 1 {method}\r\nContact: <sip:alice@127.0.0.1:{port}>\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_worker_behind_on_its_socket_sheds_new_invites_only() {
    let mi = free_port();
    let proxy = Proxy::start(&format!(
        "config = {{\n  listen = {{ \"udp:127.0.0.1:{{PORT}}\" }},\n  children = 1,\n  overload_streak = 20,\n  \
         modules = {{ mi_http = {{ ip = \"127.0.0.1\", port = {mi}, token = false }}, mi_fifo = false }},\n}}\n\
         function route.main()\n  \
           if sip.pv.ci == \"slow\" then local n = 0 for i = 1, 4000000 do n = n + i end end\n  \
           sip.sl.sl_send_reply(200, \"OK\")\n\
         end\n"
    ));
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let port = s.local_addr().expect("addr").port();
    let to = ("127.0.0.1", proxy.port);
    // The slow request keeps the worker busy while the rest queue up.
    s.send_to(request("OPTIONS", "slow", "", port).as_bytes(), to)
        .expect("send");
    std::thread::sleep(Duration::from_millis(20));
    for i in 0..80 {
        s.send_to(
            request("INVITE", &format!("new-{i}"), "", port).as_bytes(),
            to,
        )
        .expect("send");
    }
    s.send_to(request("BYE", "up-1", ";tag=b", port).as_bytes(), to)
        .expect("send");

    let (mut ok, mut shed, mut bye) = (0, 0, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && (ok + shed < 80 || bye.is_none()) {
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            continue;
        };
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if r.contains("CSeq: 1 BYE") {
            bye = Some(r.lines().next().unwrap_or("").to_string());
        }
        if r.contains("CSeq: 1 INVITE") {
            match r.starts_with("SIP/2.0 503") {
                true => {
                    assert!(r.contains("Retry-After: 5\r\n"), "{r}");
                    shed += 1
                }
                false => ok += 1,
            }
        }
    }
    assert_eq!(
        bye.as_deref(),
        Some("SIP/2.0 200 OK"),
        "in-dialog requests still run"
    );
    assert_eq!(
        ok + shed,
        80,
        "every INVITE answered: {ok} routed, {shed} shed"
    );
    // The streak counts datagrams read back to back: the slow OPTIONS is
    // one of them when the INVITEs were queued before it was read.
    assert!(
        shed > 0 && ok >= 19,
        "{ok} routed, {shed} shed\n{}",
        proxy.log_text()
    );
    eprintln!("80 INVITEs queued behind a slow request: {ok} routed, {shed} shed");
    let r = rpc(mi, "get_statistics", json!([["core:shed_requests"]]));
    assert_eq!(r["result"]["core:shed_requests"], shed, "{r}");
}
