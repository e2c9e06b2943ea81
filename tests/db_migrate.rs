//! `lunasip db migrate`: tables created as older OpenSIPS releases made
//! them, in a database of the test's own, are brought to OpenSIPS 3.4's
//! versions with their rows kept; a step that is not mechanical (dialog
//! rows with script flags as bit masks, a version with no known step) is
//! refused with the reason and leaves the table as it was, until the
//! obstacle is gone. On MariaDB from tests/fixtures/opensips-old-mysql.sql
//! (OpenSIPS's scripts/mysql history); on MariaDB, PostgreSQL and SQLite
//! alike from whole databases as OpenSIPS 2.3 and 2.4 created them
//! (tests/fixtures/opensips-BRANCH-DIALECT.sql, opensips-schema.sh), after
//! which lunasip registers and calls on the migrated `location`.

mod common;

use common::mariadb::sql;
use common::olddb::{migrate, Backend, OldDb};
use common::{uac, uas, Proxy};
use std::process::Command;

struct Db(String);

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["-uroot", "-h127.0.0.1", "test", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS {}", self.0))
            .output();
    }
}

/// The version table, sorted by name (bytewise).
fn versions(db: &str) -> String {
    let mut v: Vec<String> = sql(db, "SELECT table_name, table_version FROM version")
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v.join("\n")
}

fn column_type(db: &str, table: &str, col: &str) -> String {
    sql(
        db,
        &format!(
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' \
             AND TABLE_NAME = '{table}' AND COLUMN_NAME = '{col}'"
        ),
    )
}

#[test]
fn old_opensips_tables_are_brought_to_3_4() {
    let name = format!("lunasip_mig_{}", std::process::id());
    sql(
        "test",
        &format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"),
    );
    let _db = Db(name.clone());
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/opensips-old-mysql.sql"
    ))
    .unwrap();
    sql(&name, &fixture);
    // Rows as OpenSIPS left them; a table of another module; a second
    // location table with 2.2's UNIQUE key; a uri table older than any
    // known step.
    sql(
        &name,
        "INSERT INTO location (username, contact, expires, callid) VALUES \
         ('alice', 'sip:alice@192.0.2.1:5060', '2030-01-02 03:04:05', 'c1'); \
         INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES ('bob', 'example.com', 'pw', 'h', 'hb'); \
         INSERT INTO dispatcher (setid, destination) VALUES (1, 'sip:192.0.2.5'); \
         INSERT INTO dialog (dlg_id, callid, from_uri, from_tag, to_uri, to_tag, caller_cseq, callee_cseq, \
           caller_ping_cseq, callee_ping_cseq, caller_sock, callee_sock, state, start_time, timeout, script_flags) \
           VALUES (1, 'd1', 'sip:a@x', 'ft', 'sip:b@x', 'tt', '1', '1', 1, 1, 'udp:127.0.0.1:5060', 'udp:127.0.0.1:5060', 4, 1, 2, 5); \
         INSERT INTO version VALUES ('dr_gateways', 6); \
         CREATE TABLE loc_b LIKE location; INSERT INTO version VALUES ('loc_b', 1011); \
         ALTER TABLE loc_b ADD CONSTRAINT account_contact_idx UNIQUE (username, domain, contact, callid); \
         UPDATE version SET table_version = 1 WHERE table_name = 'uri'",
    );
    let want_expires = sql(&name, "SELECT UNIX_TIMESTAMP('2030-01-02 03:04:05')");
    let url = format!("mysql://root@127.0.0.1:3306/{name}");

    // A dry run says what it would do and changes nothing.
    let (ok, out, err) = migrate(&url, &["--dry-run", "--kind", "loc_b=location"]);
    assert!(!ok, "{out}\n{err}");
    assert!(out.contains("table location: version 1011 → 1013 (1011→1012: kv_store added; 1012→1013: expires as Unix seconds"), "{out}");
    assert!(out.contains("[dry run]"), "{out}");
    assert_eq!(column_type(&name, "location", "expires"), "datetime");

    let (ok, out, err) = migrate(&url, &["--kind", "loc_b=location"]);
    assert!(!ok, "refused tables make the run fail:\n{out}\n{err}");
    for line in [
        "table location: version 1011 → 1013",
        "table loc_b: version 1011 → 1013",
        "table subscriber: version 7 → 8 (7→8: ha1_sha256 and ha1_sha512t256 added",
        "table dispatcher: version 8 → 9 (8→9: probe_mode added",
        "table acc: version 6 → 7 (6→7: ms_duration added)",
        "table missed_calls: version 5, nothing to do",
        "table dr_gateways: version 6, kind unknown",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    assert!(
        err.contains(
            "table dialog: not migrated: version 11 → 12: rows hold script_flags as bit masks"
        ),
        "{err}"
    );
    assert!(
        err.contains("table uri: not migrated: no mechanical step from uri version 1 to 2"),
        "{err}"
    );
    assert!(err.contains("2 table(s) not migrated"), "{err}");
    assert_eq!(
        versions(&name),
        "acc\t7\ndialog\t11\ndispatcher\t9\ndr_gateways\t6\nloc_b\t1013\nlocation\t1013\nmissed_calls\t5\nsubscriber\t8\nuri\t1"
    );
    // Rows kept, converted where the type changed.
    assert_eq!(
        sql(
            &name,
            "SELECT username, expires, contact, kv_store FROM location"
        ),
        format!("alice\t{want_expires}\tsip:alice@192.0.2.1:5060\tNULL")
    );
    assert_eq!(
        column_type(&name, "location", "expires"),
        "int(10) unsigned"
    );
    assert_eq!(column_type(&name, "location", "contact"), "text");
    // loc_b has the UNIQUE key 2.2 made at 1011 until 24c685c175: gone.
    assert_eq!(
        sql(
            &name,
            &format!(
                "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{name}' \
                 AND TABLE_NAME = 'loc_b' AND INDEX_NAME = 'account_contact_idx'"
            )
        ),
        "0"
    );
    assert_eq!(column_type(&name, "loc_b", "contact"), "text");
    assert_eq!(
        sql(&name, "SELECT username, ha1, ha1b, CONCAT('[', ha1_sha256, '|', ha1_sha512t256, ']') FROM subscriber"),
        "bob\th\thb\t[|]"
    );
    assert_eq!(
        sql(
            &name,
            "SELECT destination, probe_mode, attrs IS NULL FROM dispatcher"
        ),
        "sip:192.0.2.5\t0\t0"
    );
    let nullable = sql(
        &name,
        &format!(
            "SELECT IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{name}' \
             AND TABLE_NAME = 'dispatcher' AND COLUMN_NAME IN ('attrs', 'description')"
        ),
    );
    // 3.4's table keeps them NOT NULL (3.5 relaxed them).
    assert_eq!(nullable, "NO\nNO");
    assert_eq!(column_type(&name, "acc", "ms_duration"), "int(11) unsigned");
    // The refused dialog table is untouched.
    assert_eq!(
        column_type(&name, "dialog", "script_flags"),
        "int(10) unsigned"
    );

    // Once the flagged dialog is gone, dialog migrates too; what is done
    // stays done.
    sql(
        &name,
        "DELETE FROM dialog; UPDATE version SET table_version = 2 WHERE table_name = 'uri'",
    );
    let (ok, out, err) = migrate(&url, &[]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("table dialog: version 11 → 12 (11→12: script_flags as flag names)"),
        "{out}"
    );
    assert!(
        out.contains("table location: version 1013, nothing to do"),
        "{out}"
    );
    assert!(
        out.contains("table loc_b: version 1013, kind unknown"),
        "{out}"
    );
    assert_eq!(column_type(&name, "dialog", "script_flags"), "char(255)");
    // lunasip's registrar reads and writes the migrated table (its
    // version check passes): a user registers, a call reaches them.
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    registrar = {{ min_expires = 1 }},
    usrloc = {{ db_mode = 3, db_url = "{url}" }},
  }},
}}

function route.main()
  if sip.is_method("REGISTER") then sip.registrar.save("location"); sip.exit() end
  if sip.has_totag() then sip.tm.t_relay(); sip.exit() end
  if not sip.registrar.lookup("location") then sip.sl.sl_send_reply(404, "Not Found"); sip.exit() end
  sip.tm.t_relay()
end
"#
    );
    let p = Proxy::start(&script);
    let callee = uas("uas.xml", "u1");
    let r = uac(
        "reg_register.xml",
        p.port,
        "u1",
        1,
        1,
        &[
            "-s",
            "bob",
            "-key",
            "contact_port",
            &callee.port.to_string(),
            "-key",
            "expires",
            "120",
        ],
    );
    assert_eq!(r.successful, 1, "{}\n{}", r.errors, p.log_text());
    let c = uac("uac.xml", p.port, "u1", 1, 1, &["-s", "bob"]);
    assert_eq!(c.successful, 1, "{}\n{}", c.errors, p.log_text());
    assert_eq!(callee.counts(1).0, 1, "{}", callee.errors());
    let e = sql(
        &name,
        "SELECT expires > UNIX_TIMESTAMP() FROM location WHERE username = 'bob'",
    );
    assert_eq!(e, "1");
}

/// What the first run (a flagged dialog, and on 2.2 a clusterer row,
/// holding their tables back) says of each table, per OpenSIPS branch.
fn first_run_lines(branch: &str) -> Vec<&'static str> {
    let old = matches!(branch, "1.11" | "2.1");
    let mut v = vec![
        match branch {
            "1.11" | "2.1" => "table location: version 1009 → 1013 (1009→1010: id renamed contact_id, BIGINT; 1010→1011: domain may be NULL, the UNIQUE (username, domain, contact, callid) key dropped; 1011→1012: kv_store added; 1012→1013: expires as Unix seconds",
            "2.2" | "2.3" => "table location: version 1011 → 1013 (1011→1012: kv_store added; 1012→1013: expires as Unix seconds",
            _ => "table location: version 1013, reshaped (1013: contact TEXT",
        },
        "table subscriber: version 7 → 8 (7→8: ha1_sha256 and ha1_sha512t256 added",
        match branch {
            "1.11" => "table dispatcher: version 6 → 9 (6→7: priority added; 7→8: weight CHAR(64); 8→9: probe_mode added)",
            "2.1" | "2.2" => "table dispatcher: version 7 → 9 (7→8: weight CHAR(64); 8→9: probe_mode added)",
            _ => "table dispatcher: version 8 → 9 (8→9: probe_mode added)",
        },
        match branch {
            "1.11" => "table domain: version 2 → 3 (2→3: attrs added)",
            _ => "table domain: version 3, nothing to do",
        },
        match branch {
            "1.11" => "table missed_calls: version 4 → 5 (4→5: setuptime, created added)",
            _ => "table missed_calls: version 5, nothing to do",
        },
        if old {
            "table acc: version 6 → 7 (6→7: ms_duration added)"
        } else {
            "table acc: version 7, nothing to do"
        },
        "table address: version 5, nothing to do",
        "table usr_preferences: version 3, nothing to do",
    ];
    match branch {
        "2.3" => v.push("table clusterer: version 2 → 4 (2→3: ls_seq_no and top_seq_no no longer read (kept); 3→4: flags added)"),
        "2.4" => v.push("table clusterer: version 4, nothing to do"),
        _ => {}
    }
    v
}

/// A whole database as OpenSIPS `branch` created it (1.11/2.1: location
/// 1009 with an `id` key and a UNIQUE key, MyISAM on MySQL, no SQLite
/// scripts before 2.2; 2.2/2.3: location 1011, its expires a DATETIME;
/// 2.4: location 1013 with a CHAR(255) contact), with rows, migrated on
/// `backend`: every table at 3.4's version with every column of 3.4's
/// table (compared with a database made from OpenSIPS 3.4's scripts),
/// rows kept, then lunasip registers a user and calls them on the
/// migrated `location` (usrloc db_mode 3, its version check passing).
fn old_database_is_brought_to_3_4(backend: Backend, branch: &str) {
    let db = OldDb::new(backend, branch);
    let expires_local = "2030-01-02 03:04:05";
    // OpenSIPS wrote DATETIMEs in its local time (db_ut.c db_time2str).
    let want_expires = jiff::tz::TimeZone::system()
        .to_timestamp(jiff::civil::date(2030, 1, 2).at(3, 4, 5, 0))
        .expect("local time")
        .as_second();
    let expires = match branch {
        "2.4" => want_expires.to_string(),
        _ => format!("'{expires_local}'"),
    };
    db.sql(&format!(
        "INSERT INTO location (username, contact, expires, callid) VALUES \
         ('alice', 'sip:alice@192.0.2.1:5060', {expires}, 'c1'); \
         INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES ('bob', 'example.com', 'pw', 'h', 'hb'); \
         INSERT INTO dispatcher (setid, destination, weight) VALUES (1, 'sip:192.0.2.5', 3); \
         INSERT INTO domain (domain) VALUES ('example.com'); \
         INSERT INTO acc (method, from_tag, to_tag, callid, sip_code, sip_reason, time) \
           VALUES ('INVITE', 'f1', 't1', 'a1', '200', 'OK', '2020-01-02 03:04:05'); \
         INSERT INTO missed_calls (method, from_tag, to_tag, callid, sip_code, sip_reason, time) \
           VALUES ('INVITE', 'f2', 't2', 'm1', '486', 'Busy', '2020-01-02 03:04:05'); \
         INSERT INTO dialog (dlg_id, callid, from_uri, from_tag, to_uri, to_tag, caller_cseq, callee_cseq, \
           caller_ping_cseq, callee_ping_cseq, caller_sock, callee_sock, state, start_time, timeout, script_flags) \
           VALUES (1, 'd1', 'sip:a@x', 'ft', 'sip:b@x', 'tt', '1', '1', 1, 1, 'udp:127.0.0.1:5060', 'udp:127.0.0.1:5060', 4, 1, 2, 5)"
    ));
    let clusterer = !matches!(branch, "1.11" | "2.1");
    match branch {
        "2.2" => db.sql("INSERT INTO clusterer (cluster_id, machine_id, url) VALUES (1, 1, 'bin:127.0.0.1:5566')"),
        "2.3" | "2.4" => db.sql("INSERT INTO clusterer (cluster_id, node_id, url) VALUES (1, 1, 'bin:127.0.0.1:5566')"),
        _ => String::new(),
    };
    let old_contact = db.col_type("location", "contact");
    assert!(!old_contact.contains("text"), "{old_contact}");

    // A dry run says what it would do and changes nothing.
    let (_, out, _) = migrate(&db.url, &["--dry-run"]);
    assert!(out.contains("[dry run]"), "{out}");
    assert_eq!(db.col_type("location", "contact"), old_contact);

    // The flagged dialog holds its table back; the others migrate.
    let (ok, out, err) = migrate(&db.url, &[]);
    assert!(!ok, "{out}\n{err}");
    for line in first_run_lines(branch) {
        assert!(out.contains(line), "{line}\n{out}\n{err}");
    }
    assert!(
        err.contains(
            "table dialog: not migrated: version 11 → 12: rows hold script_flags as bit masks"
        ),
        "{err}"
    );
    // Left as it was: no step of it ran.
    assert_eq!(db.col_type("dialog", "rt_on_answer"), "");
    let dialog_from = if branch == "1.11" { "9" } else { "10" };
    assert!(
        db.versions().contains(&format!("dialog\t{dialog_from}")),
        "{}",
        db.versions()
    );
    if branch == "2.2" {
        // 2.2's clusterer rows mean something else in 3.4: refused,
        // naming the versions, the table untouched.
        assert!(
            err.contains("table clusterer: not migrated: version 1 → 2: the table has rows and OpenSIPS 2.3 reworked the clusterer"),
            "{err}"
        );
        assert_eq!(db.col_type("clusterer", "node_id"), "");
        db.sql("DELETE FROM clusterer");
    }

    db.sql("DELETE FROM dialog");
    let (ok, out, err) = migrate(&db.url, &[]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!("table dialog: version {dialog_from} → 12 (")),
        "{out}"
    );
    assert!(out.contains("11→12: script_flags as flag names)"), "{out}");
    if branch == "2.2" {
        assert!(
            out.contains("table clusterer: version 1 → 4 (1→2: machine_id renamed node_id"),
            "{out}"
        );
    }
    assert!(
        out.contains("table location: version 1013, nothing to do"),
        "{out}"
    );

    // The versions and the columns are 3.4's.
    let want = OldDb::new(backend, "3.4");
    let mut want_versions = want.versions();
    if !clusterer {
        want_versions = want_versions.replace("clusterer\t4\n", "");
    }
    assert_eq!(db.versions(), want_versions);
    // Every table 3.4's scripts make, with its columns.
    for table in want_versions.lines().filter_map(|l| l.split('\t').next()) {
        let have = db.columns(table);
        let cols = want.columns(table);
        assert!(cols.len() > 3, "{table}: {cols:?}");
        for (col, ty) in cols {
            let got = have
                .iter()
                .find(|(c, _)| *c == col)
                .map(|(_, t)| t.as_str());
            // 1.11 and 2.1 made usr_preferences.username 128 characters
            // (2.2 64, same version): wider is kept.
            let wider = table == "usr_preferences" && col == "username";
            assert!(
                got == Some(ty.as_str()) || (wider && got.is_some()),
                "{branch} {backend:?}: {table}.{col} is {got:?}, 3.4 has {ty}"
            );
        }
    }

    // Rows kept, converted where the type changed.
    assert_eq!(
        db.sql("SELECT username, expires, contact FROM location"),
        format!("alice\t{want_expires}\tsip:alice@192.0.2.1:5060")
    );
    assert_eq!(
        db.sql(
            "SELECT username, ha1, ha1b, CASE WHEN ha1_sha256 = '' AND ha1_sha512t256 = '' \
             THEN 'empty' ELSE 'set' END FROM subscriber"
        ),
        "bob\th\thb\tempty"
    );
    assert_eq!(
        db.sql("SELECT destination, weight, probe_mode, priority FROM dispatcher"),
        "sip:192.0.2.5\t3\t0\t0"
    );
    assert_eq!(
        db.sql("SELECT domain, attrs IS NULL FROM domain"),
        match backend {
            Backend::Pg => "example.com\tt",
            _ => "example.com\t1",
        }
    );
    assert_eq!(db.sql("SELECT callid, ms_duration FROM acc"), "a1\t0");
    assert_eq!(
        db.sql("SELECT callid, sip_code, setuptime FROM missed_calls"),
        "m1\t486\t0"
    );
    if matches!(branch, "2.3" | "2.4") {
        assert_eq!(
            db.sql("SELECT node_id, url, flags IS NULL, priority FROM clusterer"),
            match backend {
                Backend::Pg => "1\tbin:127.0.0.1:5566\tt\t50",
                _ => "1\tbin:127.0.0.1:5566\t1\t50",
            }
        );
    }
    // A contact longer than 2.4's CHAR(255) fits now, and two bindings
    // alike but for their key (1.x's UNIQUE key forbade it) too.
    let long = format!("sip:carol@192.0.2.9;x={}", "a".repeat(300));
    db.sql(&format!(
        "INSERT INTO location (username, domain, contact, expires, callid) VALUES \
         ('carol', 'example.com', '{long}', 0, 'c2'), ('carol', 'example.com', '{long}', 0, 'c2')"
    ));
    assert_eq!(
        db.sql("SELECT contact FROM location WHERE username = 'carol'"),
        format!("{long}\n{long}")
    );
    // Nothing left to do.
    let (ok, out, err) = migrate(&db.url, &[]);
    assert!(ok && !out.contains('→'), "{out}\n{err}");
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    registrar = {{ min_expires = 1 }},
    usrloc = {{ db_mode = 3, db_url = "{url}" }},
  }},
}}

function route.main()
  if sip.is_method("REGISTER") then sip.registrar.save("location"); sip.exit() end
  if sip.has_totag() then sip.tm.t_relay(); sip.exit() end
  if not sip.registrar.lookup("location") then sip.sl.sl_send_reply(404, "Not Found"); sip.exit() end
  sip.tm.t_relay()
end
"#,
        url = db.url
    );
    let p = Proxy::start(&script);
    let callee = uas("uas.xml", "u1");
    let port = callee.port.to_string();
    let r = uac(
        "reg_register.xml",
        p.port,
        "u1",
        1,
        1,
        &[
            "-s",
            "dave",
            "-key",
            "contact_port",
            &port,
            "-key",
            "expires",
            "120",
        ],
    );
    assert_eq!(r.successful, 1, "{}\n{}", r.errors, p.log_text());
    let c = uac("uac.xml", p.port, "u1", 1, 1, &["-s", "dave"]);
    assert_eq!(c.successful, 1, "{}\n{}", c.errors, p.log_text());
    assert_eq!(callee.counts(1).0, 1, "{}", callee.errors());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let e: u64 = db
        .sql("SELECT expires FROM location WHERE username = 'dave'")
        .parse()
        .unwrap_or(0);
    assert!(e > now, "{e} {now}");
}

// OpenSIPS had no SQLite scripts (no db_sqlite) before 2.2.
#[test]
fn opensips_1_11_database_to_3_4_mariadb() {
    old_database_is_brought_to_3_4(Backend::Maria, "1.11");
}

#[test]
fn opensips_1_11_database_to_3_4_postgres() {
    old_database_is_brought_to_3_4(Backend::Pg, "1.11");
}

#[test]
fn opensips_2_1_database_to_3_4_mariadb() {
    old_database_is_brought_to_3_4(Backend::Maria, "2.1");
}

#[test]
fn opensips_2_1_database_to_3_4_postgres() {
    old_database_is_brought_to_3_4(Backend::Pg, "2.1");
}

#[test]
fn opensips_2_2_database_to_3_4_mariadb() {
    old_database_is_brought_to_3_4(Backend::Maria, "2.2");
}

#[test]
fn opensips_2_2_database_to_3_4_postgres() {
    old_database_is_brought_to_3_4(Backend::Pg, "2.2");
}

#[test]
fn opensips_2_2_database_to_3_4_sqlite() {
    old_database_is_brought_to_3_4(Backend::Lite, "2.2");
}

#[test]
fn opensips_2_3_database_to_3_4_mariadb() {
    old_database_is_brought_to_3_4(Backend::Maria, "2.3");
}

#[test]
fn opensips_2_3_database_to_3_4_postgres() {
    old_database_is_brought_to_3_4(Backend::Pg, "2.3");
}

#[test]
fn opensips_2_3_database_to_3_4_sqlite() {
    old_database_is_brought_to_3_4(Backend::Lite, "2.3");
}

#[test]
fn opensips_2_4_database_to_3_4_mariadb() {
    old_database_is_brought_to_3_4(Backend::Maria, "2.4");
}

#[test]
fn opensips_2_4_database_to_3_4_postgres() {
    old_database_is_brought_to_3_4(Backend::Pg, "2.4");
}

#[test]
fn opensips_2_4_database_to_3_4_sqlite() {
    old_database_is_brought_to_3_4(Backend::Lite, "2.4");
}
