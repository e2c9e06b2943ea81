//! Route bounds (`route_timeout`, `script_memory_limit`): a route that
//! never ends or eats memory fails that one request with 500 and a log
//! line naming the script line; the worker goes on serving calls. A
//! worker stuck outside Lua is found by the supervisor: logged, the
//! systemd watchdog pings stop, and SIGTERM still ends the process.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn options(call_id: &str, user: &str) -> String {
    format!(
        "OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK{call_id}\r\n\
         From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn script(settings: &str) -> String {
    format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }}, children = 1, {settings} }}
function route.main()
  local u = sip.pv.rU
  if u == "loop" then
    while true do end
  elseif u == "caught" then
    for _ = 1, 100 do pcall(function() while true do end end) end
  elseif u == "hungry" then
    local t = {{}}
    for i = 1, 200e6 do t[i] = i end
  end
  sip.sl.sl_send_reply(200, "Fine")
end
"#
    )
}

/// The reply's first line, and how long it took.
fn ask(port: u16, id: &str, user: &str, wait: Duration) -> (String, Duration) {
    let t = Instant::now();
    let r =
        udp_exchange(&format!("127.0.0.1:{port}"), &options(id, user), wait).unwrap_or_default();
    (r.lines().next().unwrap_or("").to_string(), t.elapsed())
}

#[test]
fn a_route_that_never_ends_gets_500_and_the_worker_goes_on() {
    let proxy = Proxy::start(&script("route_timeout = 300"));
    let (first, took) = ask(proxy.port, "loop-1", "loop", Duration::from_secs(5));
    assert_eq!(
        first,
        "SIP/2.0 500 Server Internal Error",
        "{}",
        proxy.log_text()
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The one worker serves the next request at once.
    let (next, took) = ask(proxy.port, "after-1", "bob", Duration::from_secs(2));
    assert_eq!(next, "SIP/2.0 200 Fine");
    assert!(took < Duration::from_millis(500), "{took:?}");
    // pcall cannot keep a loop alive: the clock keeps firing.
    let (caught, _) = ask(proxy.port, "caught-1", "caught", Duration::from_secs(5));
    assert_eq!(
        caught, "SIP/2.0 200 Fine",
        "pcall returns, the route goes on"
    );
    let log = proxy.stop();
    assert!(
        log.contains(
            "script.lua:5: the route ran longer than route_timeout (300 ms) and was stopped"
        ),
        "{log}"
    );
}

#[test]
fn the_default_budget_is_two_seconds() {
    let proxy = Proxy::start(&script(""));
    let (first, took) = ask(proxy.port, "loop-2", "loop", Duration::from_secs(6));
    assert_eq!(first, "SIP/2.0 500 Server Internal Error");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // SIGTERM stops the process in its grace time.
    let started = Instant::now();
    let _ = proxy.stop();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_route_that_eats_memory_fails_and_the_state_comes_back() {
    let proxy = Proxy::start(&script("script_memory_limit = 64"));
    let (first, _) = ask(proxy.port, "mem-1", "hungry", Duration::from_secs(20));
    assert_eq!(
        first,
        "SIP/2.0 500 Server Internal Error",
        "{}",
        proxy.log_text()
    );
    for i in 0..3 {
        let (again, _) = ask(
            proxy.port,
            &format!("mem-r{i}"),
            "hungry",
            Duration::from_secs(20),
        );
        assert_eq!(again, "SIP/2.0 500 Server Internal Error");
    }
    let (next, _) = ask(proxy.port, "after-m", "bob", Duration::from_secs(2));
    assert_eq!(next, "SIP/2.0 200 Fine");
    let pid = proxy.child.as_ref().map(|c| c.id()).unwrap_or(0);
    let rss_kb: u64 = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let log = proxy.stop();
    assert!(log.contains("not enough memory"), "{log}");
    // Four attempts at 1.6 GB each, bounded to 64 MB of Lua memory.
    assert!(rss_kb > 0 && rss_kb < 300_000, "RSS {rss_kb} kB");
}

/// The `WATCHDOG=1` datagrams that arrive on `sock` within `within`.
fn pings(sock: &std::os::unix::net::UnixDatagram, within: Duration) -> usize {
    let end = Instant::now() + within;
    let mut n = 0;
    let mut buf = [0u8; 512];
    while Instant::now() < end {
        let _ = sock.set_read_timeout(Some(
            end.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ));
        if let Ok(k) = sock.recv(&mut buf) {
            n += usize::from(String::from_utf8_lossy(&buf[..k]).contains("WATCHDOG=1"));
        }
    }
    n
}

#[test]
fn a_worker_stuck_outside_lua_stops_the_watchdog_and_sigterm_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let port = free_port();
    let script = format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{port}" }}, children = 2, worker_stall_timeout = 600 }}
function route.main() sip.sl.sl_send_reply(200, "Fine") end
"#
    );
    let notify = path.to_str().unwrap();
    let proxy = Proxy::try_start_env(
        &script,
        port,
        &[
            ("NOTIFY_SOCKET", notify),
            // Ping every 100 ms (half of WatchdogSec).
            ("WATCHDOG_USEC", "200000"),
            ("LUNASIP_DEBUG_HOOKS", "1"),
        ],
    )
    .unwrap();
    assert!(
        pings(&sock, Duration::from_millis(600)) >= 3,
        "no pings while healthy"
    );
    // A message the debug hook turns into a worker held outside Lua (the
    // kernel hands it to one of the two workers).
    let (_, _) = ask(
        port,
        "lunasip-debug-stall",
        "bob",
        Duration::from_millis(200),
    );
    let stuck_log = |p: &Proxy| p.log_text().contains("is stuck: no heartbeat");
    let t = Instant::now();
    while !stuck_log(&proxy) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(stuck_log(&proxy), "{}", proxy.log_text());
    // Pings stop: systemd would restart the service after WatchdogSec.
    let _ = pings(&sock, Duration::from_millis(150));
    assert_eq!(pings(&sock, Duration::from_millis(800)), 0);
    // SIGTERM ends the process within the shutdown grace (5 s), without
    // the stuck worker.
    let mut proxy = proxy;
    let child = proxy.child.take().unwrap();
    let t = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut child = child;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if t.elapsed() > Duration::from_secs(9) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = proxy.log_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM did not end lunasip:\n{log}"
    );
    assert!(t.elapsed() < Duration::from_secs(7), "{:?}", t.elapsed());
    assert!(
        log.contains("did not stop within 5 s; exiting without it"),
        "{log}"
    );
}
