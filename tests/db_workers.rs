//! Database queries run on the SIP workers' own connections (src/db/local.rs):
//! the built binary with two workers, digest-authenticated REGISTERs
//! (auth_db `www_authorize` reading `subscriber`, usrloc db_mode 3 on
//! `location`) against MariaDB at 127.0.0.1:3306, in a database of this
//! test's own. What a user sees: a table locked by someone else holds only
//! the queries on it, registrations on every worker go on meanwhile; the
//! connections the workers hold are few and bounded; and when MariaDB
//! kills them (`KILL`), the next registrations reconnect without an error.

mod common;

use common::mariadb::TestDb;
use common::*;
use lunasip::modules::auth::digest::Alg;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn test_db() -> TestDb {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "dbspeed_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let db = TestDb::new(&name);
    db.sql("CREATE TABLE slowt (n INT NOT NULL); INSERT INTO slowt VALUES (7)");
    for i in 0..20 {
        add_user(&db, &format!("u{i}@example.com"), &format!("pw{i}"));
    }
    db
}

fn add_user(db: &TestDb, who: &str, pw: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["db", "add-user", &db.url, who, pw])
        .output()
        .expect("lunasip db add-user");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two workers; MESSAGE reads the table `slowt` (avpops), REGISTER is
/// challenged, authorized against `subscriber` and saved in `location`.
fn script(url: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    mi_fifo = false,
    auth = {{ secret = "dbspeed" }},
    auth_db = {{ db_url = "{url}" }},
    usrloc = {{ db_mode = 3, db_url = "{url}" }},
    avpops = {{ db_url = "{url}" }},
  }},
}}

function route.main()
  if sip.is_method("MESSAGE") then
    local _, rc = sip.avpops.avp_db_query("SELECT n FROM slowt", "$avp(n)")
    sip.sl.sl_send_reply(200, "Read " .. tostring(sip.pv.get("$avp(n)")) .. " rc " .. tostring(rc))
    sip.exit()
  end
  if sip.is_method("REGISTER") then
    local ok, rc = sip.auth_db.www_authorize("example.com", "subscriber")
    if not ok then
      if rc == 0 then sip.exit() end
      sip.auth.www_challenge("example.com", "auth")
      sip.exit()
    end
    sip.auth.consume_credentials()
    sip.registrar.save("location")
    sip.exit()
  end
  sip.sl.sl_send_reply(404, "Not Here")
end
"#
    )
}

fn sock() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Sends `msg` and returns the first final answer ("" after the timeout).
fn exchange(s: &UdpSocket, port: u16, msg: &str) -> String {
    s.send_to(msg.as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = [0u8; 65536];
    loop {
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            return String::new();
        };
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 1") {
            return r;
        }
    }
}

fn register_msg(s: &UdpSocket, port: u16, user: &str, cseq: u32, auth: Option<&str>) -> String {
    let local = s.local_addr().expect("local");
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "REGISTER sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{user}-{cseq}-{}\r\nFrom: <sip:{user}@example.com>;tag=f1\r\nTo: <sip:{user}@example.com>\r\nCall-ID: dbw-{user}-{}@t\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}>\r\n{auth}Expires: 120\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        local.port(),
        local.port(),
    )
}

fn status(reply: &str) -> &str {
    reply.split(' ').nth(1).unwrap_or("")
}

/// REGISTER → 401 → REGISTER with MD5 credentials (qop=auth); the final
/// answer to the second and the time both took.
fn auth_register(port: u16, user: &str, pw: &str) -> (String, Duration) {
    let s = sock();
    let t0 = Instant::now();
    let ch = exchange(&s, port, &register_msg(&s, port, user, 1, None));
    if status(&ch) != "401" {
        return (ch, t0.elapsed());
    }
    let i = ch.find("nonce=\"").expect("a nonce") + 7;
    let nonce = ch[i..].split('"').next().unwrap_or("");
    let alg = Alg::Md5;
    let uri = format!("sip:127.0.0.1:{port}");
    let ha1 = alg.ha1(user, "example.com", pw);
    let ha2 = alg.hex(format!("REGISTER:{uri}").as_bytes());
    let resp = alg.hex(format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}").as_bytes());
    let cred = format!(
        "Digest username=\"{user}\", realm=\"example.com\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc=00000001, cnonce=\"c0ffee\", response=\"{resp}\", algorithm=MD5"
    );
    let ok = exchange(&s, port, &register_msg(&s, port, user, 2, Some(&cred)));
    (ok, t0.elapsed())
}

/// This database's connections as MariaDB lists them (id per line).
fn connections(db: &TestDb) -> Vec<String> {
    let ids = db.sql(&format!(
        "SELECT id FROM information_schema.processlist WHERE db = '{}' AND id <> CONNECTION_ID()",
        db.name
    ));
    ids.lines().map(str::to_string).collect()
}

#[test]
fn a_locked_table_holds_its_queries_while_registrations_go_on() {
    let db = test_db();
    let p = Proxy::start(&script(&db.url));
    // Warm up both workers' connections (several source ports).
    for i in 0..4 {
        let (r, _) = auth_register(p.port, &format!("u{i}"), &format!("pw{i}"));
        assert_eq!(status(&r), "200", "{r}\n{}", p.log_text());
    }
    // Someone else holds a write lock on slowt for 3 s.
    let mut locker = Command::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", &db.name, "-e"])
        .arg("LOCK TABLES slowt WRITE; SELECT SLEEP(3); UNLOCK TABLES;")
        .stdout(Stdio::null())
        .spawn()
        .expect("mariadb");
    std::thread::sleep(Duration::from_millis(300));
    let locked_at = Instant::now();
    // Four MESSAGEs, from four source ports (spread over the workers),
    // wait on the lock.
    let port = p.port;
    let slow: Vec<_> = (0..4)
        .map(|n| {
            std::thread::spawn(move || {
                let s = sock();
                let local = s.local_addr().expect("local");
                let m = format!(
                    "MESSAGE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-slow-{n}\r\nFrom: <sip:s@127.0.0.1>;tag=s{n}\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: slow-{n}-{}\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                    local.port()
                );
                let r = exchange(&s, port, &m);
                (r, locked_at.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Meanwhile 16 users register, each from its own port: on both
    // workers, while both have a query waiting on the lock.
    let mut worst = Duration::ZERO;
    for i in 4..20 {
        let (r, took) = auth_register(p.port, &format!("u{i}"), &format!("pw{i}"));
        assert_eq!(status(&r), "200", "u{i}: {r}\n{}", p.log_text());
        worst = worst.max(took);
    }
    let during = locked_at.elapsed();
    let _ = locker.wait();
    for t in slow {
        let (r, at) = t.join().expect("message thread");
        assert!(r.starts_with("SIP/2.0 200 Read 7 rc 1"), "{r}");
        assert!(at > Duration::from_millis(2000), "did not wait: {at:?}");
    }
    assert!(
        during < Duration::from_millis(2500),
        "the registrations waited for the lock: {during:?}"
    );
    assert!(worst < Duration::from_millis(1000), "{worst:?}");
    assert_eq!(db.sql("SELECT COUNT(*) FROM location"), "20");
    eprintln!("locked table: 16 registrations in {during:?} (worst {worst:?})");
}

#[test]
fn workers_reconnect_after_the_server_kills_their_connections() {
    let db = test_db();
    let p = Proxy::start(&script(&db.url));
    for i in 0..10 {
        let (r, _) = auth_register(p.port, &format!("u{i}"), &format!("pw{i}"));
        assert_eq!(status(&r), "200", "{r}\n{}", p.log_text());
    }
    // A few connections per worker at most: (2 workers + the layer's
    // thread) × MYSQL_PER_THREAD bounds them.
    let held = connections(&db);
    assert!(
        !held.is_empty() && held.len() <= 3 * lunasip::db::MYSQL_PER_THREAD,
        "{held:?}"
    );
    for id in &held {
        let _ = Command::new("mariadb")
            .args(["-uroot", "-h127.0.0.1", "-e", &format!("KILL {id}")])
            .output();
    }
    eventually("the killed connections gone", || {
        connections(&db).iter().all(|c| !held.contains(c))
    });
    // Every registration after the KILL succeeds: a pooled connection
    // found dead is replaced before the query goes out.
    for i in 10..20 {
        let (r, _) = auth_register(p.port, &format!("u{i}"), &format!("pw{i}"));
        assert_eq!(status(&r), "200", "u{i}: {r}\n{}", p.log_text());
    }
    let again = connections(&db);
    assert!(
        !again.is_empty() && again.iter().all(|c| !held.contains(c)),
        "{held:?} then {again:?}"
    );
    assert_eq!(db.sql("SELECT COUNT(*) FROM location"), "20");
}

#[test]
fn many_reads_at_once_hold_a_bounded_number_of_connections() {
    let db = test_db();
    let p = Proxy::start(&script(&db.url));
    for i in 0..2 {
        let (r, _) = auth_register(p.port, &format!("u{i}"), &format!("pw{i}"));
        assert_eq!(status(&r), "200", "{r}\n{}", p.log_text());
    }
    // Someone holds `subscriber` for 2 s: every credential read waits.
    let mut locker = Command::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", &db.name, "-e"])
        .arg("LOCK TABLES subscriber WRITE; SELECT SLEEP(2); UNLOCK TABLES;")
        .stdout(Stdio::null())
        .spawn()
        .expect("mariadb");
    std::thread::sleep(Duration::from_millis(300));
    // 60 registrations at once, each from its own port: 60 reads under
    // way on two workers.
    let port = p.port;
    let regs: Vec<_> = (0..60)
        .map(|i| {
            std::thread::spawn(move || {
                let u = i % 20;
                auth_register(port, &format!("u{u}"), &format!("pw{u}")).0
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    // While they wait: each worker holds at most its pool's connections
    // and its lean ones, whatever the number of reads.
    let bound = 3 * (lunasip::db::MYSQL_PER_THREAD + lunasip::db::WIRE_PER_THREAD);
    let during = connections(&db);
    let _ = locker.wait();
    for r in regs {
        let r = r.join().expect("register thread");
        assert_eq!(status(&r), "200", "{r}\n{}", p.log_text());
    }
    assert!(
        during.len() <= bound,
        "{} connections: {during:?}",
        during.len()
    );
    let after = connections(&db);
    assert!(
        after.len() <= bound,
        "{} connections after: {after:?}",
        after.len()
    );
}
