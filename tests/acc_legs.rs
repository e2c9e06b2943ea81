//! acc's per-leg fields (OpenSIPS 3.4 acc `leg_fields`, `acc_new_leg`,
//! `$acc_leg`; acc.c writes one row per leg): a call that fails over from
//! a busy callee to one that answers is one CDR of two legs, two rows in
//! MariaDB's `acc` table and one log line with both legs.

mod common;

use common::mariadb::TestDb;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn a_failed_over_call_is_one_cdr_row_per_leg_with_its_leg_fields() {
    let port = free_port();
    let db = TestDb::new(&format!("lunasip_acc_legs_{port}"));
    db.sql("ALTER TABLE acc ADD callee_uri CHAR(64) DEFAULT '' NOT NULL");
    db.sql("ALTER TABLE acc ADD caller_id CHAR(64) DEFAULT '' NOT NULL");
    let busy = uas("uas_busy.xml", "u1");
    let good = uas("uas.xml", "u1");
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    acc = {{
      db_url = "{url}",
      extra_fields = "db: caller->caller_id",
      leg_fields = {{ "db: dst->callee_uri", "log: dst->Leg" }},
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
    sip.acc.do_accounting("db|log", "cdr")
    sip.pv.set("$acc_extra(caller)", sip.pv.fU)
    sip.rr.record_route()
    sip.tm.t_on_failure("next")
  end
  sip.pv.du = "sip:127.0.0.1:{busy}"
  sip.pv.set("$acc_leg(dst)", sip.pv.du)
  sip.tm.t_relay()
end

function failure_route.next()
  sip.acc.acc_new_leg()
  sip.pv.du = "sip:127.0.0.1:{good}"
  sip.pv.set("$acc_leg(dst)", sip.pv.du)
  sip.xlog("L_INFO", "legs: first=$(acc_leg(dst)[0]) last=$acc_leg(dst) back=$(acc_leg(dst)[-2])\n")
  sip.tm.t_relay()
end
"#,
        url = db.url,
        busy = busy.port,
        good = good.port,
    );
    let proxy = Proxy::start(&script);
    let run = uac("uac_pause.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(run.successful, 1, "{}", run.errors);
    assert_eq!(busy.counts(1).1, 0, "{}", busy.errors());
    let q = "SELECT callee_uri, caller_id, method, sip_code, duration, callid FROM acc ORDER BY id";
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut rows = db.sql(q);
    while rows.lines().count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        rows = db.sql(q);
    }
    let rows: Vec<Vec<String>> = rows
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 2, "one row per leg: {rows:?}");
    assert_eq!(
        rows[0][0],
        format!("sip:127.0.0.1:{}", busy.port),
        "{rows:?}"
    );
    assert_eq!(
        rows[1][0],
        format!("sip:127.0.0.1:{}", good.port),
        "{rows:?}"
    );
    // The core and extra columns repeat in each leg's row.
    for r in &rows {
        assert_eq!(&r[1..4], ["caller", "INVITE", "200"], "{rows:?}");
        let d: i64 = r[4].parse().expect("duration");
        assert!((3..=4).contains(&d), "a 3 s pause: {rows:?}");
    }
    assert_eq!(rows[0][5], rows[1][5], "one call: {rows:?}");
    let log = proxy.stop();
    let legs = format!(
        "legs: first=sip:127.0.0.1:{b} last=sip:127.0.0.1:{g} back=sip:127.0.0.1:{b}",
        b = busy.port,
        g = good.port
    );
    assert!(log.contains(&legs), "{log}");
    // The log backend lists every leg in the one line.
    let both = format!(
        ";Leg=sip:127.0.0.1:{};Leg=sip:127.0.0.1:{}",
        busy.port, good.port
    );
    let line = log
        .lines()
        .find(|l| l.contains("ACC: call ended:"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.trim_end().ends_with(&both), "{line}");
}
