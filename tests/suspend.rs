//! Routes that suspend on I/O (`sip.cfgutils.sleep`/`usleep`): the worker
//! serves other calls meanwhile, the route resumes with its own call, and
//! waiting is bounded (`max_suspended`, `resume_timeout`).

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn options(call_id: &str, branch: &str) -> String {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK{branch}\r\n\
         From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A client socket that sends requests and collects what comes back.
struct Client {
    sock: UdpSocket,
    to: String,
}

impl Client {
    fn new(port: u16) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Client {
            sock,
            to: format!("127.0.0.1:{port}"),
        }
    }

    fn send(&self, msg: &str) {
        let local = self.sock.local_addr().unwrap().to_string();
        self.sock
            .send_to(msg.replace("{LOCAL}", &local).as_bytes(), &self.to)
            .unwrap();
    }

    /// Replies received until `n` came or `wait` passed.
    fn replies(&self, n: usize, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((len, _)) => out.push(String::from_utf8_lossy(&buf[..len]).into_owned()),
                Err(_) => break,
            }
        }
        out
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[test]
fn two_hundred_sleeping_calls_complete_on_two_workers_in_under_a_second() {
    let callee = uas("uas.xml", "u1");
    let script = format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }}, children = 2 }}
function route.main()
  if sip.has_totag() then
    sip.rr.loose_route()
    sip.tm.t_relay()
    sip.exit()
  end
  sip.rr.record_route()
  -- a 200 ms wait, as for a database or DNS answer
  sip.cfgutils.usleep(200000)
  sip.pv.du = "sip:127.0.0.1:{}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
"#,
        callee.port
    );
    let proxy = Proxy::start(&script);
    let started = Instant::now();
    // 200 calls started within 0.1 s, all of them in the air together.
    let run = uac("uac.xml", proxy.port, "u1", 200, 2000, &["-l", "200"]);
    let took = started.elapsed();
    assert_eq!(
        (run.successful, run.failed),
        (200, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    // Blocking workers would need 200 × 0.2 s / 2 = 20 s. SIPp itself
    // takes a moment to start and to write its last statistics.
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(callee.counts(200), (200, 0), "{}", callee.errors());
    let log = proxy.stop();
    assert_eq!(stat(&log, "core:suspended_routes"), 0, "{log}");
    assert_eq!(stat(&log, "core:suspend_overflows"), 0, "{log}");
}

#[test]
fn each_suspended_route_resumes_with_its_own_call() {
    // One worker, twenty calls waiting at once: each reply carries the
    // AVP and the Call-ID of its own request, read after the wait.
    let proxy = Proxy::start(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1 }
function route.main()
  sip.avp.who = sip.pv.ci
  sip.var.last = sip.pv.ci
  local ok = pcall(sip.cfgutils.usleep, 100000)
  sip.sl.sl_send_reply(200, "for " .. sip.avp.who .. " " .. sip.pv.ci .. " " .. tostring(ok))
end
"#,
    );
    let c = Client::new(proxy.port);
    let started = Instant::now();
    for i in 0..20 {
        c.send(&options(&format!("own-{i}"), &format!("own{i}")));
    }
    let got = c.replies(20, Duration::from_secs(5));
    assert_eq!(got.len(), 20, "{got:?}\n{}", proxy.log_text());
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    for r in &got {
        let id = header(r, "Call-ID").unwrap_or("");
        assert!(
            r.starts_with(&format!("SIP/2.0 200 for {id} {id} true\r\n")),
            "{r}"
        );
    }
}

#[test]
fn past_max_suspended_new_requests_get_503_and_are_counted() {
    let proxy = Proxy::start(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1, max_suspended = 2 }
function route.main()
  sip.cfgutils.usleep(600000)
  sip.sl.sl_send_reply(200, "Waited")
end
"#,
    );
    let c = Client::new(proxy.port);
    for i in 0..5 {
        c.send(&options(&format!("max-{i}"), &format!("max{i}")));
    }
    let got = c.replies(5, Duration::from_secs(3));
    let status = |r: &String| r.lines().next().unwrap_or("").to_string();
    let firsts: Vec<String> = got.iter().map(status).collect();
    // The three over the bound are answered at once, the two waiting after.
    assert_eq!(
        firsts,
        [
            "SIP/2.0 503 Service Unavailable",
            "SIP/2.0 503 Service Unavailable",
            "SIP/2.0 503 Service Unavailable",
            "SIP/2.0 200 Waited",
            "SIP/2.0 200 Waited"
        ],
        "{}",
        proxy.log_text()
    );
    let log = proxy.stop();
    assert_eq!(stat(&log, "core:suspend_overflows"), 3, "{log}");
}

#[test]
fn a_route_waiting_past_resume_timeout_gets_500_and_a_log_line() {
    let proxy = Proxy::start(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1, resume_timeout = 300 }
function route.main()
  sip.cfgutils.sleep(10)
  sip.sl.sl_send_reply(200, "Too late")
end
"#,
    );
    let c = Client::new(proxy.port);
    let started = Instant::now();
    c.send(&options("late-1", "late1"));
    let got = c.replies(1, Duration::from_secs(3));
    let took = started.elapsed();
    assert_eq!(got.len(), 1, "{}", proxy.log_text());
    assert!(
        got[0].starts_with("SIP/2.0 500 Server Internal Error\r\n"),
        "{}",
        got[0]
    );
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // Nothing more arrives: the abandoned route never replies.
    assert!(c.replies(1, Duration::from_millis(500)).is_empty());
    let log = proxy.stop();
    assert!(
        log.contains("route.main failed: suspended longer than resume_timeout (300 ms)")
            && log.contains("late-1"),
        "{log}"
    );
    assert_eq!(stat(&log, "core:resume_timeouts"), 1, "{log}");
    assert_eq!(stat(&log, "core:suspended_routes"), 0, "{log}");
}

#[test]
fn a_route_suspended_across_a_reload_resumes_on_its_own_script() {
    let script = |reason: &str, wait: u32| {
        format!(
            "config = {{ listen = {{ \"udp:127.0.0.1:{{PORT}}\" }}, children = 1 }}\n\
             function route.main()\n  sip.cfgutils.usleep({wait})\n  \
             sip.sl.sl_send_reply(200, \"{reason}\")\nend\n"
        )
    };
    let proxy = Proxy::start(&script("Old", 1_500_000));
    let waiting = Client::new(proxy.port);
    waiting.send(&options("reload-1", "reload1"));
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(
        &proxy.script,
        script("New", 0).replace("{PORT}", &proxy.port.to_string()),
    )
    .unwrap();
    let pid = proxy.child.as_ref().unwrap().id().to_string();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let fresh = Client::new(proxy.port);
    fresh.send(&options("reload-2", "reload2"));
    let now = fresh.replies(1, Duration::from_secs(2));
    assert!(
        now.first()
            .is_some_and(|r| r.starts_with("SIP/2.0 200 New\r\n")),
        "{now:?}\n{}",
        proxy.log_text()
    );
    let old = waiting.replies(1, Duration::from_secs(3));
    assert!(
        old.first()
            .is_some_and(|r| r.starts_with("SIP/2.0 200 Old\r\n")),
        "{old:?}\n{}",
        proxy.log_text()
    );
}

#[test]
fn a_retransmission_while_the_route_waits_is_absorbed() {
    // The route has no t_check_trans: the transaction made when it
    // suspended absorbs the copy, so the request is answered once.
    let proxy = Proxy::start(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1 }
function route.main()
  sip.xlog("L_INFO", "route ran for $ci\n")
  sip.cfgutils.usleep(400000)
  sip.tm.t_reply(404, "Not Here")
end
"#,
    );
    let c = Client::new(proxy.port);
    // A non-INVITE: its final is not retransmitted, so one copy of the
    // request means one reply.
    let message =
        "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKretr1\r\n\
                  From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: retr-1\r\n\
                  CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    c.send(message);
    std::thread::sleep(Duration::from_millis(100));
    c.send(message);
    let got = c.replies(2, Duration::from_millis(1200));
    assert_eq!(got.len(), 1, "{got:?}\n{}", proxy.log_text());
    assert!(got[0].starts_with("SIP/2.0 404 Not Here\r\n"), "{got:?}");
    // A copy after the answer gets the same answer again.
    c.send(message);
    let again = c.replies(1, Duration::from_secs(1));
    assert!(
        again
            .first()
            .is_some_and(|r| r.starts_with("SIP/2.0 404 Not Here\r\n")),
        "{again:?}"
    );
    let log = proxy.stop();
    // Each copy ran the route up to its wait (there is no t_check_trans).
    assert_eq!(log.matches("route ran for retr-1").count(), 3, "{log}");
}

#[test]
fn waiting_where_a_route_cannot_suspend_is_an_error_naming_the_line() {
    let proxy = Proxy::start(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1 }
function startup_route.main()
  sip.cfgutils.sleep(1)
end
function route.main()
  sip.sl.sl_send_reply(200, "OK")
end
"#,
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = proxy.stop();
    assert!(
        log.contains("script.lua:3: sip.cfgutils.sleep: not allowed in startup_route"),
        "{log}"
    );
}

#[test]
fn a_failure_route_that_waits_fails_over_without_holding_up_the_worker() {
    // One worker; every call's first callee is busy and its failure route
    // waits 1 s before relaying to the second. Waiting in the worker
    // would take 20 s for 20 calls.
    let busy = uas("uas_busy.xml", "u1");
    let good = uas("uas.xml", "u1");
    let script = format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }}, children = 1 }}
function route.main()
  if sip.has_totag() then
    sip.rr.loose_route()
    sip.tm.t_relay()
    sip.exit()
  end
  if sip.is_method("INVITE") then
    sip.rr.record_route()
    sip.tm.t_on_failure("later")
  end
  sip.avp.x = "kept"
  sip.pv.du = "sip:127.0.0.1:{busy}"
  sip.tm.t_relay()
end
function failure_route.later()
  sip.cfgutils.sleep(1)
  sip.xlog("L_INFO", "woke $T_reply_code avp=$avp(x) ci=$ci\n")
  sip.pv.du = "sip:127.0.0.1:{good}"
  sip.tm.t_relay()
end
"#,
        busy = busy.port,
        good = good.port
    );
    let proxy = Proxy::start(&script);
    let started = Instant::now();
    let run = uac("uac.xml", proxy.port, "u1", 20, 20, &[]);
    let took = started.elapsed();
    let log = proxy.stop();
    assert_eq!(
        (run.successful, run.failed),
        (20, 0),
        "{}\n{log}",
        run.errors
    );
    assert!(took < Duration::from_secs(8), "took {took:?}\n{log}");
    assert!(!run.messages.contains("486 Busy"), "{}", run.messages);
    assert_eq!(good.counts(20), (20, 0), "{}", good.errors());
    // After the wait, the failure route still had its transaction.
    assert_eq!(log.matches("woke 486 avp=kept ci=").count(), 20, "{log}");
}

#[test]
fn a_timer_route_that_waits_leaves_the_worker_serving_requests() {
    let proxy = Proxy::start(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1 }
timer_route.slow = { interval = 1, fn = function()
  sip.xlog("L_INFO", "timer sleeps\n")
  sip.cfgutils.sleep(3)
  sip.xlog("L_INFO", "timer woke\n")
end }
function route.main()
  sip.sl.sl_send_reply(200, "Here")
end
"#,
    );
    let c = Client::new(proxy.port);
    // The timer starts its 3 s wait 1 s after start; ask once it logged
    // that it sleeps, while the wait has most of its 3 s to go.
    eventually("the timer route to sleep", || {
        proxy.log_text().contains("timer sleeps")
    });
    let asked = Instant::now();
    c.send(&options("timer-1", "t1"));
    let got = c.replies(1, Duration::from_secs(2));
    let answered = asked.elapsed();
    eventually("the timer route to wake", || {
        proxy.log_text().contains("timer woke")
    });
    let log = proxy.stop();
    assert!(log.contains("timer sleeps"), "{log}");
    assert!(
        got.first()
            .is_some_and(|r| r.starts_with("SIP/2.0 200 Here\r\n")),
        "{got:?}\n{log}"
    );
    assert!(answered < Duration::from_millis(500), "{answered:?}");
    assert!(log.contains("timer woke"), "{log}");
    // One run at a time: the second tick waited for the first run's end.
    let (sleeps, wakes) = (
        log.matches("timer sleeps").count(),
        log.matches("timer woke").count(),
    );
    assert!(sleeps <= wakes + 1, "{sleeps} sleeps, {wakes} wakes\n{log}");
}

#[test]
fn an_event_route_that_waits_is_parked_and_the_worker_goes_on() {
    // Two events each wait 1 s in their event_route: parked side by side
    // (both wake within about 1 s, not 2), and requests are answered
    // meanwhile.
    let proxy = Proxy::start(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1 }
function event_route.E_SLOW(ev)
  sip.xlog("L_INFO", "event " .. ev.n .. " sleeps\n")
  sip.cfgutils.sleep(1)
  sip.xlog("L_INFO", "event " .. ev.n .. " woke\n")
end
function route.main()
  if sip.pv.ci:sub(1, 5) == "raise" then
    sip.raise_event("E_SLOW", { n = sip.pv.ci })
  end
  sip.sl.sl_send_reply(200, "Here")
end
"#,
    );
    let c = Client::new(proxy.port);
    let started = Instant::now();
    c.send(&options("raise-1", "ev1"));
    c.send(&options("raise-2", "ev2"));
    for i in 0..5 {
        c.send(&options(&format!("plain-{i}"), &format!("pl{i}")));
    }
    let got = c.replies(7, Duration::from_secs(2));
    let answered = started.elapsed();
    std::thread::sleep(Duration::from_millis(1300));
    let log = proxy.stop();
    assert_eq!(got.len(), 7, "{got:?}\n{log}");
    assert!(answered < Duration::from_millis(600), "{answered:?}\n{log}");
    for n in ["raise-1", "raise-2"] {
        assert!(log.contains(&format!("event {n} sleeps")), "{log}");
        assert!(log.contains(&format!("event {n} woke")), "{log}");
    }
}

#[test]
fn waiting_in_branch_and_reply_routes_is_an_error_naming_the_line() {
    // Branch and reply routes run in the middle of tm's work: they cannot
    // suspend, and an async function there fails naming the script line.
    let callee = uas("uas.xml", "u1");
    let script = format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }}, children = 1 }}
local function try(where)
  local _, e = pcall(function() sip.cfgutils.usleep(1000) end)
  sip.xlog("L_INFO", where .. " said: " .. tostring(e) .. "\n")
end
function route.main()
{IN_DIALOG}  if sip.is_method("INVITE") then
    sip.rr.record_route()
    sip.tm.t_on_branch("b")
    sip.tm.t_on_reply("r")
  end
  sip.pv.du = "sip:127.0.0.1:{port}"
  sip.tm.t_relay()
end
function branch_route.b() try("branch") end
function onreply_route.r() try("reply") end
"#,
        port = callee.port
    );
    let proxy = Proxy::start(&script);
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    let log = proxy.stop();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{log}",
        run.errors
    );
    for route in ["branch_route", "onreply_route"] {
        assert!(
            log.contains(&format!(
                "script.lua:3: sip.cfgutils.usleep: not allowed in {route}"
            )),
            "{route}\n{log}"
        );
    }
}
