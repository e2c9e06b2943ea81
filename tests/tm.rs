//! Stateful proxying end to end: the built binary with `sip.tm.t_relay`
//! between SIPp callers and callees.

mod common;

use common::*;

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
  sip.pv.du = "sip:127.0.0.1:{first}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end

function failure_route.next()
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
        run.messages.contains("SIP/2.0 100 Trying"),
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
    let ringer = uas("uas_ring_cancel.xml", "u1");
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
        ringer = ringer.port,
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
    // Had the ringer got an INVITE, the 200 would have cancelled it and SIPp
    // would count that call within a second or two.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(
        ringer.counts(0),
        (0, 0),
        "the dropped branch never reached the ringer"
    );
}
