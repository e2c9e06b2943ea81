//! Accounting end to end: SIPp calls through the built binary with
//! `create_dialog` + `do_accounting`, CDRs read back from MariaDB (OpenSIPS
//! 3.4's `acc` and `missed_calls` tables made by `lunasip db init`) and
//! E_ACC_CDR received by a UDP subscriber.

mod common;

use common::ds::mi;
use common::*;
use std::process::Command;
use std::time::Duration;

fn sql(db: &str, q: &str) -> String {
    let out = Command::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "-N", "-B", db, "-e", q])
        .output()
        .expect("mariadb");
    assert!(
        out.status.success(),
        "{q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_cdr_row_with_its_duration_a_missed_call_row_and_e_acc_cdr() {
    let mi_port = free_port();
    let db = format!("lunasip_acc_{mi_port}");
    sql(
        "test",
        &format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}"),
    );
    let url = format!("mysql://root@127.0.0.1:3306/{db}");
    let out = Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["db", "init", &url])
        .output()
        .expect("db init");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("table acc ready"),
        "{text}"
    );
    assert!(text.contains("table missed_calls ready"), "{text}");
    let callee = uas("uas.xml", "u1");
    let busy = uas("uas_busy.xml", "u1");
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port} }},
    mi_fifo = false,
    acc = {{ db_url = "{url}" }},
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
    std::thread::sleep(Duration::from_millis(500));
    let row = sql(&db, "SELECT method, sip_code, duration, setuptime, from_tag <> '', to_tag <> '', created IS NOT NULL FROM acc");
    let f: Vec<&str> = row.split('\t').collect();
    assert_eq!(f.len(), 7, "one CDR row: {row}");
    assert_eq!((f[0], f[1]), ("INVITE", "200"), "{row}");
    let d: i64 = f[2].parse().expect("duration");
    assert!((3..=4).contains(&d), "{row}");
    assert_eq!(&f[4..], ["1", "1", "1"], "{row}");
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
    let missed = sql(&db, "SELECT method, sip_code FROM missed_calls");
    assert_eq!(missed, "INVITE\t486", "{missed}");
    assert_eq!(sql(&db, "SELECT COUNT(*) FROM acc"), "1");
    let log = proxy.stop();
    assert!(log.contains("ACC: call ended: created="), "{log}");
    sql("test", &format!("DROP DATABASE {db}"));
}
