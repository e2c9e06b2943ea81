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
      sip.xlog("L_INFO", "th matched $rm $ou to $ru ci=$ci callee_callid=$TH_callee_callid\n")
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

/// Runs `calls` hidden calls through a proxy started with `script`:
/// re-INVITEs both ways and the caller's BYE.
fn hidden_calls(script: impl Fn(u16) -> String, calls: u32) {
    let log = hidden_calls_with(script, calls, "th_uac.xml", "th_uas.xml");
    // $TH_callee_callid is null unless flag C hides the Call-ID.
    assert!(log.contains("callee_callid=<null>"), "{log}");
}

/// [`hidden_calls`] with other scenarios (a name in tests/scenarios or a
/// path).
fn hidden_calls_with(
    script: impl Fn(u16) -> String,
    calls: u32,
    caller: &str,
    callee: &str,
) -> String {
    let callee = uas(callee, "u1");
    let proxy = Proxy::start(&script(callee.port));
    let run = uac(caller, proxy.port, "u1", calls, 5, &[]);
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
    log
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

/// OpenSIPS's word64 (ut.c): base64 digits ending in `+.`, `-` padding.
fn word64(b: &[u8]) -> String {
    let d = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(d[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('-');
            }
        }
    }
    out
}

/// The `thinfo` values in the R-URIs of the sequential requests logged.
fn thinfo_values(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("th matched"))
        .filter_map(|l| l.split_once(";thinfo=").map(|(_, r)| r))
        .map(|r| r.split([';', ' ', '>']).next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn the_dialogless_contact_is_written_in_word64_or_base32_as_the_scheme_says() {
    for (scheme, digit) in [
        (
            "base64",
            (|b: u8| b.is_ascii_alphanumeric() || b"+.-".contains(&b)) as fn(u8) -> bool,
        ),
        ("base32", |b: u8| {
            b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b) || b == b'-'
        }),
    ] {
        let modules = format!("topology_hiding = {{ th_contact_encode_scheme = \"{scheme}\" }},");
        let log = hidden_calls_with(
            |uas| script(uas, &modules, "", ""),
            1,
            "th_uac.xml",
            "th_uas.xml",
        );
        let values = thinfo_values(&log);
        assert!(!values.is_empty(), "{log}");
        for v in &values {
            assert!(v.len() > 16 && v.bytes().all(digit), "{scheme}: {v}");
        }
        // base64 uses lower case; base32 never does.
        assert_eq!(
            values
                .iter()
                .any(|v| v.bytes().any(|b| b.is_ascii_lowercase())),
            scheme == "base64"
        );
    }
    let bad = Proxy::try_start(&script(
        5060,
        "topology_hiding = { th_contact_encode_scheme = \"hex\" },",
        "",
        "",
    ));
    assert!(bad.is_err_and(|log| log.contains("th_contact_encode_scheme")));
}

#[test]
fn a_branch_of_the_failure_route_is_hidden_too() {
    // The first callee is busy; the failure route relays to th_uas.xml,
    // whose checks fail on any of the caller's markers.
    let busy = uas("uas_busy.xml", "u1");
    let busy_port = busy.port;
    let with_failover = move |good: u16| {
        let create = "sip.dialog.create_dialog()\n    sip.tm.t_on_failure(\"next\")";
        format!(
            "{}\nfunction failure_route.next()\n  sip.pv.du = \"sip:127.0.0.1:{good}\"\n  sip.tm.t_relay()\nend\n",
            script(busy_port, "", create, "")
        )
    };
    hidden_calls(with_failover, 1);
    let (_, busy_failed) = busy.counts(1);
    assert_eq!(busy_failed, 0, "{}", busy.errors());
}

#[test]
fn a_bye_from_the_callee_reaches_the_caller_through_its_route_set() {
    let dialog = |uas| script(uas, "", "sip.dialog.create_dialog()", "");
    hidden_calls_with(dialog, 2, "th_uac_bye_in.xml", "th_uas_bye_out.xml");
    let no_dialog = |uas| script(uas, "", "", "U");
    hidden_calls_with(no_dialog, 2, "th_uac_bye_in.xml", "th_uas_bye_out.xml");
}

/// th_uas.xml that also fails unless the Call-ID it sees is a hidden one.
fn callee_checking_callid(dir: &std::path::Path) -> String {
    let check = r#"<ereg regexp="^[[:space:]]*DLGCH_[A-Za-z0-9+.]+-*$" search_in="hdr" header="Call-ID:" check_it="true" assign_to="ci"/>"#;
    let text = std::fs::read_to_string(scenario("th_uas.xml")).unwrap();
    let anchor = r#"assign_to="x1"/>"#;
    assert!(text.contains(anchor));
    let text = text
        .replacen(anchor, &format!("{anchor}\n      {check}"), 1)
        .replace(r#"variables="all,"#, r#"variables="ci,all,"#);
    let path = dir.join("th_uas_callid.xml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn with_flag_c_the_callee_sees_another_callid_and_the_caller_its_own() {
    // The callee's scenario fails unless its Call-ID is DLGCH_…; SIPp's
    // caller matches every message it gets by its own Call-ID, so a
    // Call-ID not restored fails the caller.
    let dir = tempfile::tempdir().unwrap();
    let callee = callee_checking_callid(dir.path());
    let with_c = |uas| script(uas, "", "sip.dialog.create_dialog()", "C");
    let log = hidden_calls_with(with_c, 2, "th_uac.xml", &callee);
    assert!(log.contains("callee_callid=DLGCH_"), "{log}");
    // OpenSIPS's encoding (topo_hiding_logic.c dlg_th_encode_callid): the
    // Call-ID masked with th_callid_passwd, in word64, behind the prefix.
    let mut seen = 0;
    for l in log.lines() {
        let Some((_, rest)) = l.split_once(" ci=") else {
            continue;
        };
        let Some((ci, hidden)) = rest.split_once(" callee_callid=") else {
            continue;
        };
        if ci.starts_with("DLGCH_") {
            continue;
        }
        let masked: Vec<u8> = ci
            .bytes()
            .zip(b"OpenSIPS".iter().cycle())
            .map(|(a, k)| a ^ k)
            .collect();
        let hidden = hidden.split_whitespace().next().unwrap_or_default();
        assert_eq!(hidden, format!("DLGCH_{}", word64(&masked)), "{l}");
        seen += 1;
    }
    assert!(seen > 0, "{log}");
    let bye_in = |uas| script(uas, "topology_hiding = { force_dialog = 1 },", "", "CU");
    hidden_calls_with(bye_in, 1, "th_uac_bye_in.xml", "th_uas_bye_out.xml");
    // The control: without C the same callee fails.
    let (run, callee_sipp) = one_dialog_call("th_uac.xml", &callee, "");
    let (ok, _) = callee_sipp.counts(1);
    assert_eq!((run.successful, ok), (0, 0), "{}", callee_sipp.errors());
}

/// One call hidden with a dialog and `flags`, for the controls: the
/// caller's run and the callee.
fn one_dialog_call(caller: &str, callee: &str, flags: &str) -> (SippRun, Uas) {
    let callee = uas(callee, "u1");
    let proxy = Proxy::start(&script(
        callee.port,
        "",
        "sip.dialog.create_dialog()",
        flags,
    ));
    let run = uac(caller, proxy.port, "u1", 1, 1, &[]);
    drop(proxy);
    (run, callee)
}

/// Scenarios for flag `a`: the callee's re-INVITE carries another Contact
/// user (`bobnew`), and the caller fails unless that re-INVITE shows the
/// Contact user it got in the 2xx (`bob`, propagated by flag `U`).
fn contact_change_scenarios(dir: &std::path::Path) -> (String, String) {
    let uas_text = std::fs::read_to_string(scenario("th_uas.xml")).unwrap();
    let old = "Contact: <sip:bob@[local_ip]:[local_port];calleect>";
    assert_eq!(uas_text.matches(old).count(), 4);
    // The fourth is in the callee's own re-INVITE.
    let at = uas_text.rmatch_indices(old).next().unwrap().0;
    let uas_text = format!(
        "{}Contact: <sip:bobnew@[local_ip]:[local_port];calleect>{}",
        &uas_text[..at],
        &uas_text[at + old.len()..]
    );
    let uac_text = std::fs::read_to_string(scenario("th_uac.xml")).unwrap();
    let check = r#"&lt;sip:([^@&gt;]*@)?127\.0\.0\.1:[0-9]+(;(did|thinfo)=|&gt;)" search_in="hdr" header="Contact:" check_it="true" assign_to="ct2""#;
    assert!(uac_text.contains(check));
    let uac_text = uac_text.replace(
        check,
        &check
            .replace("([^@&gt;]*@)?", "bob@")
            .replace("(;(did|thinfo)=|&gt;)", ";did="),
    );
    let (uas_path, uac_path) = (dir.join("th_uas_newct.xml"), dir.join("th_uac_keepct.xml"));
    std::fs::write(&uas_path, uas_text).unwrap();
    std::fs::write(&uac_path, uac_text).unwrap();
    (
        uac_path.to_string_lossy().into_owned(),
        uas_path.to_string_lossy().into_owned(),
    )
}

#[test]
fn with_flag_a_the_caller_keeps_the_contact_of_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (caller, callee) = contact_change_scenarios(dir.path());
    let keep = |uas| script(uas, "", "sip.dialog.create_dialog()", "Ua");
    hidden_calls_with(keep, 2, &caller, &callee);
    // The control: with `U` alone the caller sees the new user and fails.
    let (run, _callee) = one_dialog_call(&caller, &callee, "U");
    assert_eq!(run.successful, 0, "{}", run.errors);
    assert!(
        run.errors.contains("regexp") && run.errors.contains("bob@"),
        "{}",
        run.errors
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

/// A scenario of tests/scenarios (or a path) with `pause` of the `nth`
/// 100-ms pause (0-based) made `ms` long, written into `dir`.
fn with_longer_pause(dir: &std::path::Path, scen: &str, nth: usize, ms: u32) -> String {
    let path = std::path::Path::new(scen);
    let text = std::fs::read_to_string(if path.is_absolute() {
        path.to_path_buf()
    } else {
        scenario(scen)
    })
    .unwrap();
    let pause = r#"<pause milliseconds="100"/>"#;
    let (at, _) = text.match_indices(pause).nth(nth).expect("the pause");
    let text = format!(
        "{}<pause milliseconds=\"{ms}\"/>{}",
        &text[..at],
        &text[at + pause.len()..]
    );
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let out = dir.join(format!("long_{nth}_{name}"));
    std::fs::write(&out, text).unwrap();
    out.to_string_lossy().into_owned()
}

#[test]
fn a_hidden_call_survives_a_restart_with_db_mode_1_both_hangup_directions() {
    // OpenSIPS keeps a hidden dialog's flags in its module flags and the
    // Contacts advertised to each side in the dialog values Cct / cct
    // (dialog/dlg_db_handler.c persist_reinvite_pinging): a restart in
    // the middle of the call loses neither.
    let db = common::mariadb::TestDb::new(&format!("lunasip_dialog_th_{}", free_port()));
    let url = db.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let (keep_caller, new_ct_callee) = contact_change_scenarios(dir.path());
    let modules = format!("dialog = {{ db_mode = 1, db_url = \"{url}\" }},");
    // Restart after the ACK: the re-INVITEs both ways (the callee's with
    // another Contact user, which flag `a` keeps from the caller) and the
    // caller's BYE go through the new process; then a call whose callee
    // hangs up after the restart.
    let runs = [
        (
            with_longer_pause(dir.path(), &keep_caller, 0, 2500),
            new_ct_callee.clone(),
        ),
        (
            "th_uac_bye_in.xml".to_string(),
            with_longer_pause(dir.path(), "th_uas_bye_out.xml", 0, 2500),
        ),
    ];
    for (caller_scen, callee_scen) in runs {
        db.sql("DELETE FROM dialog");
        let callee = uas(&callee_scen, "u1");
        let script = script(callee.port, &modules, "sip.dialog.create_dialog()", "Ua");
        let first = Proxy::start(&script);
        let port = first.port;
        let caller = std::thread::spawn(move || uac(&caller_scen, port, "u1", 1, 1, &[]));
        let mut row = String::new();
        for _ in 0..30 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            row = db.sql(
                "SELECT state, module_flags, vars LIKE '%Cct#1#Contact: <sip:bob@%' FROM dialog",
            );
            if row.starts_with('4') {
                break;
            }
        }
        // TOPOH_ONGOING | TOPOH_KEEP_USER | TOPOH_KEEP_ADV_A.
        assert_eq!(row, "4\t38\t1", "the confirmed hidden dialog's row");
        let first_log = first.stop();
        let second = Proxy::try_start_on(&script, port).expect("restart on the same port");
        let run = caller.join().expect("sipp");
        let (ok, failed) = callee.counts(1);
        let log = second.stop();
        assert_eq!(
            (run.successful, run.failed),
            (1, 0),
            "caller: {}\ncallee: {}\nbefore: {first_log}\nafter: {log}",
            run.errors,
            callee.errors()
        );
        assert_eq!(
            (ok, failed),
            (1, 0),
            "callee: {}\nafter: {log}",
            callee.errors()
        );
        assert!(log.contains("1 dialogs read from the database"), "{log}");
        assert!(log.contains("th matched BYE"), "{log}");
    }
}

/// What OpenSIPS's topo_hiding_logic.c `build_encoded_contact_suffix`
/// writes for no route set, `contact`, flags 0 and `socket`: each field
/// behind its 16-bit little-endian length, masked with `passwd`, in
/// word64.
fn opensips_thinfo(contact: &str, socket: &str, passwd: &str) -> String {
    let mut plain = Vec::new();
    for f in ["", contact, "0", socket] {
        plain.extend_from_slice(&(f.len() as u16).to_le_bytes());
        plain.extend_from_slice(f.as_bytes());
    }
    let masked: Vec<u8> = plain
        .iter()
        .zip(passwd.as_bytes().iter().cycle())
        .map(|(a, k)| a ^ k)
        .collect();
    word64(&masked)
}

#[test]
fn a_dialogless_contact_encoded_as_opensips_does_routes_the_request() {
    use std::net::UdpSocket;
    use std::time::Duration;
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let tport = target.local_addr().unwrap().port();
    let proxy = Proxy::start(&script(
        tport,
        "topology_hiding = { th_contact_encode_passwd = \"s3cret\" },",
        "",
        "",
    ));
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let sport = sender.local_addr().unwrap().port();
    let thinfo = opensips_thinfo(
        &format!("sip:alice@127.0.0.1:{tport};x=1"),
        &format!("udp:127.0.0.1:{}", proxy.port),
        "s3cret",
    );
    let bye = format!(
        "BYE sip:127.0.0.1:{p};thinfo={thinfo} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sport};branch=z9hG4bKsenderside\r\n\
         From: <sip:bob@example.com>;tag=b1\r\nTo: <sip:alice@example.com>;tag=a1\r\nCall-ID: interop-1\r\n\
         CSeq: 5 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        p = proxy.port
    );
    sender
        .send_to(bye.as_bytes(), ("127.0.0.1", proxy.port))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = target
        .recv_from(&mut buf)
        .expect("the BYE reached the decoded Contact");
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        got.starts_with(&format!("BYE sip:alice@127.0.0.1:{tport};x=1 SIP/2.0")),
        "{got}"
    );
    assert!(
        !got.contains("senderside") && !got.contains(&sport.to_string()),
        "{got}"
    );
    // The target answers; the sender gets its own Via back.
    let via: Vec<&str> = got.lines().filter(|l| l.starts_with("Via:")).collect();
    let copy = |name: &str| {
        got.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    let ok = format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{}\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        via.join("\r\n"),
        copy("From:"),
        copy("To:"),
        copy("Call-ID:"),
        copy("CSeq:")
    );
    target
        .send_to(ok.as_bytes(), ("127.0.0.1", proxy.port))
        .unwrap();
    let (n, _) = sender.recv_from(&mut buf).expect("the 200 came back");
    let back = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        back.starts_with("SIP/2.0 200") && back.contains("branch=z9hG4bKsenderside"),
        "{back}"
    );
    drop(proxy);
}
