//! `lunasip db migrate`: brings tables of an older OpenSIPS release to
//! the versions lunasip reads (OpenSIPS 3.4), one version step at a time,
//! where the step is mechanical — the column changes of OpenSIPS's
//! `scripts/mysql/*-create.sql` history. A step that needs knowledge the
//! database does not hold is refused with the reason, and the table is
//! left as it was. MySQL/MariaDB only for now.
//!
//! Steps (from the git history of OpenSIPS's scripts/mysql):
//! - location 1011→1012 (ca0fc93213): `kv_store` added.
//! - location 1012→1013 (78e8bea12f, ec09a18f6c): `expires` from DATETIME
//!   to Unix seconds; `contact` TEXT, `received` CHAR(255).
//! - subscriber 7→8 (55e2a3b65d): `ha1_sha256`, `ha1_sha512t256` added
//!   (empty: `lunasip db add-user` fills them; `ha1b` is kept).
//! - dispatcher 7→8 (1d1e8059f7): `weight` CHAR(64).
//! - dispatcher 8→9 (88014bfe63, b99d7c62a6): `probe_mode` added, `attrs`
//!   and `description` nullable.
//! - acc 6→7 (7ecb192eb4): `ms_duration` added.
//! - dialog 10→11 (12ff3040a4): `rt_on_answer/timeout/hangup` added.
//! - dialog 11→12 (159fc077bb, 18e7d8dbb5): `script_flags` from a bit
//!   mask to flag names — mechanical only while no row has flags set;
//!   `mangled_from_uri`/`mangled_to_uri` CHAR(255).

use super::{version, Db, DbError, Dialect, Ident, Value};

/// One version step of one kind of table.
struct Step {
    kind: &'static str,
    from: i64,
    what: &'static str,
    /// A query that must answer 0 for the step to be mechanical, and why
    /// it is not otherwise.
    guard: Option<(&'static str, &'static str)>,
    /// Statements, `{t}` standing for the table.
    sql: &'static [&'static str],
}

static STEPS: &[Step] = &[
    Step {
        kind: "location",
        from: 1011,
        what: "kv_store added",
        guard: None,
        sql: &["ALTER TABLE {t} ADD COLUMN kv_store TEXT(512) DEFAULT NULL AFTER sip_instance"],
    },
    Step {
        kind: "location",
        from: 1012,
        what: "expires as Unix seconds, contact TEXT, received CHAR(255)",
        guard: None,
        sql: &[
            "ALTER TABLE {t} ADD COLUMN expires_unix INT(10) UNSIGNED NOT NULL DEFAULT 0 AFTER expires",
            "UPDATE {t} SET expires_unix = GREATEST(COALESCE(UNIX_TIMESTAMP(expires), 0), 0)",
            "ALTER TABLE {t} DROP COLUMN expires, CHANGE COLUMN expires_unix expires INT(10) UNSIGNED NOT NULL",
            "ALTER TABLE {t} MODIFY contact TEXT NOT NULL, MODIFY received CHAR(255) DEFAULT NULL",
        ],
    },
    Step {
        kind: "subscriber",
        from: 7,
        what: "ha1_sha256 and ha1_sha512t256 added (empty; ha1b kept)",
        guard: None,
        sql: &["ALTER TABLE {t} ADD COLUMN ha1_sha256 CHAR(64) DEFAULT '' NOT NULL AFTER ha1, ADD COLUMN ha1_sha512t256 CHAR(64) DEFAULT '' NOT NULL AFTER ha1_sha256"],
    },
    Step {
        kind: "dispatcher",
        from: 7,
        what: "weight CHAR(64)",
        guard: None,
        sql: &["ALTER TABLE {t} MODIFY weight CHAR(64) DEFAULT 1 NOT NULL"],
    },
    Step {
        kind: "dispatcher",
        from: 8,
        what: "probe_mode added, attrs and description nullable",
        guard: None,
        sql: &["ALTER TABLE {t} ADD COLUMN probe_mode INT(11) UNSIGNED DEFAULT 0 NOT NULL AFTER state, MODIFY attrs CHAR(128) DEFAULT NULL, MODIFY description CHAR(64) DEFAULT NULL"],
    },
    Step {
        kind: "acc",
        from: 6,
        what: "ms_duration added",
        guard: None,
        sql: &["ALTER TABLE {t} ADD COLUMN ms_duration INT(11) UNSIGNED DEFAULT 0 NOT NULL AFTER duration"],
    },
    Step {
        kind: "dialog",
        from: 10,
        what: "rt_on_answer, rt_on_timeout, rt_on_hangup added",
        guard: None,
        sql: &["ALTER TABLE {t} ADD COLUMN rt_on_answer CHAR(64) DEFAULT NULL, ADD COLUMN rt_on_timeout CHAR(64) DEFAULT NULL, ADD COLUMN rt_on_hangup CHAR(64) DEFAULT NULL"],
    },
    Step {
        kind: "dialog",
        from: 11,
        what: "script_flags as flag names",
        guard: Some((
            "SELECT COUNT(*) FROM {t} WHERE script_flags <> 0",
            "rows hold script_flags as bit masks and OpenSIPS 3.4 stores flag names, which the database does not know; let those dialogs end (or rewrite script_flags by hand) and run migrate again",
        )),
        sql: &[
            "ALTER TABLE {t} MODIFY script_flags CHAR(255) DEFAULT NULL, MODIFY mangled_from_uri CHAR(255) DEFAULT NULL, MODIFY mangled_to_uri CHAR(255) DEFAULT NULL",
            "UPDATE {t} SET script_flags = NULL",
        ],
    },
];

/// What happened to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already at the version lunasip reads.
    Current { table: String, version: i64 },
    /// Migrated (or, in a dry run, would be): the versions passed and
    /// what each step did.
    Migrated {
        table: String,
        from: i64,
        to: i64,
        steps: Vec<String>,
    },
    /// Not migrated, with the reason; the table is as it was (or at the
    /// version of the last step that ran).
    Refused { table: String, reason: String },
    /// A table the version table lists whose kind lunasip does not know.
    Unknown { table: String, version: String },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Current { table, version } => {
                write!(f, "table {table}: version {version}, nothing to do")
            }
            Outcome::Migrated {
                table,
                from,
                to,
                steps,
            } => {
                write!(
                    f,
                    "table {table}: version {from} → {to} ({})",
                    steps.join("; ")
                )
            }
            Outcome::Refused { table, reason } => {
                write!(f, "table {table}: not migrated: {reason}")
            }
            Outcome::Unknown { table, version } => {
                write!(f, "table {table}: version {version}, kind unknown (name it with --kind {table}=KIND), left alone")
            }
        }
    }
}

fn step_sql(s: &str, t: &Ident) -> String {
    s.replace("{t}", t.as_str())
}

/// The steps from `from` to `to` for `kind`, or why there is none.
fn plan(kind: &str, from: i64, to: i64) -> Result<Vec<&'static Step>, String> {
    let mut out = Vec::new();
    for v in from..to {
        match STEPS.iter().find(|s| s.kind == kind && s.from == v) {
            Some(s) => out.push(s),
            None => {
                return Err(format!(
                    "no mechanical step from {kind} version {v} to {} is known; upgrade it with OpenSIPS's own tools first",
                    v + 1
                ))
            }
        }
    }
    Ok(out)
}

/// Migrates one table of kind `kind` (a thread that is not a SIP worker).
pub fn table_wait(db: &Db, kind: &str, table: &Ident, dry_run: bool) -> Result<Outcome, DbError> {
    let name = table.to_string();
    let want = version::expected(kind)
        .ok_or_else(|| DbError::Internal(format!("no known version for {kind}")))?;
    let rows = db.query_wait(
        "SELECT table_version FROM version WHERE table_name = ?",
        vec![Value::text(table.as_str())],
    )?;
    let Some(have) = rows.first().and_then(|r| r.at(0).as_int()) else {
        return Ok(Outcome::Refused {
            table: name,
            reason: "no row in the version table".into(),
        });
    };
    if have == want {
        return Ok(Outcome::Current {
            table: name,
            version: have,
        });
    }
    if have > want {
        return Ok(Outcome::Refused {
            table: name,
            reason: format!("version {have} is newer than OpenSIPS 3.4's {want}"),
        });
    }
    if db.dialect() != Dialect::Mysql {
        return Ok(Outcome::Refused {
            table: name,
            reason: "migrate knows MySQL/MariaDB only for now".into(),
        });
    }
    let steps = match plan(kind, have, want) {
        Ok(s) => s,
        Err(reason) => {
            return Ok(Outcome::Refused {
                table: name,
                reason,
            })
        }
    };
    // Every guard first, so a refused table is left untouched.
    for s in &steps {
        if let Some((q, why)) = s.guard {
            let n = db.query_wait(&step_sql(q, table), vec![])?;
            if n.first().and_then(|r| r.at(0).as_int()).unwrap_or(0) != 0 {
                return Ok(Outcome::Refused {
                    table: name,
                    reason: format!("version {} → {}: {why}", s.from, s.from + 1),
                });
            }
        }
    }
    let mut done = Vec::new();
    for s in &steps {
        if !dry_run {
            for q in s.sql {
                db.exec_wait(&step_sql(q, table), vec![])?;
            }
            // DDL commits as it goes: record each step as it lands.
            db.exec_wait(
                "UPDATE version SET table_version = ? WHERE table_name = ?",
                vec![Value::Int(s.from + 1), Value::text(table.as_str())],
            )?;
        }
        done.push(format!("{}→{}: {}", s.from, s.from + 1, s.what));
    }
    Ok(Outcome::Migrated {
        table: name,
        from: have,
        to: want,
        steps: done,
    })
}

/// Every table the `version` table lists: its kind is its name, or what
/// `kinds` (table → kind) says.
pub fn all_wait(
    db: &Db,
    kinds: &[(String, String)],
    dry_run: bool,
) -> Result<Vec<Outcome>, DbError> {
    let rows = db.query_wait(
        "SELECT table_name, table_version FROM version ORDER BY table_name",
        vec![],
    )?;
    let mut out = Vec::new();
    for r in rows {
        let Some(name) = r.at(0).as_text() else {
            continue;
        };
        let kind = kinds
            .iter()
            .find(|(t, _)| *t == name)
            .map(|(_, k)| k.as_str())
            .unwrap_or(name.as_str());
        if version::expected(kind).is_none() {
            out.push(Outcome::Unknown {
                table: name.clone(),
                version: r.at(1).as_text().unwrap_or_default(),
            });
            continue;
        }
        let table = Ident::new(&name)?;
        out.push(table_wait(db, kind, &table, dry_run)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let p = plan("location", 1011, 1013).unwrap();
        assert_eq!(p.iter().map(|s| s.from).collect::<Vec<_>>(), [1011, 1012]);
        assert!(plan("location", 1010, 1013).is_err_and(|e| e.contains("version 1010 to 1011")));
        assert!(plan("dialog", 10, 12).is_ok());
        assert!(plan("subscriber", 6, 8).is_err());
        // Every step leads towards a version lunasip reads.
        for s in STEPS {
            assert!(
                version::expected(s.kind).is_some_and(|w| s.from < w),
                "{}",
                s.kind
            );
        }
    }
}
