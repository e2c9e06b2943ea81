//! tm's `t_anycast_replicate` between two lunasip nodes of one clusterer
//! cluster (OpenSIPS 3.4 modules/tm/cluster.c, modules/clusterer/): the
//! caller's INVITE reaches node 1, its CANCEL and ACK reach node 2, whose
//! script replicates them over BIN to node 1, which holds the
//! transaction. Asserted on the wire (the caller's 200 and 487, the
//! callee's CANCEL and ACK), in the nodes' logs and statistics, and
//! through MI `clusterer_list`.

mod common;

use common::rpc::rpc;
use common::{free_port, stat, uas, Proxy};
use serde_json::{json, Value};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// One node: an anycast socket tagged `ac` (the nodes' addresses differ
/// on loopback, so the tag names the socket in replicated packets).
fn node(
    id: u32,
    bin: u16,
    peer: u16,
    mi: u16,
    uas_port: u16,
    auto_cancel: bool,
    extra_listen: &str,
) -> String {
    let other = 3 - id;
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}} anycast tag ac"{extra_listen} }},
  children = 2,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi}, token = false }},
    mi_fifo = false,
    clusterer = {{
      db_mode = 0,
      my_node_id = {id},
      my_node_info = "cluster_id=1,url=bin:127.0.0.1:{bin}",
      neighbor_node_info = {{ "cluster_id=1,node_id={other},url=bin:127.0.0.1:{peer}" }},
    }},
    tm = {{ tm_replication_cluster = 1, cluster_auto_cancel = {auto_cancel} }},
  }},
}}
function route.main()
  if sip.is_method("CANCEL") or sip.is_method("ACK") then
    sip.xlog("L_INFO", "node {id}: $rm\n")
    if sip.tm.t_check_trans() then
      sip.tm.t_relay()
    else
      local ok, rc = sip.tm.t_anycast_replicate()
      sip.xlog("L_INFO", "node {id}: replicated $rm rc=" .. tostring(rc) .. "\n")
    end
    sip.exit()
  end
  sip.pv.du = "sip:127.0.0.1:{uas_port}"
  sip.tm.t_relay()
end
"#
    )
}

/// The caller: a UDP socket speaking to two addresses of the "anycast" service.
struct Caller {
    sock: UdpSocket,
    port: u16,
}

impl Caller {
    fn new() -> Caller {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        Caller { sock, port }
    }

    fn send(&self, to: u16, method: &str, call_id: &str, to_tag: &str) {
        let cseq_method = method;
        let tag = if to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={to_tag}")
        };
        let msg = format!(
            "{method} sip:callee@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{call_id};rport\r\n\
             From: <sip:caller@127.0.0.1>;tag=c{call_id}\r\n\
             To: <sip:callee@127.0.0.1>{tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 {cseq_method}\r\n\
             Contact: <sip:caller@127.0.0.1:{p}>\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            p = self.port
        );
        self.sock
            .send_to(msg.as_bytes(), ("127.0.0.1", to))
            .unwrap();
    }

    /// Replies received until `want` returns true for one (or 10 s).
    fn until(&self, mut want: impl FnMut(&str, SocketAddr) -> bool) -> Vec<(String, SocketAddr)> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            if let Ok((n, from)) = self.sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = want(&text, from);
                got.push((text, from));
                if done {
                    break;
                }
            }
        }
        got
    }
}

fn to_tag(reply: &str) -> String {
    reply
        .lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .map(|t| t.trim().to_string())
        .unwrap_or_default()
}

/// Waits until the node of MI port `mi` has its link with node `id` Up
/// (the first pings are answered).
fn wait_up(mi: u16, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = rpc(mi, "clusterer_list", json!({}));
        let up = list["result"]["Clusters"][0]["Nodes"]
            .as_array()
            .is_some_and(|n| {
                n.iter()
                    .any(|n| n["node_id"] == id && n["link_state"] == "Up")
            });
        if up {
            return;
        }
        assert!(Instant::now() < deadline, "{list}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the call: INVITE to node 1, CANCEL and ACK to node 2; returns the
/// nodes' logs (after shutdown) and node 2's `clusterer_list`.
fn cancel_through_the_other_node(auto_cancel: bool) -> (String, String, Value) {
    let ringer = uas("uas_ring_cancel.xml", "u1");
    let (b1, b2, mi1, mi2) = (free_port(), free_port(), free_port(), free_port());
    let n1 = Proxy::start(&node(1, b1, b2, mi1, ringer.port, auto_cancel, ""));
    let n2 = Proxy::start(&node(2, b2, b1, mi2, ringer.port, auto_cancel, ""));
    wait_up(mi2, 1);
    let caller = Caller::new();
    let call_id = format!("anycast{}{}", auto_cancel as u8, caller.port);
    caller.send(n1.port, "INVITE", &call_id, "");
    let ringing = caller.until(|r, _| r.starts_with("SIP/2.0 180"));
    assert!(
        ringing.iter().any(|(r, _)| r.starts_with("SIP/2.0 180")),
        "no 180: {ringing:?}\n{}",
        n1.log_text()
    );
    caller.send(n2.port, "CANCEL", &call_id, "");
    let mut saw_200 = None;
    let mut saw_487 = None;
    let answers = caller.until(|r, from| {
        if r.starts_with("SIP/2.0 200") && r.contains("CANCEL\r\n") {
            saw_200 = Some(from);
        }
        if r.starts_with("SIP/2.0 487") {
            saw_487 = Some((from, to_tag(r)));
        }
        saw_200.is_some() && saw_487.is_some()
    });
    let n1_addr: SocketAddr = format!("127.0.0.1:{}", n1.port).parse().unwrap();
    // Node 1 holds the transaction: it answers the CANCEL and sends the 487.
    assert_eq!(
        saw_200,
        Some(n1_addr),
        "{answers:?}\n{}\n{}",
        n1.log_text(),
        n2.log_text()
    );
    let (from, tag) = saw_487.clone().expect("487");
    assert_eq!(from, n1_addr);
    caller.send(n2.port, "ACK", &call_id, &tag);
    // The callee's scenario passes once it got the CANCEL and the ACK of its 487.
    assert_eq!(ringer.counts(1), (1, 0), "{}", ringer.errors());
    // Node 1 counts the replicated ACK once its route ran.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !n1.log_text().contains("node 1: ACK") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let list = rpc(mi2, "clusterer_list", json!({}));
    (n1.stop(), n2.stop(), list)
}

#[test]
fn anycast_cancel_auto_handled_by_the_node_holding_the_invite() {
    let (log1, log2, list) = cancel_through_the_other_node(true);
    assert!(log2.contains("node 2: replicated CANCEL rc=1"), "{log2}");
    assert!(log2.contains("node 2: replicated ACK rc=1"), "{log2}");
    // cluster_auto_cancel: node 1 relays the CANCEL without its script.
    assert!(!log1.contains("node 1: CANCEL"), "{log1}");
    assert!(log1.contains("node 1: ACK"), "{log1}");
    assert_eq!(stat(&log2, "tm:cluster_cancel_sent"), 1, "{log2}");
    assert_eq!(stat(&log2, "tm:cluster_request_sent"), 1, "{log2}");
    assert_eq!(stat(&log1, "tm:cluster_cancel_recv"), 1, "{log1}");
    assert_eq!(stat(&log1, "tm:cluster_request_recv"), 1, "{log1}");
    // Node 2 sent to node 1 over an open link.
    let nodes = &list["result"]["Clusters"][0]["Nodes"];
    assert_eq!(list["result"]["Clusters"][0]["cluster_id"], 1, "{list}");
    assert_eq!(nodes[0]["node_id"], 1, "{list}");
    assert_eq!(nodes[0]["link_state"], "Up", "{list}");
    assert!(
        nodes[0]["url"]
            .as_str()
            .unwrap()
            .starts_with("bin:127.0.0.1:"),
        "{list}"
    );
}

#[test]
fn anycast_cancel_through_the_holding_nodes_script_without_auto_cancel() {
    let (log1, log2, _) = cancel_through_the_other_node(false);
    assert!(log2.contains("node 2: replicated CANCEL rc=1"), "{log2}");
    // The replicated CANCEL ran node 1's route.main, whose t_relay cancelled.
    assert!(log1.contains("node 1: CANCEL"), "{log1}");
    assert!(!log1.contains("node 1: replicated"), "{log1}");
    assert_eq!(stat(&log2, "tm:cluster_request_sent"), 2, "{log2}");
    assert_eq!(stat(&log1, "tm:cluster_request_recv"), 2, "{log1}");
    assert_eq!(stat(&log1, "tm:cluster_cancel_recv"), 0, "{log1}");
}

/// OpenSIPS's -1 (not a CANCEL/ACK, not an anycast socket) and -3 (the
/// only neighbour's link is down), answered on the wire.
#[test]
fn anycast_replicate_return_codes() {
    let (bin, dead, mi, plain) = (free_port(), free_port(), free_port(), free_port());
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}} anycast", "udp:127.0.0.1:{plain}" }},
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi}, token = false }},
    mi_fifo = false,
    clusterer = {{ db_mode = 0, my_node_info = {{ "cluster_id=7,node_id=3,url=bin:127.0.0.1:{bin}" }},
      neighbor_node_info = "cluster_id=7,node_id=4,url=bin:127.0.0.1:{dead}" }},
    tm = {{ tm_replication_cluster = 7 }},
  }},
}}
function route.main()
  local ok, rc = sip.tm.t_anycast_replicate()
  sip.sl.sl_send_reply(200, "rc " .. tostring(rc))
end
"#
    );
    let p = Proxy::start(&script);
    let caller = Caller::new();
    let reply = |to: u16, method: &str, id: &str| {
        caller.send(to, method, id, "");
        let got = caller.until(|r, _| r.starts_with("SIP/2.0 200"));
        got.last()
            .map(|(r, _)| r.lines().next().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(reply(p.port, "OPTIONS", "rc1"), "SIP/2.0 200 rc -1");
    assert_eq!(reply(plain, "CANCEL", "rc2"), "SIP/2.0 200 rc -1");
    // Node 4 is not listening: its link is never Up (pinged, then Down
    // once the retries are spent), so nothing can be sent to it.
    assert_eq!(reply(p.port, "CANCEL", "rc3"), "SIP/2.0 200 rc -3");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = rpc(mi, "clusterer_list", json!({}));
        if list["result"]["Clusters"][0]["Nodes"][0]["link_state"] == "Down" {
            assert_eq!(
                list["result"]["Clusters"][0]["Nodes"][0]["next_hop"],
                "none"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{list}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(reply(p.port, "CANCEL", "rc4"), "SIP/2.0 200 rc -3");
    let log = p.stop();
    assert!(log.contains("node [4] is down"), "{log}");
}

/// Settings OpenSIPS refuses are refused at start with the key named.
#[test]
fn clusterer_settings_are_checked() {
    let base = |clusterer: &str, tm: &str| {
        format!(
            "config = {{ listen = {{ \"udp:127.0.0.1:{{PORT}}\" }}, modules = {{ mi_fifo = false, clusterer = {{ {clusterer} }}, tm = {{ {tm} }} }} }}\nfunction route.main() end\n"
        )
    };
    let bin = free_port();
    let cases = [
        (base("db_mode = 0", ""), "my_node_info"),
        (
            base("db_mode = 0, my_node_id = 0, my_node_info = \"cluster_id=1,url=bin:127.0.0.1:1\"", ""),
            "my_node_id",
        ),
        (
            base("db_mode = 0, my_node_info = \"cluster_id=1,node_id=1,url=bin:localhost:1\"", ""),
            "my_node_info",
        ),
        (
            base(&format!("db_mode = 0, my_node_info = \"cluster_id=1,node_id=1,url=bin:127.0.0.1:{bin}\", neighbor_node_info = \"cluster_id=1,node_id=1,url=bin:127.0.0.1:9\""), ""),
            "neighbor_node_info",
        ),
    ];
    for (script, key) in cases {
        let err = Proxy::try_start(&script)
            .err()
            .unwrap_or_else(|| panic!("started: {script}"));
        assert!(err.contains(key), "{key}: {err}");
    }
}

/// The callee's reply to `invite`: its Vias, From, To (with `tag`),
/// Call-ID and CSeq.
fn reply_to(invite: &str, status: &str, tag: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for l in invite.lines() {
        let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" => out.push_str(&format!("{l}\r\n")),
            "to" => out.push_str(&format!("{l};tag={tag}\r\n")),
            _ => {}
        }
    }
    out + "Content-Length: 0\r\n\r\n"
}

/// The first datagram on `s` starting with `start` (10 s at most).
fn recv_starting(s: &UdpSocket, start: &str) -> Option<(String, SocketAddr)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with(start) {
                return Some((text, from));
            }
        }
    }
    None
}

/// A callee's reply that reaches node 2 for a branch of node 1 (its Via
/// carries `;cid=1`) goes to node 1, which relays it and acknowledges it
/// (OpenSIPS cluster.c `tm_reply_replicate`).
#[test]
fn anycast_reply_reaching_the_other_node_goes_to_the_branchs_node() {
    let callee = UdpSocket::bind("127.0.0.1:0").unwrap();
    callee
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let callee_port = callee.local_addr().unwrap().port();
    let (b1, b2, mi1, mi2) = (free_port(), free_port(), free_port(), free_port());
    let n1 = Proxy::start(&node(1, b1, b2, mi1, callee_port, true, ""));
    let n2 = Proxy::start(&node(2, b2, b1, mi2, callee_port, true, ""));
    wait_up(mi2, 1);
    let n1_addr: SocketAddr = format!("127.0.0.1:{}", n1.port).parse().unwrap();
    let caller = Caller::new();
    let call_id = format!("anycastreply{}", caller.port);
    caller.send(n1.port, "INVITE", &call_id, "");
    let (invite, from) = recv_starting(&callee, "INVITE").expect("the INVITE");
    assert_eq!(from, n1_addr);
    let top_via = invite.lines().find(|l| l.starts_with("Via:")).unwrap_or("");
    assert!(
        top_via.contains(&format!("127.0.0.1:{}", n1.port)) && top_via.contains(";cid=1"),
        "{invite}"
    );
    // The anycast network takes the reply to node 2.
    let busy = reply_to(&invite, "486 Busy Here", "callee1");
    callee
        .send_to(busy.as_bytes(), ("127.0.0.1", n2.port))
        .unwrap();
    let got = caller.until(|r, _| r.starts_with("SIP/2.0 486"));
    let last = got.last().filter(|(r, _)| r.starts_with("SIP/2.0 486"));
    let Some((_, from)) = last else {
        panic!("no 486: {got:?}\n{}\n{}", n1.log_text(), n2.log_text());
    };
    assert_eq!(*from, n1_addr);
    // Node 1's transaction took it: it acknowledges the 486 itself.
    let (ack, from) = recv_starting(&callee, "ACK").expect("the ACK of the 486");
    assert_eq!(from, n1_addr, "{ack}");
    let (log1, log2) = (n1.stop(), n2.stop());
    assert_eq!(stat(&log2, "tm:cluster_reply_sent"), 1, "{log2}");
    assert_eq!(stat(&log1, "tm:cluster_reply_recv"), 1, "{log1}");
}
