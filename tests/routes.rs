//! Route behaviour, in process: a script and a SIP message in, what the
//! worker queued to send out. No sockets: `Worker::handle` runs the route
//! and leaves its output in the call's outbox.

mod common;

use common::worker::*;

#[test]
fn forward_adds_via_decrements_max_forwards_and_keeps_the_rest() {
    let w = worker("function route.main() sip.forward(\"sip:192.0.2.5:5080\") end");
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 1);
    let (kind, dest, text) = &out[0];
    assert_eq!((*kind, dest), (OutKind::Request, &addr("192.0.2.5:5080")));
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], "INVITE sip:bob@example.com SIP/2.0");
    assert!(
        lines[1].starts_with("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK"),
        "{text}"
    );
    // RFC 3261 §18.2.1 / RFC 3581: the client's Via learns where it really is.
    assert_eq!(
        lines[2],
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport=5070;received=10.0.0.9"
    );
    assert!(text.contains("\r\nMax-Forwards: 69\r\n"), "{text}");
    assert!(text.contains("\r\nX-Keep: yes\r\n"), "{text}");
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
}

#[test]
fn retransmissions_and_cancel_get_the_same_branch() {
    let w = worker("function route.main() sip.forward(\"sip:192.0.2.5\") end");
    let branch = |t: &str| {
        t.split("branch=")
            .nth(1)
            .unwrap()
            .split(['\r', ';'])
            .next()
            .unwrap()
            .to_string()
    };
    let a = branch(&run(&w, INVITE, Proto::Udp)[0].2);
    let b = branch(&run(&w, INVITE, Proto::Udp)[0].2);
    let cancel = INVITE
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let c = branch(&run(&w, &cancel, Proto::Udp)[0].2);
    assert_eq!(a, b);
    assert_eq!(a, c);
    let other = INVITE.replace("z9hG4bKabc", "z9hG4bKother");
    assert_ne!(a, branch(&run(&w, &other, Proto::Udp)[0].2));
}

#[test]
fn forward_without_argument_uses_du_then_ruri() {
    let w = worker(
        r#"function route.main()
  if sip.pv.ci == "du" then sip.pv.du = "sip:192.0.2.7:5099;transport=tcp" end
  sip.forward()
end"#,
    );
    let out = run(
        &w,
        &INVITE.replace("bob@example.com SIP", "bob@192.0.2.6:5072 SIP"),
        Proto::Udp,
    );
    assert_eq!(out[0].1, addr("192.0.2.6:5072"));
    let out = run(&w, &INVITE.replace("call-1@10.0.0.1", "du"), Proto::Udp);
    assert_eq!(out[0].1, addr("192.0.2.7:5099"));
    assert!(
        out[0].2.contains("Via: SIP/2.0/TCP 127.0.0.1:5060;branch="),
        "{}",
        out[0].2
    );
    // A host name is resolved when sending.
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(
        out[0].1,
        Dest::Name(lunasip::transport::dns::Hop {
            host: "example.com".into(),
            port: None,
            proto: None
        })
    );
}

#[test]
fn ruri_pseudo_variables_read_and_write() {
    let w = worker(
        r#"function route.main()
  assert(sip.pv.rm == "INVITE" and sip.pv.rU == "bob" and sip.pv.rd == "example.com" and sip.pv.rp == nil)
  assert(sip.pv.fU == "alice" and sip.pv.fd == "example.com" and sip.pv.tU == "bob" and sip.pv.ci == "call-1@10.0.0.1")
  assert(sip.pv.cs == 1 and sip.pv.si == "10.0.0.9" and sip.pv.sp == 5070 and sip.pv.du == nil)
  assert(sip.pv.get("$(hdr(Via)[0])") == "SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport")
  assert(sip.pv.fmt("$rm $fu -> $ru") == "INVITE sip:alice@example.com -> sip:bob@example.com")
  sip.pv.rU = "carol"
  sip.pv.rd = "192.0.2.8"
  sip.pv.rp = 5090
  assert(sip.pv.ru == "sip:carol@192.0.2.8:5090")
  sip.pv.set("$ru", "sip:dave@192.0.2.9:5091")
  sip.forward()
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 1, "route failed: see assertion above");
    assert_eq!(out[0].1, addr("192.0.2.9:5091"));
    assert!(
        out[0]
            .2
            .starts_with("INVITE sip:dave@192.0.2.9:5091 SIP/2.0\r\n"),
        "{}",
        out[0].2
    );
}

#[test]
fn header_functions() {
    let w = worker(
        r#"function route.main()
  assert(sip.is_present_hf("X-Keep") and sip.is_present_hf("v") and not sip.is_present_hf("X-None"))
  assert(sip.is_method("ACK|INVITE") and not sip.is_method("BYE"))
  assert(not sip.has_totag())
  assert(sip.remove_hf("Contact"))
  assert(not sip.remove_hf("X-None"))
  sip.append_hf("X-From: $fU\r\n")
  sip.append_hf("X-Bare: 1")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    let text = &out[0].2;
    assert!(!text.contains("Contact:"), "{text}");
    assert!(
        text.contains("\r\nX-From: alice\r\nX-Bare: 1\r\n"),
        "{text}"
    );
}

#[test]
fn flags_live_for_one_message() {
    let w = worker(
        r#"function route.main()
  if sip.pv.ci == "first" then
    assert(not sip.isflagset(3))
    sip.setflag(3); sip.setflag("NAT")
    assert(sip.isflagset(3) and sip.isflagset("NAT"))
    sip.resetflag(3)
    assert(not sip.isflagset(3))
  else
    assert(not sip.isflagset("NAT"))
  end
  sip.sl.sl_send_reply(200, "OK")
end"#,
    );
    assert!(
        run(&w, &INVITE.replace("call-1@10.0.0.1", "first"), Proto::Udp)[0]
            .2
            .starts_with("SIP/2.0 200 OK")
    );
    assert!(run(&w, INVITE, Proto::Udp)[0]
        .2
        .starts_with("SIP/2.0 200 OK"));
}

#[test]
fn sl_send_reply_builds_a_reply_to_the_source() {
    let w = worker("function route.main() sip.sl.sl_send_reply(404, \"Not Here\") end");
    let out = run(&w, INVITE, Proto::Udp);
    let (kind, dest, text) = &out[0];
    // rport was asked for: the reply goes to the source port (RFC 3581).
    assert_eq!((*kind, dest), (OutKind::LocalReply, &addr("10.0.0.9:5070")));
    assert!(text.starts_with("SIP/2.0 404 Not Here\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport=5070;received=10.0.0.9\r\n"), "{text}");
    assert!(
        text.contains("\r\nTo: Bob <sip:bob@example.com>;tag="),
        "{text}"
    );
    assert!(
        text.contains("\r\nCall-ID: call-1@10.0.0.1\r\nCSeq: 1 INVITE\r\n"),
        "{text}"
    );
    // The same request again gets the same To tag.
    let tag = |t: &str| {
        t.split(";tag=")
            .nth(2)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(tag(text), tag(&run(&w, INVITE, Proto::Udp)[0].2));
    // Without rport the reply goes to the Via port at the source address.
    let out = run(&w, &INVITE.replace(";rport", ""), Proto::Udp);
    assert_eq!(out[0].1, addr("10.0.0.9:5062"));
    // An ACK is never answered.
    let ack = INVITE
        .replace("INVITE sip:", "ACK sip:")
        .replace("1 INVITE", "1 ACK");
    assert!(run(&w, &ack, Proto::Udp).is_empty());
}

#[test]
fn force_rport_and_add_local_rport() {
    let w = worker("function route.main() sip.force_rport(); sip.add_local_rport(); sip.forward(\"sip:192.0.2.5\") end");
    let out = run(&w, &INVITE.replace(";rport", ""), Proto::Udp);
    let text = &out[0].2;
    assert!(text.contains(";rport\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;received=10.0.0.9;rport=5070\r\n") || text.contains(";rport\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport=5070;received=10.0.0.9\r\n"), "{text}");
}

#[test]
fn record_route_and_loose_route() {
    let w = worker(
        r#"function route.main()
  if sip.has_totag() then
    assert(sip.rr.loose_route())
    sip.forward()
  else
    assert(not sip.rr.loose_route())
    sip.rr.record_route("x=1")
    sip.forward("sip:192.0.2.5")
  end
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert!(
        out[0]
            .2
            .contains("\r\nRecord-Route: <sip:127.0.0.1:5060;lr;ftag=a1;x=1>\r\n"),
        "{}",
        out[0].2
    );
    // In on TCP, out on UDP: a double Record-Route (RFC 5658), the inbound side last.
    let out = run(&w, INVITE, Proto::Tcp);
    assert!(
        out[0].2.contains("\r\nRecord-Route: <sip:127.0.0.1:5060;lr;r2=on;ftag=a1;x=1>\r\nRecord-Route: <sip:127.0.0.1:5060;transport=tcp;lr;r2=on;ftag=a1;x=1>\r\n"),
        "{}",
        out[0].2
    );
    // In-dialog: our Route is removed, the next one becomes the destination.
    let bye = INVITE
        .replace("INVITE sip:bob@example.com", "BYE sip:bob@192.0.2.20:5080")
        .replace(
            "To: Bob <sip:bob@example.com>",
            "To: Bob <sip:bob@example.com>;tag=b1",
        )
        .replace("CSeq: 1 INVITE", "CSeq: 2 BYE")
        .replace(
            "X-Keep: yes\r\n",
            "Route: <sip:127.0.0.1:5060;lr;ftag=a1>, <sip:192.0.2.30;lr>\r\n",
        );
    let out = run(&w, &bye, Proto::Udp);
    assert_eq!(out[0].1, addr("192.0.2.30:5060"));
    assert!(
        out[0].2.contains("\r\nRoute: <sip:192.0.2.30;lr>\r\n"),
        "{}",
        out[0].2
    );
    assert!(!out[0].2.contains("127.0.0.1:5060;lr;ftag"), "{}", out[0].2);
    // Only our Route: it goes to the R-URI.
    let out = run(&w, &bye.replace(", <sip:192.0.2.30;lr>", ""), Proto::Udp);
    assert_eq!(out[0].1, addr("192.0.2.20:5080"));
    assert!(!out[0].2.contains("Route:"), "{}", out[0].2);
}

#[test]
fn exit_and_drop_unwind_through_pcall() {
    let w = worker(
        r#"local function deep() sip.exit() end
function route.main()
  if sip.pv.ci == "drop" then
    pcall(sip.drop)
    sip.sl.sl_send_reply(500, "drop was swallowed")
  end
  local ok = pcall(function() deep() end)
  sip.sl.sl_send_reply(500, "exit was swallowed")
end"#,
    );
    assert!(run(&w, INVITE, Proto::Udp).is_empty());
    assert!(run(&w, &INVITE.replace("call-1@10.0.0.1", "drop"), Proto::Udp).is_empty());
}

#[test]
fn exit_ends_the_route_from_a_sub_route_and_from_a_scripts_coroutine() {
    // In the host's route coroutine sip.exit() yields it (prelude.lua);
    // in the script's own coroutine it raises as before. Either way the
    // route ends there, and the next messages run on fresh coroutines.
    let w = worker(
        r#"local function sub() sip.exit() end
function route.main()
  if sip.pv.ci == "pass" then
    sip.sl.sl_send_reply(200, "passed")
    return
  end
  if sip.pv.ci == "co" then
    coroutine.wrap(function() sip.exit() end)()
    sip.sl.sl_send_reply(500, "exit in a coroutine was swallowed")
  end
  sub()
  sip.sl.sl_send_reply(500, "exit was swallowed")
end"#,
    );
    for _ in 0..3 {
        assert!(run(&w, INVITE, Proto::Udp).is_empty());
        assert!(run(&w, &INVITE.replace("call-1@10.0.0.1", "co"), Proto::Udp).is_empty());
        let out = run(&w, &INVITE.replace("call-1@10.0.0.1", "pass"), Proto::Udp);
        assert!(
            out[0].2.starts_with("SIP/2.0 200 passed\r\n"),
            "{}",
            out[0].2
        );
    }
}

#[test]
fn errors_name_the_function_and_route_type_limits_apply() {
    let w = worker(
        r#"function route.main()
  -- Not a literal: `lunasip check` refuses a literal 999.
  local code = 999
  sip.sl.sl_send_reply(code, "Nope")
end
function onreply_route.main()
  sip.forward("sip:192.0.2.5")
end"#,
    );
    // Lua error in the request route: 500 goes back.
    let out = run(&w, INVITE, Proto::Udp);
    assert!(
        out[0]
            .2
            .starts_with("SIP/2.0 500 Server Internal Error\r\n"),
        "{}",
        out[0].2
    );
    // forward() is not allowed in onreply_route; the reply still goes back by Via.
    let reply = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport=5070;received=10.0.0.9\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let out = run(&w, reply, Proto::Udp);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, addr("10.0.0.9:5070"));
    assert!(
        out[0]
            .2
            .starts_with("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;"),
        "{}",
        out[0].2
    );
}

#[test]
fn max_forwards_processing() {
    let w = worker(
        r#"function route.main()
  local ok, rc = sip.maxfwd.mf_process_maxfwd_header(10)
  if not ok then sip.sl.sl_send_reply(483, "Too Many Hops " .. rc); sip.exit() end
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = run(
        &w,
        &INVITE.replace("Max-Forwards: 70", "Max-Forwards: 0"),
        Proto::Udp,
    );
    assert!(
        out[0].2.starts_with("SIP/2.0 483 Too Many Hops -1\r\n"),
        "{}",
        out[0].2
    );
    let out = run(&w, &INVITE.replace("Max-Forwards: 70\r\n", ""), Proto::Udp);
    assert!(out[0].2.contains("Max-Forwards: 10\r\n"), "{}", out[0].2);
    let out = run(
        &w,
        &INVITE.replace("Max-Forwards: 70", "Max-Forwards: 300"),
        Proto::Udp,
    );
    assert!(out[0].2.contains("Max-Forwards: 256\r\n"), "{}", out[0].2);
}

#[test]
fn replies_to_a_tcp_request_keep_the_connection_address() {
    let w = worker("function route.main() sip.forward(\"sip:192.0.2.5\") end");
    let out = run(
        &w,
        &INVITE.replace(
            "SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport",
            "SIP/2.0/TCP 10.0.0.1:5062;branch=z9hG4bKabc",
        ),
        Proto::Tcp,
    );
    // On a stream received and rport are always written, so the reply finds the connection.
    assert!(
        out[0]
            .2
            .contains("Via: SIP/2.0/TCP 10.0.0.1:5062;branch=z9hG4bKabc;"),
        "{}",
        out[0].2
    );
    assert!(
        out[0].2.contains("received=10.0.0.9") && out[0].2.contains("rport=5070"),
        "{}",
        out[0].2
    );
}

#[test]
fn record_route_presets_params_and_strict_routers() {
    let w = worker(
        r#"function route.main()
  if sip.pv.ci == "preset" then
    sip.rr.add_rr_param("a=1")
    sip.rr.record_route_preset("in.example.com:5070", "out.example.com")
  elseif sip.pv.ci == "strict" then
    assert(sip.rr.loose_route())
  else
    sip.rr.record_route()
    sip.rr.add_rr_param("b=2")
  end
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = run(&w, &INVITE.replace("call-1@10.0.0.1", "preset"), Proto::Udp);
    assert!(out[0].2.contains("\r\nRecord-Route: <sip:out.example.com;lr;r2=on;ftag=a1;a=1>\r\nRecord-Route: <sip:in.example.com:5070;lr;r2=on;ftag=a1;a=1>\r\n"), "{}", out[0].2);
    let out = run(&w, INVITE, Proto::Udp);
    assert!(
        out[0]
            .2
            .contains("\r\nRecord-Route: <sip:127.0.0.1:5060;lr;ftag=a1;b=2>\r\n"),
        "{}",
        out[0].2
    );
    // A strict router put our Record-Route URI in the R-URI: the last Route is the target.
    let strict = INVITE
        .replace("INVITE sip:bob@example.com", "BYE sip:127.0.0.1:5060;lr")
        .replace("call-1@10.0.0.1", "strict")
        .replace("CSeq: 1 INVITE", "CSeq: 2 BYE")
        .replace("X-Keep: yes\r\n", "Route: <sip:bob@192.0.2.20:5080>\r\n");
    let out = run(&w, &strict, Proto::Udp);
    assert!(
        out[0]
            .2
            .starts_with("BYE sip:bob@192.0.2.20:5080 SIP/2.0\r\n"),
        "{}",
        out[0].2
    );
    assert!(!out[0].2.contains("Route:"), "{}", out[0].2);
}

#[test]
fn check_route_param_reads_our_route_entry() {
    let w = worker(
        r#"function route.main()
  if sip.rr.check_route_param("nat=yes") then sip.sl.sl_send_reply(200, "nat") else sip.sl.sl_send_reply(200, "plain") end
end"#,
    );
    let with = INVITE.replace(
        "X-Keep: yes\r\n",
        "Route: <sip:127.0.0.1:5060;lr;ftag=a1;nat=yes>, <sip:192.0.2.30;lr;nat=no>\r\n",
    );
    assert!(run(&w, &with, Proto::Udp)[0]
        .2
        .starts_with("SIP/2.0 200 nat\r\n"));
    let other = INVITE.replace("X-Keep: yes\r\n", "Route: <sip:192.0.2.30;lr;nat=yes>\r\n");
    assert!(run(&w, &other, Proto::Udp)[0]
        .2
        .starts_with("SIP/2.0 200 plain\r\n"));
}
