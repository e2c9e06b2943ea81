//! topology_hiding end to end (OpenSIPS 3.4 modules/topology_hiding):
//! a SIPp caller and callee whose scenarios (th_uac.xml, th_uas.xml)
//! fail the call when a message carries the other side's Via,
//! Record-Route or Contact, or when a reply lacks the caller's own Vias
//! and Record-Route; each call has a re-INVITE from both sides and a
//! BYE, all sent to the proxy's Contact and matched by
//! `topology_hiding_match`.

mod common;

use common::*;

/// `create`: Lua run before `topology_hiding` for an initial INVITE.
fn script(uas: u16, modules: &str, create: &str, flags: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{
    tm = {{ fr_timeout = 2, fr_inv_timeout = 5 }},
    {modules}
  }},
}}

function route.main()
  if sip.has_totag() then
    if sip.topology_hiding.topology_hiding_match() then
      sip.xlog("L_INFO", "th matched $rm to $ru\n")
      sip.tm.t_relay()
    else
      sip.xlog("L_INFO", "th no match for $rm $ru\n")
      if not sip.is_method("ACK") then sip.sl.sl_send_reply(404, "Not Here") end
    end
    sip.exit()
  end
  if sip.is_method("CANCEL") then
    if sip.tm.t_check_trans() then sip.tm.t_relay() end
    sip.exit()
  end
  if sip.is_method("INVITE") then
    {create}
    if not sip.topology_hiding.topology_hiding("{flags}") then
      sip.sl.sl_send_reply(500, "No Hiding")
      sip.exit()
    end
  end
  sip.pv.du = "sip:127.0.0.1:{uas}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
"#
    )
}

/// Runs `calls` hidden calls through a proxy started with `script`.
fn hidden_calls(script: impl Fn(u16) -> String, calls: u32) {
    let callee = uas("th_uas.xml", "u1");
    let proxy = Proxy::start(&script(callee.port));
    let run = uac("th_uac.xml", proxy.port, "u1", calls, 5, &[]);
    let (ok, failed) = callee.counts(u64::from(calls));
    let log = proxy.stop();
    assert_eq!(
        (run.successful, run.failed),
        (u64::from(calls), 0),
        "caller: {}\ncallee: {}\nproxy: {log}",
        run.errors,
        callee.errors()
    );
    assert_eq!(
        (ok, failed),
        (u64::from(calls), 0),
        "callee: {}\nproxy: {log}",
        callee.errors()
    );
}

#[test]
fn with_a_dialog_neither_side_sees_the_other_and_reinvites_and_bye_go_both_ways() {
    hidden_calls(|uas| script(uas, "", "sip.dialog.create_dialog()", ""), 3);
}

#[test]
fn force_dialog_makes_the_dialog_itself() {
    hidden_calls(
        |uas| script(uas, "topology_hiding = { force_dialog = 1 },", "", ""),
        2,
    );
}

#[test]
fn with_the_dialog_id_in_the_contact_user_part() {
    hidden_calls(|uas| script(uas, "", "sip.dialog.create_dialog()", "D"), 2);
}

#[test]
fn without_a_dialog_the_encoded_contact_carries_the_call() {
    hidden_calls(
        |uas| {
            script(
                uas,
                "topology_hiding = { th_contact_encode_passwd = \"s3cret\" },",
                "",
                "",
            )
        },
        3,
    );
}

#[test]
fn without_topology_hiding_the_scenarios_see_the_other_side() {
    // The control: the same call not hidden fails the callee's checks,
    // so the checks above can fail.
    let callee = uas("th_uas.xml", "u1");
    let proxy = Proxy::start(
        &script(callee.port, "", "sip.rr.record_route()", "").replace(
            "if not sip.topology_hiding.topology_hiding(\"\") then",
            "if false then",
        ),
    );
    let run = uac("th_uac.xml", proxy.port, "u1", 1, 1, &[]);
    let (ok, _) = callee.counts(1);
    drop(proxy);
    assert_eq!((run.successful, ok), (0, 0), "{}", callee.errors());
    assert!(
        callee.errors().contains("callervia") || callee.errors().contains("caller"),
        "{}",
        callee.errors()
    );
}
