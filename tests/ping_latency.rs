//! Ping latency end to end (OpenSIPS 3.4 nathelper `sipping_latency_flag`,
//! usrloc `update_sipping_latency` and `E_UL_LATENCY_UPDATE`, lib/reg
//! lookup.c `sort-by-latency` and `max-ping-latency`): two user agents
//! of one AoR answer the OPTIONS pings, one at once and one 400 ms late;
//! `ul_dump` shows each latency, a UDP subscriber gets the events the
//! threshold lets through, and calls reach the contact the flags choose.
//! Run in a loopback-only network namespace: the Contacts name private
//! addresses the proxy must never use.

mod common;

use common::ds::mi;
use common::netns::in_loopback_netns;
use common::rpc::rpc;
use common::*;
use serde_json::{json, Value};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A user agent at `ip` behind a "NAT" (its Contact names `private`):
/// it answers pings after `delay` and each INVITE with 486, reporting
/// the INVITE as `(name, message)`.
struct Ua {
    sock: UdpSocket,
    private: &'static str,
}

impl Ua {
    fn new(ip: &str, private: &'static str) -> Ua {
        let sock = UdpSocket::bind((ip, 0)).expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        Ua { sock, private }
    }

    /// REGISTER of `erin` with q `q`, answered 200.
    fn register(&self, proxy: u16, q: &str) {
        let p = self.private;
        let msg = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {p}:5060;branch=z9hG4bK-r{p};rport\r\n\
             From: <sip:erin@127.0.0.1>;tag=r1\r\nTo: <sip:erin@127.0.0.1>\r\nCall-ID: reg-{p}\r\n\
             CSeq: 1 REGISTER\r\nContact: <sip:erin@{p}:5060>;q={q}\r\nExpires: 300\r\nMax-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        );
        self.sock
            .send_to(msg.as_bytes(), ("127.0.0.1", proxy))
            .expect("send");
        let mut buf = [0u8; 65536];
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let r = String::from_utf8_lossy(&buf[..n]);
                assert!(r.starts_with("SIP/2.0 200"), "{r}");
                return;
            }
        }
        panic!("REGISTER from {p} not answered");
    }

    /// Serves pings and INVITEs until `stop`.
    fn serve(
        self,
        proxy: u16,
        delay: Duration,
        name: &'static str,
        seen: mpsc::Sender<(&'static str, String)>,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                    continue;
                };
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let answer = if msg.starts_with("OPTIONS ") {
                    std::thread::sleep(delay);
                    reply_to(&msg, "200 OK")
                } else if msg.starts_with("INVITE ") {
                    let _ = seen.send((name, msg.clone()));
                    reply_to(&msg, "486 Busy Here")
                } else {
                    continue;
                };
                let _ = self.sock.send_to(answer.as_bytes(), ("127.0.0.1", proxy));
            }
        })
    }
}

fn script(mi_port: u16) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    usrloc = {{ nat_bflag = "NAT", timer_interval = 1, latency_event_min_us = 200000 }},
    registrar = {{ received_avp = "$avp(rcv)" }},
    nathelper = {{
      received_avp = "$avp(rcv)", sipping_from = "sip:pinger@127.0.0.1",
      natping_interval = 2, ping_threshold = 1,
      sipping_bflag = "SIP_PING", sipping_latency_flag = "LATENCY",
    }},
  }},
}}

function route.main()
  if sip.is_method("REGISTER") then
    sip.setbflag("NAT")
    sip.setbflag("SIP_PING")
    sip.setbflag("LATENCY")
    sip.nathelper.fix_nated_register()
    sip.registrar.save("location")
    sip.exit()
  end
  if sip.has_totag() then
    sip.tm.t_relay()
    sip.exit()
  end
  -- The flags under test come with the call.
  local ok, rc = sip.registrar.lookup("location", sip.pv.get("$hdr(X-Lookup)") or "")
  if not ok then
    sip.sl.sl_send_reply(404, "Not Found " .. rc)
    sip.exit()
  end
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
"#
    )
}

/// The Ping-Latency `ul_dump` shows for the contact naming `private`.
fn latency_of(dump: &Value, private: &str) -> Option<i64> {
    dump["Domains"][0]["AORs"]
        .as_array()?
        .iter()
        .flat_map(|a| a["Contacts"].as_array().cloned().unwrap_or_default())
        .find(|c| c["Contact"].as_str().is_some_and(|u| u.contains(private)))?["Ping-Latency"]
        .as_i64()
}

#[test]
fn ping_latency_is_kept_reported_and_chooses_the_contact() {
    if !in_loopback_netns("ping_latency_is_kept_reported_and_chooses_the_contact") {
        return;
    }
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port));
    let (events, eport) = udp_listener();
    let r = rpc(
        mi_port,
        "event_subscribe",
        json!(["E_UL_LATENCY_UPDATE", format!("udp:127.0.0.1:{eport}"), 120]),
    );
    assert_eq!(r["result"], "OK", "{r}");

    // The slow one has the higher q: without the latency flags it is
    // the first contact.
    let fast = Ua::new("127.0.0.2", "10.0.0.7");
    let slow = Ua::new("127.0.0.3", "10.0.0.8");
    fast.register(p.port, "0.5");
    slow.register(p.port, "1.0");
    let (tx, seen) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let t1 = fast.serve(p.port, Duration::ZERO, "fast", tx.clone(), stop.clone());
    let t2 = slow.serve(p.port, Duration::from_millis(400), "slow", tx, stop.clone());

    // Both answer their pings: ul_dump shows the latencies.
    let deadline = Instant::now() + Duration::from_secs(12);
    let (lf, ls) = loop {
        let dump = rpc(mi_port, "ul_dump", json!([]))["result"].clone();
        if let (Some(f), Some(s)) = (latency_of(&dump, "10.0.0.7"), latency_of(&dump, "10.0.0.8")) {
            break (f, s);
        }
        assert!(
            Instant::now() < deadline,
            "no latencies: {dump}\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(lf > 0 && lf < 150_000, "fast: {lf} µs");
    assert!((380_000..1_500_000).contains(&ls), "slow: {ls} µs");

    // latency_event_min_us = 200000: only the slow contact's updates.
    let mut buf = [0u8; 65536];
    let (n, _) = events.recv_from(&mut buf).expect("an E_UL_LATENCY_UPDATE");
    let ev: Value = serde_json::from_slice(&buf[..n]).expect("JSON");
    assert_eq!(ev["method"], "E_UL_LATENCY_UPDATE", "{ev}");
    let params = &ev["params"];
    assert_eq!(params["aor"], "erin", "{ev}");
    assert_eq!(params["uri"], "sip:erin@10.0.0.8:5060", "{ev}");
    assert!(params["latency"].as_i64().unwrap_or(0) >= 200_000, "{ev}");
    assert_eq!(params["domain"], "location", "{ev}");

    // One contact per call (no-branches): the flags choose which.
    let caller = UdpSocket::bind("127.0.0.1:0").expect("caller");
    caller
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("t");
    let cport = caller.local_addr().expect("addr").port();
    let mut call = |n: u32, flags: &str| -> String {
        let inv = format!(
            "INVITE sip:erin@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cport};branch=z9hG4bK-lat{n}\r\n\
             From: <sip:caller@127.0.0.1>;tag=c{n}\r\nTo: <sip:erin@127.0.0.1>\r\nCall-ID: lat-{n}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:caller@127.0.0.1:{cport}>\r\nX-Lookup: {flags}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        caller
            .send_to(inv.as_bytes(), ("127.0.0.1", p.port))
            .expect("send");
        loop {
            let (n, _) = caller
                .recv_from(&mut buf)
                .unwrap_or_else(|_| panic!("no final reply for {flags}\n{}", p.log_text()));
            let r = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !r.starts_with("SIP/2.0 100") {
                return r.lines().next().unwrap_or("").to_string();
            }
        }
    };
    let mut reached = |n: u32, flags: &str| -> Vec<&'static str> {
        let fin = call(n, flags);
        assert!(fin.starts_with("SIP/2.0 486"), "{flags}: {fin}");
        let id = format!("Call-ID: lat-{n}\r\n");
        let mut who: Vec<&str> = seen
            .try_iter()
            .filter(|(_, m)| m.contains(&id))
            .map(|(w, _)| w)
            .collect();
        who.sort();
        who.dedup();
        who
    };
    assert_eq!(reached(1, "no-branches"), ["slow"], "q order");
    assert_eq!(reached(2, "sort-by-latency,no-branches"), ["fast"]);
    assert_eq!(reached(3, "bY"), ["fast"], "2.x letters");
    assert_eq!(reached(4, "max-ping-latency=150000"), ["fast"]);
    assert_eq!(reached(5, ""), ["fast", "slow"]);
    // Both over the limit: the AoR has contacts but none goes (-1).
    let fin = call(6, "max-ping-latency=1");
    assert_eq!(fin, "SIP/2.0 404 Not Found -1");

    stop.store(true, Ordering::Relaxed);
    let _ = (t1.join(), t2.join());
    let (ok, dump) = mi(mi_port, &["ul_dump"]);
    assert!(ok && dump.contains("Ping-Latency"), "{dump}");
}
