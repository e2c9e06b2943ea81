//! The shared DB layer (src/db/) against real servers: MariaDB at
//! 127.0.0.1:3306 and PostgreSQL at 127.0.0.1:5432 (database `test`), and
//! an SQLite file. The same checks run on all three: OpenSIPS 3.4's
//! `location` table created, values bound (SQL metacharacters stay
//! data), typed values read back, the `version` table checked, time
//! limits, and a dead server refused at once while backing off.

use std::process::Command;
use std::time::{Duration, Instant};

use lunasip::db::{self, schema, version, DbError, Ident, Value};

const MYSQL: &str = "mysql://root@127.0.0.1:3306/test";
const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

fn unique(name: &str) -> String {
    format!("{name}_{}", std::process::id())
}

fn mysql_cli(sql: &str) -> String {
    let o = Command::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "-N", "-B", "test", "-e", sql])
        .output()
        .expect("mariadb client");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn pg_cli(sql: &str) -> String {
    let o = Command::new("psql")
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
        .expect("psql");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// What every backend must do; `cli` reads the table with the server's
/// own client (None for SQLite: read back through rusqlite).
fn roundtrip(url: &str, table: &str, cli: Option<fn(&str) -> String>) {
    let db = db::open(url).expect("open");
    let t = Ident::new(table).expect("name");
    schema::init_wait(&db, "location", &t).expect("init");
    version::check_wait(&db, "location", &t).expect("version 1013");

    let evil = "o'hara\"; DROP TABLE version; --";
    let n = db
        .exec_wait(
            &format!(
                "INSERT INTO {t} (username, domain, contact, expires, q, callid, cseq, last_modified, flags, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            vec![
                Value::text(evil),
                Value::text("example.com"),
                Value::text("sip:alice@127.0.0.1:5070"),
                Value::Int(1_900_000_000),
                Value::Float(0.5),
                Value::text("cid-1"),
                Value::Int(7),
                Value::Time(1_700_000_000),
                Value::Int(0),
                Value::text("ua ü"),
            ],
        )
        .expect("insert");
    assert_eq!(n, 1);
    // The value went in as data, and the version table is still there.
    version::check_wait(&db, "location", &t).expect("version table intact");
    if let Some(cli) = cli {
        assert_eq!(
            cli(&format!("SELECT username FROM {t} WHERE callid = 'cid-1'")),
            evil
        );
    }

    let rows = db
        .query_wait(
            &format!("SELECT username, expires, q, cseq, last_modified, received, user_agent FROM {t} WHERE username = ? AND domain = ?"),
            vec![Value::text(evil), Value::text("example.com")],
        )
        .expect("select");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.text("username").as_deref(), Some(evil));
    assert_eq!(r.int("expires"), Some(1_900_000_000));
    assert_eq!(r.float("q"), Some(0.5));
    assert_eq!(r.int("cseq"), Some(7));
    assert_eq!(r.get("received"), &Value::Null);
    assert_eq!(r.text("user_agent").as_deref(), Some("ua ü"));
    let lm = match r.get("last_modified") {
        Value::Time(t) => *t,
        other => other
            .as_text()
            .and_then(|s| lunasip::db::value_parse_civil(&s))
            .expect("a date"),
    };
    assert_eq!(lm, 1_700_000_000);

    // The same through the async API on a worker-like runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let got = rt.block_on(db.query(
        &format!("SELECT COUNT(*) AS n FROM {t} WHERE expires > ?"),
        vec![Value::Int(0)],
    ));
    assert_eq!(got.expect("count")[0].int("n"), Some(1));

    // A table of another version is refused, naming table and versions.
    db.exec_wait(
        "UPDATE version SET table_version = ? WHERE table_name = ?",
        vec![Value::Int(1012), Value::text(table)],
    )
    .expect("update");
    let e = version::check_wait(&db, "location", &t).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DbError::Version { .. }), "{msg}");
    assert!(
        msg.contains(table) && msg.contains("1012") && msg.contains("1013"),
        "{msg}"
    );
    assert!(!e.is_retryable());

    db.exec_wait(&format!("DROP TABLE {t}"), vec![])
        .expect("drop");
    db.exec_wait(
        "DELETE FROM version WHERE table_name = ?",
        vec![Value::text(table)],
    )
    .expect("clean");
}

#[test]
fn mysql_roundtrip() {
    roundtrip(MYSQL, &unique("loc_db_my"), Some(mysql_cli));
}

#[test]
fn postgres_roundtrip() {
    roundtrip(PG, &unique("loc_db_pg"), Some(pg_cli));
}

#[test]
fn sqlite_roundtrip() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("lunasip.db").display());
    roundtrip(&url, "location", None);
}

#[test]
fn query_time_limit() {
    let db = db::open(MYSQL)
        .expect("open")
        .with_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let e = db.query_wait("SELECT SLEEP(3)", vec![]).unwrap_err();
    assert!(matches!(e, DbError::Timeout { .. }), "{e}");
    assert!(e.is_retryable());
    // The query was on the server when the limit passed.
    assert!(e.is_ambiguous(), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The pool still answers afterwards.
    let db = db.with_timeout(Duration::from_secs(5));
    assert_eq!(
        db.query_wait("SELECT 1 AS one", vec![]).expect("one")[0].int("one"),
        Some(1)
    );
}

#[test]
fn dead_server_backs_off() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    for url in [
        format!("mysql://root@127.0.0.1:{port}/test"),
        format!("postgres://postgres@127.0.0.1:{port}/test"),
    ] {
        let db = db::open(&url).expect("open");
        let e = db.query_wait("SELECT 1", vec![]).unwrap_err();
        assert!(matches!(e, DbError::Unreachable { .. }), "{e}");
        assert!(e.is_retryable());
        // Refused: nothing was sent.
        assert!(!e.is_ambiguous(), "{e}");
        // Asked again at once: refused without trying (backing off).
        let t = Instant::now();
        let e = db.query_wait("SELECT 1", vec![]).unwrap_err();
        assert!(e.to_string().contains("next try"), "{e}");
        assert!(t.elapsed() < Duration::from_millis(50));
    }
    assert!(db::open("oracle://x").is_err());
    assert!(matches!(
        Ident::new("location; drop table x"),
        Err(DbError::BadName(_))
    ));
}

/// The SQL shipped in the packages is what `lunasip db init` runs.
#[test]
fn packaged_sql_is_current() {
    use lunasip::db::Dialect;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/sql");
    for (d, name) in [
        (Dialect::Mysql, "location-mysql.sql"),
        (Dialect::Postgres, "location-postgres.sql"),
        (Dialect::Sqlite, "location-sqlite.sql"),
    ] {
        let want = schema::script(d);
        let path = dir.join(name);
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).expect("write");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "packaging/sql/{name} is stale: run `UPDATE_DOCS=1 cargo test --test db`"
        );
    }
}

/// The packaged files run as they are on each server.
#[test]
fn packaged_sql_runs() {
    let db = format!("lunasip_sql_{}", std::process::id());
    mysql_cli(&format!(
        "DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"
    ));
    let sql = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/sql/location-mysql.sql"),
    )
    .expect("sql");
    let out = Command::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", &db, "-e", &sql])
        .output()
        .expect("mariadb");
    mysql_cli(&format!("DROP DATABASE {db}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TCP relay to MariaDB that the test can cut and bring back, standing
/// for a database server that goes away and returns.
struct Relay {
    port: u16,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn start(port: u16) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("relay bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let conns: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c2, s2) = (conns.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = std::net::TcpStream::connect("127.0.0.1:3306") else {
                            continue;
                        };
                        for (a, b) in [(&client, &server), (&server, &client)] {
                            let (mut r, mut w) =
                                (a.try_clone().expect("c"), b.try_clone().expect("c"));
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut r, &mut w);
                                let _ = w.shutdown(std::net::Shutdown::Both);
                            });
                        }
                        let mut g = c2.lock().expect("lock");
                        g.push(client);
                        g.push(server);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Relay { port, conns, stop }
    }

    /// Closes the listener and every relayed connection.
    fn cut(self) -> u16 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in self.conns.lock().expect("lock").drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        std::thread::sleep(Duration::from_millis(50));
        self.port
    }
}

#[test]
fn reconnects_when_the_server_returns() {
    let relay = Relay::start(0);
    let db = db::open(&format!("mysql://root@127.0.0.1:{}/test", relay.port))
        .expect("open")
        .with_timeout(Duration::from_secs(2));
    assert_eq!(
        db.query_wait("SELECT 1 AS one", vec![]).expect("up")[0].int("one"),
        Some(1)
    );
    let port = relay.cut();
    // Down: an error that says so, worth retrying, no hang.
    let t = Instant::now();
    let e = db.query_wait("SELECT 1 AS one", vec![]).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(t.elapsed() < Duration::from_secs(3));
    // Back on the same port: within the back-off the pool connects again.
    let _relay = Relay::start(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match db.query_wait("SELECT 1 AS one", vec![]) {
            Ok(r) => {
                assert_eq!(r[0].int("one"), Some(1));
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "never came back: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The writer's look-up for a batch whose answer was lost
/// (`db::writer::landed`) runs on each backend against the tables it
/// writes (acc: times, a NULL; dialog: bytes), finds a batch that is
/// there, and not one that is not.
#[test]
fn a_lost_batch_is_looked_for_on_each_backend() {
    let dir = tempfile::tempdir().expect("dir");
    let lite = format!("sqlite://{}", dir.path().join("l.db").display());
    for url in [MYSQL, PG, lite.as_str()] {
        let db = db::open(url).expect("open");
        for kind in ["acc", "dialog"] {
            let t = Ident::new(&unique(&format!("cdrdup_{kind}"))).expect("name");
            schema::init_wait(&db, kind, &t).expect("init");
            let (cols, row): (&str, fn(i64) -> Vec<Value>) = match kind {
                "acc" => ("method, callid, time, duration, created", |i| {
                    let created = if i % 2 == 0 { Value::Time(1_700_000_000) } else { Value::Null };
                    vec![Value::text("INVITE"), Value::text(format!("c{i}")), Value::Time(1_700_000_100), Value::Int(i), created]
                }),
                _ => ("dlg_id, callid, from_uri, from_tag, to_uri, to_tag, caller_cseq, callee_cseq, caller_ping_cseq, callee_ping_cseq, caller_sock, callee_sock, state, start_time, timeout, vars", |i| {
                    let mut v: Vec<Value> = ["c", "sip:a@x", "f", "sip:b@x", "t", "1", "2"].map(Value::text).into();
                    v.extend([Value::Int(0), Value::Int(0), Value::text(""), Value::text(""), Value::Int(4), Value::Int(i), Value::Int(0)]);
                    v.insert(0, Value::Int(i));
                    v.push(Value::Bytes(format!("x#1#{i}|").into_bytes()));
                    v
                }),
            };
            let n = cols.split(", ").count();
            let one = format!(
                "INSERT INTO {t} ({cols}) VALUES ({})",
                vec!["?"; n].join(", ")
            );
            let group = &one[one.rfind(" VALUES ").expect("values") + 8..];
            let mut vals = row(1);
            vals.extend(row(2));
            db.exec_wait(&format!("{one}, {group}"), vals.clone())
                .expect("batch");
            let probe = |vals: &[Value]| {
                db::writer::landed::Probe::of(&one, vals)
                    .expect("an insert")
                    .landed(&db)
                    .expect("look-up")
            };
            assert!(probe(&vals), "{url} {kind}: the batch is there");
            assert!(probe(&row(1)), "{url} {kind}: a NULL matched by IS NULL");
            assert!(!probe(&row(3)), "{url} {kind}: not written");
            let mut twice = row(2);
            twice.extend(row(2));
            assert!(
                !probe(&twice),
                "{url} {kind}: two equal rows wanted, one there"
            );
            db.exec_wait(&format!("DROP TABLE {t}"), vec![])
                .expect("drop");
            db.exec_wait(
                "DELETE FROM version WHERE table_name = ?",
                vec![Value::text(t.as_str())],
            )
            .expect("clean");
        }
    }
}
