//! Replies the proxy makes itself, as OpenSIPS sends them: a To tag only
//! from 180 on (tm t_reply.c, sl sl_funcs.c: `code>=180`), whichever
//! function replies; and a route that waits (here on a slow database
//! query) on a new INVITE has answered `100 Giving it a try` and holds a
//! transaction meanwhile (tm async.c `t_handle_async` → `t_newtran` with
//! `auto_100trying`), so a retransmission is absorbed, not routed again.

mod common;

use common::mariadb::TestDb;
use common::*;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[test]
fn local_replies_carry_a_to_tag_from_180_on() {
    // One worker: the replies of one route leave in the order sent.
    let proxy = Proxy::start(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1 }
function route.main()
  if sip.is_method("ACK") then
    sip.tm.t_check_trans()
    sip.exit()
  end
  local codes = { { 101, "Checking" }, { 179, "Almost" }, { 180, "Ringing" },
    { 183, "Session Progress" }, { 486, "Busy Here" } }
  for _, c in ipairs(codes) do
    local code, reason = c[1], c[2]
    if sip.pv.rU == "sl" then
      sip.sl.sl_send_reply(code, reason)
    elseif sip.pv.rU == "send" then
      sip.signaling.send_reply(code, reason)
    elseif code == 183 then
      sip.append_to_reply("Content-Type: application/sdp\r\n")
      sip.tm.t_reply_with_body(code, reason, "v=0\r\n")
    else
      sip.tm.t_reply(code, reason)
    end
  end
end
"#,
    );
    // sl and signaling statelessly; tm through a transaction t_reply made
    // (its automatic 100 comes first, untagged too).
    for how in ["sl", "send", "tm"] {
        let run = uac(
            "uac_local_provisional.xml",
            proxy.port,
            "u1",
            1,
            1,
            &["-s", how],
        );
        assert_eq!(
            (run.successful, run.failed),
            (1, 0),
            "{how}: {}\n{}\n{}",
            run.errors,
            run.messages,
            proxy.log_text()
        );
    }
}

/// A database of this test's own with a table `waits` that gets a row
/// each time the slow query runs.
fn waits_db() -> TestDb {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "replies_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let db = TestDb::new(&name);
    db.sql("CREATE TABLE waits (ci VARCHAR(64) NOT NULL)");
    db
}

/// One worker whose route waits 2 s on MariaDB (an `avp_db_query` that
/// sleeps, then writes a row) before it answers 486; it logs when it
/// starts and when the query is over.
fn waiting(url: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{ avpops = {{ db_url = "{url}" }} }},
}}
function route.main()
  if sip.is_method("ACK") then
    sip.tm.t_check_trans()
    sip.exit()
  end
  sip.xlog("L_INFO", "route runs for $ci\n")
  sip.avpops.avp_db_query("INSERT INTO waits (ci) SELECT $ci FROM (SELECT SLEEP(2)) AS s")
  sip.xlog("L_INFO", "query done for $ci\n")
  sip.signaling.send_reply(486, "Busy Here")
end
"#
    )
}

#[test]
fn a_route_waiting_on_the_database_answered_100_first() {
    let db = waits_db();
    let proxy = Proxy::start(&waiting(&db.url));
    // SIPp: the 100 before the 486 (a 486 first fails the call), then
    // the ACK of the 486.
    let run = uac("uac_t_reply.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}\n{}",
        run.errors,
        run.messages,
        proxy.log_text()
    );
}

#[test]
fn a_retransmission_while_the_route_waits_gets_the_100_again() {
    let db = waits_db();
    let proxy = Proxy::start(&waiting(&db.url));
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = s.local_addr().expect("local");
    let invite = format!(
        "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-rtx-1\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\n\
         Call-ID: rtx-wait-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{local}>\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let to = ("127.0.0.1", proxy.port);
    let next = || {
        let mut buf = [0u8; 65536];
        match s.recv_from(&mut buf) {
            Ok((n, _)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(_) => String::new(),
        }
    };
    let expect = |status: &str| {
        let got = next();
        assert!(
            got.starts_with(&format!("SIP/2.0 {status}\r\n")),
            "{got}\n{}",
            proxy.log_text()
        );
        got
    };
    s.send_to(invite.as_bytes(), to).expect("send");
    expect("100 Giving it a try");
    // The same INVITE again while the query runs: the transaction sends
    // its last reply, the 100, again; the copy's route ends where it
    // would wait, so the query runs and the 486 goes out once.
    s.send_to(invite.as_bytes(), to).expect("send");
    expect("100 Giving it a try");
    let busy = expect("486 Busy Here");
    // Its ACK (RFC 3261 §17.1.1.3: the INVITE's branch, the reply's To)
    // stops the 486's retransmissions; a second run of the route would
    // answer after a second 2 s query.
    let to_line = busy.lines().find(|l| l.starts_with("To:")).unwrap_or("");
    let ack = invite
        .replacen("INVITE sip:", "ACK sip:", 1)
        .replacen("CSeq: 1 INVITE", "CSeq: 1 ACK", 1)
        .replacen("To: <sip:bob@127.0.0.1>", to_line, 1);
    s.send_to(ack.as_bytes(), to).expect("send");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let more = next();
    assert!(more.is_empty(), "{more}");
    let log = proxy.log_text();
    assert_eq!(log.matches("query done for rtx-wait-1").count(), 1, "{log}");
    assert_eq!(db.sql("SELECT ci FROM waits"), "rtx-wait-1");
}
