//! Stateful proxying end to end: the built binary with `sip.tm.t_relay`
//! between SIPp callers and callees.

mod common;

use common::rpc::rpc;
use common::*;
use serde_json::json;

/// A stateful script: record-route, loose-route in-dialog requests,
/// relay to the first callee, fail over to the second on 486/408.
fn script(first: u16, second: u16, extra: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{ tm = {{ fr_timeout = 2, fr_inv_timeout = 3 }} }},
}}

function route.main()
  if not sip.maxfwd.mf_process_maxfwd_header(10) then
    sip.sl.sl_send_reply(483, "Too Many Hops")
    sip.exit()
  end
  if sip.has_totag() then
    if sip.rr.loose_route() then
      sip.tm.t_relay()
    elseif sip.is_method("ACK") and sip.tm.t_check_trans() then
      sip.tm.t_relay()
    else
      sip.tm.t_relay()
    end
    sip.exit()
  end
  if sip.is_method("CANCEL") then
    if sip.tm.t_check_trans() then sip.tm.t_relay() end
    sip.exit()
  end
  sip.tm.t_check_trans()
  if sip.is_method("INVITE") then
    sip.rr.record_route()
    sip.tm.t_on_failure("next")
  end
  {extra}
  sip.avp.x = "kept"
  sip.pv.du = "sip:127.0.0.1:{first}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end

function failure_route.next()
  sip.xlog("L_INFO", "failure $T_reply_code avp=$avp(x) ruri=$T_ruri\n")
  sip.xlog("L_INFO", "local_replied all=" .. tostring(sip.tm.t_local_replied("all"))
    .. " last=" .. tostring(sip.tm.t_local_replied("last")) .. "\n")
  if sip.tm.t_was_cancelled() then return end
  if sip.tm.t_check_status("486|408") then
    sip.pv.du = "sip:127.0.0.1:{second}"
    sip.tm.t_relay()
  end
end
"#
    )
}

#[test]
fn stateful_calls_complete_with_record_route() {
    let callee = uas("uas.xml", "u1");
    let proxy = Proxy::start(&script(callee.port, callee.port, ""));
    let run = uac("uac.xml", proxy.port, "u1", 50, 50, &[]);
    let log = proxy.stop();
    assert_eq!(
        (run.successful, run.failed),
        (50, 0),
        "{}\n{log}",
        run.errors
    );
    assert!(
        run.messages.contains("SIP/2.0 100 Giving it a try"),
        "tm answers 100 itself"
    );
    assert_eq!(callee.counts(50), (50, 0), "{}", callee.errors());
    assert!(
        stat(&log, "tm:UAS_transactions") >= 100,
        "INVITE and BYE of each call: {log}"
    );
    assert!(stat(&log, "tm:2xx_transactions") >= 100, "{log}");
}

#[test]
fn busy_first_callee_fails_over_to_the_second() {
    let busy = uas("uas_busy.xml", "u1");
    let good = uas("uas.xml", "u1");
    let proxy = Proxy::start(&script(busy.port, good.port, ""));
    let run = uac("uac.xml", proxy.port, "u1", 3, 3, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (3, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    assert!(
        !run.messages.contains("486 Busy"),
        "the 486 stays at the proxy: {}",
        run.messages
    );
    // The busy callee got the proxy's hop-by-hop ACK for each 486.
    assert_eq!(busy.counts(3), (3, 0));
    // The branch relayed from the failure route was record-routed too: the
    // caller's ACK and BYE carried a Route to the proxy.
    let route = format!("Route: <sip:127.0.0.1:{};lr;ftag=", proxy.port);
    assert!(run.messages.contains(&route), "{}", run.messages);
    // The failure route saw the winning code and the transaction's AVPs.
    let log = proxy.stop();
    assert!(
        log.contains("failure 486 avp=kept ruri=sip:service@127.0.0.1"),
        "{log}"
    );
    // A received 486 is not a local reply.
    assert!(log.contains("local_replied all=false last=false"), "{log}");
}

#[test]
fn silent_first_callee_times_out_into_the_failure_route() {
    let nobody = free_port();
    let good = uas("uas.xml", "u1");
    let proxy = Proxy::start(&script(nobody, good.port, ""));
    let started = std::time::Instant::now();
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    // fr_timeout is 2 s: the second callee was tried after it, not before.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    // The 408 was made by the proxy: t_local_replied says so.
    let log = proxy.stop();
    assert!(log.contains("local_replied all=true last=true"), "{log}");
}

#[test]
fn caller_cancel_ends_both_legs_with_487() {
    let ringer = uas("uas_ring_cancel.xml", "u1");
    let proxy = Proxy::start(&script(ringer.port, ringer.port, ""));
    let run = uac("uac_cancel.xml", proxy.port, "u1", 2, 2, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (2, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    // The callee's scenario only passes when it got the CANCEL and the ACK of its 487.
    assert_eq!(ringer.counts(2), (2, 0));
}

#[test]
fn parallel_fork_first_200_wins_and_the_other_branch_is_cancelled() {
    let ringer = uas("uas_ring_cancel.xml", "u1");
    let good = uas("uas.xml", "u1");
    let fork = format!(
        "if sip.is_method(\"INVITE\") then sip.append_branch(\"sip:fork@127.0.0.1:{}\") end",
        ringer.port
    );
    let proxy = Proxy::start(&script(good.port, good.port, &fork));
    let run = uac("uac.xml", proxy.port, "u1", 2, 1, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (2, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    // The ringing branch was cancelled and acknowledged its 487 both times.
    assert_eq!(ringer.counts(2), (2, 0), "{}", ringer.errors());
    assert_eq!(good.counts(2), (2, 0), "{}", good.errors());
}

#[test]
fn cancel_without_its_invite_gets_481() {
    let msg = "CANCEL sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKnone\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: nothing\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let script = "config = { listen = { \"udp:127.0.0.1:{PORT}\" } }\nfunction route.main() sip.tm.t_relay() end\n";
    let proxy = Proxy::start(script);
    let r = udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        msg,
        std::time::Duration::from_secs(3),
    )
    .expect("a reply");
    assert!(r.starts_with("SIP/2.0 481 "), "{r}");
}

#[test]
fn branch_route_can_drop_a_branch() {
    // The dropped branch's callee is a bare socket: any datagram the
    // proxy sent it is in its queue by the time the calls ended.
    let (ringer, ringer_port) = silent_peer();
    let good = uas("uas.xml", "u1");
    let script = format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }}, children = 2 }}
function route.main()
  if sip.has_totag() then sip.tm.t_relay(); sip.exit() end
  sip.tm.t_on_branch("pick")
  sip.append_branch("sip:fork@127.0.0.1:{ringer}")
  sip.pv.du = "sip:127.0.0.1:{good}"
  sip.tm.t_relay()
end
function branch_route.pick()
  if sip.pv.rU == "fork" then sip.drop() end
end
"#,
        ringer = ringer_port,
        good = good.port
    );
    let proxy = Proxy::start(&script);
    let run = uac("uac.xml", proxy.port, "u1", 2, 2, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (2, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    assert_eq!(good.counts(2), (2, 0), "{}", good.errors());
    // Both branches of a call are sent before the good one can answer:
    // an INVITE (or its CANCEL) to the ringer would be queued by now.
    let seen = drain(&ringer, 1);
    assert!(
        seen.is_empty(),
        "the dropped branch never reached the ringer: {seen:?}"
    );
}

#[test]
fn a_lost_invite_is_retransmitted_to_the_callee() {
    let late = uas("uas_ignore_first.xml", "u1");
    let proxy = Proxy::start(&script(late.port, late.port, ""));
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    assert_eq!(late.counts(1), (1, 0), "{}", late.errors());
}

/// A bare UDP peer that records what it receives and answers nothing.
fn silent_peer() -> (std::net::UdpSocket, u16) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    s.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    (s, port)
}

fn drain(s: &std::net::UdpSocket, secs: u64) -> Vec<String> {
    let mut got = vec![];
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut buf = [0u8; 65536];
    while std::time::Instant::now() < end {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

#[test]
fn caller_retransmissions_are_absorbed_and_silent_non_invite_gets_408() {
    let (callee, callee_port) = silent_peer();
    let proxy = Proxy::start(&script(callee_port, callee_port, ""));
    let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    caller
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let local = caller.local_addr().unwrap();
    let options = format!("OPTIONS sip:svc@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKretr1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:svc@127.0.0.1>\r\nCall-ID: retr1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", p = proxy.port);
    // The caller sends the same request three times (its own retransmissions).
    for _ in 0..3 {
        caller
            .send_to(options.as_bytes(), ("127.0.0.1", proxy.port))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The callee saw one copy, then tm's own retransmissions (T1 = 500 ms):
    // every copy carries the same branch.
    let seen = drain(&callee, 2);
    assert!(seen.len() >= 2, "{seen:?}");
    let branches: std::collections::HashSet<_> = seen
        .iter()
        .map(|m| {
            m.split("branch=")
                .nth(1)
                .unwrap()
                .split(['\r', ';'])
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(branches.len(), 1, "one client transaction: {seen:?}");
    // fr_timeout (2 s) passes without an answer: 408 to the caller.
    let mut buf = [0u8; 4096];
    let (n, _) = caller.recv_from(&mut buf).expect("a 408");
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(
        reply.starts_with("SIP/2.0 408 Request Timeout\r\n"),
        "{reply}"
    );
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn ten_thousand_abandoned_transactions_are_freed() {
    // Short timers: T1 = 50 ms makes Timer H (64·T1) 3.2 s; fr_timeout 1 s.
    let silent = free_port();
    let mi = free_port();
    let script = format!(
        "config = {{ listen = {{ \"udp:127.0.0.1:{{PORT}}\" }}, children = 2, modules = {{ tm = {{ T1 = 50, fr_timeout = 1 }}, mi_http = {{ ip = \"127.0.0.1\", port = {mi}, token = false }}, mi_fifo = false }} }}\nfunction route.main()\n  if sip.tm.t_check_trans() then sip.exit() end\n  sip.pv.du = \"sip:127.0.0.1:{silent}\"\n  sip.tm.t_relay()\nend\n"
    );
    let proxy = Proxy::start(&script);
    let pid = proxy.child.as_ref().unwrap().id();
    let base = rss_kb(pid);
    let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = caller.local_addr().unwrap();
    let n = 10_000;
    for i in 0..n {
        let invite = format!("INVITE sip:svc@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKgone{i}\r\nFrom: <sip:a@127.0.0.1>;tag={i}\r\nTo: <sip:svc@127.0.0.1>\r\nCall-ID: gone{i}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
        caller
            .send_to(invite.as_bytes(), ("127.0.0.1", proxy.port))
            .unwrap();
        if i % 500 == 499 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let peak = rss_kb(pid);
    // fr_timeout + Timer H (about 4.2 s): every transaction ends. Asked
    // of the MI until it says so (a debug build under load may take
    // longer), then checked again in the count the daemon logs at exit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let r = rpc(mi, "get_statistics", json!([["tm:inuse_transactions"]]));
        if r["result"]["tm:inuse_transactions"] == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let log = proxy.stop();
    assert!(log.contains("transactions in use at exit: 0"), "{log}");
    let per_txn = (peak.saturating_sub(base)) * 1024 / n;
    eprintln!("rss base {base} KiB, peak {peak} KiB: {per_txn} bytes per transaction in flight");
    assert!(per_txn < 8192, "{per_txn} bytes per transaction");
}

#[test]
fn the_callee_hangs_up_through_the_route_set() {
    let callee = uas("uas_hangs_up.xml", "u1");
    let proxy = Proxy::start(&script(callee.port, callee.port, ""));
    let run = uac("uac_callee_hangs_up.xml", proxy.port, "u1", 3, 3, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (3, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    // The BYE came through the proxy (a Via of ours on it) and was answered.
    assert!(
        run.messages.contains("BYE sip:caller@127.0.0.1"),
        "{}",
        run.messages
    );
    assert_eq!(callee.counts(3), (3, 0), "{}", callee.errors());
}

#[test]
fn t_fr_timeout_set_by_the_script_shortens_the_wait() {
    let nobody = free_port();
    let good = uas("uas.xml", "u1");
    // The config's fr_timeout is 5 s here, so that the script's 1 s shows
    // with a wide margin on a loaded machine.
    let proxy = Proxy::start(
        &script(nobody, good.port, "sip.pv.T_fr_timeout = 1")
            .replace("fr_timeout = 2,", "fr_timeout = 5,"),
    );
    let started = std::time::Instant::now();
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    // 1 s from the script instead of the config's 5 s (the config's 5 s
    // gives 5 s and more).
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900)
            && took < std::time::Duration::from_millis(4500),
        "{took:?}"
    );
}

/// A UDP callee answering every INVITE with `code` and a challenge for
/// `realm`; returns its port and what it received.
fn challenger(code: u16, realm: &'static str) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = s.local_addr().expect("addr").port();
    s.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .expect("timeout");
    let h = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        let until = std::time::Instant::now() + std::time::Duration::from_secs(4);
        while std::time::Instant::now() < until {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("INVITE ") {
                let keep: String = text
                    .split("\r\n")
                    .filter(|l| {
                        ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                            .iter()
                            .any(|p| l.starts_with(p))
                    })
                    .map(|l| {
                        if l.starts_with("To:") {
                            format!("{l};tag=ch{code}\r\n")
                        } else {
                            format!("{l}\r\n")
                        }
                    })
                    .collect();
                let hdr = if code == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                let reply = format!(
                    "SIP/2.0 {code} Unauthorized\r\n{keep}{hdr}: Digest realm=\"{realm}\", nonce=\"n-{realm}\"\r\nContent-Length: 0\r\n\r\n"
                );
                let _ = s.send_to(reply.as_bytes(), from);
            }
            got.push(text);
        }
        got
    });
    (port, h)
}

#[test]
fn challenges_of_parallel_branches_are_merged_into_one_407() {
    let (a, ha) = challenger(407, "alpha.test");
    let (b, hb) = challenger(407, "beta.test");
    let script = format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }}, children = 2 }}
function route.main()
  if sip.is_method("ACK") then sip.tm.t_relay(); sip.exit() end
  sip.append_branch("sip:b@127.0.0.1:{b}")
  sip.pv.du = "sip:127.0.0.1:{a}"
  sip.tm.t_relay()
end
"#
    );
    let proxy = Proxy::start(&script);
    let caller = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let me = caller.local_addr().expect("addr");
    caller
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("timeout");
    let invite = format!(
        "INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKmerge1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: merge-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    caller
        .send_to(invite.as_bytes(), ("127.0.0.1", proxy.port))
        .expect("send");
    let mut final_reply = None;
    let mut buf = [0u8; 65536];
    while let Ok(n) = caller.recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 407") {
            final_reply = Some(text);
            break;
        }
    }
    let reply = final_reply.unwrap_or_else(|| panic!("no 407\n{}", proxy.log_text()));
    assert!(reply.contains("realm=\"alpha.test\""), "{reply}");
    assert!(reply.contains("realm=\"beta.test\""), "{reply}");
    assert_eq!(reply.matches("Proxy-Authenticate:").count(), 2, "{reply}");
    // Each callee got its hop-by-hop ACK.
    for h in [ha, hb] {
        let got = h.join().expect("callee");
        assert!(got.iter().any(|m| m.starts_with("ACK ")), "{got:?}");
    }
}

#[test]
fn t_cancel_branch_from_a_reply_route_cancels_the_ringing_branch() {
    let ringer = uas("uas_ring_cancel.xml", "u1");
    let script = format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }}, children = 2 }}
function route.main()
  if sip.has_totag() then sip.tm.t_relay(); sip.exit() end
  sip.pv.set("$bavp(tried)", "first")
  sip.tm.t_on_branch("mark")
  sip.tm.t_on_reply("ring")
  sip.pv.du = "sip:127.0.0.1:{ringer}"
  sip.tm.t_relay()
end
function branch_route.mark()
  sip.pv.set("$bavp(tried)", sip.pv.get("$bavp(tried)") .. "+branch")
end
function onreply_route.ring()
  sip.xlog("L_INFO", "reply $rs bavp=$bavp(tried)\n")
  if sip.tm.t_check_status("180") then sip.tm.t_cancel_branch() end
end
"#,
        ringer = ringer.port
    );
    let proxy = Proxy::start(&script);
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    // The caller gets the ringer's 487, which uac.xml does not expect.
    assert_eq!(run.successful, 0, "{}", run.errors);
    assert!(run.errors.contains("487"), "{}", run.errors);
    // The ringer's scenario passes only if it got the CANCEL and its ACK.
    assert_eq!(ringer.counts(1), (1, 0), "{}", ringer.errors());
    let log = proxy.stop();
    assert!(log.contains("reply 180 bavp=first+branch"), "{log}");
}

/// The failover pattern of OpenSIPS-generated configs: a POSIX extended
/// regex searched in the status code (OpenSIPS `t_check_status`).
const GENERATED_FAILOVER: &str = "(408)|([56][0-9][0-9])";

#[test]
fn t_check_status_takes_the_generated_configs_regex_for_a_503() {
    let overloaded = uas("uas_503.xml", "u1");
    let good = uas("uas.xml", "u1");
    let s = script(overloaded.port, good.port, "").replace("486|408", GENERATED_FAILOVER);
    let proxy = Proxy::start(&s);
    let run = uac("uac.xml", proxy.port, "u1", 2, 2, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (2, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    assert_eq!(overloaded.counts(2), (2, 0), "{}", overloaded.errors());
    assert_eq!(good.counts(2), (2, 0), "{}", good.errors());
}

#[test]
fn t_check_status_regex_fails_over_from_a_dead_box_and_not_on_486() {
    // A dead box: the proxy's own 408 matches "(408)".
    let nobody = free_port();
    let good = uas("uas.xml", "u1");
    let s = script(nobody, good.port, "").replace("486|408", GENERATED_FAILOVER);
    let proxy = Proxy::start(&s);
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    drop(proxy);
    // 486 is neither 408 nor 5xx/6xx: the caller gets it, no failover.
    let busy = uas("uas_busy.xml", "u1");
    let s = script(busy.port, good.port, "").replace("486|408", GENERATED_FAILOVER);
    let proxy = Proxy::start(&s);
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(run.successful, 0, "{}", proxy.log_text());
    assert!(run.messages.contains("486 Busy"), "{}", run.messages);
}
