//! acc's `detect_direction`, `early_media` and `report_cancels` (OpenSIPS
//! 3.4 acc_mod.c / acc_logic.c / acc.c), with SIPp as caller and callee and
//! the rows read back from MariaDB.

mod common;

use common::mariadb::TestDb;
use common::*;
use std::time::Duration;

/// A stateful proxy accounting every initial INVITE (answered and failed
/// ones), every in-dialog request, and CANCELs, into `db`'s acc table.
fn script(db: &TestDb, callee: u16, params: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  modules = {{
    mi_http = false,
    mi_fifo = false,
    acc = {{ db_url = "{url}", {params} }},
  }},
}}

function route.main()
  if sip.has_totag() then
    if sip.rr.loose_route() then
      sip.acc.do_accounting("db")
      sip.tm.t_relay()
    elseif sip.tm.t_check_trans() then
      sip.tm.t_relay()
    end
    sip.exit()
  end
  if sip.is_method("CANCEL") then
    sip.acc.do_accounting("db")
    if sip.tm.t_check_trans() then sip.tm.t_relay() end
    sip.exit()
  end
  sip.acc.do_accounting("db", "failed")
  sip.rr.record_route()
  sip.pv.du = "sip:127.0.0.1:{callee}"
  sip.tm.t_relay()
end
"#,
        url = db.url,
    )
}

/// The acc rows once `n` are there: (method, from_tag, to_tag, sip_code).
fn rows(db: &TestDb, n: usize) -> Vec<Vec<String>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = db.sql("SELECT method, from_tag, to_tag, sip_code FROM acc ORDER BY id");
        let rows: Vec<Vec<String>> = out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        if rows.len() >= n || std::time::Instant::now() > deadline {
            // Nothing more is coming (a row too many would show here).
            std::thread::sleep(Duration::from_millis(500));
            let again = db.sql("SELECT COUNT(*) FROM acc");
            assert_eq!(again, rows.len().to_string(), "{rows:?}");
            return rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn one_call(db: &TestDb, params: &str, uac_xml: &str, uas_xml: &str, n: usize) -> Vec<Vec<String>> {
    let callee = uas(uas_xml, "u1");
    let proxy = Proxy::start(&script(db, callee.port, params));
    let run = uac(uac_xml, proxy.port, "u1", 1, 1, &[]);
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    let r = rows(db, n);
    drop(proxy);
    r
}

/// The callee hangs up: its BYE carries the callee's tag in From. With
/// `detect_direction` the BYE's row has the caller's tag as from_tag, as
/// the INVITE's row does; without it, the tags are as the BYE wrote them.
#[test]
fn detect_direction_swaps_the_tags_of_an_upstream_bye() {
    for (params, swapped) in [("", false), ("detect_direction = 1", true)] {
        let db = TestDb::new(&format!(
            "lunasip_accdir{}_{}",
            u8::from(swapped),
            std::process::id()
        ));
        let r = one_call(
            &db,
            params,
            "uac_callee_hangs_up.xml",
            "uas_hangs_up.xml",
            2,
        );
        let (invite, bye) = (&r[0], &r[1]);
        assert_eq!(
            (invite[0].as_str(), bye[0].as_str()),
            ("INVITE", "BYE"),
            "{r:?}"
        );
        assert!(!invite[1].is_empty() && !invite[2].is_empty(), "{r:?}");
        if swapped {
            assert_eq!((&bye[1], &bye[2]), (&invite[1], &invite[2]), "{r:?}");
        } else {
            assert_eq!((&bye[1], &bye[2]), (&invite[2], &invite[1]), "{r:?}");
        }
    }
}

/// A 183 with SDP is accounted with `early_media`, besides the 200; a
/// 183 is not accounted without it.
#[test]
fn early_media_accounts_a_183_with_sdp() {
    let db = TestDb::new(&format!("lunasip_accem_0_{}", std::process::id()));
    let r = one_call(&db, "", "uac_early_media.xml", "uas_early_media.xml", 2);
    let codes: Vec<&str> = r.iter().map(|x| x[3].as_str()).collect();
    assert_eq!(codes, ["200", "200"], "INVITE and BYE only: {r:?}");
    let db = TestDb::new(&format!("lunasip_accem_1_{}", std::process::id()));
    let r = one_call(
        &db,
        "early_media = true",
        "uac_early_media.xml",
        "uas_early_media.xml",
        3,
    );
    let got: Vec<(&str, &str)> = r.iter().map(|x| (x[0].as_str(), x[3].as_str())).collect();
    assert_eq!(
        got,
        [("INVITE", "183"), ("INVITE", "200"), ("BYE", "200")],
        "{r:?}"
    );
}

/// `do_accounting` on a CANCEL is refused unless `report_cancels`: the
/// INVITE's 487 is accounted either way (flag "failed").
#[test]
fn report_cancels_decides_whether_a_cancel_is_accounted() {
    let db = TestDb::new(&format!("lunasip_acccan_0_{}", std::process::id()));
    let r = one_call(&db, "", "uac_cancel.xml", "uas_ring_cancel.xml", 1);
    let got: Vec<(&str, &str)> = r.iter().map(|x| (x[0].as_str(), x[3].as_str())).collect();
    assert_eq!(got, [("INVITE", "487")], "{r:?}");
    let db = TestDb::new(&format!("lunasip_acccan_1_{}", std::process::id()));
    let r = one_call(
        &db,
        "report_cancels = 1",
        "uac_cancel.xml",
        "uas_ring_cancel.xml",
        2,
    );
    let mut got: Vec<(&str, &str)> = r.iter().map(|x| (x[0].as_str(), x[3].as_str())).collect();
    got.sort();
    assert_eq!(got, [("CANCEL", "200"), ("INVITE", "487")], "{r:?}");
}
