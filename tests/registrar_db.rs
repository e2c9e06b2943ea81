//! registrar + usrloc on OpenSIPS 3.4's `location` table, end to end:
//! tables made with `lunasip db init`, the built binary registering and
//! looking up through MariaDB (127.0.0.1:3306, db `test`), PostgreSQL
//! (127.0.0.1:5432, db `test`) and SQLite; SIPp registering and calling,
//! a SIPp callee. Each test has its own table, so tests run in parallel.

mod common;

use common::ds::mi;
use common::*;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MYSQL: &str = "mysql://root@127.0.0.1:3306/test";
const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A location table made for one test in one database, dropped at the end.
struct Table {
    url: String,
    name: String,
    _dir: Option<tempfile::TempDir>,
    /// Made by the test (dropped at the end).
    owned: bool,
}

impl Table {
    fn new(kind: &str) -> Table {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "loc_{kind}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (url, dir) = match kind {
            "my" => (MYSQL.to_string(), None),
            "pg" => (PG.to_string(), None),
            _ => {
                let d = tempfile::tempdir().expect("dir");
                let url = format!("sqlite://{}", d.path().join("lunasip.db").display());
                (url, Some(d))
            }
        };
        let t = Table {
            url,
            name,
            _dir: dir,
            owned: true,
        };
        // What an operator runs once: OpenSIPS 3.4's tables and versions.
        let out = Command::new(env!("CARGO_BIN_EXE_lunasip"))
            .args(["db", "init", &t.url, "--location-table", &t.name])
            .output()
            .expect("lunasip db init");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "db init: {text}");
        assert!(
            text.contains("version of") && text.contains("1013"),
            "{text}"
        );
        t
    }

    /// One SQL answer through the server's own client (None: SQLite).
    fn cli(&self, sql: &str) -> Option<String> {
        let out = if self.url.starts_with("mysql") {
            Command::new("mariadb")
                .args(["-uroot", "-h127.0.0.1", "-N", "-B", "test", "-e", sql])
                .output()
        } else if self.url.starts_with("postgres") {
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "test",
                    "-At",
                    "-c",
                    sql,
                ])
                .output()
        } else {
            return None;
        };
        let out = out.expect("db client");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let drop = format!("DROP TABLE IF EXISTS {}", self.name);
        let ver = format!("DELETE FROM version WHERE table_name = '{}'", self.name);
        if self.owned && !self.url.starts_with("sqlite") {
            let _ = std::panic::catch_unwind(|| {
                self.cli(&drop);
                self.cli(&ver);
            });
        }
    }
}

/// A registrar on `t` in `db_mode`, with MI on `mi_port`; `children`
/// workers.
fn script(t: &Table, db_mode: u8, mi_port: u16, children: u32) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = {children},
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    registrar = {{ min_expires = 1 }},
    usrloc = {{ db_mode = {db_mode}, db_url = "{url}", timer_interval = 1 }},
  }},
}}

function route.main()
  if sip.is_method("REGISTER") then
    sip.registrar.save("{table}")
    sip.exit()
  end
  if sip.is_method("OPTIONS") then
    sip.sl.sl_send_reply(200, "Alive")
    sip.exit()
  end
  if sip.has_totag() then
    sip.tm.t_relay()
    sip.exit()
  end
  local ok, rc = sip.registrar.lookup("{table}")
  if not ok then
    sip.sl.sl_send_reply(404, "Not Found " .. rc)
    sip.exit()
  end
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
"#,
        url = t.url,
        table = t.name
    )
}

fn sipp_register(proxy: u16, user: &str, contact_port: u16) -> SippRun {
    uac(
        "reg_register.xml",
        proxy,
        "u1",
        1,
        1,
        &[
            "-s",
            user,
            "-key",
            "contact_port",
            &contact_port.to_string(),
            "-key",
            "expires",
            "120",
        ],
    )
}

fn call(proxy: u16, user: &str) -> SippRun {
    uac("uac.xml", proxy, "u1", 1, 1, &["-s", user])
}

/// Two proxies on one table in db_mode 3: a user registers through A, a
/// call through B reaches the user's callee (B reads the table).
fn shared_db_only(kind: &str) {
    let t = Table::new(kind);
    let (mi_a, mi_b) = (free_port(), free_port());
    let a = Proxy::start(&script(&t, 3, mi_a, 2));
    let b = Proxy::start(&script(&t, 3, mi_b, 2));
    let callee = uas("uas.xml", "u1");
    let r = sipp_register(a.port, "alice", callee.port);
    assert_eq!(
        r.successful,
        1,
        "REGISTER via A: {}\n{}",
        r.errors,
        a.log_text()
    );
    if let Some(rows) = t.cli(&format!(
        "SELECT contact FROM {} WHERE username = 'alice'",
        t.name
    )) {
        assert_eq!(
            rows,
            format!("sip:alice@127.0.0.1:{};transport=udp", callee.port)
        );
    }
    let c = call(b.port, "alice");
    assert_eq!(
        c.successful,
        1,
        "call via B: {}\n{}",
        c.errors,
        b.log_text()
    );
    assert_eq!(callee.counts(1).0, 1, "{}", callee.errors());
    // B's MI reads the table too, and sees what A's MI adds.
    let (ok, dump) = mi(mi_b, &["ul_dump"]);
    assert!(ok && dump.contains("alice"), "{dump}");
    let (ok, out) = mi(
        mi_a,
        &[
            "ul_add",
            &t.name,
            "mia",
            "sip:mia@127.0.0.1:7777",
            "60",
            "1",
        ],
    );
    assert!(ok, "{out}");
    let (ok, show) = mi(mi_b, &["ul_show_contact", &t.name, "mia"]);
    assert!(ok && show.contains("sip:mia@127.0.0.1:7777"), "{show}");
    let (ok, out) = mi(mi_b, &["ul_rm", &t.name, "mia"]);
    assert!(ok, "{out}");
    let (ok, _) = mi(mi_a, &["ul_show_contact", &t.name, "mia"]);
    assert!(!ok, "removed through B, gone for A");
    // An unknown user is 404 (lookup -1) through either.
    let r = call(a.port, "nobody");
    assert_eq!(r.successful, 0);
    assert!(r.messages.contains("404 Not Found -1"), "{}", r.messages);
}

#[test]
fn db_mode3_two_instances_share_registrations_mysql() {
    shared_db_only("my");
}

#[test]
fn db_mode3_two_instances_share_registrations_postgres() {
    shared_db_only("pg");
}

/// db_mode 1 (write-through): registrations survive a restart.
fn restart_survives(kind: &str, db_mode: u8) {
    let t = Table::new(kind);
    let callee = uas("uas.xml", "u1");
    let a = Proxy::start(&script(&t, db_mode, free_port(), 2));
    let r = sipp_register(a.port, "bob", callee.port);
    assert_eq!(r.successful, 1, "REGISTER: {}\n{}", r.errors, a.log_text());
    let rows = || {
        t.cli(&format!(
            "SELECT COUNT(*) FROM {} WHERE username = 'bob'",
            t.name
        ))
    };
    if db_mode == 2 {
        // Written back by the timer (timer_interval 1): watched in the
        // table where the test can read it, else a tick and a half.
        let deadline = Instant::now() + Duration::from_secs(5);
        match rows() {
            Some(_) => {
                while rows().as_deref() != Some("1") && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            None => std::thread::sleep(Duration::from_millis(1600)),
        }
    }
    if let Some(n) = rows() {
        assert_eq!(n, "1", "the row is in the table");
    }
    let log = a.stop();
    assert!(!log.contains("ERROR"), "{log}");
    let b = Proxy::start(&script(&t, db_mode, free_port(), 2));
    let c = call(b.port, "bob");
    assert_eq!(
        c.successful,
        1,
        "call after restart: {}\n{}",
        c.errors,
        b.log_text()
    );
    assert_eq!(callee.counts(1).0, 1, "{}", callee.errors());
}

#[test]
fn db_mode1_restart_survives_mysql() {
    restart_survives("my", 1);
}

#[test]
fn db_mode1_restart_survives_postgres() {
    restart_survives("pg", 1);
}

#[test]
fn db_mode1_restart_survives_sqlite() {
    restart_survives("lite", 1);
}

#[test]
fn db_mode2_restart_survives_after_flush_mysql() {
    restart_survives("my", 2);
}

#[test]
fn db_mode2_restart_survives_after_flush_sqlite() {
    restart_survives("lite", 2);
}

/// Sends `msg` and waits for a final answer; (status line, time taken).
fn timed(port: u16, msg: &str) -> (String, Duration) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(8))).expect("t");
    let local = s.local_addr().expect("addr").to_string();
    let t0 = Instant::now();
    s.send_to(
        msg.replace("{LOCAL}", &local).as_bytes(),
        ("127.0.0.1", port),
    )
    .expect("send");
    let mut buf = [0u8; 65536];
    loop {
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            return (String::new(), t0.elapsed());
        };
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 100") {
            return (r.lines().next().unwrap_or("").to_string(), t0.elapsed());
        }
    }
}

fn register_msg(user: &str, callid: &str) -> String {
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-{callid}\r\nFrom: <sip:{user}@127.0.0.1>;tag=r1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {callid}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@127.0.0.1:7000>\r\nExpires: 60\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn options_msg(n: usize) -> String {
    format!(
        "OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-opt-{n}\r\nFrom: <sip:p@127.0.0.1>;tag=o{n}\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: opt-{n}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn slow_database_suspends_the_route_not_the_worker() {
    // One worker: if a REGISTER waiting for the database blocked it, the
    // OPTIONS sent meanwhile would wait as long.
    let t = Table::new("my");
    let p = Proxy::start(&script(&t, 3, free_port(), 1));
    assert!(timed(p.port, &register_msg("warm", "c-warm"))
        .0
        .ends_with("200 OK"));
    // The test holds a write lock on the table for 2 s.
    let mut locker = Command::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "test", "-e"])
        .arg(format!(
            "LOCK TABLES {} WRITE; SELECT SLEEP(2); UNLOCK TABLES;",
            t.name
        ))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("mariadb");
    std::thread::sleep(Duration::from_millis(300));
    let port = p.port;
    let reg = std::thread::spawn(move || timed(port, &register_msg("slow", "c-slow")));
    std::thread::sleep(Duration::from_millis(100));
    let mut worst = Duration::ZERO;
    for n in 0..5 {
        let (st, took) = timed(p.port, &options_msg(n));
        assert!(st.ends_with("200 Alive"), "{st}");
        worst = worst.max(took);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (st, took) = reg.join().expect("register thread");
    let _ = locker.wait();
    assert!(
        worst < Duration::from_millis(300),
        "OPTIONS waited {worst:?}"
    );
    assert!(
        st.ends_with("200 OK"),
        "REGISTER after the lock: {st}\n{}",
        p.log_text()
    );
    assert!(
        took > Duration::from_millis(1000),
        "the REGISTER did wait: {took:?}"
    );
    eprintln!("slow DB: REGISTER answered in {took:?}, worst OPTIONS {worst:?}");
}

#[test]
fn wrong_table_version_and_dead_database_answer_500() {
    let t = Table::new("my");
    t.cli(&format!(
        "UPDATE version SET table_version = 1012 WHERE table_name = '{}'",
        t.name
    ));
    let p = Proxy::start(&script(&t, 3, free_port(), 2));
    let (st, _) = timed(p.port, &register_msg("v", "c-ver"));
    assert!(st.starts_with("SIP/2.0 500"), "{st}");
    let log = p.log_text();
    assert!(
        log.contains(&format!("table '{}' has version 1012", t.name)) && log.contains("1013"),
        "{log}"
    );
    // A database nobody listens on: 500 at once, the worker free.
    let dead = Table {
        url: format!("mysql://root@127.0.0.1:{}/test", free_port()),
        name: "location".into(),
        _dir: None,
        owned: false,
    };
    let q = Proxy::start(&script(&dead, 3, free_port(), 1));
    let (st, took) = timed(q.port, &register_msg("d", "c-dead"));
    assert!(st.starts_with("SIP/2.0 500"), "{st}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (st, _) = timed(q.port, &options_msg(99));
    assert!(st.ends_with("200 Alive"), "{st}");
    // lookup with the database down: -3 (LOOKUP_ERROR, lib/reg/lookup.h).
    let inv = "INVITE sip:d@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bK-dead-inv\r\nFrom: <sip:c@127.0.0.1>;tag=1\r\nTo: <sip:d@127.0.0.1>\r\nCall-ID: dead-inv\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let (st, _) = timed(q.port, inv);
    assert_eq!(st, "SIP/2.0 404 Not Found -3");
}

fn register_for(user: &str, callid: &str, expires: u32) -> String {
    register_msg(user, callid).replace("Expires: 60", &format!("Expires: {expires}"))
}

#[test]
fn db_mode2_ul_flush_and_ul_sync_write_the_table() {
    let t = Table::new("my");
    let mi_port = free_port();
    // A timer that does not run during the test: only MI writes back.
    let p = Proxy::start(
        &script(&t, 2, mi_port, 2).replace("timer_interval = 1", "timer_interval = 3600"),
    );
    let count = |user: &str| {
        t.cli(&format!(
            "SELECT COUNT(*) FROM {} WHERE username = '{user}'",
            t.name
        ))
        .unwrap_or_default()
    };
    assert!(timed(p.port, &register_msg("kim", "c-kim"))
        .0
        .ends_with("200 OK"));
    assert_eq!(count("kim"), "0", "write-back: not written yet");
    let (ok, out) = mi(mi_port, &["ul_flush"]);
    assert!(ok, "{out}");
    assert_eq!(count("kim"), "1", "written by ul_flush");
    // A row removed behind usrloc's back comes back with ul_sync.
    t.cli(&format!("DELETE FROM {}", t.name));
    let (ok, out) = mi(mi_port, &["ul_sync", &t.name]);
    assert!(ok, "{out}");
    assert_eq!(count("kim"), "1", "rewritten by ul_sync");
}

#[test]
fn db_mode3_expired_rows_are_deleted() {
    let t = Table::new("my");
    let p = Proxy::start(&script(&t, 3, free_port(), 2));
    assert!(timed(p.port, &register_for("lou", "c-lou", 1))
        .0
        .ends_with("200 OK"));
    assert!(timed(p.port, &register_for("max", "c-max", 60))
        .0
        .ends_with("200 OK"));
    let rows = || {
        t.cli(&format!(
            "SELECT username FROM {} ORDER BY username",
            t.name
        ))
        .unwrap_or_default()
    };
    assert_eq!(rows(), "lou\nmax");
    let deadline = Instant::now() + Duration::from_secs(5);
    while rows() != "max" {
        assert!(
            Instant::now() < deadline,
            "expired row still there: {}",
            rows()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn malformed_rows_from_another_writer_are_skipped() {
    // A row no REGISTER could make (a space and CRLF in the contact): a
    // lookup skips it rather than writing a broken request line.
    let t = Table::new("my");
    let p = Proxy::start(&script(&t, 3, free_port(), 2));
    t.cli(&format!(
        "INSERT INTO {} (contact_id, username, contact, expires, callid, cseq, last_modified) VALUES (4242, 'nat', 'sip:nat@127.0.0.1 X\\r\\nEvil: 1', 0, 'x', 1, NOW())",
        t.name
    ));
    let inv = "INVITE sip:nat@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bK-nat-inv\r\nFrom: <sip:c@127.0.0.1>;tag=1\r\nTo: <sip:nat@127.0.0.1>\r\nCall-ID: nat-inv\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let (st, _) = timed(p.port, inv);
    assert_eq!(st, "SIP/2.0 404 Not Found -1");
    assert!(p.log_text().contains("skipping the malformed contact"));
}

#[test]
fn db_mode1_failed_write_changes_nothing() {
    let t = Table::new("my");
    let p = Proxy::start(&script(&t, 1, free_port(), 2));
    let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("a");
    a.set_read_timeout(Some(Duration::from_secs(3))).expect("t");
    let ca = format!("sip:ned@{}", a.local_addr().expect("addr"));
    let reg = |contact: &str, callid: &str| {
        register_msg("ned", callid).replace("<sip:ned@127.0.0.1:7000>", &format!("<{contact}>"))
    };
    assert!(timed(p.port, &reg(&ca, "c-ned-1")).0.ends_with("200 OK"));
    // The table goes away: the next REGISTER cannot be written through.
    t.cli(&format!("RENAME TABLE {0} TO {0}_away", t.name));
    let (st, _) = timed(p.port, &reg("sip:ned@127.0.0.1:7999", "c-ned-2"));
    t.cli(&format!("RENAME TABLE {0}_away TO {0}", t.name));
    assert!(st.starts_with("SIP/2.0 500"), "{st}");
    // Memory kept what the table holds: the call goes to the first contact only.
    let inv = "INVITE sip:ned@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-ned-inv\r\nFrom: <sip:c@127.0.0.1>;tag=1\r\nTo: <sip:ned@127.0.0.1>\r\nCall-ID: ned-inv\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("c");
    s.send_to(inv.as_bytes(), ("127.0.0.1", p.port))
        .expect("send");
    let mut buf = [0u8; 65536];
    let (n, _) = a.recv_from(&mut buf).expect("INVITE at the saved contact");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with(&format!("INVITE {ca} SIP/2.0")));
    let (ok, dump) = mi_of(&p);
    assert!(ok && dump.contains(&ca), "{dump}");
    assert!(!dump.contains("7999"), "{dump}");
}

/// `ul_dump` of a proxy started by [`script`] (its MI port is in the script).
fn mi_of(p: &Proxy) -> (bool, String) {
    let text = std::fs::read_to_string(&p.script).unwrap_or_default();
    let port = text
        .split("port = ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u16>().ok())
        .unwrap_or(0);
    mi(port, &["ul_dump"])
}
