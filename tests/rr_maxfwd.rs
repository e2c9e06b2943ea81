//! The rr and maxfwd functions beyond the basics: `rr.is_direction`,
//! `$rr_params` (OpenSIPS 3.4 `modules/rr/`), `maxfwd.is_maxfwd_lt`
//! (`modules/maxfwd/maxfwd.c`), as the caller and the next hop see them.

mod common;

use common::worker::{run, worker, Proto, INVITE};

fn reason(out: &[(common::worker::OutKind, common::worker::Dest, String)]) -> String {
    let first = &out.first().expect("a reply").2;
    first
        .split("\r\n")
        .next()
        .unwrap_or("")
        .trim_start_matches("SIP/2.0 200 ")
        .to_string()
}

/// OpenSIPS maxfwd.c `is_maxfwd_lt`: 1 below the limit, -1 not below,
/// -2 without the header, -3 when it is not a number; after
/// `mf_process_maxfwd_header` it reads the decremented value.
#[test]
fn is_maxfwd_lt_reads_the_value_as_it_stands() {
    let w = worker(
        r#"function route.main()
  local r = {}
  local function add(ok, rc) r[#r + 1] = tostring(ok) .. rc end
  add(sip.maxfwd.is_maxfwd_lt(3))
  add(sip.maxfwd.is_maxfwd_lt(2))
  if sip.maxfwd.mf_process_maxfwd_header(10) then
    add(sip.maxfwd.is_maxfwd_lt(2))
    add(sip.maxfwd.is_maxfwd_lt(1))
  end
  sip.sl.sl_send_reply(200, table.concat(r, " "))
end"#,
    );
    let two = INVITE.replace("Max-Forwards: 70", "Max-Forwards: 2");
    assert_eq!(
        reason(&run(&w, &two, Proto::Udp)),
        "true1 false-1 true1 false-1"
    );
    let none = INVITE.replace("Max-Forwards: 70\r\n", "");
    assert!(reason(&run(&w, &none, Proto::Udp)).starts_with("false-2 false-2"));
    // A Max-Forwards that is not a number never reaches the route: the
    // request is refused first (RFC 3261 §16.3 step 1), so -3 is not seen.
    let bad = INVITE.replace("Max-Forwards: 70", "Max-Forwards: many");
    let out = run(&w, &bad, Proto::Udp);
    assert!(out[0].2.starts_with("SIP/2.0 400 "), "{}", out[0].2);
}

/// An in-dialog request through this proxy's Route entry (written by
/// `record_route` with the caller's From tag as `ftag`).
fn in_dialog(from_tag: &str, to_tag: &str, route: Option<&str>) -> String {
    let route = route.map_or(String::new(), |r| format!("Route: {r}\r\n"));
    format!(
        "BYE sip:peer@10.0.0.7:5062 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK{from_tag}\r\n\
         {route}Max-Forwards: 70\r\n\
         From: <sip:x@example.com>;tag={from_tag}\r\n\
         To: <sip:y@example.com>;tag={to_tag}\r\n\
         Call-ID: dlg-1@10.0.0.1\r\n\
         CSeq: 2 BYE\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// OpenSIPS rr `loose.c` `is_direction`: the `ftag` of our Route entry
/// against the From tag; `$rr_params` are that entry's parameters.
#[test]
fn is_direction_and_rr_params_follow_our_route_entry() {
    let w = worker(
        r#"function route.main()
  local d = sip.rr.is_direction("downstream") and "down" or "?"
  if sip.rr.is_direction("upstream") then d = "up" end
  sip.sl.sl_send_reply(200, d .. " " .. tostring(sip.pv.rr_params))
end"#,
    );
    let ours = "<sip:127.0.0.1:5060;lr;ftag=caller1;did=7>";
    // The caller (its tag is the ftag) sends downstream.
    let out = run(&w, &in_dialog("caller1", "callee2", Some(ours)), Proto::Udp);
    assert_eq!(reason(&out), "down lr;ftag=caller1;did=7");
    // The callee's BYE carries the callee's tag in From: upstream.
    let out = run(&w, &in_dialog("callee2", "caller1", Some(ours)), Proto::Udp);
    assert_eq!(reason(&out), "up lr;ftag=caller1;did=7");
    // Another proxy's Route entry, or none: downstream, no parameters.
    let other = "<sip:192.0.2.9:5060;lr;ftag=zz>";
    let out = run(
        &w,
        &in_dialog("callee2", "caller1", Some(other)),
        Proto::Udp,
    );
    assert_eq!(reason(&out), "down nil");
    let out = run(&w, &in_dialog("callee2", "caller1", None), Proto::Udp);
    assert_eq!(reason(&out), "down nil");
}

/// What `record_route` writes is what `is_direction` reads back: the
/// callee's BYE through the Record-Route the INVITE got goes upstream.
#[test]
fn record_route_ftag_round_trip() {
    let w = worker(
        r#"function route.main()
  if sip.has_totag() then
    sip.sl.sl_send_reply(200, sip.rr.is_direction("upstream") and "up" or "down")
    sip.exit()
  end
  sip.rr.record_route()
  sip.forward("sip:127.0.0.5:5060")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    let rr = out[0]
        .2
        .split("\r\n")
        .find_map(|l| l.strip_prefix("Record-Route: "))
        .unwrap_or_else(|| panic!("no Record-Route: {}", out[0].2))
        .to_string();
    // INVITE's From tag is a1.
    let out = run(&w, &in_dialog("b9", "a1", Some(&rr)), Proto::Udp);
    assert_eq!(reason(&out), "up");
    let out = run(&w, &in_dialog("a1", "b9", Some(&rr)), Proto::Udp);
    assert_eq!(reason(&out), "down");
}

/// OpenSIPS rr `append_fromtag`: on by default (`;ftag=` in the
/// Record-Route the next hop receives), off when the script says so.
#[test]
fn append_fromtag_decides_the_ftag_of_record_route() {
    use std::time::Duration;
    for (setting, want_ftag) in [("", true), ("rr = { append_fromtag = false },", false)] {
        let next = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        next.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let nport = next.local_addr().unwrap().port();
        let proxy = common::Proxy::start(&format!(
            r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }}, children = 1,
  modules = {{ {setting} mi_http = false, mi_fifo = false }} }}
function route.main()
  sip.rr.record_route()
  sip.forward("sip:127.0.0.1:{nport}")
end
"#
        ));
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = caller.local_addr().unwrap();
        let invite = INVITE.replace("10.0.0.1:5062", &local.to_string());
        caller
            .send_to(invite.as_bytes(), ("127.0.0.1", proxy.port))
            .unwrap();
        let mut buf = [0u8; 65536];
        let n = next.recv(&mut buf).unwrap_or(0);
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        let rr = got
            .lines()
            .find(|l| l.starts_with("Record-Route: "))
            .unwrap_or_else(|| panic!("{setting}: no Record-Route in {got}\n{}", proxy.log_text()));
        assert_eq!(rr.contains(";ftag=a1"), want_ftag, "{setting}: {rr}");
    }
}
