//! OpenSIPS 3.4's table definitions in each dialect (its
//! `scripts/{mysql,postgres,sqlite}/*-create.sql`), for `lunasip db init`
//! and the tests. Same columns and types, so OpenSIPS and lunasip can
//! share a database.

use super::{version, Db, DbError, Dialect, Ident, Value};

/// The tables `lunasip db init` creates.
pub const KINDS: &[&str] = &[
    "version",
    "location",
    "subscriber",
    "dispatcher",
    "domain",
    "uri",
    "dbaliases",
    "address",
    "usr_preferences",
    "acc",
    "missed_calls",
    "dialog",
    "clusterer",
];

/// CREATE TABLE statements for a table of kind `kind` named `name`.
pub fn create(d: Dialect, kind: &str, name: &Ident) -> Option<String> {
    let sql = match (kind, d) {
        ("version", Dialect::Mysql) => format!(
            "CREATE TABLE IF NOT EXISTS {name} (\n    table_name CHAR(32) NOT NULL,\n    table_version INT UNSIGNED DEFAULT 0 NOT NULL,\n    CONSTRAINT t_name_idx UNIQUE (table_name)\n) ENGINE=InnoDB"
        ),
        ("version", Dialect::Postgres) => format!(
            "CREATE TABLE IF NOT EXISTS {name} (\n    table_name VARCHAR(32) NOT NULL,\n    table_version INTEGER DEFAULT 0 NOT NULL,\n    CONSTRAINT {name}_t_name_idx UNIQUE (table_name)\n)"
        ),
        ("version", Dialect::Sqlite) => format!(
            "CREATE TABLE IF NOT EXISTS {name} (\n    table_name CHAR(32) NOT NULL,\n    table_version INTEGER DEFAULT 0 NOT NULL,\n    CONSTRAINT version_t_name_idx UNIQUE (table_name)\n)"
        ),
        ("location", d) => {
            let (id, text, int, uint, q, dt, tail) = match d {
                Dialect::Mysql => (
                    "BIGINT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL",
                    "CHAR",
                    "INT(11)",
                    "INT(10) UNSIGNED",
                    "FLOAT(10,2)",
                    "DATETIME",
                    " ENGINE=InnoDB",
                ),
                Dialect::Postgres => (
                    "BIGSERIAL PRIMARY KEY NOT NULL",
                    "VARCHAR",
                    "INTEGER",
                    "INTEGER",
                    "REAL",
                    "TIMESTAMP WITHOUT TIME ZONE",
                    "",
                ),
                Dialect::Sqlite => (
                    "INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL",
                    "CHAR",
                    "INTEGER",
                    "INTEGER",
                    "FLOAT(10,2)",
                    "DATETIME",
                    "",
                ),
            };
            let kv = if d == Dialect::Postgres { "TEXT" } else { "TEXT(512)" };
            let inline = match d {
                Dialect::Mysql => ",\n    INDEX username_idx (username, domain)",
                _ => "",
            };
            format!(
                "CREATE TABLE IF NOT EXISTS {name} (\n    contact_id {id},\n    username {text}(64) DEFAULT '' NOT NULL,\n    domain {text}(64) DEFAULT NULL,\n    contact TEXT NOT NULL,\n    received {text}(255) DEFAULT NULL,\n    path {text}(255) DEFAULT NULL,\n    expires {uint} NOT NULL,\n    q {q} DEFAULT 1.0 NOT NULL,\n    callid {text}(255) DEFAULT 'Default-Call-ID' NOT NULL,\n    cseq {int} DEFAULT 13 NOT NULL,\n    last_modified {dt} DEFAULT '1900-01-01 00:00:01' NOT NULL,\n    flags {int} DEFAULT 0 NOT NULL,\n    cflags {text}(255) DEFAULT NULL,\n    user_agent {text}(255) DEFAULT '' NOT NULL,\n    socket {text}(64) DEFAULT NULL,\n    methods {int} DEFAULT NULL,\n    sip_instance {text}(255) DEFAULT NULL,\n    kv_store {kv} DEFAULT NULL,\n    attr {text}(255) DEFAULT NULL{inline}\n){tail}"
            )
        }
        ("subscriber", d) => {
            let (id, text, tail, inline, cons) = match d {
                Dialect::Mysql => (
                    "INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL",
                    "CHAR",
                    " ENGINE=InnoDB",
                    ",\n    INDEX username_idx (username)",
                    "account_idx".to_string(),
                ),
                Dialect::Postgres => (
                    "SERIAL PRIMARY KEY NOT NULL",
                    "VARCHAR",
                    "",
                    "",
                    format!("{}_account_idx", base_of(name)),
                ),
                Dialect::Sqlite => (
                    "INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL",
                    "CHAR",
                    "",
                    "",
                    format!("{}_account_idx", base_of(name)),
                ),
            };
            format!(
                "CREATE TABLE IF NOT EXISTS {name} (\n    id {id},\n    username {text}(64) DEFAULT '' NOT NULL,\n    domain {text}(64) DEFAULT '' NOT NULL,\n    password {text}(25) DEFAULT '' NOT NULL,\n    email_address {text}(64) DEFAULT '' NOT NULL,\n    ha1 {text}(64) DEFAULT '' NOT NULL,\n    ha1_sha256 {text}(64) DEFAULT '' NOT NULL,\n    ha1_sha512t256 {text}(64) DEFAULT '' NOT NULL,\n    rpid {text}(64) DEFAULT NULL,\n    CONSTRAINT {cons} UNIQUE (username, domain){inline}\n){tail}"
            )
        }
        ("dispatcher", d) => {
            let (id, int, uint, text, tail) = match d {
                Dialect::Mysql => (
                    "INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL",
                    "INT",
                    "INT(11) UNSIGNED",
                    "CHAR",
                    " ENGINE=InnoDB",
                ),
                Dialect::Postgres => ("SERIAL PRIMARY KEY NOT NULL", "INTEGER", "INTEGER", "VARCHAR", ""),
                Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL", "INTEGER", "INTEGER", "CHAR", ""),
            };
            format!(
                "CREATE TABLE IF NOT EXISTS {name} (\n    id {id},\n    setid {int} DEFAULT 0 NOT NULL,\n    destination {text}(192) DEFAULT '' NOT NULL,\n    socket {text}(128) DEFAULT NULL,\n    state {int} DEFAULT 0 NOT NULL,\n    probe_mode {uint} DEFAULT 0 NOT NULL,\n    weight {text}(64) DEFAULT 1 NOT NULL,\n    priority {int} DEFAULT 0 NOT NULL,\n    attrs {text}(128) DEFAULT '' NOT NULL,\n    description {text}(64) DEFAULT '' NOT NULL\n){tail}"
            )
        }
        ("domain", d) => {
            let (id, text, dt, tail, cons) = match d {
                Dialect::Mysql => (
                    "INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL",
                    "CHAR",
                    "DATETIME",
                    " ENGINE=InnoDB",
                    "domain_idx".to_string(),
                ),
                Dialect::Postgres => (
                    "SERIAL PRIMARY KEY NOT NULL",
                    "VARCHAR",
                    "TIMESTAMP WITHOUT TIME ZONE",
                    "",
                    format!("{}_domain_idx", base_of(name)),
                ),
                Dialect::Sqlite => (
                    "INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL",
                    "CHAR",
                    "DATETIME",
                    "",
                    format!("{}_domain_idx", base_of(name)),
                ),
            };
            format!(
                "CREATE TABLE IF NOT EXISTS {name} (\n    id {id},\n    domain {text}(64) DEFAULT '' NOT NULL,\n    attrs {text}(255) DEFAULT NULL,\n    last_modified {dt} DEFAULT '1900-01-01 00:00:01' NOT NULL,\n    CONSTRAINT {cons} UNIQUE (domain)\n){tail}"
            )
        }
        ("uri", d) => {
            let (id, text, dt, tail, cons) = match d {
                Dialect::Mysql => (
                    "INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL",
                    "CHAR",
                    "DATETIME",
                    " ENGINE=InnoDB",
                    "account_idx".to_string(),
                ),
                Dialect::Postgres => (
                    "SERIAL PRIMARY KEY NOT NULL",
                    "VARCHAR",
                    "TIMESTAMP WITHOUT TIME ZONE",
                    "",
                    format!("{}_account_idx", base_of(name)),
                ),
                Dialect::Sqlite => (
                    "INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL",
                    "CHAR",
                    "DATETIME",
                    "",
                    format!("{}_account_idx", base_of(name)),
                ),
            };
            format!(
                "CREATE TABLE IF NOT EXISTS {name} (\n    id {id},\n    username {text}(64) DEFAULT '' NOT NULL,\n    domain {text}(64) DEFAULT '' NOT NULL,\n    uri_user {text}(64) DEFAULT '' NOT NULL,\n    last_modified {dt} DEFAULT '1900-01-01 00:00:01' NOT NULL,\n    CONSTRAINT {cons} UNIQUE (username, domain, uri_user)\n){tail}"
            )
        }
        ("dbaliases", d) => {
            let (id, text, tail, inline, cons) = match d {
                Dialect::Mysql => (
                    "INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL",
                    "CHAR",
                    " ENGINE=InnoDB",
                    ",\n    INDEX target_idx (username, domain)",
                    "alias_idx".to_string(),
                ),
                Dialect::Postgres => (
                    "SERIAL PRIMARY KEY NOT NULL",
                    "VARCHAR",
                    "",
                    "",
                    format!("{}_alias_idx", base_of(name)),
                ),
                Dialect::Sqlite => (
                    "INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL",
                    "CHAR",
                    "",
                    "",
                    format!("{}_alias_idx", base_of(name)),
                ),
            };
            format!(
                "CREATE TABLE IF NOT EXISTS {name} (\n    id {id},\n    alias_username {text}(64) DEFAULT '' NOT NULL,\n    alias_domain {text}(64) DEFAULT '' NOT NULL,\n    username {text}(64) DEFAULT '' NOT NULL,\n    domain {text}(64) DEFAULT '' NOT NULL,\n    CONSTRAINT {cons} UNIQUE (alias_username, alias_domain){inline}\n){tail}"
            )
        }
        ("address", d) => {
            let (id, text, small, tiny) = match d {
                Dialect::Mysql => (
                    "INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL",
                    "CHAR",
                    "SMALLINT(5) UNSIGNED",
                    "TINYINT",
                ),
                Dialect::Postgres => ("SERIAL PRIMARY KEY NOT NULL", "VARCHAR", "SMALLINT", "SMALLINT"),
                Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL", "CHAR", "SMALLINT", "SMALLINT"),
            };
            let tail = if d == Dialect::Mysql { " ENGINE=InnoDB" } else { "" };
            format!(
                "CREATE TABLE IF NOT EXISTS {name} (\n    id {id},\n    grp {small} DEFAULT 0 NOT NULL,\n    ip {text}(50) NOT NULL,\n    mask {tiny} DEFAULT 32 NOT NULL,\n    port {small} DEFAULT 0 NOT NULL,\n    proto {text}(4) DEFAULT 'any' NOT NULL,\n    pattern {text}(64) DEFAULT NULL,\n    context_info {text}(32) DEFAULT NULL\n){tail}"
            )
        }
        ("usr_preferences", d) => {
            let (id, text, int, dt, tail) = match d {
                Dialect::Mysql => ("INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL", "CHAR", "INT(11)", "DATETIME", " ENGINE=InnoDB"),
                Dialect::Postgres => ("SERIAL PRIMARY KEY NOT NULL", "VARCHAR", "INTEGER", "TIMESTAMP WITHOUT TIME ZONE", ""),
                Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL", "CHAR", "INTEGER", "DATETIME", ""),
            };
            let inline = match d {
                Dialect::Mysql => ",\n    INDEX ua_idx (uuid, attribute),\n    INDEX uda_idx (username, domain, attribute),\n    INDEX value_idx (value)",
                _ => "",
            };
            format!(
                "CREATE TABLE IF NOT EXISTS {name} (\n    id {id},\n    uuid {text}(64) DEFAULT '' NOT NULL,\n    username {text}(64) DEFAULT 0 NOT NULL,\n    domain {text}(64) DEFAULT '' NOT NULL,\n    attribute {text}(32) DEFAULT '' NOT NULL,\n    type {int} DEFAULT 0 NOT NULL,\n    value {text}(128) DEFAULT '' NOT NULL,\n    last_modified {dt} DEFAULT '1900-01-01 00:00:01' NOT NULL{inline}\n){tail}"
            )
        }
        ("acc" | "missed_calls", d) => {
            let (id, text, uint, dt, tail) = match d {
                Dialect::Mysql => ("INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL", "CHAR", "INT(11) UNSIGNED", "DATETIME", " ENGINE=InnoDB"),
                Dialect::Postgres => ("SERIAL PRIMARY KEY NOT NULL", "VARCHAR", "INTEGER", "TIMESTAMP WITHOUT TIME ZONE", ""),
                Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL", "CHAR", "INTEGER", "DATETIME", ""),
            };
            let durations = match kind {
                "acc" => format!("    duration {uint} DEFAULT 0 NOT NULL,\n    ms_duration {uint} DEFAULT 0 NOT NULL,\n"),
                _ => String::new(),
            };
            // OpenSIPS's callid_idx (acc-create.sql); the others in `indexes`.
            let inline = match d {
                Dialect::Mysql => ",\n    INDEX callid_idx (callid)",
                _ => "",
            };
            format!(
                "CREATE TABLE IF NOT EXISTS {name} (\n    id {id},\n    method {text}(16) DEFAULT '' NOT NULL,\n    from_tag {text}(64) DEFAULT '' NOT NULL,\n    to_tag {text}(64) DEFAULT '' NOT NULL,\n    callid {text}(64) DEFAULT '' NOT NULL,\n    sip_code {text}(3) DEFAULT '' NOT NULL,\n    sip_reason {text}(32) DEFAULT '' NOT NULL,\n    time {dt} NOT NULL,\n{durations}    setuptime {uint} DEFAULT 0 NOT NULL,\n    created {dt} DEFAULT NULL{inline}\n){tail}"
            )
        }
        ("dialog", d) => {
            let (id, text, int, uint, blob, tail) = match d {
                Dialect::Mysql => ("BIGINT(10) UNSIGNED PRIMARY KEY NOT NULL", "CHAR", "INT(11) UNSIGNED", "INT(10) UNSIGNED", "BLOB(4096)", " ENGINE=InnoDB"),
                Dialect::Postgres => ("BIGINT PRIMARY KEY NOT NULL", "VARCHAR", "INTEGER", "INTEGER", "BYTEA", ""),
                Dialect::Sqlite => ("BIGINT(10) PRIMARY KEY NOT NULL", "CHAR", "INTEGER", "INTEGER", "BLOB(4096)", ""),
            };
            let long = if d == Dialect::Postgres { "TEXT" } else { "TEXT(512)" };
            format!(
                "CREATE TABLE IF NOT EXISTS {name} (\n    dlg_id {id},\n    callid {text}(255) NOT NULL,\n    from_uri {text}(255) NOT NULL,\n    from_tag {text}(64) NOT NULL,\n    to_uri {text}(255) NOT NULL,\n    to_tag {text}(64) NOT NULL,\n    mangled_from_uri {text}(255) DEFAULT NULL,\n    mangled_to_uri {text}(255) DEFAULT NULL,\n    caller_cseq {text}(11) NOT NULL,\n    callee_cseq {text}(11) NOT NULL,\n    caller_ping_cseq {int} NOT NULL,\n    callee_ping_cseq {int} NOT NULL,\n    caller_route_set {long},\n    callee_route_set {long},\n    caller_contact {text}(255),\n    callee_contact {text}(255),\n    caller_sock {text}(64) NOT NULL,\n    callee_sock {text}(64) NOT NULL,\n    state {uint} NOT NULL,\n    start_time {uint} NOT NULL,\n    timeout {uint} NOT NULL,\n    vars {blob} DEFAULT NULL,\n    profiles {long} DEFAULT NULL,\n    script_flags {text}(255) DEFAULT NULL,\n    module_flags {uint} DEFAULT 0 NOT NULL,\n    flags {uint} DEFAULT 0 NOT NULL,\n    rt_on_answer {text}(64) DEFAULT NULL,\n    rt_on_timeout {text}(64) DEFAULT NULL,\n    rt_on_hangup {text}(64) DEFAULT NULL\n){tail}"
            )
        }
        ("clusterer", d) => {
            let (id, text, int, tail, cons) = match d {
                Dialect::Mysql => (
                    "INT(10) AUTO_INCREMENT PRIMARY KEY NOT NULL",
                    "CHAR",
                    "INT(10)",
                    " ENGINE=InnoDB",
                    "clusterer_idx".to_string(),
                ),
                Dialect::Postgres => (
                    "SERIAL PRIMARY KEY NOT NULL",
                    "VARCHAR",
                    "INTEGER",
                    "",
                    format!("{}_clusterer_idx", base_of(name)),
                ),
                Dialect::Sqlite => (
                    "INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL",
                    "CHAR",
                    "INTEGER",
                    "",
                    format!("{}_clusterer_idx", base_of(name)),
                ),
            };
            let state = if d == Dialect::Mysql { "INT(1)" } else { "INTEGER" };
            format!(
                "CREATE TABLE IF NOT EXISTS {name} (\n    id {id},\n    cluster_id {int} NOT NULL,\n    node_id {int} NOT NULL,\n    url {text}(64) NOT NULL,\n    state {state} DEFAULT 1 NOT NULL,\n    no_ping_retries {int} DEFAULT 3 NOT NULL,\n    priority {int} DEFAULT 50 NOT NULL,\n    sip_addr {text}(64),\n    flags {text}(64),\n    description {text}(64),\n    CONSTRAINT {cons} UNIQUE (cluster_id, node_id)\n){tail}"
            )
        }
        _ => return None,
    };
    Some(sql)
}

/// Indexes made after a table of kind `kind` (where MySQL has them inside
/// its CREATE TABLE). OpenSIPS's own for acc; the others are lunasip's
/// additions, harmless to OpenSIPS: `location` is read by username on every
/// lookup and save in db_mode 3, which without one scans the table.
pub fn indexes(d: Dialect, kind: &str, name: &Ident) -> Vec<String> {
    let base = name.as_str().rsplit('.').next().unwrap_or(name.as_str());
    match (kind, d) {
        // Inside its CREATE TABLE (MySQL 8 has no CREATE INDEX IF NOT EXISTS).
        ("location", Dialect::Mysql) => Vec::new(),
        ("location", _) => vec![format!(
            "CREATE INDEX IF NOT EXISTS {base}_username_idx ON {name} (username, domain)"
        )],
        ("dbaliases", Dialect::Mysql) => Vec::new(),
        ("dbaliases", _) => vec![format!(
            "CREATE INDEX IF NOT EXISTS {base}_target_idx ON {name} (username, domain)"
        )],
        ("usr_preferences", Dialect::Mysql) => Vec::new(),
        ("usr_preferences", _) => vec![
            format!("CREATE INDEX IF NOT EXISTS {base}_ua_idx ON {name} (uuid, attribute)"),
            format!(
                "CREATE INDEX IF NOT EXISTS {base}_uda_idx ON {name} (username, domain, attribute)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {base}_value_idx ON {name} (value)"),
        ],
        // OpenSIPS's own (acc-create.sql); the writer's check after an
        // ambiguous failure also looks rows up by their values.
        ("acc" | "missed_calls", Dialect::Mysql) => Vec::new(),
        ("acc" | "missed_calls", _) => vec![format!(
            "CREATE INDEX IF NOT EXISTS {base}_callid_idx ON {name} (callid)"
        )],
        ("subscriber", Dialect::Mysql) => Vec::new(),
        ("subscriber", _) => vec![format!(
            "CREATE INDEX IF NOT EXISTS {base}_username_idx ON {name} (username)"
        )],
        _ => Vec::new(),
    }
}

/// The table name without its database part.
fn base_of(name: &Ident) -> &str {
    name.as_str().rsplit('.').next().unwrap_or(name.as_str())
}

/// Creates the `version` table and a table of kind `kind` named `name`
/// (when missing) and records its version, as `opensips-cli database
/// create` does. Returns what it did, one line each.
pub fn init_wait(db: &Db, kind: &str, name: &Ident) -> Result<Vec<String>, DbError> {
    let d = db.dialect();
    let vt = Ident::new("version")?;
    let mut done = Vec::new();
    if let Some(sql) = create(d, "version", &vt) {
        db.exec_wait(&sql, vec![])?;
    }
    if kind == "version" {
        return Ok(vec!["table version ready".into()]);
    }
    let sql =
        create(d, kind, name).ok_or_else(|| DbError::Internal(format!("no schema for {kind}")))?;
    db.exec_wait(&sql, vec![])?;
    for ix in indexes(d, kind, name) {
        db.exec_wait(&ix, vec![])?;
    }
    done.push(format!("table {name} ready"));
    if let Some(v) = version::expected(kind) {
        let have = db.query_wait(
            "SELECT table_version FROM version WHERE table_name = ?",
            vec![Value::text(name.as_str())],
        )?;
        if have.is_empty() {
            let r = db.exec_wait(
                "INSERT INTO version (table_name, table_version) VALUES (?, ?)",
                vec![Value::text(name.as_str()), Value::Int(v)],
            );
            match r {
                Ok(_) => done.push(format!("version of {name} set to {v}")),
                // Another `db init` of the same table wrote it meanwhile.
                Err(e) => {
                    let again = db.query_wait(
                        "SELECT table_version FROM version WHERE table_name = ?",
                        vec![Value::text(name.as_str())],
                    )?;
                    if again.is_empty() {
                        return Err(e);
                    }
                }
            }
        }
    }
    Ok(done)
}

/// The SQL file shipped in /usr/share/lunasip/sql/ for a dialect: the
/// `version` and `location` tables and the location version row (what
/// `lunasip db init` does, for an operator who runs SQL by hand).
pub fn script(d: Dialect) -> String {
    let (Ok(v), Ok(l)) = (Ident::new("version"), Ident::new("location")) else {
        return String::new();
    };
    let client = match d {
        Dialect::Mysql => "mariadb -u root opensips < location-mysql.sql",
        Dialect::Postgres => "psql -U postgres -d opensips -f location-postgres.sql",
        Dialect::Sqlite => "sqlite3 /var/lib/lunasip/lunasip.db < location-sqlite.sql",
    };
    let want = version::expected("location").unwrap_or(0);
    let mut stmts = vec![
        create(d, "version", &v).unwrap_or_default(),
        create(d, "location", &l).unwrap_or_default(),
    ];
    stmts.extend(indexes(d, "location", &l));
    stmts.push(format!(
        "INSERT INTO version (table_name, table_version) VALUES ('location', {want})"
    ));
    format!(
        "-- OpenSIPS 3.4's `version` and `location` tables (location version {want}),\n-- as `lunasip db init URL` creates them; usrloc reads and writes them\n-- (config.modules.usrloc.db_url, db_mode 1-3). The index on username is\n-- lunasip's addition (lookups by user; OpenSIPS does not mind it).\n--\n--   {client}\n--\n-- Generated from src/db/schema.rs (UPDATE_DOCS=1 cargo test --test db).\n\n{};\n",
        stmts.join(";\n\n")
    )
}
