//! Dialogs in OpenSIPS 3.4's `dialog` table (db_mode 1) on MariaDB: an
//! answered call survives a restart of the proxy, and its BYE, taken by
//! the new process, ends it and writes its CDR.

mod common;

use common::ds::mi;
use common::mariadb::TestDb;
use common::*;
use std::time::Duration;

#[test]
fn an_answered_call_survives_a_restart_and_its_bye_is_accounted() {
    let mi_port = free_port();
    let db = TestDb::new(&format!("lunasip_dlg_{mi_port}"));
    let url = db.url.clone();
    let text = db.init_output.clone();
    assert!(text.contains("table dialog ready"), "{text}");
    assert!(text.contains("version of dialog set to 12"), "{text}");
    let callee = uas("uas.xml", "u1");
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    dialog = {{ db_mode = 1, db_url = "{url}", profiles_with_value = "caller" }},
    acc = {{ db_url = "{url}" }},
  }},
}}

function route.main()
  if sip.has_totag() then
    if sip.rr.loose_route() then
      if not sip.dialog.validate_dialog() and not sip.is_method("ACK") then
        sip.sl.sl_send_reply(481, "Call/Transaction Does Not Exist")
        sip.exit()
      end
      sip.tm.t_relay()
    end
    sip.exit()
  end
  if sip.is_method("INVITE") then
    sip.dialog.create_dialog()
    sip.dialog.set_dlg_profile("caller", "$fU")
    sip.dialog.store_dlg_value("who", "$fU")
    sip.acc.do_accounting("db", "cdr")
    sip.rr.record_route()
  end
  sip.pv.du = "sip:127.0.0.1:{uas}"
  sip.tm.t_relay()
end
"#,
        uas = callee.port
    );
    let first = Proxy::start(&script);
    let port = first.port;
    // A bad row must not stop the start: logged with its id, skipped.
    db.sql(
        "INSERT INTO dialog (dlg_id, callid, from_uri, from_tag, to_uri, to_tag, caller_cseq, callee_cseq, caller_ping_cseq, callee_ping_cseq, caller_sock, callee_sock, state, start_time, timeout, vars) VALUES (77, 'junk', 'sip:a@b', 'x', 'sip:c@d', 'y', 'one', '1', 0, 0, '', '', 4, 1, 1, 'a#9')",
    );
    let caller = std::thread::spawn(move || uac("uac_pause.xml", port, "u1", 1, 1, &[]));
    std::thread::sleep(Duration::from_millis(1500));
    let rows = db.sql("SELECT state, callid <> '', vars FROM dialog WHERE dlg_id <> 77");
    assert!(
        rows.starts_with("4\t1\twho#1#caller|"),
        "the answered dialog's row: {rows}"
    );
    drop(first);
    let second = Proxy::try_start_on(&script, port).expect("restart on the same port");
    let (ok, list) = mi(mi_port, &["dlg_list_ctx"]);
    assert!(ok, "{list}");
    let v: serde_json::Value = serde_json::from_str(list.trim()).expect("json");
    let dlgs = v["Dialogs"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        dlgs.len(),
        1,
        "read back after the restart, the bad row left out: {list}"
    );
    assert_eq!(dlgs[0]["state"], 4, "{list}");
    let (ok, size) = mi(mi_port, &["profile_get_size", "caller", "caller"]);
    let size: serde_json::Value = serde_json::from_str(size.trim()).expect("json");
    assert!(
        ok && size["Profile"]["count"] == 1,
        "profiles restored: {size}"
    );
    let run = caller.join().expect("sipp");
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM dialog WHERE dlg_id <> 77"),
        "0",
        "the ended dialog's row is gone"
    );
    let cdr = db.sql("SELECT method, sip_code, duration FROM acc");
    let f: Vec<&str> = cdr.split('\t').collect();
    assert_eq!(f.len(), 3, "one CDR: {cdr}");
    assert_eq!((f[0], f[1]), ("INVITE", "200"), "{cdr}");
    let d: i64 = f[2].parse().expect("duration");
    assert!(
        (3..=7).contains(&d),
        "the call lasted its pause across the restart: {cdr}"
    );
    let log = second.stop();
    assert!(log.contains("row 77 of table dialog skipped"), "{log}");
}
