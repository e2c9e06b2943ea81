//! The core's events (OpenSIPS 3.4 `evi_core`, dprint.c, mem.c,
//! net_tcp.c) reach a UDP subscriber: E_CORE_THRESHOLD for a slow
//! message, E_CORE_LOG for log lines, E_CORE_TCP_DISCONNECT when a TCP
//! peer goes, E_CORE_PKG_THRESHOLD when a worker's script memory passes
//! its share of `script_memory_limit`.

mod common;

use common::rpc::rpc;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

fn recv_json(s: &UdpSocket, log: impl Fn() -> String) -> Value {
    let mut buf = [0u8; 65536];
    let (n, _) = s
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("an event datagram: {e}\n{}", log()));
    serde_json::from_slice(&buf[..n]).expect("JSON")
}

/// A script subscribing `event` to 127.0.0.1:`port` at start.
fn script(mi: u16, globals: &str, event: &str, port: u16, main: &str) -> String {
    format!(
        "config = {{\n  listen = {{ \"udp:127.0.0.1:{{PORT}}\", \"tcp:127.0.0.1:{{PORT}}\" }},\n  children = 1,\n  {globals}\n  \
         modules = {{ mi_http = {{ ip = \"127.0.0.1\", port = {mi}, token = false }}, mi_fifo = false }},\n}}\n\
         function startup_route.main()\n  sip.subscribe_event(\"{event}\", \"udp:127.0.0.1:{port}\")\nend\n\
         function route.main()\n{main}\n  sip.sl.sl_send_reply(200, \"OK\")\nend\n"
    )
}

const OPTIONS: &str = "OPTIONS sip:core@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bK-ce{N}\r\n\
Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:core@127.0.0.1>\r\nCall-ID: ce-{N}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

fn options(proxy: &Proxy, n: u32) {
    let to = format!("127.0.0.1:{}", proxy.port);
    let r = udp_exchange(
        &to,
        &OPTIONS.replace("{N}", &n.to_string()),
        Duration::from_secs(5),
    )
    .expect("a reply");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
}

/// receive.c `exec_msg_threshold`: a route that keeps its worker busy
/// past the threshold raises E_CORE_THRESHOLD (source, time in µs, the
/// message) and counts in core:slow_messages.
#[test]
fn a_slow_message_raises_e_core_threshold() {
    let (l, port) = udp_listener();
    let mi = free_port();
    let proxy = Proxy::start(&script(
        mi,
        "exec_msg_threshold = 2000,",
        "E_CORE_THRESHOLD",
        port,
        "  local n = 0\n  for i = 1, 3000000 do n = n + i end",
    ));
    options(&proxy, 1);
    let v = recv_json(&l, || proxy.log_text());
    assert_eq!(v["method"], "E_CORE_THRESHOLD", "{v}");
    assert_eq!(v["params"]["source"], "msg processing", "{v}");
    assert!(v["params"]["time"].as_i64().unwrap_or(0) > 2000, "{v}");
    let extra = v["params"]["extra"].as_str().unwrap_or("");
    assert!(extra.starts_with("OPTIONS sip:core@127.0.0.1"), "{v}");
    let r = rpc(mi, "get_statistics", json!([["core:slow_messages"]]));
    assert_eq!(r["result"]["core:slow_messages"], 1, "{r}");
}

/// dprint.c: with `log_event_enabled`, lines at `log_event_level_filter`
/// or more important raise E_CORE_LOG; a less important one does not.
#[test]
fn log_lines_raise_e_core_log() {
    let (l, port) = udp_listener();
    let proxy = Proxy::start(&script(
        free_port(),
        "log_event_enabled = true, log_event_level_filter = \"warn\",",
        "E_CORE_LOG",
        port,
        "  sip.xlog(\"L_INFO\", \"an info line\\n\")\n  sip.xlog(\"L_WARN\", \"a warning for $ci\\n\")",
    ));
    options(&proxy, 2);
    // Start-up warnings may come first; the info line never does.
    let v = loop {
        let v = recv_json(&l, || proxy.log_text());
        assert_eq!(v["method"], "E_CORE_LOG", "{v}");
        assert_ne!(v["params"]["message"], "an info line", "{v}");
        if v["params"]["message"] == "a warning for ce-2" {
            break v;
        }
    };
    assert_eq!(v["params"]["level"], "WARNING", "{v}");
    assert_eq!(
        v["params"]["pid"].as_u64(),
        proxy.child.as_ref().map(|c| u64::from(c.id())),
        "{v}"
    );
}

/// net_tcp.c: a TCP peer that hangs up raises E_CORE_TCP_DISCONNECT
/// with its address as src and ours as dst.
#[test]
fn a_closed_tcp_connection_raises_e_core_tcp_disconnect() {
    let (l, port) = udp_listener();
    let proxy = Proxy::start(&script(free_port(), "", "E_CORE_TCP_DISCONNECT", port, ""));
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).expect("tcp connect");
    let mine = s.local_addr().expect("addr");
    let msg = OPTIONS
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        .replace("{LOCAL}", &mine.to_string())
        .replace("{N}", "3");
    s.write_all(msg.as_bytes()).expect("send");
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    let v = recv_json(&l, || proxy.log_text());
    assert_eq!(
        v["params"],
        json!({"src_ip": "127.0.0.1", "src_port": mine.port(), "dst_ip": "127.0.0.1",
               "dst_port": proxy.port, "proto": "tcp"}),
        "{v}"
    );
}

/// mem.c `pkg_threshold_check`: a worker whose script memory passes
/// `event_pkg_threshold` percent of `script_memory_limit` raises
/// E_CORE_PKG_THRESHOLD with the usage.
#[test]
fn script_memory_past_its_threshold_raises_e_core_pkg_threshold() {
    let (l, port) = udp_listener();
    let proxy = Proxy::start(&script(
        free_port(),
        "script_memory_limit = 32, event_pkg_threshold = 50,",
        "E_CORE_PKG_THRESHOLD",
        port,
        "  keep = {}\n  for i = 1, 400000 do keep[i] = i .. \"x\" end",
    ));
    options(&proxy, 4);
    let v = recv_json(&l, || proxy.log_text());
    let p = &v["params"];
    assert!(p["usage"].as_u64().unwrap_or(0) >= 50, "{v}");
    assert_eq!(p["threshold"], 50, "{v}");
    assert_eq!(p["size"], 32 * 1024 * 1024, "{v}");
    assert!(p["used"].as_u64().unwrap_or(0) >= 16 * 1024 * 1024, "{v}");
}

/// The resident memory of process `pid` in bytes (/proc/PID/statm).
fn resident(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("rss pages");
    pages * rustix::param::page_size() as u64
}

/// mem/shm_mem.h `shm_threshold_check`, on the process's resident memory
/// (lunasip has no shm pool): with `shm_memory = 1` (MB) the proxy is far
/// past `event_shm_threshold = 50` from the start, and
/// E_CORE_SHM_THRESHOLD carries OpenSIPS's four parameters with its
/// resident memory as `used`.
#[test]
fn resident_memory_past_its_threshold_raises_e_core_shm_threshold() {
    let (l, port) = udp_listener();
    let proxy = Proxy::start(&script(
        free_port(),
        "shm_memory = 1, event_shm_threshold = 50,",
        "E_CORE_SHM_THRESHOLD",
        port,
        "",
    ));
    let pid = proxy.child.as_ref().map(|c| c.id()).expect("pid");
    options(&proxy, 5);
    let v = recv_json(&l, || proxy.log_text());
    let rss = resident(pid);
    assert_eq!(v["method"], "E_CORE_SHM_THRESHOLD", "{v}");
    let p = v["params"].as_object().expect("params");
    let keys: Vec<&str> = p.keys().map(String::as_str).collect();
    assert_eq!(keys, ["usage", "threshold", "used", "size"], "{v}");
    assert_eq!(p["threshold"], 50, "{v}");
    assert_eq!(p["size"], 1024 * 1024, "{v}");
    let used = p["used"].as_u64().unwrap_or(0);
    assert!(
        used > rss / 2 && used < rss * 2,
        "used {used}, rss now {rss}: {v}"
    );
    assert_eq!(p["usage"].as_u64(), Some(used * 100 / (1024 * 1024)), "{v}");
}

/// Under the threshold nothing is raised: the same proxy measured against
/// a size it cannot reach raises no E_CORE_SHM_THRESHOLD while E_CORE_LOG
/// (subscribed on the same socket) shows its checks ran for two seconds.
#[test]
fn resident_memory_under_its_threshold_raises_nothing() {
    let (l, port) = udp_listener();
    let proxy = Proxy::start(&format!(
        "config = {{\n  listen = {{ \"udp:127.0.0.1:{{PORT}}\" }},\n  children = 1,\n  \
         shm_memory = 1048576, event_shm_threshold = 50,\n  \
         log_event_enabled = true, log_event_level_filter = \"warn\",\n  \
         modules = {{ mi_http = false, mi_fifo = false }},\n}}\n\
         function startup_route.main()\n  \
         sip.subscribe_event(\"E_CORE_SHM_THRESHOLD\", \"udp:127.0.0.1:{port}\")\n  \
         sip.subscribe_event(\"E_CORE_LOG\", \"udp:127.0.0.1:{port}\")\nend\n\
         function route.main()\n  sip.xlog(\"L_WARN\", \"mark $ci\\n\")\n  sip.sl.sl_send_reply(200, \"OK\")\nend\n"
    ));
    options(&proxy, 6);
    std::thread::sleep(Duration::from_millis(2500));
    options(&proxy, 7);
    loop {
        let v = recv_json(&l, || proxy.log_text());
        assert_ne!(v["method"], "E_CORE_SHM_THRESHOLD", "{v}");
        if v["params"]["message"] == "mark ce-7" {
            break;
        }
    }
}
