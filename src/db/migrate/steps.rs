//! The mechanical steps, per backend. Facts from OpenSIPS's
//! `scripts/{mysql,postgres,sqlite}/*-create.sql` across its branches
//! (`git show 2.3:scripts/postgres/usrloc-create.sql` …) and from the
//! table copies of its `scripts/mysql/table-migrate.sql` (3.0 to 3.4),
//! which `opensips-cli database migrate` runs:
//!
//! - location 1009→1010 (f1578b14b0, 2.2): `id` renamed `contact_id`,
//!   BIGINT (the same auto-increment key).
//! - location 1010→1011 (7e0175b17e, 764968f386, 2.2): `domain` may be
//!   NULL, default NULL; the UNIQUE (username, domain, contact, callid)
//!   key dropped (24c685c175, 2.2 and 2.3 at 1011, no version bump).
//! - location 1011→1012 (ca0fc93213): `kv_store` added.
//! - location 1012→1013 (78e8bea12f, ec09a18f6c): `expires` from a
//!   DATETIME (OpenSIPS wrote local time, db_ut.c db_time2str) to Unix
//!   seconds; `contact` TEXT, `received` 255 characters.
//! - location 1013 made by 2.4 or 3.0 has `contact` CHAR(255) (TEXT from
//!   3.1 on, same version): widened ("reshaped").
//! - subscriber 7→8 (55e2a3b65d, 3.2; 3.2's table-migrate.sql copies
//!   with empty `ha1_sha256`/`ha1_sha512t256`): added empty, `ha1b` kept
//!   (`lunasip db add-user` fills them).
//! - dispatcher 6→7 (6dc726158f, 2.1): `priority` added.
//! - dispatcher 7→8 (1d1e8059f7): `weight` text.
//! - dispatcher 8→9 (88014bfe63, 3.4; 3.4's table-migrate.sql copies with
//!   `probe_mode` 0): `probe_mode` added. (3.5 makes `attrs` and
//!   `description` nullable, b99d7c62a6: not 3.4's table.)
//! - domain 2→3 (57ec0f3994, 2.1): `attrs` added.
//! - acc 6→7 (7ecb192eb4): `ms_duration` added.
//! - missed_calls 4→5 (94cf5dd41c, 2.1): `setuptime`, `created` added.
//! - dialog 9→10 (c2492e6eb4, 2.1): `module_flags` added.
//! - dialog 10→11 (12ff3040a4, 3.1; 3.1's table-migrate.sql copies with
//!   NULL routes): `rt_on_answer/timeout/hangup` added; `from_uri`,
//!   `to_uri`, `caller_contact`, `callee_contact` 255 characters (2.2
//!   widened 2.1's 128 at version 10).
//! - dialog 11→12 (159fc077bb, 18e7d8dbb5, 3.4): `script_flags` from a bit
//!   mask to flag names — mechanical only while no row has flags set;
//!   `mangled_from_uri`/`mangled_to_uri` 255 characters.
//! - clusterer 1→2 (e1fc73f98e, 2.3's rework): `machine_id` renamed
//!   `node_id`, `no_ping_retries`, `priority`, `sip_addr` added — only
//!   for an empty table: 2.2's `state` meant 0 up, 1 probing, 2 down
//!   (2.2 clusterer api.h), 3.4's means 1 enabled, 0 disabled, and 2.2's
//!   failure detection (`failed_attempts`, `duration`) has no 2.3
//!   counterpart, so the rows need a person. 2.2's columns are kept.
//! - clusterer 2→3 (a822b56c6a): `ls_seq_no`, `top_seq_no` no longer
//!   read (kept, they have defaults); 3→4 (97380d9059): `flags` added.
//!
//! SQLite cannot change a column's type: its tables are rebuilt in
//! OpenSIPS 3.4's shape (create, copy, rename; see `lite.rs`), `lite`
//! naming the columns filled by an expression instead of copied.

/// One version step of one kind of table.
pub(super) struct Step {
    pub kind: &'static str,
    pub from: i64,
    pub what: &'static str,
    /// A query that must answer 0 for the step to be mechanical, and why
    /// it is not otherwise.
    pub guard: Option<(&'static str, &'static str)>,
    /// Statements, `{t}` standing for the table.
    pub mysql: &'static [&'static str],
    /// PostgreSQL statements (run together in one block: all or
    /// nothing); `{tz}` stands for the time zone OpenSIPS wrote in.
    pub pg: &'static [&'static str],
    /// SQLite: columns of the rebuilt table filled by an expression of
    /// the old row.
    pub lite: &'static [(&'static str, &'static str)],
    /// Columns renamed (old, new): SQLite's rebuild copies the old into
    /// the new (the others say it in their statements).
    pub renames: &'static [(&'static str, &'static str)],
    /// A UNIQUE key an older release made that 3.4 has not, dropped when
    /// present: its MySQL name, its PostgreSQL name. (SQLite's rebuild
    /// does not carry a table's inline constraints.)
    pub drop_key: Option<(&'static str, &'static str)>,
}

/// The fields most steps leave empty.
const PLAIN: Step = Step {
    kind: "",
    from: 0,
    what: "",
    guard: None,
    mysql: &[],
    pg: &[],
    lite: &[],
    renames: &[],
    drop_key: None,
};

/// location's UNIQUE (username, domain, contact, callid), 1.x to 2.2.
const ACCOUNT_CONTACT: Option<(&str, &str)> =
    Some(("account_contact_idx", "location_account_contact_idx"));

pub(super) static STEPS: &[Step] = &[
    Step {
        kind: "location",
        from: 1009,
        what: "id renamed contact_id, BIGINT",
        mysql: &["ALTER TABLE {t} CHANGE COLUMN id contact_id BIGINT(10) UNSIGNED NOT NULL AUTO_INCREMENT"],
        pg: &[
            "ALTER TABLE {t} RENAME COLUMN id TO contact_id",
            "ALTER TABLE {t} ALTER COLUMN contact_id TYPE BIGINT",
        ],
        renames: &[("id", "contact_id")],
        ..PLAIN
    },
    Step {
        kind: "location",
        from: 1010,
        what: "domain may be NULL, the UNIQUE (username, domain, contact, callid) key dropped",
        mysql: &["ALTER TABLE {t} MODIFY domain CHAR(64) DEFAULT NULL"],
        pg: &["ALTER TABLE {t} ALTER COLUMN domain DROP NOT NULL, ALTER COLUMN domain SET DEFAULT NULL"],
        drop_key: ACCOUNT_CONTACT,
        ..PLAIN
    },
    Step {
        kind: "location",
        from: 1011,
        what: "kv_store added",
        mysql: &["ALTER TABLE {t} ADD COLUMN kv_store TEXT(512) DEFAULT NULL AFTER sip_instance"],
        pg: &["ALTER TABLE {t} ADD COLUMN kv_store TEXT DEFAULT NULL"],
        ..PLAIN
    },
    Step {
        kind: "location",
        from: 1012,
        what: "expires as Unix seconds, contact TEXT, received CHAR(255)",
        mysql: &[
            "ALTER TABLE {t} ADD COLUMN expires_unix INT(10) UNSIGNED NOT NULL DEFAULT 0 AFTER expires",
            "UPDATE {t} SET expires_unix = GREATEST(COALESCE(UNIX_TIMESTAMP(expires), 0), 0)",
            "ALTER TABLE {t} DROP COLUMN expires, CHANGE COLUMN expires_unix expires INT(10) UNSIGNED NOT NULL",
            "ALTER TABLE {t} MODIFY contact TEXT NOT NULL, MODIFY received CHAR(255) DEFAULT NULL",
        ],
        pg: &[
            // A default of the old type cannot be cast: dropped first.
            "ALTER TABLE {t} ALTER COLUMN expires DROP DEFAULT, ALTER COLUMN contact DROP DEFAULT",
            "ALTER TABLE {t} ALTER COLUMN expires TYPE INTEGER USING GREATEST(LEAST(COALESCE(EXTRACT(EPOCH FROM (expires AT TIME ZONE {tz})), 0), 2147483647), 0)::integer, ALTER COLUMN contact TYPE TEXT, ALTER COLUMN received TYPE VARCHAR(255)",
        ],
        lite: &[(
            "expires",
            "CASE WHEN typeof(expires) = 'integer' THEN MAX(expires, 0) ELSE MAX(COALESCE(CAST(strftime('%s', expires, 'utc') AS INTEGER), 0), 0) END",
        )],
        // A 1011 table 2.2 made before 24c685c175 still has it, and MySQL
        // cannot keep a TEXT contact in a key without a prefix length.
        drop_key: ACCOUNT_CONTACT,
        ..PLAIN
    },
    Step {
        kind: "subscriber",
        from: 7,
        what: "ha1_sha256 and ha1_sha512t256 added (empty; ha1b kept)",
        mysql: &["ALTER TABLE {t} ADD COLUMN ha1_sha256 CHAR(64) DEFAULT '' NOT NULL AFTER ha1, ADD COLUMN ha1_sha512t256 CHAR(64) DEFAULT '' NOT NULL AFTER ha1_sha256"],
        pg: &["ALTER TABLE {t} ADD COLUMN ha1_sha256 VARCHAR(64) DEFAULT '' NOT NULL, ADD COLUMN ha1_sha512t256 VARCHAR(64) DEFAULT '' NOT NULL"],
        ..PLAIN
    },
    Step {
        kind: "dispatcher",
        from: 6,
        what: "priority added",
        mysql: &["ALTER TABLE {t} ADD COLUMN priority INT DEFAULT 0 NOT NULL AFTER weight"],
        pg: &["ALTER TABLE {t} ADD COLUMN priority INTEGER DEFAULT 0 NOT NULL"],
        ..PLAIN
    },
    Step {
        kind: "dispatcher",
        from: 7,
        what: "weight CHAR(64)",
        mysql: &["ALTER TABLE {t} MODIFY weight CHAR(64) DEFAULT 1 NOT NULL"],
        pg: &[
            "ALTER TABLE {t} ALTER COLUMN weight DROP DEFAULT",
            "ALTER TABLE {t} ALTER COLUMN weight TYPE VARCHAR(64) USING weight::text, ALTER COLUMN weight SET DEFAULT '1'",
        ],
        ..PLAIN
    },
    Step {
        kind: "dispatcher",
        from: 8,
        what: "probe_mode added",
        mysql: &["ALTER TABLE {t} ADD COLUMN probe_mode INT(11) UNSIGNED DEFAULT 0 NOT NULL AFTER state"],
        pg: &["ALTER TABLE {t} ADD COLUMN probe_mode INTEGER DEFAULT 0 NOT NULL"],
        ..PLAIN
    },
    Step {
        kind: "domain",
        from: 2,
        what: "attrs added",
        mysql: &["ALTER TABLE {t} ADD COLUMN attrs CHAR(255) DEFAULT NULL AFTER domain"],
        pg: &["ALTER TABLE {t} ADD COLUMN attrs VARCHAR(255) DEFAULT NULL"],
        ..PLAIN
    },
    Step {
        kind: "missed_calls",
        from: 4,
        what: "setuptime, created added",
        mysql: &["ALTER TABLE {t} ADD COLUMN setuptime INT(11) UNSIGNED DEFAULT 0 NOT NULL, ADD COLUMN created DATETIME DEFAULT NULL"],
        pg: &["ALTER TABLE {t} ADD COLUMN setuptime INTEGER DEFAULT 0 NOT NULL, ADD COLUMN created TIMESTAMP WITHOUT TIME ZONE DEFAULT NULL"],
        ..PLAIN
    },
    Step {
        kind: "acc",
        from: 6,
        what: "ms_duration added",
        mysql: &["ALTER TABLE {t} ADD COLUMN ms_duration INT(11) UNSIGNED DEFAULT 0 NOT NULL AFTER duration"],
        pg: &["ALTER TABLE {t} ADD COLUMN ms_duration INTEGER DEFAULT 0 NOT NULL"],
        ..PLAIN
    },
    Step {
        kind: "dialog",
        from: 9,
        what: "module_flags added",
        mysql: &["ALTER TABLE {t} ADD COLUMN module_flags INT(10) UNSIGNED DEFAULT 0 NOT NULL AFTER script_flags"],
        pg: &["ALTER TABLE {t} ADD COLUMN module_flags INTEGER DEFAULT 0 NOT NULL"],
        ..PLAIN
    },
    Step {
        kind: "dialog",
        from: 10,
        what: "rt_on_answer, rt_on_timeout, rt_on_hangup added; URIs and contacts 255 characters",
        mysql: &[
            "ALTER TABLE {t} ADD COLUMN rt_on_answer CHAR(64) DEFAULT NULL, ADD COLUMN rt_on_timeout CHAR(64) DEFAULT NULL, ADD COLUMN rt_on_hangup CHAR(64) DEFAULT NULL",
            "ALTER TABLE {t} MODIFY from_uri CHAR(255) NOT NULL, MODIFY to_uri CHAR(255) NOT NULL, MODIFY caller_contact CHAR(255), MODIFY callee_contact CHAR(255)",
        ],
        pg: &[
            "ALTER TABLE {t} ADD COLUMN rt_on_answer VARCHAR(64) DEFAULT NULL, ADD COLUMN rt_on_timeout VARCHAR(64) DEFAULT NULL, ADD COLUMN rt_on_hangup VARCHAR(64) DEFAULT NULL",
            "ALTER TABLE {t} ALTER COLUMN from_uri TYPE VARCHAR(255), ALTER COLUMN to_uri TYPE VARCHAR(255), ALTER COLUMN caller_contact TYPE VARCHAR(255), ALTER COLUMN callee_contact TYPE VARCHAR(255)",
        ],
        ..PLAIN
    },
    Step {
        kind: "dialog",
        from: 11,
        what: "script_flags as flag names",
        guard: Some((
            "SELECT COUNT(*) FROM {t} WHERE script_flags <> 0",
            "rows hold script_flags as bit masks and OpenSIPS 3.4 stores flag names, which the database does not know; let those dialogs end (or rewrite script_flags by hand) and run migrate again",
        )),
        mysql: &[
            "ALTER TABLE {t} MODIFY script_flags CHAR(255) DEFAULT NULL, MODIFY mangled_from_uri CHAR(255) DEFAULT NULL, MODIFY mangled_to_uri CHAR(255) DEFAULT NULL",
            "UPDATE {t} SET script_flags = NULL",
        ],
        pg: &[
            "ALTER TABLE {t} ALTER COLUMN script_flags DROP DEFAULT, ALTER COLUMN script_flags DROP NOT NULL",
            "ALTER TABLE {t} ALTER COLUMN script_flags TYPE VARCHAR(255) USING NULL, ALTER COLUMN mangled_from_uri TYPE VARCHAR(255), ALTER COLUMN mangled_to_uri TYPE VARCHAR(255)",
        ],
        lite: &[("script_flags", "NULL")],
        ..PLAIN
    },
    Step {
        kind: "clusterer",
        from: 1,
        what: "machine_id renamed node_id; no_ping_retries, priority, sip_addr added",
        guard: Some((
            "SELECT COUNT(*) FROM {t}",
            "the table has rows and OpenSIPS 2.3 reworked the clusterer: 2.2's state meant 0 up, 1 probing, 2 down where 3.4's means 1 enabled, 0 disabled, and 2.2's failed_attempts and duration have no counterpart; note the nodes, empty the table, run migrate again and provision them as OpenSIPS 3.4 describes nodes",
        )),
        mysql: &["ALTER TABLE {t} CHANGE COLUMN machine_id node_id INT(10) NOT NULL, ADD COLUMN no_ping_retries INT(10) DEFAULT 3 NOT NULL, ADD COLUMN priority INT(10) DEFAULT 50 NOT NULL, ADD COLUMN sip_addr CHAR(64)"],
        pg: &[
            "ALTER TABLE {t} RENAME COLUMN machine_id TO node_id",
            "ALTER TABLE {t} ADD COLUMN no_ping_retries INTEGER DEFAULT 3 NOT NULL, ADD COLUMN priority INTEGER DEFAULT 50 NOT NULL, ADD COLUMN sip_addr VARCHAR(64)",
        ],
        renames: &[("machine_id", "node_id")],
        ..PLAIN
    },
    Step {
        kind: "clusterer",
        from: 2,
        what: "ls_seq_no and top_seq_no no longer read (kept)",
        ..PLAIN
    },
    Step {
        kind: "clusterer",
        from: 3,
        what: "flags added",
        mysql: &["ALTER TABLE {t} ADD COLUMN flags CHAR(64) AFTER sip_addr"],
        pg: &["ALTER TABLE {t} ADD COLUMN flags VARCHAR(64)"],
        ..PLAIN
    },
];

/// A table at the version lunasip reads whose shape is an older
/// release's (the change came without a version bump).
pub(super) struct Reshape {
    pub kind: &'static str,
    pub version: i64,
    pub what: &'static str,
    pub column: &'static str,
    /// The column's type (lowercase, as the backend names it) is 3.4's.
    pub current: fn(&str) -> bool,
    pub mysql: &'static [&'static str],
    pub pg: &'static [&'static str],
}

pub(super) static RESHAPES: &[Reshape] = &[Reshape {
    kind: "location",
    version: 1013,
    what: "contact TEXT (2.4 and 3.0 made it CHAR(255) at the same version)",
    column: "contact",
    current: |t| t.contains("text"),
    mysql: &["ALTER TABLE {t} MODIFY contact TEXT NOT NULL"],
    pg: &[
        "ALTER TABLE {t} ALTER COLUMN contact DROP DEFAULT",
        "ALTER TABLE {t} ALTER COLUMN contact TYPE TEXT",
    ],
}];
