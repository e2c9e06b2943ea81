//! `lunasip db migrate` is all or nothing: the tables that can migrate
//! change together, so a statement that fails in one of them leaves every
//! table, its rows and the `version` table as they were — on MySQL too,
//! whose DDL commits as it goes (each table is migrated in a copy, the
//! copies swapped in by one RENAME TABLE), on PostgreSQL (one block) and
//! SQLite (one transaction). Databases as OpenSIPS 2.3 created them
//! (tests/fixtures/opensips-2.3-DIALECT.sql), in a database of the test's
//! own.

mod common;

use common::olddb::{migrate, Backend, OldDb};

/// A statement the server refuses (PostgreSQL cannot change the type of
/// a column a view reads) is said for its table, and nothing is
/// migrated: the tables move together (one block), so the tables before
/// and after it and the version table are as they were; the run fails.
#[test]
fn a_refused_statement_leaves_the_postgres_tables_as_they_were() {
    let db = OldDb::new(Backend::Pg, "2.3");
    db.sql("CREATE VIEW contacts_v AS SELECT username, expires FROM location");
    let before = db.versions();
    let (ok, out, err) = migrate(&db.url, &[]);
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains("table location: not migrated: ")
            && err.contains("table location: cannot alter type of a column used by a view")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(
        err.contains("table subscriber: not migrated: table location failed and the tables migrate together: nothing was changed"),
        "{err}"
    );
    assert_eq!(db.versions(), before);
    assert_eq!(db.col_type("location", "kv_store"), "");
    assert!(db.col_type("location", "expires").starts_with("timestamp"));
    assert_eq!(db.col_type("subscriber", "ha1_sha256"), "");
    assert_eq!(db.col_type("dispatcher", "probe_mode"), "");
}

/// A migration that fails in a later table (subscriber, after clusterer,
/// dispatcher and location are migrated in their copies or their block)
/// changes nothing on MySQL too, whose DDL commits as it goes: every
/// table's shape and rows and the version table are as they were, no
/// copy is left behind; once the obstacle is gone the same run migrates.
/// The obstacle: a column added by hand (MariaDB, PostgreSQL: it exists
/// already), a view (SQLite cannot rename a table a view reads).
fn a_failure_midway_changes_nothing(backend: Backend) {
    let db = OldDb::new(backend, "2.3");
    db.sql(
        "INSERT INTO location (username, contact, expires, callid) VALUES \
         ('alice', 'sip:alice@192.0.2.1:5060', '2030-01-02 03:04:05', 'c1'); \
         INSERT INTO dispatcher (setid, destination) VALUES (1, 'sip:192.0.2.5'); \
         INSERT INTO subscriber (username, domain, password, ha1) VALUES ('bob', 'example.com', 'pw', 'h')",
    );
    let undo = match backend {
        Backend::Lite => {
            db.sql("CREATE VIEW subscriber_v AS SELECT username FROM subscriber");
            "DROP VIEW subscriber_v"
        }
        _ => {
            db.sql("ALTER TABLE subscriber ADD COLUMN ha1_sha256 CHAR(64)");
            "ALTER TABLE subscriber DROP COLUMN ha1_sha256"
        }
    };
    let tables = || {
        db.sql(&match backend {
        Backend::Maria => format!("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' ORDER BY 1", db.name),
        Backend::Pg => "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1".into(),
        Backend::Lite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY 1".into(),
    })
    };
    let shape = || {
        ["location", "dispatcher", "clusterer", "subscriber"]
            .iter()
            .map(|t| format!("{t}: {:?}", db.columns(t)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let rows = || {
        db.sql("SELECT username, expires, contact FROM location")
            + &db.sql("SELECT destination, weight FROM dispatcher")
            + &db.sql("SELECT username, ha1 FROM subscriber")
    };
    let (versions, names, before, data) = (db.versions(), tables(), shape(), rows());

    let (ok, out, err) = migrate(&db.url, &[]);
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains("table subscriber: not migrated: ") && err.contains("nothing was changed"),
        "{err}"
    );
    for t in ["clusterer", "dispatcher", "location"] {
        assert!(
            err.contains(&format!("table {t}: not migrated: table subscriber failed and the tables migrate together: nothing was changed")),
            "{t}\n{err}"
        );
    }
    assert_eq!(db.versions(), versions);
    assert_eq!(tables(), names, "no copy left behind");
    assert_eq!(shape(), before);
    assert_eq!(rows(), data);
    assert!(db
        .col_type("location", "expires")
        .starts_with(match backend {
            Backend::Pg => "timestamp",
            _ => "datetime",
        }));

    db.sql(undo);
    let (ok, out, err) = migrate(&db.url, &[]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("table subscriber: version 7 → 8"), "{out}");
    assert!(out.contains("table location: version 1011 → 1013"), "{out}");
    assert_eq!(tables(), names, "the originals are dropped after the swap");
    assert_eq!(
        db.sql("SELECT username, contact FROM location"),
        "alice\tsip:alice@192.0.2.1:5060"
    );
    assert!(
        db.versions().contains("location\t1013"),
        "{}",
        db.versions()
    );
}

#[test]
fn a_failure_midway_changes_nothing_mariadb() {
    a_failure_midway_changes_nothing(Backend::Maria);
}

#[test]
fn a_failure_midway_changes_nothing_postgres() {
    a_failure_midway_changes_nothing(Backend::Pg);
}

#[test]
fn a_failure_midway_changes_nothing_sqlite() {
    a_failure_midway_changes_nothing(Backend::Lite);
}

/// MySQL migrates a table in a copy: a trigger would stay with the
/// original and be dropped with it, so such a table is refused, naming
/// why, and left as it was; the others migrate.
#[test]
fn a_mysql_table_with_a_trigger_is_refused() {
    let db = OldDb::new(Backend::Maria, "2.3");
    db.sql(
        "CREATE TABLE audit (n INT); \
         CREATE TRIGGER location_ins AFTER INSERT ON location FOR EACH ROW INSERT INTO audit VALUES (1)",
    );
    let (ok, out, err) = migrate(&db.url, &[]);
    assert!(!ok, "{out}\n{err}");
    assert!(
        err.contains(
            "table location: not migrated: it has 1 trigger(s) and 0 foreign key(s) pointing at it"
        ),
        "{err}"
    );
    assert!(out.contains("table subscriber: version 7 → 8"), "{out}");
    assert!(
        db.versions().contains("location\t1011"),
        "{}",
        db.versions()
    );
    assert_eq!(db.col_type("location", "expires"), "datetime");
    assert_eq!(
        db.sql("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_TABLE = 'location' AND TRIGGER_SCHEMA = DATABASE()"),
        "location_ins"
    );
}
