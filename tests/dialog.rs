//! Dialog tracking end to end: the built binary with `sip.dialog.*`
//! between SIPp callers and callees, checked on the wire and through MI.

mod common;

use common::ds::{dialogs, json, mi};
use common::*;
use std::time::Duration;

/// A stateful script with dialogs: in-dialog requests are loose-routed
/// and validated (481 when no dialog matches), initial INVITEs are
/// limited per caller by the `caller` profile, get a dialog (flags and
/// timeout from the test) and go to the callee.
fn script(uas: u16, mi_port: u16, flags: &str, extra: &str, limit: u32) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    tm = {{ fr_timeout = 2, fr_inv_timeout = 5 }},
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    dialog = {{ profiles_with_value = "caller", profiles_no_value = "all" }},
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
      if sip.is_method("BYE") then
        sip.xlog("L_INFO", "bye dir=$DLG_dir status=$DLG_status reason=$DLG_end_reason val=$dlg_val(who)\n")
      end
      sip.tm.t_relay()
    else
      sip.sl.sl_send_reply(404, "Not Here")
    end
    sip.exit()
  end
  if sip.is_method("CANCEL") then
    if sip.tm.t_check_trans() then sip.tm.t_relay() end
    sip.exit()
  end
  if sip.is_method("OPTIONS") then
    local ok, n = sip.dialog.get_dialog_info("who", "$avp(w)", "who", "$fU", "$var(n)")
    sip.sl.sl_send_reply(200, "n=" .. tostring(n) .. " w=" .. tostring(sip.pv.get("$avp(w)")) .. " v=$var(n)")
    sip.exit()
  end
  if sip.is_method("INVITE") then
    local n = sip.dialog.get_profile_size("caller", "$fU")
    if n >= {limit} then
      sip.sl.sl_send_reply(486, "Busy Here")
      sip.exit()
    end
    {extra}
    sip.dialog.create_dialog("{flags}")
    sip.dialog.set_dlg_profile("caller", "$fU")
    sip.dialog.set_dlg_profile("all")
    sip.dialog.store_dlg_value("who", "$fU")
    if sip.pv.ci:find("^refuse") then
      sip.sl.sl_send_reply(403, "Forbidden")
      sip.exit()
    end
    sip.rr.record_route()
  end
  sip.pv.du = "sip:127.0.0.1:{uas}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
"#
    )
}

#[test]
fn dlg_list_shows_the_call_while_it_lasts_and_not_after_the_bye() {
    let callee = uas("uas.xml", "u1");
    let mi_port = free_port();
    let proxy = Proxy::start(&script(callee.port, mi_port, "", "", 100));
    let port = proxy.port;
    let caller = std::thread::spawn(move || uac("uac_pause.xml", port, "u1", 1, 1, &[]));
    std::thread::sleep(Duration::from_millis(1500));
    let during = dialogs(mi_port);
    assert_eq!(during.len(), 1, "{during:?}");
    let d = &during[0];
    assert_eq!(d["state"], 4, "answered and ACKed: {d}");
    assert!(d["callid"].as_str().is_some_and(|c| !c.is_empty()), "{d}");
    assert!(
        d["caller_tag"].as_str().is_some_and(|t| t.ends_with("T1")),
        "{d}"
    );
    assert!(
        d["CALLEES"][0]["callee_tag"]
            .as_str()
            .is_some_and(|t| t.ends_with("U1")),
        "{d}"
    );
    assert!(
        d["caller_contact"]
            .as_str()
            .is_some_and(|c| c.contains("caller@127.0.0.1")),
        "{d}"
    );
    // The did in our Record-Route is the dialog's ID.
    let id = d["ID"].as_str().expect("ID").to_string();
    let (ok, ctx) = mi(mi_port, &["dlg_list_ctx"]);
    assert!(
        ok && ctx.contains("\"who\"") && ctx.contains("\"caller\""),
        "{ctx}"
    );
    let (ok, size) = mi(mi_port, &["profile_get_size", "caller", "caller"]);
    assert!(ok, "{size}");
    assert_eq!(json(&size)["Profile"]["count"], 1, "{size}");
    let (ok, in_profile) = mi(mi_port, &["profile_list_dlgs", "all"]);
    assert!(ok && in_profile.contains(&id), "{in_profile}");
    let options = |user: &str| {
        let msg = format!(
            "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKinfo{user}\r\n\
             From: <sip:{user}@127.0.0.1>;tag=i\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: info-{user}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let to = format!("127.0.0.1:{port}");
        let answer = udp_exchange(&to, &msg, Duration::from_secs(2)).expect("answer");
        answer.lines().next().unwrap_or_default().to_string()
    };
    assert_eq!(
        options("caller"),
        "SIP/2.0 200 n=1 w=caller v=1",
        "get_dialog_info"
    );
    // ($var keeps its value per worker, as in OpenSIPS: not checked here.)
    let none = options("nobody");
    assert!(
        none.starts_with("SIP/2.0 200 n=-1 w=nil "),
        "get_dialog_info: {none}"
    );
    let run = caller.join().expect("sipp");
    assert_eq!(run.successful, 1, "{}", run.errors);
    assert!(
        run.messages.contains(&format!("did={id}")),
        "the caller saw our Record-Route with did={id}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(dialogs(mi_port).is_empty(), "gone after the BYE");
    let (ok, size) = mi(mi_port, &["profile_get_size", "caller"]);
    assert!(ok && json(&size)["Profile"]["count"] == 0, "{size}");
    let (ok, stats) = mi(mi_port, &["get_statistics", "dialog:"]);
    assert!(ok, "{stats}");
    let stats = json(&stats);
    assert_eq!(stats["dialog:processed_dialogs"], 1, "{stats}");
    assert_eq!(stats["dialog:active_dialogs"], 0, "{stats}");
    let log = proxy.stop();
    assert!(
        log.contains("bye dir=downstream status=5 reason=Downstream BYE val=caller"),
        "{log}"
    );
}

/// A BYE for `callid` with a Route naming us with `did`.
fn bye(proxy_port: u16, callid: &str, did: &str) -> String {
    format!(
        "BYE sip:callee@127.0.0.1:5999 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKforged{callid}\r\n\
         Route: <sip:127.0.0.1:{proxy_port};lr;ftag=x;did={did}>\r\n\
         From: <sip:caller@127.0.0.1>;tag=x\r\nTo: <sip:callee@127.0.0.1>;tag=y\r\n\
         Call-ID: {callid}\r\nCSeq: 5 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_bye_of_no_dialog_or_with_a_forged_did_gets_481_and_ends_nothing() {
    let callee = uas("uas.xml", "u1");
    let mi_port = free_port();
    let proxy = Proxy::start(&script(callee.port, mi_port, "", "", 100));
    let port = proxy.port;
    let to = format!("127.0.0.1:{port}");
    let answer =
        udp_exchange(&to, &bye(port, "nobody", "1.1"), Duration::from_secs(2)).expect("an answer");
    assert!(answer.starts_with("SIP/2.0 481"), "{answer}");
    let caller = std::thread::spawn(move || uac("uac_pause.xml", port, "u1", 1, 1, &[]));
    std::thread::sleep(Duration::from_millis(1500));
    let during = dialogs(mi_port);
    assert_eq!(during.len(), 1, "{during:?}");
    let id = during[0]["ID"].as_str().expect("ID").to_string();
    // The live dialog's did on another call's BYE: no match, no harm.
    for did in [id.as_str(), "zz.1", "1.2.3", "fffffffff.0", ""] {
        let answer = udp_exchange(&to, &bye(port, "forged", did), Duration::from_secs(2))
            .expect("an answer");
        assert!(answer.starts_with("SIP/2.0 481"), "did {did}: {answer}");
    }
    assert_eq!(dialogs(mi_port).len(), 1, "the real dialog is still there");
    // Dialogs of INVITEs the script answers itself end with the request.
    for i in 0..4 {
        let invite = format!(
            "INVITE sip:callee@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKrefuse{i}\r\n\
             From: <sip:caller@127.0.0.1>;tag=r{i}\r\nTo: <sip:callee@127.0.0.1>\r\nCall-ID: refuse-{i}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let answer = udp_exchange(&to, &invite, Duration::from_secs(2)).expect("an answer");
        assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    }
    assert_eq!(
        dialogs(mi_port).len(),
        1,
        "no dialog left by refused INVITEs"
    );
    let (ok, size) = mi(mi_port, &["profile_get_size", "all"]);
    assert!(ok, "{size}");
    assert_eq!(json(&size)["Profile"]["count"], 1, "{size}");
    let run = caller.join().expect("sipp");
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    let log = proxy.stop();
    assert!(log.contains("validate_dialog BYE: -4"), "{log}");
}

#[test]
fn a_dialog_timeout_sends_bye_to_both_sides() {
    let callee = uas("uas.xml", "u1");
    let mi_port = free_port();
    let proxy = Proxy::start(&script(
        callee.port,
        mi_port,
        "B",
        r#"sip.pv.set("$DLG_timeout", 3)"#,
        100,
    ));
    let started = std::time::Instant::now();
    let run = uac("uac_wait_bye.xml", proxy.port, "u1", 1, 1, &[]);
    let took = started.elapsed();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    assert!(
        took >= Duration::from_millis(2800),
        "the caller got its BYE after the 3 s timeout, not {took:?}"
    );
    let (ok, fail) = callee.counts(1);
    assert_eq!(
        (ok, fail),
        (1, 0),
        "the callee got its BYE: {}",
        callee.errors()
    );
    let (ok, stats) = mi(mi_port, &["get_statistics", "dialog:"]);
    assert!(ok, "{stats}");
    assert_eq!(json(&stats)["dialog:expired_dialogs"], 1, "{stats}");
    assert!(dialogs(mi_port).is_empty());
}

#[test]
fn a_profile_limit_of_five_lets_five_of_ten_concurrent_calls_through() {
    let callee = uas("uas.xml", "u1");
    let mi_port = free_port();
    let proxy = Proxy::start(&script(callee.port, mi_port, "", "", 5));
    let port = proxy.port;
    let caller = std::thread::spawn(move || uac("uac_pause.xml", port, "u1", 10, 50, &[]));
    std::thread::sleep(Duration::from_millis(1500));
    let (ok, size) = mi(mi_port, &["profile_get_size", "caller", "caller"]);
    assert!(ok, "{size}");
    assert_eq!(json(&size)["Profile"]["count"], 5, "{size}");
    let run = caller.join().expect("sipp");
    assert_eq!((run.successful, run.failed), (5, 5), "{}", run.errors);
    assert!(run.errors.matches("486").count() >= 5, "{}", run.errors);
    std::thread::sleep(Duration::from_millis(300));
    assert!(dialogs(mi_port).is_empty());
    drop(proxy);
}

#[test]
fn in_dialog_pings_end_a_call_whose_callee_died() {
    let callee = uas("uas.xml", "u1");
    let mi_port = free_port();
    let script = script(callee.port, mi_port, "p", "", 100)
        .replace("dialog = {", "dialog = { options_ping_interval = 1,");
    let proxy = Proxy::start(&script);
    let port = proxy.port;
    let caller = std::thread::spawn(move || uac("uac_wait_bye.xml", port, "u1", 1, 1, &[]));
    // Answered pings keep the call up past several intervals.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(
        dialogs(mi_port).len(),
        1,
        "alive while the callee answers pings"
    );
    drop(callee);
    let run = caller.join().expect("sipp");
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "the caller got a BYE: {}",
        run.errors
    );
    assert!(dialogs(mi_port).is_empty());
    let log = proxy.stop();
    assert!(!log.contains("panicked"), "{log}");
}

/// The (old_state, new_state) pairs of the E_DLG_STATE_CHANGED events a
/// UDP subscriber received for `callid`-less counting.
fn state_changes(listener: &std::net::UdpSocket, want: usize) -> Vec<(i64, i64, String)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want {
        let Ok(n) = listener.recv(&mut buf) else {
            break;
        };
        let ev: serde_json::Value = serde_json::from_slice(&buf[..n]).expect("json");
        assert_eq!(ev["method"], "E_DLG_STATE_CHANGED", "{ev}");
        let p = &ev["params"];
        for k in ["id", "db_id", "callid", "from_tag", "to_tag"] {
            assert!(p[k].is_string(), "{k}: {ev}");
        }
        out.push((
            p["old_state"].as_i64().expect("old"),
            p["new_state"].as_i64().expect("new"),
            p["callid"].as_str().unwrap_or_default().to_string(),
        ));
    }
    out
}

#[test]
fn state_changes_are_raised_and_a_cancelled_call_is_a_failed_dialog() {
    let callee = uas("uas.xml", "u1");
    let mi_port = free_port();
    let proxy = Proxy::start(&script(callee.port, mi_port, "", "", 100));
    let listener = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    listener.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let sock = format!("udp:{}", listener.local_addr().expect("addr"));
    let (ok, out) = mi(
        mi_port,
        &["event_subscribe", "E_DLG_STATE_CHANGED", &sock, "60"],
    );
    assert!(ok, "{out}");
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(run.successful, 1, "{}", run.errors);
    let seen = state_changes(&listener, 4);
    let pairs: Vec<(i64, i64)> = seen.iter().map(|(o, n, _)| (*o, *n)).collect();
    assert_eq!(pairs, [(1, 2), (2, 3), (3, 4), (4, 5)], "{seen:?}");
    drop(callee);
    // A caller that gives up while it rings: the dialog fails.
    let ringer = uas("uas_ring_cancel.xml", "u1");
    let proxy2 = Proxy::start(&script(ringer.port, free_port(), "", "", 100));
    let run = uac("uac_cancel.xml", proxy2.port, "u1", 2, 2, &[]);
    assert_eq!(run.successful, 2, "{}", run.errors);
    std::thread::sleep(Duration::from_millis(300));
    let log = proxy2.stop();
    assert_eq!(stat(&log, "dialog:failed_dialogs"), 2, "{log}");
    assert_eq!(stat(&log, "dialog:processed_dialogs"), 2, "{log}");
    assert_eq!(stat(&log, "dialog:active_dialogs"), 0, "{log}");
    drop(proxy);
}

#[test]
fn a_timeout_bye_to_a_contact_given_by_a_name_whose_answer_expired_is_looked_up_first() {
    // The callee's Contact names a host only Knot knows, with a 1 s TTL:
    // when the 3 s dialog timeout sends the BYEs the answer has expired.
    // The dialog timer looks the name up in its task, then sends (the
    // worker never waits; the system resolver does not know the name).
    let callee = uas("uas_named_contact.xml", "u1");
    let knot = common::dns::Knot::start("callee 1 IN A 127.0.0.1\n");
    let mi_port = free_port();
    let proxy = Proxy::start(
        &script(
            callee.port,
            mi_port,
            "B",
            r#"sip.pv.set("$DLG_timeout", 3)"#,
            100,
        )
        .replace(
            "  children = 2,\n",
            &format!(
                "  children = 2,\n  dns_servers = {{ \"{}\" }},\n",
                knot.server()
            ),
        ),
    );
    let run = uac("uac_wait_bye.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    assert_eq!(
        callee.counts(1),
        (1, 0),
        "the callee got its BYE: {}\n{}",
        callee.errors(),
        proxy.log_text()
    );
}

#[test]
fn dialog_flags_set_at_the_invite_are_seen_and_flipped_by_the_bye() {
    // OpenSIPS 3.4 dialog.c set_dlg_flag / is_dlg_flag_set /
    // test_and_set_dlg_flag / reset_dlg_flag on one call.
    let callee = uas("uas.xml", "u1");
    let base = script(callee.port, free_port(), "", "", 100);
    let s = base
        .replace(
            "sip.dialog.store_dlg_value(\"who\", \"$fU\")",
            "sip.dialog.store_dlg_value(\"who\", \"$fU\")\n    sip.dialog.set_dlg_flag(\"3\")\n    sip.dialog.set_dlg_flag(\"billed\")\n    sip.dialog.set_dlg_flag(\"gone\")\n    sip.dialog.reset_dlg_flag(\"gone\")",
        )
        .replace(
            "if sip.is_method(\"BYE\") then",
            "if sip.is_method(\"BYE\") then\n        local a = sip.dialog.is_dlg_flag_set(\"3\")\n        local b = sip.dialog.is_dlg_flag_set(\"gone\")\n        local _, t1 = sip.dialog.test_and_set_dlg_flag(\"billed\", 1)\n        local _, t2 = sip.dialog.test_and_set_dlg_flag(\"billed\", 1)\n        sip.xlog(\"L_INFO\", \"flags a=\" .. tostring(a) .. \" b=\" .. tostring(b) .. \" t1=\" .. t1 .. \" t2=\" .. t2 .. \" f=$DLG_flags\\n\")",
        );
    assert_ne!(s, base);
    let proxy = Proxy::start(&s);
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    let log = proxy.stop();
    assert_eq!(run.successful, 1, "{}\n{log}", run.errors);
    // Flag 3 and "billed" (the first name: index 0) set; "gone" (index 1)
    // set then reset; the first test-and-set flips "billed", the second
    // finds it clear.
    assert!(log.contains("flags a=true b=false t1=1 t2=-1 f=8"), "{log}");
}
