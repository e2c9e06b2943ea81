//! acc's marks per backend, `drop_accounting` and the dialog's context
//! (OpenSIPS 3.4 modules/acc/acc_logic.h `acc_bitmask_set`/`_reset`,
//! acc_logic.c `w_drop_acc`, `w_load_ctx_from_dlg`): SIPp calls through
//! the built binary, rows read back from MariaDB and the proxy's log.

mod common;

use common::mariadb::TestDb;
use common::*;
use std::time::Duration;

fn script(db: &TestDb, good: u16, busy: u16) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{
    mi_fifo = false,
    mi_http = false,
    acc = {{ db_url = "{url}", extra_fields = {{ "db: caller->caller_id" }} }},
  }},
}}

function route.main()
  if sip.has_totag() then
    if sip.rr.loose_route() then
      sip.tm.t_relay()
    end
    sip.exit()
  end
  if sip.is_method("OPTIONS") then
    -- OpenSIPS's pairing: another dialog made current, then its
    -- accounting context loaded into this route.
    local l = sip.dialog.load_dialog_ctx("$shv(last)")
    local _, a = sip.acc.acc_load_ctx_from_dlg()
    if a == 1 then sip.pv.set("$acc_extra(caller)", "set-by-options") end
    local _, b = sip.acc.acc_load_ctx_from_dlg()
    local _, c = sip.acc.acc_unload_ctx_from_dlg()
    local _, d = sip.acc.acc_unload_ctx_from_dlg()
    sip.dialog.unload_dialog_ctx()
    sip.sl.sl_send_reply(200, "dlg=" .. tostring(l) .. " load=" .. a .. " nested=" .. b .. " unload=" .. c .. " again=" .. d)
    sip.exit()
  end
  local _, none = sip.acc.drop_accounting()
  sip.xlog("L_ERR", "drop before do_accounting=" .. none .. " ci=$ci")
  local cid = sip.pv.ci
  if cid:find("perbackend") then
    -- db accounts answers only; missed calls go to the log only
    sip.acc.do_accounting("db")
    sip.acc.do_accounting("log", "missed")
  else
    sip.dialog.create_dialog()
    sip.acc.do_accounting("db", "cdr|missed")
    sip.pv.set("$acc_extra(caller)", "set-by-invite")
    sip.pv.set("$shv(last)", cid)
    if cid:find("dropped") then
      sip.acc.drop_accounting("db", "missed")
    end
  end
  sip.rr.record_route()
  if cid:find("busy") then
    sip.pv.du = "sip:127.0.0.1:{busy}"
  else
    sip.pv.du = "sip:127.0.0.1:{good}"
  end
  sip.tm.t_relay()
end
"#,
        url = db.url,
    )
}

fn call(port: u16, xml: &str, cid: &str) {
    let _ = uac(
        xml,
        port,
        "u1",
        1,
        1,
        &["-cid_str", &format!("{cid}-%u-%p@%s")],
    );
}

/// An OPTIONS to the proxy (outside any dialog); the whole answer.
fn options(port: u16) -> String {
    let msg = format!(
        "OPTIONS sip:ask@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKask{n}\r\n\
         From: <sip:caller@127.0.0.1>;tag=ask\r\n\
         To: <sip:ask@127.0.0.1>\r\n\
         Call-ID: ask-{n}@test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        n = free_port(),
    );
    udp_exchange(&format!("127.0.0.1:{port}"), &msg, Duration::from_secs(3)).unwrap_or_default()
}

fn count(db: &TestDb, q: &str) -> String {
    db.sql(q)
}

#[test]
fn marks_per_backend_drop_accounting_and_the_dialogs_context() {
    let db = TestDb::new(&format!("lunasip_accm_{}", free_port()));
    db.sql("ALTER TABLE acc ADD caller_id CHAR(64) DEFAULT '' NOT NULL");
    db.sql("ALTER TABLE missed_calls ADD caller_id CHAR(64) DEFAULT '' NOT NULL");
    let good = uas("uas.xml", "u1");
    let busy = uas("uas_busy.xml", "u1");
    let proxy = Proxy::start(&script(&db, good.port, busy.port));

    // do_accounting("db") + do_accounting("log", "missed"): a refused call
    // is a missed call in the log, and nowhere in the database.
    call(proxy.port, "uac.xml", "perbackend-busy");
    // An answered one is an acc row (db's plain accounting).
    call(proxy.port, "uac.xml", "perbackend-ok");
    // cdr|missed on db: a refused call is a missed_calls row...
    call(proxy.port, "uac.xml", "cdr-busy");
    // ...unless drop_accounting("db", "missed") took the flag back.
    call(proxy.port, "uac.xml", "cdr-dropped-busy");
    // An answered call (3 s): an OPTIONS meanwhile sets an extra value
    // through the dialog's context, and the CDR carries it.
    let port = proxy.port;
    let caller = std::thread::spawn(move || call(port, "uac_pause.xml", "cdr-ok"));
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut answer = String::new();
    while !answer.contains("load=1") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        answer = options(port);
    }
    assert_eq!(
        answer.lines().next().unwrap_or_default(),
        "SIP/2.0 200 dlg=true load=1 nested=-1 unload=1 again=-1",
        "{answer}\n{}",
        proxy.log_text()
    );
    caller.join().expect("caller");

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(&db, "SELECT COUNT(*) FROM acc") != "2" {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            db.sql("SELECT callid FROM acc")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let log = proxy.stop();
    let missed_log: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ACC: call missed"))
        .collect();
    assert_eq!(
        missed_log.len(),
        1,
        "only log has missed for perbackend: {log}"
    );
    assert!(missed_log[0].contains("code=486"), "{log}");
    // log's mark is plain accounting and missed (acc_bitmask_set): the
    // answered perbackend call is in the log too; the cdr calls are not.
    let answered: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ACC: transaction answered"))
        .collect();
    assert_eq!(answered.len(), 1, "{log}");
    assert!(answered[0].contains("call_id=perbackend-ok-"), "{log}");
    assert!(log.contains("drop before do_accounting=-1"), "{log}");
    let missed = db.sql("SELECT callid, sip_code, caller_id FROM missed_calls");
    assert!(
        missed.starts_with("cdr-busy-") && missed.ends_with("\t486\tset-by-invite"),
        "one missed row: {missed}"
    );
    assert_eq!(missed.lines().count(), 1, "{missed}");
    let acc = db.sql("SELECT callid, sip_code, duration > 0, caller_id FROM acc ORDER BY callid");
    let rows: Vec<&str> = acc.lines().collect();
    assert_eq!(rows.len(), 2, "{acc}");
    assert!(
        rows[0].starts_with("cdr-ok-") && rows[0].ends_with("\t200\t1\tset-by-options"),
        "the CDR: {acc}"
    );
    assert!(
        rows[1].starts_with("perbackend-ok-") && rows[1].trim_end().ends_with("\t200\t0"),
        "db's plain row: {acc}"
    );
}
