//! Re-INVITE pinging (create_dialog flags `R` / `r`, OpenSIPS 3.4
//! modules/dialog dlg_timer.c `dlg_reinvite_routine`): SIPp callers and
//! callees that answer the proxy's re-INVITEs, check the SDP they carry
//! and take the ACK; a callee that stops answering gets the call ended
//! with BYEs both ways.

mod common;

use common::ds::{dialogs, mi};
use common::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// In-dialog requests loose-routed and validated; initial INVITEs get a
/// dialog with `flags`, re-INVITE pings every second.
fn script(uas: u16, mi_port: u16, flags: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    tm = {{ fr_timeout = 2, fr_inv_timeout = 5 }},
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    dialog = {{ reinvite_ping_interval = 1 }},
  }},
}}

function route.main()
  if sip.has_totag() then
    if sip.rr.loose_route() then
      local ok, rc = sip.dialog.validate_dialog()
      if not ok then
        sip.xlog("L_INFO", "validate_dialog $rm: " .. tostring(rc) .. "\n")
        if not sip.is_method("ACK") then
          sip.sl.sl_send_reply(481, "Call/Transaction Does Not Exist")
        end
        sip.exit()
      end
      sip.tm.t_relay()
    else
      sip.sl.sl_send_reply(404, "Not Here")
    end
    sip.exit()
  end
  if sip.is_method("INVITE") then
    sip.dialog.create_dialog("{flags}")
    sip.rr.record_route()
  end
  sip.pv.du = "sip:127.0.0.1:{uas}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
"#
    )
}

/// The CSeq numbers of the `method` lines in a SIPp message log above 1
/// (the proxy's own requests; the call's INVITE and ACK are 1).
fn cseqs(log: &str, method: &str) -> BTreeSet<u32> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("CSeq:"))
        .filter_map(|v| {
            let mut it = v.split_whitespace();
            let n: u32 = it.next()?.parse().ok()?;
            (it.next() == Some(method) && n > 1).then_some(n)
        })
        .collect()
}

#[test]
fn a_caller_answering_reinvite_pings_keeps_its_call_and_each_2xx_is_acked() {
    let callee = uas("uas.xml", "u1");
    let mi_port = free_port();
    let proxy = Proxy::start(&script(callee.port, mi_port, "R"));
    let run = uac("uac_reinvite_ping.xml", proxy.port, "u1", 1, 1, &[]);
    let (ok, failed) = callee.counts(1);
    let log = proxy.stop();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "caller: {}\nproxy: {log}",
        run.errors
    );
    assert_eq!(
        (ok, failed),
        (1, 0),
        "the callee got the caller's BYE: {}",
        callee.errors()
    );
    // Each re-INVITE's ACK repeats its CSeq; the second ping's is above
    // the first's.
    let invites = cseqs(&run.messages, "INVITE");
    let acks = cseqs(&run.messages, "ACK");
    assert_eq!(invites.len(), 2, "{}", run.messages);
    assert_eq!(invites, acks, "{}", run.messages);
    assert!(
        !log.contains("validate_dialog"),
        "the caller's BYE validated: {log}"
    );
}

#[test]
fn a_callee_that_stops_answering_reinvite_pings_gets_its_call_ended_both_ways() {
    let callee = uas("uas_reinvite_ping.xml", "u1");
    let mi_port = free_port();
    let proxy = Proxy::start(&script(callee.port, mi_port, "r"));
    let port = proxy.port;
    let started = std::time::Instant::now();
    let caller = std::thread::spawn(move || uac("uac_wait_bye.xml", port, "u1", 1, 1, &[]));
    // Two answered pings (about 1 s and 2 s after the ACK) keep it up.
    std::thread::sleep(Duration::from_millis(2600));
    assert_eq!(dialogs(mi_port).len(), 1, "alive while the callee answers");
    let run = caller.join().expect("sipp");
    let took = started.elapsed();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "the caller got a BYE: {}",
        run.errors
    );
    // The third ping (about 3 s) times out after fr_timeout (2 s).
    assert!(
        took >= Duration::from_millis(4500),
        "ended after the unanswered ping: {took:?}"
    );
    let (ok, failed) = callee.counts(1);
    assert_eq!(
        (ok, failed),
        (1, 0),
        "the callee answered two pings, then got a BYE: {}",
        callee.errors()
    );
    assert!(dialogs(mi_port).is_empty());
    let (ok, stats) = mi(mi_port, &["get_statistics", "dialog:"]);
    assert!(ok, "{stats}");
    let log = proxy.stop();
    assert!(log.contains("Callee ReINVITE Ping Timeout"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn reinvite_ping_interval_must_be_seconds() {
    let bad = Proxy::try_start(
        &script(5060, free_port(), "r")
            .replace("reinvite_ping_interval = 1", "reinvite_ping_interval = 0"),
    );
    assert!(bad.is_err_and(|log| log.contains("reinvite_ping_interval")));
}
