//! Accounting end to end: SIPp calls through the built binary with
//! `create_dialog` + `do_accounting`, CDRs read back from MariaDB (OpenSIPS
//! 3.4's `acc` and `missed_calls` tables made by `lunasip db init`) and
//! E_ACC_CDR received by a UDP subscriber.

mod common;

use common::ds::mi;
use common::mariadb::TestDb;
use common::mysql_cut::{Loss, MysqlCut};
use common::*;
use serde_json::Value as Json;
use std::time::Duration;

#[test]
fn a_cdr_row_with_its_duration_a_missed_call_row_and_e_acc_cdr() {
    let mi_port = free_port();
    let db = TestDb::new(&format!("lunasip_acc_{mi_port}"));
    let url = db.url.clone();
    let text = db.init_output.clone();
    assert!(text.contains("table acc ready"), "{text}");
    assert!(text.contains("table missed_calls ready"), "{text}");
    // Extra fields go into columns the operator adds, as with OpenSIPS.
    for t in ["acc", "missed_calls"] {
        db.sql(&format!(
            "ALTER TABLE {t} ADD caller_id CHAR(64) DEFAULT '' NOT NULL"
        ));
    }
    let callee = uas("uas.xml", "u1");
    let busy = uas("uas_busy.xml", "u1");
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    acc = {{
      db_url = "{url}",
      extra_fields = {{ "db: caller->caller_id", "evi: caller->caller_id", "log: caller->Caller" }},
    }},
  }},
}}

function route.main()
  if sip.has_totag() then
    if sip.rr.loose_route() then sip.tm.t_relay() end
    sip.exit()
  end
  if sip.is_method("INVITE") then
    sip.dialog.create_dialog()
    sip.acc.do_accounting("db|evi|log", "cdr|missed")
    sip.pv.set("$acc_extra(caller)", sip.pv.fU)
    sip.rr.record_route()
  end
  if sip.pv.ci:find("busy") then
    sip.pv.du = "sip:127.0.0.1:{busy}"
  else
    sip.pv.du = "sip:127.0.0.1:{good}"
  end
  sip.tm.t_relay()
end
"#,
        busy = busy.port,
        good = callee.port,
    );
    let proxy = Proxy::start(&script);
    let listener = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    listener.set_read_timeout(Some(Duration::from_secs(8))).ok();
    let sock = format!("udp:{}", listener.local_addr().expect("addr"));
    let (ok, out) = mi(mi_port, &["event_subscribe", "E_ACC_CDR", &sock, "60"]);
    assert!(ok, "{out}");
    let run = uac("uac_pause.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(run.successful, 1, "{}", run.errors);
    let mut buf = [0u8; 8192];
    let n = listener.recv(&mut buf).expect("E_ACC_CDR delivered");
    let ev: serde_json::Value = serde_json::from_slice(&buf[..n]).expect("json");
    assert_eq!(ev["method"], "E_ACC_CDR", "{ev}");
    let dur = ev["params"]["duration"].as_i64().expect("duration");
    assert!((3..=4).contains(&dur), "a 3 s pause: {ev}");
    assert_eq!(ev["params"]["caller_id"], "caller", "{ev}");
    let ms = ev["params"]["ms_duration"].as_i64().expect("ms");
    assert!((3000..4500).contains(&ms), "{ev}");
    std::thread::sleep(Duration::from_millis(500));
    let row = db.sql( "SELECT method, sip_code, duration, setuptime, from_tag <> '', to_tag <> '', created IS NOT NULL, caller_id FROM acc");
    let f: Vec<&str> = row.split('\t').collect();
    assert_eq!(f.len(), 8, "one CDR row: {row}");
    assert_eq!(f[7], "caller", "the extra field: {row}");
    assert_eq!((f[0], f[1]), ("INVITE", "200"), "{row}");
    let d: i64 = f[2].parse().expect("duration");
    assert!((3..=4).contains(&d), "{row}");
    assert_eq!(&f[4..7], ["1", "1", "1"], "{row}");
    // A call the callee refuses: a missed_calls row, no CDR.
    let _ = uac(
        "uac.xml",
        proxy.port,
        "u1",
        1,
        1,
        &["-cid_str", "busy-%u-%p@%s"],
    );
    std::thread::sleep(Duration::from_millis(700));
    let missed = db.sql("SELECT method, sip_code, sip_reason, caller_id FROM missed_calls");
    assert_eq!(missed, "INVITE\t486\tBusy Here\tcaller", "{missed}");
    assert_eq!(db.sql("SELECT COUNT(*) FROM acc"), "1");
    let log = proxy.stop();
    assert!(log.contains("ACC: call ended: created="), "{log}");
    assert!(log.contains(";code=200;reason=OK;Caller=caller"), "{log}");
    assert!(log.contains("ACC: call missed: timestamp="), "{log}");
    assert!(
        log.contains(";code=486;reason=Busy Here;Caller=caller"),
        "{log}"
    );
}

/// `acc_*_request` account the request at once; with the database down
/// the call is not held up, and the rows, held for `db::writer::HOLD`
/// (10 s) in case it comes back, end counted as dropped.
#[test]
fn request_accounting_and_a_dead_database() {
    let mi_port = free_port();
    let dead = free_port();
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    acc = {{ db_url = "mysql://root@127.0.0.1:{dead}/test" }},
  }},
}}

function route.main()
  sip.acc.acc_evi_request("403 Not Welcome")
  sip.acc.acc_log_request("a comment")
  sip.acc.acc_db_request("403 Not Welcome", "acc")
  sip.sl.sl_send_reply(403, "Not Welcome")
end
"#
    );
    let proxy = Proxy::start(&script);
    let listener = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    listener.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let sock = format!("udp:{}", listener.local_addr().expect("addr"));
    let (ok, out) = mi(mi_port, &["event_subscribe", "E_ACC_EVENT", &sock, "60"]);
    assert!(ok, "{out}");
    let to = format!("127.0.0.1:{}", proxy.port);
    let started = std::time::Instant::now();
    for i in 0..20 {
        let msg = format!(
            "MESSAGE sip:u@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKacc{i}\r\n\
             From: <sip:a@127.0.0.1>;tag=ft{i}\r\nTo: <sip:u@127.0.0.1>\r\nCall-ID: acc-{i}\r\n\
             CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let answer = udp_exchange(&to, &msg, Duration::from_secs(2)).expect("answer");
        assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a dead database never holds a request: {:?}",
        started.elapsed()
    );
    let mut buf = [0u8; 4096];
    let n = listener.recv(&mut buf).expect("E_ACC_EVENT");
    let ev: serde_json::Value = serde_json::from_slice(&buf[..n]).expect("json");
    assert_eq!(ev["method"], "E_ACC_EVENT", "{ev}");
    assert_eq!(ev["params"]["sip_code"], "403", "{ev}");
    assert_eq!(ev["params"]["sip_reason"], "Not Welcome", "{ev}");
    assert_eq!(ev["params"]["method"], "MESSAGE", "{ev}");
    // Every row ends counted: dropped (none written).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, stats) = mi(mi_port, &["get_statistics", "acc:"]);
        assert!(ok, "{stats}");
        let v: serde_json::Value = serde_json::from_str(stats.trim()).expect("json");
        if v["acc:dropped"] == 20 {
            assert_eq!(v["acc:written"], 0, "{v}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = proxy.stop();
    assert!(
        log.contains("ACC: request accounted: timestamp=")
            && log.contains(";code=;reason=a comment"),
        "{log}"
    );
}

/// A stateful proxy writing a CDR per call into `url`'s acc table.
fn cdr_script(mi_port: u16, url: &str, uas: u16) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    acc = {{ db_url = "{url}" }},
  }},
}}

function route.main()
  if sip.has_totag() then
    if sip.rr.loose_route() then sip.tm.t_relay() end
    sip.exit()
  end
  sip.dialog.create_dialog()
  sip.acc.do_accounting("db", "cdr")
  sip.rr.record_route()
  sip.pv.du = "sip:127.0.0.1:{uas}"
  sip.tm.t_relay()
end
"#
    )
}

/// Under load, every CDR reaches the table (rows are batched, none lost).
#[test]
fn two_hundred_calls_two_hundred_cdrs() {
    let mi_port = free_port();
    let db = TestDb::new(&format!("lunasip_accl_{mi_port}"));
    let callee = uas("uas.xml", "u1");
    let script = cdr_script(mi_port, &db.url, callee.port);
    let proxy = Proxy::start(&script);
    let run = uac("uac.xml", proxy.port, "u1", 200, 200, &[]);
    assert_eq!((run.successful, run.failed), (200, 0), "{}", run.errors);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while db.sql("SELECT COUNT(*) FROM acc") != "200" {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            db.sql("SELECT COUNT(*) FROM acc")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(db.sql("SELECT COUNT(DISTINCT callid) FROM acc"), "200");
    let log = proxy.stop();
    assert_eq!(stat(&log, "acc:written"), 200, "{log}");
    assert_eq!(stat(&log, "acc:dropped"), 0, "{log}");
}

/// The database goes away for 3 s in the middle of 100 calls (its link is
/// cut: connections reset, new ones closed) and comes back: the CDRs of
/// the calls that ended meanwhile are held and written once it answers,
/// none is lost, no call waits for it.
#[test]
fn cdrs_survive_a_short_database_outage() {
    let mi_port = free_port();
    let db = TestDb::new(&format!("lunasip_acco_{mi_port}"));
    let link = common::link::Link::to(3306);
    let callee = uas("uas.xml", "u1");
    let url = format!("mysql://root@127.0.0.1:{}/{}", link.port, db.name);
    let script = cdr_script(mi_port, &url, callee.port);
    let proxy = Proxy::start(&script);
    let run = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1500));
            link.cut();
            std::thread::sleep(Duration::from_secs(3));
            link.mend();
        });
        uac("uac.xml", proxy.port, "u1", 100, 20, &[])
    });
    assert_eq!((run.successful, run.failed), (100, 0), "{}", run.errors);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while db.sql("SELECT COUNT(*) FROM acc") != "100" {
        assert!(
            std::time::Instant::now() < deadline,
            "{} CDRs of 100",
            db.sql("SELECT COUNT(*) FROM acc")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(db.sql("SELECT COUNT(DISTINCT callid) FROM acc"), "100");
    let log = proxy.stop();
    assert_eq!(stat(&log, "acc:dropped"), 0, "{log}");
    assert_eq!(stat(&log, "acc:written"), 100, "{log}");
    assert!(log.contains("database"), "the outage was seen: {log}");
}

/// `calls` CDRs written through a relay to MariaDB that cuts `times` acc
/// INSERTs as `loss` says, refusing connections for the first `refuse`:
/// the relay, the acc statistics and the table once every record is
/// counted, and the proxy's log.
fn cdrs_through_cut(
    loss: Loss,
    times: usize,
    refuse: Duration,
) -> (MysqlCut, Json, TestDb, String) {
    const CALLS: u64 = 10;
    let mi_port = free_port();
    let db = TestDb::new(&format!("cdrdup_{mi_port}"));
    let cut = MysqlCut::start("acc", loss, times);
    cut.refuse(!refuse.is_zero());
    let callee = uas("uas.xml", "u1");
    let url = format!("mysql://root@127.0.0.1:{}/{}", cut.port, db.name);
    let proxy = Proxy::start(&cdr_script(mi_port, &url, callee.port));
    let run = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(refuse);
            cut.refuse(false);
        });
        uac("uac.xml", proxy.port, "u1", CALLS as u32, 5, &[])
    });
    assert_eq!((run.successful, run.failed), (CALLS, 0), "{}", run.errors);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let stats = loop {
        let (ok, out) = mi(mi_port, &["get_statistics", "acc:"]);
        assert!(ok, "{out}");
        let v: Json = serde_json::from_str(out.trim()).expect("json");
        let counted =
            v["acc:written"].as_u64().unwrap_or(0) + v["acc:dropped"].as_u64().unwrap_or(0);
        if counted >= CALLS {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        (&stats["acc:written"], &stats["acc:dropped"]),
        (&Json::from(CALLS), &Json::from(0)),
        "{stats}"
    );
    // One row per call: none twice, none missing.
    assert_eq!(
        db.sql("SELECT COUNT(*), COUNT(DISTINCT callid) FROM acc"),
        format!("{CALLS}\t{CALLS}")
    );
    (cut, stats, db, proxy.stop())
}

/// The OK of an acc INSERT is lost with its connection after MariaDB
/// committed it (the soak's MariaDB restart, issue #17): the writer finds
/// the rows in the table and does not send them again.
#[test]
fn a_cdr_whose_ok_is_lost_is_written_once() {
    let (cut, stats, _db, log) = cdrs_through_cut(Loss::Answer, 2, Duration::ZERO);
    assert_eq!(cut.cuts(), 2);
    assert!(
        cut.probes() >= 2,
        "each cut batch looked for: {}",
        cut.probes()
    );
    let found = stats["acc:confirmed"].as_u64().expect("acc:confirmed");
    assert!((2..=10).contains(&found), "{stats}");
    assert!(
        log.contains("found written after the connection failed, not sent again"),
        "{log}"
    );
}

/// The INSERT itself is lost with the connection: the look-up finds
/// nothing and the rows are sent again, once.
#[test]
fn a_cdr_lost_on_its_way_is_sent_again() {
    let (cut, stats, _db, _log) = cdrs_through_cut(Loss::Request, 2, Duration::ZERO);
    assert_eq!(cut.cuts(), 2);
    assert!(cut.probes() >= 2, "{}", cut.probes());
    assert_eq!(stats["acc:confirmed"], 0, "{stats}");
}

/// The database refuses connections at first: nothing was sent, so the
/// rows go again when it answers, without a look-up.
#[test]
fn a_cdr_refused_before_sending_is_sent_again_without_a_look_up() {
    let (cut, stats, _db, log) = cdrs_through_cut(Loss::Answer, 0, Duration::from_secs(2));
    assert_eq!((cut.cuts(), cut.probes()), (0, 0));
    assert_eq!(stats["acc:confirmed"], 0, "{stats}");
    assert!(log.contains("database"), "the refusal was seen: {log}");
}
