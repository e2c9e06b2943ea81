//! textops (OpenSIPS modules/textops/textops.c, 3.4) from Lua, in
//! process: what the next hop receives after each function, with the
//! argument forms of the corpus (../shared/corpus/opensips-cfg) and of
//! OpenSIPS's documentation; literal patterns at `lunasip check`; one run
//! through the real daemon over UDP.
#![allow(dead_code)]

mod common;

use common::worker::*;
use lunasip::script::Source;
use std::time::Duration;

/// The one message the route sent.
fn sent(w: &std::rc::Rc<Worker>, msg: &str) -> String {
    let out = run(w, msg, Proto::Udp);
    assert_eq!(out.len(), 1, "{out:?}");
    out[0].2.clone()
}

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

fn with_body(body: &str) -> String {
    INVITE
        .replace(
            "X-Keep: yes\r\n",
            "X-Keep: yes\r\nContent-Type: application/sdp\r\n",
        )
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
        )
}

#[test]
fn corpus_search_append_and_search() {
    // otoru-routing.cfg: mark a NATed contact, the compact form second.
    let w = worker(
        r#"function route.main()
  local a = sip.textops.search_append('Contact:.*sip:[^>[:cntrl:]]*', ';nat=yes')
  local b = false
  if not a then b = sip.textops.search_append('m:.*sip:[^>[:cntrl:]]*', ';nat=yes') end
  local star = sip.textops.search("^Contact:[ ]*\\*")
  local inv = sip.textops.search("^invite sip:")
  sip.append_hf("X-R: " .. tostring(a) .. tostring(b) .. tostring(star) .. tostring(inv) .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, INVITE);
    assert!(
        out.contains("\r\nContact: <sip:alice@10.0.0.1:5062;nat=yes>\r\n"),
        "{out}"
    );
    // search is case-insensitive (CMD_PARAM_REGEX: REG_ICASE) and sees the
    // start line; ^ matches at each line start (REG_NEWLINE).
    assert!(out.contains("\r\nX-R: truefalsefalsetrue\r\n"), "{out}");
    // Compact forms. The pattern is unanchored: with "From:" written in
    // full, its "m:" would match first, in OpenSIPS as here.
    let compact = INVITE
        .replace("Contact: <", "m: <")
        .replace("From: Alice", "f: Alice");
    let out = sent(&w, &compact);
    assert!(
        out.contains("\r\nm: <sip:alice@10.0.0.1:5062;nat=yes>\r\n"),
        "{out}"
    );
    assert!(out.contains("\r\nX-R: falsetruefalsetrue\r\n"), "{out}");
    let star = INVITE
        .replace("Contact: <sip:alice@10.0.0.1:5062>", "Contact: *")
        .replace("INVITE sip:bob", "REGISTER sip:bob")
        .replace("1 INVITE", "1 REGISTER");
    // No "Contact: …sip:" to mark, so the second form runs and finds the
    // "m:" of "From:" (what OpenSIPS does with this config too).
    let out = sent(&w, &star);
    assert!(out.contains("\r\nX-R: falsetruetruefalse\r\n"), "{out}");
    assert!(out.contains("\r\nFrom: Alice <sip:alice@example.com;nat=yes>;tag=a1\r\n"));
}

#[test]
fn replace_and_replace_all() {
    let w = worker(
        r#"function route.main()
  local a = sip.textops.replace("100rel", "123abc")
  local b = sip.textops.replace_all("example\\.com", "example.net")
  local c = sip.textops.replace("nothing-like-this", "x")
  sip.append_hf("X-R: " .. tostring(a) .. tostring(b) .. tostring(c) .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let msg = INVITE.replace(
        "X-Keep: yes\r\n",
        "X-Keep: yes\r\nSupported: timer, 100REL\r\n",
    );
    let out = sent(&w, &msg);
    assert!(out.contains("\r\nSupported: timer, 123abc\r\n"), "{out}");
    // After the start line only: the R-URI keeps its host.
    assert!(
        out.starts_with("INVITE sip:bob@example.com SIP/2.0\r\n"),
        "{out}"
    );
    assert!(out.contains(
        "\r\nFrom: Alice <sip:alice@example.net>;tag=a1\r\nTo: Bob <sip:bob@example.net>\r\n"
    ));
    assert!(out.contains("\r\nX-R: truetruefalse\r\n"));
}

#[test]
fn subst_forms_back_references_and_pvs() {
    let w = worker(
        r##"function route.main()
  local r = {}
  -- OpenSIPS docs form: groups around a fixed part, line end kept in \2.
  r[#r + 1] = sip.textops.subst("/^(To:.*)@example\\.com(.*)$/\\1@example.org\\2/")
  -- Another separator; \0 is the whole match; a PV in the replacement.
  r[#r + 1] = sip.textops.subst("#^X-Keep: (.*)$#X-Keep: [\\1] by $fU#")
  -- i and g: every Call-ID-like line, case-insensitive.
  r[#r + 1] = sip.textops.subst("/CALL-1@/c1-/ig")
  -- \u is the R-URI.
  r[#r + 1] = sip.textops.subst("/^(Contact: )<[^>]*>/\\1<\\u>/")
  -- Nothing matches.
  r[#r + 1] = sip.textops.subst("/^X-None: (.*)$/x/")
  local s = {}
  for i, v in ipairs(r) do s[i] = tostring(v) end
  sip.append_hf("X-R: " .. table.concat(s, " ") .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"##,
    );
    let out = sent(&w, INVITE);
    assert!(
        out.contains("\r\nTo: Bob <sip:bob@example.org>\r\n"),
        "{out}"
    );
    assert!(out.contains("\r\nX-Keep: [yes] by alice\r\n"), "{out}");
    assert!(out.contains("\r\nCall-ID: c1-10.0.0.1\r\n"), "{out}");
    assert!(
        out.contains("\r\nContact: <sip:bob@example.com>\r\n"),
        "{out}"
    );
    assert!(
        out.contains("\r\nX-R: true true true true false\r\n"),
        "{out}"
    );
}

#[test]
fn subst_that_would_break_a_header_is_refused() {
    // The example `subst('/^(.*)@(.*)$/\1@example.com/ig')` on headers
    // rewrites every line with an '@': From and To lose their '>' and tag
    // (OpenSIPS would also lose each line's CR, which its POSIX `(.*)$`
    // takes). lunasip makes no change that leaves From, To, Via, CSeq or
    // Call-ID invalid: false, and the message goes on unchanged.
    let w = worker(
        r#"function route.main()
  local ok, rc = sip.textops.subst('/^(.*)@(.*)$/\\1@example.com/ig')
  local empty = sip.textops.subst("/x*/y/g")
  sip.append_hf("X-R: " .. tostring(ok) .. rc .. " " .. tostring(empty) .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, INVITE);
    assert!(out.contains("\r\nX-R: false-1 false\r\n"), "{out}");
    let unchanged = &INVITE[INVITE.find("From:").unwrap()..INVITE.find("Content-Length").unwrap()];
    assert!(out.contains(unchanged), "{out}");
    // On a URI the same expression is what it is meant for.
    let w = worker(
        r#"function route.main()
  sip.textops.subst_uri('/^(.*)@(.*)$/\\1@example.com/ig')
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let msg = INVITE.replace("INVITE sip:bob@example.com", "INVITE sip:bob@gw.local");
    assert!(sent(&w, &msg).starts_with("INVITE sip:bob@example.com SIP/2.0\r\n"));
}

#[test]
fn subst_uri_and_subst_user() {
    let w = worker(
        r#"function route.main()
  local a = sip.textops.subst_uri('/^sip:([0-9]+)@(.*)$/sip:\\1@gw.example.com/')
  local seen = sip.pv.ru
  local b = sip.textops.subst_user('/^0/+49/')
  local bad = sip.textops.subst_uri('/^sip:.*$/not a uri/')
  sip.append_hf("X-R: " .. tostring(a) .. " " .. seen .. " " .. tostring(b) .. " " .. tostring(bad) .. " $rU\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let msg = INVITE.replace(
        "INVITE sip:bob@example.com",
        "INVITE sip:030123@example.com",
    );
    let out = sent(&w, &msg);
    assert!(
        out.starts_with("INVITE sip:+4930123@gw.example.com SIP/2.0\r\n"),
        "{out}"
    );
    assert!(
        out.contains("\r\nX-R: true sip:030123@gw.example.com true false +4930123\r\n"),
        "{out}"
    );
    // No digits in the user: subst_uri does nothing.
    let out = sent(&w, INVITE);
    assert!(
        out.starts_with("INVITE sip:bob@example.com SIP/2.0\r\n"),
        "{out}"
    );
}

#[test]
fn body_functions_keep_content_length_right() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";
    let w = worker(
        r#"function route.main()
  local r = {}
  r[#r + 1] = sip.textops.search_body("^m=audio")
  r[#r + 1] = sip.textops.subst_body("/^c=IN IP4 (.*)$/c=IN IP4 192.0.2.99/")
  r[#r + 1] = sip.textops.replace_body_all("10\\.0\\.0\\.1", "203.0.113.1")
  r[#r + 1] = sip.textops.search_append_body("^a=rtpmap:0 PCMU/8000", "\r\na=ptime:20")
  r[#r + 1] = sip.textops.replace_body("^s=-", "s=lunasip session")
  r[#r + 1] = sip.textops.search_body("192\\.0\\.2\\.99")
  local s = {}
  for i, v in ipairs(r) do s[i] = tostring(v) end
  sip.append_hf("X-R: " .. table.concat(s, " ") .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, &with_body(sdp));
    // Searches read the body as received: the subst is not seen yet.
    assert!(
        out.contains("\r\nX-R: true true true true true false\r\n"),
        "{out}"
    );
    let body = body_of(&out);
    assert_eq!(
        body,
        "v=0\r\no=- 1 1 IN IP4 203.0.113.1\r\ns=lunasip session\r\nc=IN IP4 192.0.2.99\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n"
    );
    // An empty body: nothing to search or change.
    let w = worker(
        r#"function route.main()
  sip.append_hf("X-R: " .. tostring(sip.textops.search_body(".")) .. tostring(sip.textops.subst_body("/a/b/")) .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    assert!(sent(&w, INVITE).contains("\r\nX-R: falsefalse\r\n"));
}

#[test]
fn later_reads_see_the_message_as_received_until_applied() {
    let w = worker(
        r#"function route.main()
  sip.textops.subst("/^X-Keep: yes/X-Keep: changed/")
  local before = tostring(sip.textops.search("X-Keep: changed")) .. tostring(sip.textops.search("X-Keep: yes")) .. " " .. sip.pv.get("$hdr(X-Keep)")
  sip.msg_apply_changes()
  local after = tostring(sip.textops.search("X-Keep: changed")) .. " " .. sip.pv.get("$hdr(X-Keep)")
  sip.append_hf("X-Seen: " .. before .. " / " .. after .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, INVITE);
    assert!(
        out.contains("\r\nX-Seen: falsetrue yes / true changed\r\n"),
        "{out}"
    );
}

#[test]
fn bad_patterns_at_check_and_at_run_time() {
    let check = |code: &str| {
        lunasip::script::check::check(&Source {
            name: "t.lua".into(),
            code: format!("{HEAD}{code}"),
        })
        .map(|_| ())
        .map_err(|e| e.0)
    };
    let e =
        check("function route.main()\n  if sip.textops.search(\"(\") then end\nend\n").unwrap_err();
    assert!(
        e.starts_with("t.lua:3: sip.textops.search: bad regular expression '('"),
        "{e}"
    );
    let e = check("function route.main()\n  sip.textops.subst('/a/b/q')\nend\n").unwrap_err();
    assert!(
        e.starts_with("t.lua:3: sip.textops.subst: bad substitution '/a/b/q'")
            && e.contains("unknown flag 'q'"),
        "{e}"
    );
    let e =
        check("function route.main()\n  sip.textops.subst_uri('/(a)/\\\\2/')\nend\n").unwrap_err();
    assert!(e.contains("\\2 refers to a group"), "{e}");
    let e = check("function route.main()\n  sip.remove_hf_re(\"X-[\")\nend\n").unwrap_err();
    assert!(e.starts_with("t.lua:3: sip.remove_hf_re:"), "{e}");
    check("function route.main()\n  sip.textops.subst('/^(.*)@(.*)$/\\\\1@example.com/ig')\nend\n")
        .unwrap();
    // Built at run time: a Lua error naming the line, 500 to the caller,
    // the message never forwarded.
    let w = worker(
        r#"function route.main()
  local p = "(" .. "x"
  sip.textops.search(p)
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 1);
    assert!(out[0].2.starts_with("SIP/2.0 500 "), "{}", out[0].2);
}

/// The real daemon over UDP: a caller sends an INVITE, the next hop (a UDP
/// socket of this test) receives it with the textops and sipmsgops
/// changes applied.
#[test]
fn next_hop_receives_the_changes_over_udp() {
    let hop = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    hop.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let hop_port = hop.local_addr().unwrap().port();
    let script = format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }}, children = 1 }}
function route.main()
  sip.textops.subst_uri('/^sip:([0-9]+)@(.*)$/sip:\\1@127.0.0.1:{hop_port}/')
  sip.textops.search_append('Contact:.*sip:[^>[:cntrl:]]*', ';nat=yes')
  sip.textops.subst_body("/^c=IN IP4 .*$/c=IN IP4 192.0.2.7/")
  sip.remove_hf_glob("X-Secret*")
  sip.insert_hf("X-First: 1\r\n")
  sip.forward()
end
"#
    );
    let proxy = common::Proxy::start(&script);
    let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
    let msg = format!(
        "INVITE sip:4930123@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKw1\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:4930123@example.com>\r\nCall-ID: wire-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{{LOCAL}}>\r\nX-Secret-Token: 42\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = caller.local_addr().unwrap().to_string();
    let msg = msg.replace("{LOCAL}", &local);
    caller
        .send_to(msg.as_bytes(), ("127.0.0.1", proxy.port))
        .unwrap();
    let mut buf = [0u8; 65536];
    let (n, _) = hop
        .recv_from(&mut buf)
        .expect("the next hop receives the INVITE");
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        got.starts_with(&format!("INVITE sip:4930123@127.0.0.1:{hop_port} SIP/2.0\r\nX-First: 1\r\nVia: SIP/2.0/UDP 127.0.0.1:")),
        "{got}"
    );
    assert!(
        got.contains(&format!("\r\nContact: <sip:alice@{local};nat=yes>\r\n")),
        "{got}"
    );
    assert!(!got.contains("X-Secret"), "{got}");
    assert_eq!(
        body_of(&got),
        "v=0\r\nc=IN IP4 192.0.2.7\r\nm=audio 4000 RTP/AVP 0\r\n"
    );
    drop(proxy);
}
