//! sipmsgops (OpenSIPS modules/sipmsgops/*.c, 3.4) from Lua, in process: a
//! script and a message in, what the next hop or the caller receives.
//! Predicates are checked by the headers a route adds from their results.
#![allow(dead_code)]

mod common;

use common::worker::*;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=sendonly\r\n";

fn invite_sdp(sdp: &str) -> String {
    INVITE
        .replace(
            "X-Keep: yes\r\n",
            "X-Keep: yes\r\nContent-Type: application/sdp\r\n",
        )
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()),
        )
}

/// The one message the route sent.
fn sent(w: &std::rc::Rc<Worker>, msg: &str) -> String {
    let out = run(w, msg, Proto::Udp);
    assert_eq!(out.len(), 1, "{out:?}");
    out[0].2.clone()
}

/// The body of a written message, checked against its Content-Length.
fn body_of(text: &str) -> &str {
    let (head, body) = text.split_once("\r\n\r\n").expect("a blank line");
    let cl: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(cl, body.len(), "Content-Length matches the body:\n{text}");
    body
}

#[test]
fn is_method_by_id_list_and_name() {
    let w = worker(
        r#"function route.main()
  local r = {}
  for _, m in ipairs({"INVITE", "invite", "ACK|INVITE", "REGISTER|MESSAGE", "PUBLISH|SUBSCRIBE", "KDMQ"}) do
    r[#r + 1] = m .. "=" .. tostring(sip.is_method(m))
  end
  sip.append_hf("X-M: " .. table.concat(r, " ") .. "\r\n")
  local ok, err = pcall(sip.is_method, "INVITE|KDMQ")
  sip.append_hf("X-E: " .. tostring(ok) .. " " .. tostring(tostring(err):match("a list may name only") ~= nil) .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, INVITE);
    assert!(
        out.contains("\r\nX-M: INVITE=true invite=true ACK|INVITE=true REGISTER|MESSAGE=false PUBLISH|SUBSCRIBE=false KDMQ=false\r\n"),
        "{out}"
    );
    assert!(out.contains("\r\nX-E: false true\r\n"), "{out}");
    // An unknown method compares by name, case-insensitively.
    let kdmq = INVITE
        .replace("INVITE sip:", "KDMQ sip:")
        .replace("1 INVITE", "1 KDMQ");
    assert!(sent(&w, &kdmq).contains("KDMQ=true"));
}

#[test]
fn has_body_with_and_without_mime() {
    let w = worker(
        r#"function route.main()
  sip.append_hf("X-B: " .. tostring(sip.has_body()) .. " " .. tostring(sip.has_body("application/sdp"))
    .. " " .. tostring(sip.has_body_part("text/plain")) .. "\r\n")
  local ok = pcall(sip.has_body, "sdp")
  sip.append_hf("X-Bad: " .. tostring(ok) .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    assert!(sent(&w, INVITE).contains("\r\nX-B: false false false\r\nX-Bad: false\r\n"));
    assert!(sent(&w, &invite_sdp(SDP)).contains("\r\nX-B: true true false\r\n"));
}

#[test]
fn append_and_insert_next_to_a_named_header() {
    let w = worker(
        r#"function route.main()
  sip.append_hf("P-hint: outbound\r\n")
  sip.append_hf("X-After-From: $fU\r\n", "From")
  sip.insert_hf("X-Top: 1\r\n")
  sip.insert_hf("X-Before-Keep: 2\r\n", "X-Keep")
  sip.append_hf("X-No-CRLF: 3")
  sip.append_hf("X-Missing-Anchor: 4\r\n", "X-Nope")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, INVITE);
    assert!(
        out.contains("\r\nX-Top: 1\r\nVia: SIP/2.0/UDP 127.0.0.1"),
        "{out}"
    );
    assert!(out
        .contains("\r\nFrom: Alice <sip:alice@example.com>;tag=a1\r\nX-After-From: alice\r\nTo:"));
    assert!(out.contains("\r\nX-Before-Keep: 2\r\nX-Keep: yes\r\n"));
    assert!(out.ends_with(
        "Content-Length: 0\r\nP-hint: outbound\r\nX-No-CRLF: 3\r\nX-Missing-Anchor: 4\r\n\r\n"
    ));
}

#[test]
fn bad_header_text_and_names_are_errors_never_on_the_wire() {
    // Built at run time (a literal is refused by `lunasip check`, below).
    let w = worker(
        r#"function route.main()
  local crlf = "\r\n"
  local r = {}
  for _, f in ipairs({
    function() sip.append_hf("X-A: 1" .. crlf .. crlf .. "INVITE sip:x SIP/2.0" .. crlf) end,
    function() sip.append_hf("no colon " .. "here") end,
    function() sip.insert_hf("X-B: 1", "X-Keep" .. crlf .. "X-Evil: 1") end,
    function() sip.remove_hf("Via" .. crlf) end,
    function() sip.is_present_hf("X " .. "Bad") end,
    function() sip.append_to_reply("X-R: 1\nX-S: " .. "2") end,
  }) do
    local ok = pcall(f)
    r[#r + 1] = tostring(ok)
  end
  sip.append_hf("X-R: " .. table.concat(r, ",") .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, INVITE);
    assert!(
        out.contains("\r\nX-R: false,false,false,false,false,false\r\n"),
        "{out}"
    );
    assert!(!out.contains("X-Evil") && !out.contains("no colon"));
    // At run time the error reaches the log with the script line and the
    // caller gets a 500.
    let w = worker("function route.main()\n  local b = \"body\"\n  sip.append_hf(\"X-A: 1\\r\\n\\r\\n\" .. b)\nend");
    let out = run(&w, INVITE, Proto::Udp);
    assert!(out[0].2.starts_with("SIP/2.0 500 "), "{}", out[0].2);
    // A literal is an error of `lunasip check`, with file and line.
    let e = lunasip::script::check::check(&lunasip::script::Source {
        name: "t.lua".into(),
        code: format!(
            "{HEAD}function route.main()\n  sip.append_hf(\"X-A: 1\\r\\n\\r\\nbody\")\nend\n"
        ),
    })
    .unwrap_err()
    .0;
    assert!(e.starts_with("t.lua:3: sip.append_hf: "), "{e}");
}

#[test]
fn remove_hf_re_and_glob() {
    let w = worker(
        r#"function route.main()
  local a = sip.remove_hf_re("^x-(a|b)$")
  local b = sip.remove_hf_glob("P-*-Info")
  local c = sip.remove_hf_glob("Nothing*")
  sip.append_hf("X-R: " .. tostring(a) .. " " .. tostring(b) .. " " .. tostring(c) .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let msg = INVITE.replace(
        "X-Keep: yes\r\n",
        "X-Keep: yes\r\nX-A: 1\r\nx-b: 2\r\nX-AB: 3\r\nP-Call-Info: 4\r\np-x-info: 5\r\n",
    );
    let out = sent(&w, &msg);
    assert!(
        out.contains("\r\nX-Keep: yes\r\nX-AB: 3\r\nContent-Length"),
        "{out}"
    );
    assert!(out.contains("\r\nX-R: true true false\r\n"));
}

#[test]
fn append_to_reply_reaches_local_replies() {
    let w = worker(
        r#"function route.main()
  sip.append_to_reply("Contact: <sip:$rU@192.0.2.1>\r\n")
  sip.append_to_reply("Retry-After: 30")
  sip.sl.sl_send_reply(302, "Moved")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    let r = &out[0].2;
    assert!(r.starts_with("SIP/2.0 302 Moved\r\n"), "{r}");
    assert!(
        r.contains(
            "\r\nContact: <sip:bob@192.0.2.1>\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n"
        ),
        "{r}"
    );
}

#[test]
fn change_reply_status_in_onreply_route() {
    let w = worker(
        r#"function route.main() sip.forward("sip:192.0.2.5") end
function onreply_route.main()
  local up, rc = sip.change_reply_status(180, "Ringing")
  local ok, rc2 = sip.change_reply_status(603, "Declined by $rs")
  sip.append_hf("X-S: " .. tostring(up) .. rc .. " " .. tostring(ok) .. rc2 .. " " .. sip.pv.rs .. "\r\n")
end"#,
    );
    let reply = "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport=5070;received=10.0.0.9\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let out = sent(&w, reply);
    // The reason is expanded before the status changes (as OpenSIPS
    // expands its arguments first); later reads see the new code.
    assert!(out.starts_with("SIP/2.0 603 Declined by 486\r\n"), "{out}");
    assert!(out.contains("\r\nX-S: false-1 true1 603\r\n"), "{out}");
}

#[test]
fn ruri_params() {
    let w = worker(
        r#"function route.main()
  local a = sip.ruri_has_param("bnat", "yes")
  local b = sip.ruri_has_param("lr")
  local c = sip.ruri_has_param("transport")
  sip.ruri_del_param("transport")
  sip.ruri_del_param("bnat")
  local d = sip.ruri_del_param("nothere")
  sip.ruri_add_param("x=1")
  sip.append_hf("X-P: " .. tostring(a) .. tostring(b) .. tostring(c) .. tostring(d) .. "\r\n")
  sip.append_hf("X-E: " .. tostring(sip.is_uri_user_e164("$fu")) .. tostring(sip.is_uri_user_e164("sip:+4930123@x")) .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let msg = INVITE.replace(
        "INVITE sip:bob@example.com SIP/2.0",
        "INVITE sip:bob@example.com;transport=udp;lr;bnat=yes SIP/2.0",
    );
    let out = sent(&w, &msg);
    assert!(
        out.starts_with("INVITE sip:bob@example.com;lr;x=1 SIP/2.0\r\n"),
        "{out}"
    );
    assert!(
        out.contains("\r\nX-P: truetruefalsefalse\r\nX-E: falsetrue\r\n"),
        "{out}"
    );
}

#[test]
fn sdp_streams_and_hold() {
    let w = worker(
        r#"function route.main()
  local h, kind = sip.is_audio_on_hold()
  local v = sip.stream_exists("video")
  local t = sip.stream_exists("audio", "^udp/tls")
  local d = sip.stream_delete("video")
  local again = sip.stream_delete("video")
  sip.append_hf("X-S: " .. tostring(h) .. kind .. tostring(v) .. tostring(t) .. tostring(d) .. tostring(again) .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, &invite_sdp(SDP));
    assert!(
        out.contains("\r\nX-S: false-1truefalsetruefalse\r\n"),
        "{out}"
    );
    let body = body_of(&out);
    assert!(body.ends_with("a=rtpmap:101 telephone-event/8000\r\n") && !body.contains("video"));
    let held = SDP.replace("c=IN IP4 10.0.0.1", "c=IN IP4 0.0.0.0");
    assert!(sent(&w, &invite_sdp(&held)).contains("\r\nX-S: true1true"));
}

#[test]
fn sipmsg_validate_codes_and_reason() {
    let w = worker(
        r#"function route.main()
  local ok, rc = sip.sipmsg_validate("rtf", "$var(why)")
  sip.append_hf("X-V: " .. tostring(ok) .. rc .. " $var(why)\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    assert!(sent(&w, INVITE).contains("\r\nX-V: true1 "));
    let no_mf = INVITE.replace("Max-Forwards: 70\r\n", "");
    assert!(sent(&w, &no_mf).contains("\r\nX-V: false-13 "));
    let bad_to = INVITE.replace(
        "To: Bob <sip:bob@example.com>",
        "To: Bob <sip:bob@exa..mple.com>",
    );
    let out = sent(&w, &bad_to);
    assert!(
        out.contains("\r\nX-V: false-23 invalid domain for 'To' header\r\n"),
        "{out}"
    );
}

#[test]
fn changes_are_seen_after_msg_apply_changes_only() {
    let w = worker(
        r#"function route.main()
  sip.append_hf("X-New: 1\r\n")
  sip.remove_hf("X-Keep")
  local before = tostring(sip.is_present_hf("X-New")) .. tostring(sip.is_present_hf("X-Keep"))
  sip.msg_apply_changes()
  local after = tostring(sip.is_present_hf("X-New")) .. tostring(sip.is_present_hf("X-Keep"))
  sip.append_hf("X-Seen: " .. before .. " " .. after .. " $hdr(X-New)\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, INVITE);
    assert!(
        out.contains("\r\nX-New: 1\r\nX-Seen: falsetrue truefalse 1\r\n"),
        "{out}"
    );
    assert!(!out.contains("X-Keep"));
}

#[test]
fn codecs_find_reorder_and_delete() {
    // modules/sipmsgops/codecs.c: each call works on the list the one
    // before left; static payload types are known by name without rtpmap.
    let w = worker(
        r#"function route.main()
  local r = {}
  r[#r + 1] = sip.codec_exists("PCMA")
  r[#r + 1] = sip.codec_exists("G729")
  r[#r + 1] = sip.codec_exists_re("^tele")
  r[#r + 1] = sip.codec_move_up("PCMA")
  r[#r + 1] = sip.codec_delete("telephone-event", "8000")
  r[#r + 1] = sip.codec_exists("telephone-event")
  r[#r + 1] = sip.codec_move_down_re("pcma")
  r[#r + 1] = sip.codec_delete("G729")
  local s = {}
  for i, v in ipairs(r) do s[i] = tostring(v) end
  sip.append_hf("X-C: " .. table.concat(s, " ") .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, &invite_sdp(SDP));
    // codec_exists reads the list as changed (as OpenSIPS's codec lumps).
    assert!(
        out.contains("\r\nX-C: true false true true true false true false\r\n"),
        "{out}"
    );
    assert_eq!(
        body_of(&out),
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=sendonly\r\n"
    );
    // Everything but H.26x: the audio stream is left empty, port 0.
    let w = worker(
        r#"function route.main()
  sip.codec_delete_except_re("H26")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, &invite_sdp(SDP));
    assert_eq!(
        body_of(&out),
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 0 RTP/AVP\r\n\
m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=sendonly\r\n"
    );
}

#[test]
fn body_parts_added_and_removed() {
    // 0 -> 1 and 1 -> 2 (sipmsgops.c add_body_part_f; packing as
    // msg_translator.c prep_reassemble_body_parts, boundary OSS_BOUNDARY).
    let w = worker(
        r#"function route.main()
  local ok, rc = sip.add_body_part("v=0\r\n", "application/sdp")
  sip.append_hf("X-A: " .. tostring(ok) .. rc .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, INVITE);
    assert!(
        out.contains("\r\nContent-Length: 5\r\nContent-Type: application/sdp\r\nX-A: true1\r\n"),
        "{out}"
    );
    assert_eq!(body_of(&out), "v=0\r\n");
    let w = worker(
        r#"function route.main()
  sip.add_body_part("\1\2", "application/isup", "Content-Disposition: signal;handling=optional")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, &invite_sdp(SDP));
    assert!(
        out.contains("\r\nContent-Type: multipart/mixed;boundary=OSS-unique-boundary-42\r\n"),
        "{out}"
    );
    assert_eq!(
        body_of(&out),
        format!(
            "--OSS-unique-boundary-42\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n\
--OSS-unique-boundary-42\r\nContent-Type: application/isup\r\nContent-Disposition: signal;handling=optional\r\n\r\n\u{1}\u{2}\r\n\
--OSS-unique-boundary-42--\r\n"
        )
    );
    // n -> 1 and 1 -> 0 (remove_body_part_f).
    let multipart = format!(
        "--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP}\r\n--b1\r\nContent-Type: application/isup\r\nContent-Disposition: signal\r\n\r\nISUP\r\n--b1--\r\n"
    );
    let msg = invite_sdp("")
        .replace(
            "Content-Type: application/sdp",
            "Content-Type: multipart/mixed;boundary=b1",
        )
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: {}\r\n\r\n{multipart}", multipart.len()),
        );
    let w = worker(
        r#"function route.main()
  local a = sip.remove_body_part("application/isup")
  local b = sip.remove_body_part("text/plain")
  sip.append_hf("X-R: " .. tostring(a) .. tostring(b) .. tostring(sip.has_body("application/isup")) .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, &msg);
    assert!(
        out.contains("\r\nContent-Type: application/sdp\r\n") && !out.contains("multipart"),
        "{out}"
    );
    assert!(out.contains("\r\nX-R: truefalsetrue\r\n"), "{out}");
    assert_eq!(body_of(&out), SDP);
    let w = worker(
        r#"function route.main()
  sip.remove_body_part()
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, &msg);
    assert!(!out.contains("Content-Type"), "{out}");
    assert_eq!(body_of(&out), "");
}

#[test]
fn the_rest_of_sipmsgops() {
    let w = worker(
        r#"function route.main()
  local r = {}
  r[#r + 1] = sip.is_privacy("id")
  r[#r + 1] = sip.is_privacy("header")
  r[#r + 1] = sip.list_hdr_has_option("Supported", "TIMER")
  r[#r + 1] = sip.list_hdr_add_option("Supported", "path")
  r[#r + 1] = sip.list_hdr_remove_option("Supported", "100rel")
  r[#r + 1] = sip.list_hdr_remove_option("Supported", "nothing")
  r[#r + 1] = sip.get_glob_headers_values("x-*", "$avp(n)", "$avp(v)")
  r[#r + 1] = sip.ruri_tel2sip()
  local s = {}
  for i, v in ipairs(r) do s[i] = tostring(v) end
  sip.append_urihf("X-Orig: <", ">")
  sip.append_hf("X-R: " .. table.concat(s, " ") .. " $avp(n)=$avp(v) $(avp(n)[1])\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let msg = INVITE
        .replace("INVITE sip:bob@example.com", "INVITE tel:+4930123")
        .replace(
            "X-Keep: yes\r\n",
            "X-Keep: yes\r\nPrivacy: id;critical\r\nSupported: timer, 100rel\r\nX-Two: 2\r\n",
        );
    let out = sent(&w, &msg);
    assert!(
        out.starts_with("INVITE sip:+4930123@example.com;user=phone SIP/2.0\r\n"),
        "{out}"
    );
    assert!(out.contains("\r\nSupported: timer, path\r\n"), "{out}");
    assert!(out.contains("\r\nX-Orig: <tel:+4930123>\r\n"), "{out}");
    assert!(
        out.contains("\r\nX-R: true false true true true false true true X-Two=2 X-Keep\r\n"),
        "{out}"
    );
    // append_time reaches a local reply; get_updated_body_part sees changes.
    let w = worker(
        r#"function route.main()
  sip.append_time()
  sip.add_body_part("hello", "text/plain")
  local ok = sip.get_updated_body_part("$var(b)")
  local ok2, rc = sip.get_updated_body_part("application/sdp", "$var(c)")
  sip.append_to_reply("X-B: " .. tostring(ok) .. " $var(b) " .. tostring(ok2) .. rc .. "\r\n")
  sip.sl.sl_send_reply(200, "OK")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    let r = &out[0].2;
    assert!(r.contains("\r\nDate: ") && r.contains(" GMT\r\n"), "{r}");
    assert!(r.contains("\r\nX-B: true hello false-2\r\n"), "{r}");
}
