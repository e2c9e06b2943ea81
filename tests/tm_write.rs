//! `t_write_unix` / `t_write_req` as the outside application sees them
//! (OpenSIPS 3.4 `modules/tm/t_fifo.c`): the 20 lines of the request it
//! receives, its answer through MI `t_reply`, the 408 when it stays
//! silent, and a FIFO nobody reads.

mod common;

use common::rpc::{mi_script, rpc};
use common::*;
use serde_json::json;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn proxy(mi_port: u16, routes: &str) -> Proxy {
    Proxy::start(&mi_script(
        mi_port,
        "tm = { fr_timeout = 2, fr_inv_timeout = 4 },",
        routes,
    ))
}

fn held_message(tag: &str, local: SocketAddr) -> String {
    format!(
        "MESSAGE sip:vm-bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{tag}\r\n\
         From: \"Alice\" <sip:alice@127.0.0.1>;tag=a{tag}\r\nTo: <sip:vm-bob@127.0.0.1>\r\nCall-ID: {tag}@x\r\n\
         CSeq: 3 MESSAGE\r\nContact: <sip:alice@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// t_fifo.c `assemble_msg` + `write_to_unixsock`: a test-owned unix
/// datagram socket gets the 20 lines; the application answers through
/// MI t_reply with the `hash:label` of line 15 and the caller gets it.
/// A second request nobody answers ends in 408 (`add_blind_uac`).
#[test]
fn t_write_unix_writes_the_request_lines_and_waits_for_t_reply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vm.sock");
    let app = std::os::unix::net::UnixDatagram::bind(&path).expect("bind unix socket");
    app.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mi_port = free_port();
    let p = proxy(
        mi_port,
        &format!(
            r#"function route.main()
  sip.setflag(5)
  sip.tm.t_newtran()
  if not sip.tm.t_write_unix("voicemail", "{}") then sip.tm.t_reply(500, "not written") end
end"#,
            path.display()
        ),
    );
    let caller = UdpSocket::bind("127.0.0.1:0").expect("bind");
    caller
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = caller.local_addr().expect("addr");
    caller
        .send_to(held_message("tw1", local).as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let mut buf = [0u8; 65536];
    let n = app.recv(&mut buf).expect("the application got nothing");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let lines: Vec<&str> = text.split('\n').collect();
    let id = lines.get(15).copied().unwrap_or_default().to_string();
    let ok = rpc(
        mi_port,
        "t_reply",
        json!({"code": 200, "reason": "Stored", "trans_id": id, "to_tag": "vm"}),
    );
    let n = caller.recv(&mut buf).expect("the caller got no reply");
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    // Nobody answers the second one: 408 after fr_timeout (2 s).
    let asked = Instant::now();
    caller
        .send_to(held_message("tw2", local).as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let _ = app.recv(&mut buf).expect("second write");
    caller
        .set_read_timeout(Some(Duration::from_secs(6)))
        .expect("timeout");
    let n = caller.recv(&mut buf).expect("no 408");
    let timeout = String::from_utf8_lossy(&buf[..n]).into_owned();
    let waited = asked.elapsed();
    drop(p);
    let want = [
        "0.3".to_string(),
        "sip_request.voicemail".into(),
        "MESSAGE".into(),
        "vm-bob".into(),
        "127.0.0.1".into(),
        "127.0.0.1".into(),
        "{PORT}".into(),
        "sip:vm-bob@127.0.0.1".into(),
        format!("sip:alice@{local}"),
        "\"Alice\" <sip:alice@127.0.0.1>;tag=atw1".into(),
        "<sip:vm-bob@127.0.0.1>".into(),
        "tw1@x".into(),
        "atw1".into(),
        String::new(),
        "3".into(),
        "{ID}".into(),
        ".".into(),
        ".".into(),
        "P-MsgFlags: 02".into(),
        ".".into(),
        ".".into(),
        String::new(),
    ];
    assert_eq!(lines.len(), want.len(), "{text}");
    for (i, (got, want)) in lines.iter().zip(want.iter()).enumerate() {
        match want.as_str() {
            "{PORT}" => assert!(got.parse::<u16>().is_ok(), "line {i}: {got}"),
            "{ID}" => {
                let (h, l) = got.split_once(':').expect("hash:label");
                let (h, l): (u64, u64) = (h.parse().expect("hash"), l.parse().expect("label"));
                assert_eq!(h, l % 65536, "line {i}: {got}");
            }
            w => assert_eq!(*got, w, "line {i} of\n{text}"),
        }
    }
    assert_eq!(ok["result"], "OK", "{ok}");
    assert!(got.starts_with("SIP/2.0 200 Stored\r\n"), "{got}");
    assert!(timeout.starts_with("SIP/2.0 408 "), "{timeout}");
    assert!(
        waited >= Duration::from_millis(1800),
        "408 after fr_timeout, not {waited:?}"
    );
}

/// t_fifo.c `write_to_fifo`: the same lines go to a FIFO opened without
/// waiting; with nobody reading it the write fails (false) at once.
#[test]
fn t_write_req_writes_to_a_fifo_and_fails_without_a_reader() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vm.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let p = proxy(
        free_port(),
        &format!(
            r#"function route.main()
  sip.tm.t_newtran()
  if not sip.tm.t_write_req("vm", "{}") then sip.tm.t_reply(500, "not written") end
end"#,
            path.display()
        ),
    );
    let caller = UdpSocket::bind("127.0.0.1:0").expect("bind");
    caller
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = caller.local_addr().expect("addr");
    // Nobody reads yet: refused at once.
    caller
        .send_to(
            held_message("twr1", local).as_bytes(),
            ("127.0.0.1", p.port),
        )
        .expect("send");
    let mut buf = [0u8; 65536];
    let n = caller.recv(&mut buf).expect("no reply");
    let refused = String::from_utf8_lossy(&buf[..n]).into_owned();
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .expect("open fifo");
    caller
        .send_to(
            held_message("twr2", local).as_bytes(),
            ("127.0.0.1", p.port),
        )
        .expect("send");
    let end = Instant::now() + Duration::from_secs(5);
    let mut text = Vec::new();
    while Instant::now() < end && text.iter().filter(|b| **b == b'\n').count() < 21 {
        match reader.read(&mut buf) {
            Ok(n) if n > 0 => text.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    drop(p);
    let text = String::from_utf8_lossy(&text).into_owned();
    assert!(
        refused.starts_with("SIP/2.0 500 not written\r\n"),
        "{refused}"
    );
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), 22, "{text}");
    assert_eq!(&lines[..3], ["0.3", "sip_request.vm", "MESSAGE"], "{text}");
    assert_eq!(lines[11], "twr2@x", "{text}");
}

/// t_fifo.c `parse_tw_append` / `append2buf`: `info` `action/name` adds
/// the `title: value` lines of the `tw_append` `name` after the
/// `P-MsgFlags` line (a null value adds none), and its `$rb` writes the
/// body of a MESSAGE too; an unknown name is a script error (500).
#[test]
fn t_write_unix_appends_the_tw_append_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vm.sock");
    let app = std::os::unix::net::UnixDatagram::bind(&path).expect("bind unix socket");
    app.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let p = Proxy::start(&mi_script(
        free_port(),
        r#"tm = { fr_timeout = 2, fr_inv_timeout = 4,
      tw_append = { "vm: subject=$hdr(Subject); caller = $fU; none=$avp(unset); $rb", "other: x=$ci" } },"#,
        &format!(
            r#"function route.main()
  sip.tm.t_newtran()
  local info = sip.pv.rU == "vm-bad" and "voicemail/nope" or "voicemail/VM"
  if not sip.tm.t_write_unix(info, "{}") then sip.tm.t_reply(500, "not written") end
end"#,
            path.display()
        ),
    ));
    let caller = UdpSocket::bind("127.0.0.1:0").expect("bind");
    caller
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = caller.local_addr().expect("addr");
    let msg = held_message("twa1", local).replace(
        "Content-Length: 0\r\n\r\n",
        "Subject: Hi there\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    );
    caller
        .send_to(msg.as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let mut buf = [0u8; 65536];
    let n = app.recv(&mut buf).expect("the application got nothing");
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let bad = held_message("twa2", local).replace("vm-bob", "vm-bad");
    caller
        .send_to(bad.as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let n = caller.recv(&mut buf).expect("no reply to the bad one");
    let refused = String::from_utf8_lossy(&buf[..n]).into_owned();
    let log = p.stop();
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(
        &lines[18..],
        [
            "P-MsgFlags: 0",
            "subject: Hi there",
            "caller: alice",
            ".",
            "hello",
            ""
        ],
        "{text}"
    );
    assert!(refused.starts_with("SIP/2.0 500 "), "{refused}");
    assert!(log.contains("unknown append name 'nope'"), "{log}");
}
