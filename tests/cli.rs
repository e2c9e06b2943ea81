//! The command line: version, check, and a bad script stopping `run`
//! before any socket is bound.

mod common;

use std::process::Command;

fn lunasip(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(args)
        .output()
        .expect("run lunasip");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_prints_the_version() {
    let (rc, out, _) = lunasip(&["version"]);
    assert_eq!(rc, 0);
    assert_eq!(out.trim(), format!("lunasip {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_accepts_the_default_script() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/lua/default.lua");
    let (rc, out, err) = lunasip(&["check", "-c", path]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn check_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.lua");
    std::fs::write(&path, "config = { listen = { \"udp:127.0.0.1:5999\" } }\nfunction route.main()\n  sip.tm.t_on_failure(\"nowhere\")\n  route.missing()\nend\n").unwrap();
    let p = path.to_str().unwrap();
    let (rc, _, err) = lunasip(&["check", "-c", p]);
    assert_ne!(rc, 0);
    assert!(
        err.contains(&format!(
            "{p}:3: t_on_failure(\"nowhere\") names failure_route.nowhere, which is not defined"
        )),
        "{err}"
    );
    std::fs::write(&path, "config = { listen = { \"udp:127.0.0.1:5999\" } }\nfunction route.main()\n\n  route.missing()\nend\n").unwrap();
    let (rc, _, err) = lunasip(&["check", "-c", p]);
    assert_ne!(rc, 0);
    assert!(
        err.contains(&format!("{p}:4: route.missing is called but not defined")),
        "{err}"
    );
}

#[test]
fn run_with_a_bad_script_exits_before_binding() {
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.lua");
    std::fs::write(&path, format!("config = {{ listen = {{ \"udp:127.0.0.1:{port}\" }} }}\nfunction route.main()\n  if then\nend\n")).unwrap();
    let p = path.to_str().unwrap();
    let (rc, _, err) = lunasip(&["run", "-c", p]);
    assert_ne!(rc, 0);
    assert!(err.contains(&format!("{p}:3:")), "{err}");
    // Nothing was bound: the port is still free.
    std::net::UdpSocket::bind(("127.0.0.1", port)).expect("port left free");
}

#[test]
fn run_reports_a_port_it_cannot_bind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.lua");
    std::fs::write(
        &path,
        format!(
            "config = {{ listen = {{ \"tcp:127.0.0.1:{port}\" }} }}\nfunction route.main() end\n"
        ),
    )
    .unwrap();
    let (rc, _, err) = lunasip(&["run", "-c", path.to_str().unwrap()]);
    assert_ne!(rc, 0);
    assert!(
        err.contains(&format!("cannot listen on tcp:127.0.0.1:{port}")),
        "{err}"
    );
}

/// A script whose dispatcher reads `db_url`.
fn db_script(dir: &tempfile::TempDir, url: &str, table: &str) -> String {
    let path = dir.path().join("db.lua");
    std::fs::write(
        &path,
        format!(
            "config = {{\n  listen = {{ \"udp:127.0.0.1:5999\" }},\n  modules = {{\n    dispatcher = {{ db_url = \"{url}\", table_name = \"{table}\" }},\n  }},\n}}\nfunction route.main() end\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn check_opens_no_database_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    // A port that accepts connections: nobody may knock.
    let spy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    spy.set_nonblocking(true).unwrap();
    let port = spy.local_addr().unwrap().port();
    let p = db_script(
        &dir,
        &format!("mysql://root@127.0.0.1:{port}/test"),
        "dispatcher",
    );
    let t = std::time::Instant::now();
    let (rc, out, err) = lunasip(&["check", "-c", &p]);
    assert_eq!(rc, 0, "{err}");
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    assert!(out.contains(&format!("{p}: ok")), "{out}");
    assert!(out.contains("not opened (--connect loads it)"), "{out}");
    assert_eq!(
        spy.accept().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::WouldBlock),
        "lunasip check connected to the database"
    );

    // A closed port: still fine without --connect, a named error with it.
    let p = db_script(&dir, "mysql://root@127.0.0.1:1/test", "dispatcher");
    let (rc, _, err) = lunasip(&["check", "-c", &p]);
    assert_eq!(rc, 0, "{err}");
    let (rc, out, err) = lunasip(&["check", "--connect", "-c", &p]);
    assert_ne!(rc, 0, "{out}");
    assert!(
        err.contains(&format!(
            "{p}:4: dispatcher: partition default: database mysql://root@127.0.0.1:1/test:"
        )) && err.contains("refused"),
        "{err}"
    );
}

/// `--connect` against the test MariaDB (127.0.0.1:3306, root, db `test`):
/// the rows load and are counted.
#[test]
fn check_connect_loads_the_rows() {
    let table = format!("lunasip_cli_{}", std::process::id());
    let sql = |stmt: &str| {
        let out = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "test", "-e"])
            .arg(stmt)
            .output()
            .expect("mariadb client");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sql(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id INT, setid INT, destination VARCHAR(192)); \
         INSERT INTO {table} VALUES (1, 1, 'sip:127.0.0.1:5070'), (2, 2, 'sip:127.0.0.1:5071'), (3, 2, 'nonsense')"
    ));
    let dir = tempfile::tempdir().unwrap();
    let p = db_script(&dir, "mysql://root@127.0.0.1:3306/test", &table);
    let (rc, out, err) = lunasip(&["check", "--connect", "-c", &p]);
    sql(&format!("DROP TABLE {table}"));
    assert_eq!(rc, 0, "{err}");
    assert!(
        out.contains("partition default: 2 destinations in 2 sets, 1 row skipped"),
        "{out}"
    );
    assert!(
        err.contains("warning:") && err.contains("row id 3"),
        "{err}"
    );
}

/// `lunasip run -l proto:ip:port` (OpenSIPS's `-l`): the listeners given
/// replace the script's `config.listen`.
#[test]
fn run_listen_option_replaces_config_listen() {
    use common::{free_port, udp_exchange, Proxy};
    let other = free_port();
    let script = r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1,
  modules = { mi_http = false, mi_fifo = false } }
function route.main() sip.sl.sl_send_reply(200, "Here $Ri:$Rp") end
"#;
    let listen = format!("udp:127.0.0.1:{other}");
    let p = Proxy::try_start_args(script, free_port(), &["-l", &listen])
        .unwrap_or_else(|log| panic!("did not start:\n{log}"));
    let ready = p.log_text();
    assert!(
        ready.contains(&format!("listening on udp:127.0.0.1:{other}, script")),
        "{ready}"
    );
    let msg =
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKcli{LPORT}\r\n\
               From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: cli-l\r\n\
               CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let r = udp_exchange(
        &format!("127.0.0.1:{other}"),
        msg,
        std::time::Duration::from_secs(3),
    )
    .unwrap_or_default();
    assert!(
        r.starts_with(&format!("SIP/2.0 200 Here 127.0.0.1:{other}\r\n")),
        "{r}"
    );
    let bad = Proxy::try_start_args(script, free_port(), &["-l", "udp:nohost:5060"]);
    let log = bad.err().unwrap_or_default();
    assert!(
        log.contains("-l: bad listen address 'udp:nohost:5060'"),
        "{log}"
    );
}

/// OpenSIPS 3's `udp_workers` / `tcp_workers`: lunasip's workers serve
/// both transports, so the larger count is used; 0 is refused.
#[test]
fn udp_and_tcp_workers_set_the_worker_count() {
    use common::{free_port, Proxy};
    let script = r#"config = { listen = { "udp:127.0.0.1:{PORT}", "tcp:127.0.0.1:{PORT}" },
  udp_workers = 2, tcp_workers = 3, modules = { mi_http = false, mi_fifo = false } }
function route.main() sip.sl.sl_send_reply(200, "OK") end
"#;
    let p = Proxy::try_start_args(script, free_port(), &[])
        .unwrap_or_else(|log| panic!("did not start:\n{log}"));
    assert!(
        p.log_text().contains("ready: 3 workers"),
        "{}",
        p.log_text()
    );
    drop(p);
    let bad = Proxy::try_start_args(
        &script.replace("udp_workers = 2", "udp_workers = 0"),
        free_port(),
        &[],
    );
    let log = bad.err().unwrap_or_default();
    assert!(
        log.contains("config.udp_workers must be between 1 and 256"),
        "{log}"
    );
}
