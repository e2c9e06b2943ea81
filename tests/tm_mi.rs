//! tm's MI commands and `t_new_request` as peers see them (OpenSIPS 3.4
//! `modules/tm/mi.c`, `tm.c` `w_t_new_request`): what a callee receives
//! from `t_uac_dlg`, its CANCEL from `t_uac_cancel`, the caller's reply
//! from `t_reply`, `t_hash` counts; and `onreply_avp_mode` (t_reply.c).

mod common;

use common::rpc::{mi_script, rpc};
use common::*;
use serde_json::{json, Value};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn proxy(mi_port: u16, tm: &str, routes: &str) -> Proxy {
    Proxy::start(&mi_script(
        mi_port,
        &format!("tm = {{ fr_timeout = 2, fr_inv_timeout = 4{tm} }},"),
        routes,
    ))
}

/// The next request the callee socket gets (skipping retransmissions of
/// `skip_method`), with where it came from.
fn recv(s: &UdpSocket) -> (String, SocketAddr) {
    let mut buf = [0u8; 65536];
    let (n, from) = s.recv_from(&mut buf).expect("the callee got nothing");
    (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
}

fn recv_method(s: &UdpSocket, method: &str) -> (String, SocketAddr) {
    let end = Instant::now() + Duration::from_secs(8);
    loop {
        let (m, from) = recv(s);
        if m.starts_with(&format!("{method} ")) {
            return (m, from);
        }
        assert!(Instant::now() < end, "no {method}, last: {m}");
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
        .collect()
}

/// A reply to `req` as a UAS writes it (RFC 3261 §8.2.6).
fn reply(s: &UdpSocket, req: &str, to: SocketAddr, status: &str, extra: &str) {
    let mut r = format!("SIP/2.0 {status}\r\n");
    for h in ["Via", "From", "Call-ID", "CSeq"] {
        for l in header(req, h) {
            r.push_str(l);
            r.push_str("\r\n");
        }
    }
    for l in header(req, "To") {
        r.push_str(l);
        if !l.contains(";tag=") {
            r.push_str(";tag=callee1");
        }
        r.push_str("\r\n");
    }
    r.push_str(extra);
    r.push_str("Content-Length: 0\r\n\r\n");
    s.send_to(r.as_bytes(), to).expect("send reply");
}

fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// mi.c `mi_tm_uac_dlg` + `mi_uac_dlg_hdl`: the request goes out with the
/// given headers and body; the answer carries the final reply's status
/// line and text.
#[test]
fn t_uac_dlg_sends_message_and_answers_the_200() {
    let (callee, cport) = udp_listener();
    let mi_port = free_port();
    let p = proxy(mi_port, "", "function route.main() sip.drop() end");
    let ask = std::thread::spawn(move || {
        rpc(
            mi_port,
            "t_uac_dlg",
            json!({
                "method": "MESSAGE",
                "ruri": format!("sip:bob@127.0.0.1:{cport}"),
                "headers": "From: \"MI\" <sip:mi@127.0.0.1>;tag=mitag\\r\\nTo: <sip:bob@127.0.0.1>\\r\\nContent-Type: text/plain\\r\\nX-Test: from-mi\\r\\n",
                "body": "hello bob",
            }),
        )
    });
    let (req, from) = recv_method(&callee, "MESSAGE");
    reply(&callee, &req, from, "200 Delivered", "X-Reply: yes\r\n");
    let answer = ask.join().expect("rpc thread");
    let log = p.stop();
    assert!(
        req.starts_with(&format!("MESSAGE sip:bob@127.0.0.1:{cport} SIP/2.0\r\n")),
        "{req}"
    );
    assert_eq!(header(&req, "X-Test"), ["X-Test: from-mi"], "{req}");
    assert_eq!(
        header(&req, "Content-Type"),
        ["Content-Type: text/plain"],
        "{req}"
    );
    assert_eq!(
        header(&req, "From"),
        ["From: \"MI\" <sip:mi@127.0.0.1>;tag=mitag"],
        "{req}"
    );
    assert_eq!(header(&req, "To"), ["To: <sip:bob@127.0.0.1>"], "{req}");
    assert!(header(&req, "CSeq")[0].ends_with(" MESSAGE"), "{req}");
    assert_eq!(body(&req), "hello bob");
    let r = &answer["result"];
    assert_eq!(r["Status"], "200 Delivered", "{answer}\n{log}");
    let text = r["Message"].as_str().unwrap_or_default();
    assert!(text.contains("X-Reply: yes\r\n"), "{answer}");
}

/// mi.c `mi_print_uris`: a 2xx to an INVITE also answers the dialog's
/// remote target, next hop and route set (the Record-Route reversed).
#[test]
fn t_uac_dlg_invite_answers_the_dialog_uris() {
    let (callee, cport) = udp_listener();
    let mi_port = free_port();
    let p = proxy(mi_port, "", "function route.main() sip.drop() end");
    let ask = std::thread::spawn(move || {
        rpc(
            mi_port,
            "t_uac_dlg",
            json!({
                "method": "INVITE",
                "ruri": format!("sip:bob@127.0.0.1:{cport}"),
                "headers": "From: <sip:mi@127.0.0.1>\r\nTo: <sip:bob@127.0.0.1>\r\nContact: <sip:mi@127.0.0.1>\r\n",
            }),
        )
    });
    let (inv, from) = recv_method(&callee, "INVITE");
    reply(
        &callee,
        &inv,
        from,
        "200 OK",
        &format!("Contact: <sip:bob@127.0.0.1:{cport}>\r\nRecord-Route: <sip:127.0.0.2;lr>, <sip:127.0.0.3;lr>\r\n"),
    );
    let answer = ask.join().expect("rpc thread");
    drop(p);
    let r = &answer["result"];
    assert_eq!(r["Status"], "200 OK", "{answer}");
    assert_eq!(r["RURI"], format!("sip:bob@127.0.0.1:{cport}"), "{answer}");
    assert_eq!(r["Next-hop"], "sip:127.0.0.3;lr", "{answer}");
    assert_eq!(
        r["Routes"],
        json!(["<sip:127.0.0.3;lr>", "<sip:127.0.0.2;lr>"]),
        "{answer}"
    );
}

/// mi.c: From and To are required; a body needs its Content-Type; a bad
/// R-URI is 400; a missing parameter is -32602.
#[test]
fn t_uac_dlg_refuses_bad_requests() {
    let mi_port = free_port();
    let p = proxy(mi_port, "", "function route.main() sip.drop() end");
    let call = |params: Value| rpc(mi_port, "t_uac_dlg", params);
    let to_only = call(
        json!({"method": "OPTIONS", "ruri": "sip:a@127.0.0.1:9", "headers": "To: <sip:a@b>\r\n"}),
    );
    let no_type = call(json!({"method": "MESSAGE", "ruri": "sip:a@127.0.0.1:9",
        "headers": "From: <sip:x@y>\r\nTo: <sip:a@b>\r\n", "body": "x"}));
    let bad_ruri = call(
        json!({"method": "OPTIONS", "ruri": "not a uri", "headers": "From: <sip:x@y>\r\nTo: <sip:a@b>\r\n"}),
    );
    let bad_sock = call(json!({"method": "OPTIONS", "ruri": "sip:a@127.0.0.1:9",
        "headers": "From: <sip:x@y>\r\nTo: <sip:a@b>\r\n", "socket": "udp:127.0.0.9:1"}));
    let missing = call(json!({"method": "OPTIONS"}));
    drop(p);
    assert_eq!(to_only["error"]["code"], 400, "{to_only}");
    assert_eq!(to_only["error"]["message"], "From missing");
    assert_eq!(
        no_type["error"]["message"], "Content-Type missing",
        "{no_type}"
    );
    assert_eq!(bad_ruri["error"]["message"], "Invalid ruri", "{bad_ruri}");
    assert_eq!(bad_sock["error"]["code"], 404, "{bad_sock}");
    assert_eq!(missing["error"]["code"], -32602, "{missing}");
}

/// mi.c `mi_tm_cancel`: the pending INVITE t_uac_dlg sent is cancelled
/// (the callee sees CANCEL), its 487 is what t_uac_dlg answers; an
/// unknown one is 481.
#[test]
fn t_uac_cancel_cancels_a_ringing_t_uac_dlg_invite() {
    let (callee, cport) = udp_listener();
    let mi_port = free_port();
    let p = proxy(mi_port, "", "function route.main() sip.drop() end");
    let ask = std::thread::spawn(move || {
        rpc(
            mi_port,
            "t_uac_dlg",
            json!({
                "method": "INVITE",
                "ruri": format!("sip:bob@127.0.0.1:{cport}"),
                "headers": "From: <sip:mi@127.0.0.1>\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: mi-cancel-1\r\nCSeq: 7 INVITE\r\nContact: <sip:mi@127.0.0.1>\r\n",
            }),
        )
    });
    let (inv, from) = recv_method(&callee, "INVITE");
    reply(&callee, &inv, from, "180 Ringing", "");
    std::thread::sleep(Duration::from_millis(200));
    let unknown = rpc(
        mi_port,
        "t_uac_cancel",
        json!({"callid": "nope", "cseq": "7"}),
    );
    let ok = rpc(
        mi_port,
        "t_uac_cancel",
        json!({"callid": "mi-cancel-1", "cseq": "7"}),
    );
    let (cancel, from) = recv_method(&callee, "CANCEL");
    reply(&callee, &cancel, from, "200 OK", "");
    reply(&callee, &inv, from, "487 Request Terminated", "");
    let (ack, _) = recv_method(&callee, "ACK");
    let answer = ask.join().expect("rpc thread");
    let log = p.stop();
    assert_eq!(unknown["error"]["code"], 481, "{unknown}");
    assert_eq!(ok["result"], "OK", "{ok}\n{log}");
    assert_eq!(header(&cancel, "Call-ID"), ["Call-ID: mi-cancel-1"]);
    assert_eq!(header(&cancel, "CSeq"), ["CSeq: 7 CANCEL"], "{cancel}");
    assert_eq!(header(&ack, "CSeq"), ["CSeq: 7 ACK"], "{ack}");
    assert_eq!(
        answer["result"]["Status"], "487 Request Terminated",
        "{answer}"
    );
}

fn t_hash_current(mi_port: u16, index: u64) -> (u64, u64) {
    let h = rpc(mi_port, "t_hash", json!([]));
    let list = h["result"].as_array().unwrap_or_else(|| panic!("{h}"));
    assert_eq!(list.len(), 65536);
    let e = &list[index as usize];
    assert_eq!(e["index"], index);
    (
        e["Current"].as_u64().unwrap_or(99),
        e["Total"].as_u64().unwrap_or(99),
    )
}

/// mi.c `mi_tm_reply` and `mi_tm_hash`: a transaction the script holds
/// (t_newtran, no reply) is counted in its bucket and answered by MI
/// t_reply with the code, reason, headers and body given; bad ids are
/// refused as mi.c does.
#[test]
fn t_reply_answers_a_held_transaction_and_t_hash_counts_it() {
    let mi_port = free_port();
    let p = proxy(
        mi_port,
        "",
        r#"function route.main()
  sip.tm.t_newtran()
  sip.xlog("L_INFO", "held T_id=$T_id\n")
end"#,
    );
    let caller = UdpSocket::bind("127.0.0.1:0").expect("bind");
    caller
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = caller.local_addr().expect("addr");
    let msg = format!(
        "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKmireply1\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: mireply@x\r\n\
         CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    caller
        .send_to(msg.as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let end = Instant::now() + Duration::from_secs(5);
    let id: u64 = loop {
        let log = p.log_text();
        if let Some(rest) = log.split("held T_id=").nth(1) {
            break rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .expect("a T_id");
        }
        assert!(Instant::now() < end, "route did not run:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let hash = id % 65536;
    let (cur, total) = t_hash_current(mi_port, hash);
    let bad_code = rpc(
        mi_port,
        "t_reply",
        json!({"code": 700, "reason": "x", "trans_id": format!("{hash}:{id}"), "to_tag": "t"}),
    );
    let bad_id = rpc(
        mi_port,
        "t_reply",
        json!({"code": 486, "reason": "x", "trans_id": "12", "to_tag": "t"}),
    );
    let unknown = rpc(
        mi_port,
        "t_reply",
        json!({"code": 486, "reason": "x", "trans_id": format!("{}:{}", hash + 1, id + 1), "to_tag": "t"}),
    );
    let ok = rpc(
        mi_port,
        "t_reply",
        json!({"code": 486, "reason": "Busy From MI", "trans_id": format!("{hash}:{id}"), "to_tag": "t",
               "new_headers": "X-Why: operator\r\n", "body": ""}),
    );
    let mut buf = [0u8; 65536];
    let n = caller.recv(&mut buf).expect("the caller got no reply");
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    let again = rpc(
        mi_port,
        "t_reply",
        json!({"code": 200, "reason": "late", "trans_id": format!("{hash}:{id}"), "to_tag": "t"}),
    );
    drop(p);
    assert_eq!(
        (cur, total),
        (1, 1),
        "held transaction counted in bucket {hash}"
    );
    assert_eq!(
        bad_code["error"]["message"], "Invalid reply code",
        "{bad_code}"
    );
    assert_eq!(bad_id["error"]["message"], "Invalid trans_id", "{bad_id}");
    assert_eq!(unknown["error"]["code"], 404, "{unknown}");
    assert_eq!(ok["result"], "OK", "{ok}");
    assert!(got.starts_with("SIP/2.0 486 Busy From MI\r\n"), "{got}");
    assert_eq!(header(&got, "X-Why"), ["X-Why: operator"], "{got}");
    assert_eq!(
        header(&got, "To"),
        ["To: <sip:bob@127.0.0.1>;tag=t"],
        "mi.c: the to_tag given: {got}"
    );
    assert_eq!(header(&got, "CSeq"), ["CSeq: 1 MESSAGE"], "{got}");
    assert_eq!(
        again["error"]["code"], 500,
        "a final reply was sent: {again}"
    );
}

/// tm.c `w_t_new_request`: a request unrelated to the current one goes
/// out from the script with the display name, content type and body
/// given.
#[test]
fn t_new_request_sends_a_new_request_from_a_route() {
    let (callee, cport) = udp_listener();
    let mi_port = free_port();
    let p = proxy(
        mi_port,
        "",
        &format!(
            r#"function route.main()
  local ok = sip.tm.t_new_request("NOTIFY", "sip:watcher@127.0.0.1:{cport}", "Lunasip Proxy sip:proxy@127.0.0.1", "sip:watcher@127.0.0.1", "text/plain about $fU")
  sip.sl.sl_send_reply(ok and 200 or 500, "Triggered")
end"#
        ),
    );
    let got = udp_exchange(
        &format!("127.0.0.1:{}", p.port),
        "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKnewreq1\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: newreq@x\r\n\
         CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(3),
    );
    let (req, from) = recv_method(&callee, "NOTIFY");
    reply(&callee, &req, from, "200 OK", "");
    let log = p.stop();
    assert!(
        got.as_deref()
            .is_some_and(|r| r.starts_with("SIP/2.0 200 Triggered")),
        "{got:?}\n{log}"
    );
    assert!(
        req.starts_with(&format!("NOTIFY sip:watcher@127.0.0.1:{cport} SIP/2.0\r\n")),
        "{req}"
    );
    let f = header(&req, "From");
    assert!(
        f[0].starts_with("From: Lunasip Proxy <sip:proxy@127.0.0.1>;tag="),
        "{req}"
    );
    assert_eq!(header(&req, "To"), ["To: <sip:watcher@127.0.0.1>"], "{req}");
    assert_eq!(
        header(&req, "Content-Type"),
        ["Content-Type: text/plain"],
        "{req}"
    );
    assert_eq!(body(&req), "about alice");
    assert_ne!(
        header(&req, "Call-ID"),
        ["Call-ID: newreq@x"],
        "a new dialog"
    );
}

/// tm.c `w_t_new_request`'s `ctx`: the new transaction's AVP `uac_ctx`,
/// which `local_route` sees (it copies it into a header the callee gets).
#[test]
fn t_new_request_ctx_reaches_local_route_and_replies() {
    let (callee, cport) = udp_listener();
    let p = proxy(
        free_port(),
        "",
        &format!(
            r#"function route.main()
  local ok = sip.tm.t_new_request("OPTIONS", "sip:watcher@127.0.0.1:{cport}", "sip:proxy@127.0.0.1", "sip:watcher@127.0.0.1", nil, '{{"job":"$fU"}}')
  sip.sl.sl_send_reply(ok and 200 or 500, "Triggered")
end
function local_route.main()
  sip.append_hf("X-Ctx: $avp(uac_ctx)\r\n")
end"#
        ),
    );
    let got = udp_exchange(
        &format!("127.0.0.1:{}", p.port),
        "MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKnewctx1\r\n\
         From: <sip:carol@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: newctx@x\r\n\
         CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(3),
    );
    let (req, from) = recv_method(&callee, "OPTIONS");
    reply(&callee, &req, from, "200 OK", "");
    let log = p.stop();
    assert!(
        got.as_deref()
            .is_some_and(|r| r.starts_with("SIP/2.0 200 Triggered")),
        "{got:?}\n{log}"
    );
    assert_eq!(
        header(&req, "X-Ctx"),
        [r#"X-Ctx: {"job":"carol"}"#],
        "{req}"
    );
}

/// t_reply.c (`onreply_avp_mode`): with 0 (the default) a reply route
/// starts with no AVPs; with 1 it sees the transaction's.
#[test]
fn onreply_avp_mode_decides_what_reply_routes_see() {
    for (mode, want) in [
        ("", "avp=<null>"),
        (", onreply_avp_mode = 1", "avp=set-in-request"),
    ] {
        let (callee, cport) = udp_listener();
        let p = proxy(
            free_port(),
            mode,
            &format!(
                r#"function route.main()
  sip.pv.set("$avp(x)", "set-in-request")
  sip.tm.t_on_reply("r")
  sip.pv.du = "sip:127.0.0.1:{cport}"
  sip.tm.t_relay()
end
function onreply_route.r()
  sip.xlog("L_INFO", "avp=$avp(x)\n")
end"#
            ),
        );
        let caller = std::thread::spawn({
            let port = p.port;
            move || {
                udp_exchange(
                    &format!("127.0.0.1:{port}"),
                    "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKavpmode\r\n\
                     From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: avpmode@x\r\n\
                     CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                    Duration::from_secs(3),
                )
            }
        });
        let (req, from) = recv_method(&callee, "OPTIONS");
        reply(&callee, &req, from, "200 OK", "");
        let _ = caller.join();
        std::thread::sleep(Duration::from_millis(200));
        let log = p.stop();
        assert!(log.contains(want), "mode '{mode}': want {want}\n{log}");
    }
}

/// A 2.x FIFO text exchange (`:command:reply_fifo`, argument lines, an
/// empty line) with the daemon's FIFO at `fifo`.
fn fifo_text(fifo: &std::path::Path, name: &str, request: &str) -> String {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let reply = fifo.with_file_name(name);
    let made = std::process::Command::new("mkfifo")
        .arg(&reply)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let mut r = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&reply)
        .expect("open reply fifo");
    std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .and_then(|mut f| f.write_all(request.as_bytes()))
        .expect("write the request");
    let end = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end && !out.ends_with(b"\n\n") {
        match r.read(&mut buf) {
            Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The commands through the FIFO in OpenSIPS 2.x's text format: the
/// errors of mi.c as `code reason` lines, t_uac_dlg's answer as
/// `name:: value` lines.
#[test]
fn tm_commands_through_the_2x_fifo_text_format() {
    let (callee, cport) = udp_listener();
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("lunasip_fifo");
    let p = Proxy::start(&format!(
        "config = {{\n  listen = {{ \"udp:127.0.0.1:{{PORT}}\" }},\n  children = 1,\n  modules = {{ mi_http = false, mi_fifo = {{ fifo_name = \"{}\" }} }},\n}}\nfunction route.main() sip.drop() end\n",
        fifo.display()
    ));
    let cancel = fifo_text(&fifo, "r_cancel", ":t_uac_cancel:r_cancel\nnope\n7\n\n");
    let replied = fifo_text(&fifo, "r_reply", ":t_reply:r_reply\n486\nBusy\n1:1\nx\n\n");
    let f2 = fifo.clone();
    let ask = std::thread::spawn(move || {
        fifo_text(
            &f2,
            "r_uac",
            &format!(":t_uac_dlg:r_uac\nOPTIONS\nsip:bob@127.0.0.1:{cport}\nFrom: <sip:mi@127.0.0.1>\\r\\nTo: <sip:bob@127.0.0.1>\\r\\n\n\n"),
        )
    });
    let (req, from) = recv_method(&callee, "OPTIONS");
    reply(&callee, &req, from, "200 Fine", "");
    let uac = ask.join().expect("fifo thread");
    drop(p);
    assert_eq!(cancel, "481 No such transaction\n\n");
    assert_eq!(replied, "404 Transaction not found\n\n");
    assert!(uac.starts_with("200 OK\n"), "{uac}");
    assert!(uac.contains("Status:: 200 Fine\n"), "{uac}");
}
