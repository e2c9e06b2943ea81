//! `lunasip db migrate`: brings tables of an older OpenSIPS release to
//! the versions lunasip reads (OpenSIPS 3.4), one version step at a time,
//! where the step is mechanical, on MySQL/MariaDB, PostgreSQL and SQLite
//! (the steps and their sources: `steps.rs`). A step that needs knowledge
//! the database does not hold is refused with the reason, and the table
//! is left as it was.
//!
//! How a table changes, per backend: MySQL runs each step's ALTERs and
//! records the version after each (its DDL commits as it goes);
//! PostgreSQL runs all of a table's steps and the version update in one
//! block, all or nothing; SQLite, which cannot change a column's type,
//! rebuilds the table in OpenSIPS 3.4's shape in one transaction
//! (`lite.rs`).

mod lite;
mod steps;

use steps::{Reshape, Step, RESHAPES, STEPS};

use super::{version, Db, DbError, Dialect, Ident, Value};

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
                if from == to {
                    write!(
                        f,
                        "table {table}: version {from}, reshaped ({})",
                        steps.join("; ")
                    )
                } else {
                    write!(
                        f,
                        "table {table}: version {from} → {to} ({})",
                        steps.join("; ")
                    )
                }
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

/// What one change does to a table, on any backend.
struct Change {
    /// `1011→1012: kv_store added`.
    label: String,
    /// The version the table has after it.
    to: i64,
    guard: Option<(&'static str, &'static str)>,
    mysql: &'static [&'static str],
    pg: &'static [&'static str],
    lite: &'static [(&'static str, &'static str)],
}

impl From<&'static Step> for Change {
    fn from(s: &'static Step) -> Change {
        Change {
            label: format!("{}→{}: {}", s.from, s.from + 1, s.what),
            to: s.from + 1,
            guard: s.guard,
            mysql: s.mysql,
            pg: s.pg,
            lite: s.lite,
        }
    }
}

impl From<&'static Reshape> for Change {
    fn from(r: &'static Reshape) -> Change {
        Change {
            label: format!("{}: {}", r.version, r.what),
            to: r.version,
            guard: None,
            mysql: r.mysql,
            pg: r.pg,
            lite: &[],
        }
    }
}

/// The type of `column` of `table` as the backend names it (lowercase),
/// None when there is no such column.
fn column_type(db: &Db, table: &Ident, column: &str) -> Result<Option<String>, DbError> {
    let (schema, base) = match table.as_str().split_once('.') {
        Some((s, b)) => (Some(s), b),
        None => (None, table.as_str()),
    };
    let rows = match db.dialect() {
        Dialect::Mysql => db.query_wait(
            "SELECT DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLUMN_NAME = ?",
            vec![
                schema.map_or(Value::Null, Value::text),
                Value::text(base),
                Value::text(column),
            ],
        )?,
        Dialect::Postgres => db.query_wait(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = to_regclass(?) AND a.attname::text = ? AND NOT a.attisdropped",
            vec![Value::text(table.as_str()), Value::text(column)],
        )?,
        Dialect::Sqlite => db.query_wait(
            "SELECT type FROM pragma_table_info(?) WHERE name = ?",
            vec![Value::text(base), Value::text(column)],
        )?,
    };
    Ok(rows
        .first()
        .and_then(|r| r.at(0).as_text())
        .map(|t| t.to_ascii_lowercase()))
}

/// The time zone OpenSIPS wrote DATETIME columns in (its local time, as
/// this process's), as an SQL expression for PostgreSQL's `AT TIME ZONE`.
fn pg_zone() -> String {
    let tz = jiff::tz::TimeZone::system();
    match tz.iana_name() {
        Some(n)
            if !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b)) =>
        {
            format!("'{n}'")
        }
        _ => "current_setting('TimeZone')".into(),
    }
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
    if have > want {
        return Ok(Outcome::Refused {
            table: name,
            reason: format!("version {have} is newer than OpenSIPS 3.4's {want}"),
        });
    }
    let changes: Vec<Change> = if have == want {
        let mut out = Vec::new();
        for r in RESHAPES
            .iter()
            .filter(|r| r.kind == kind && r.version == have)
        {
            if column_type(db, table, r.column)?.is_some_and(|t| !(r.current)(&t)) {
                out.push(Change::from(r));
            }
        }
        out
    } else {
        match plan(kind, have, want) {
            Ok(s) => s.into_iter().map(Change::from).collect(),
            Err(reason) => {
                return Ok(Outcome::Refused {
                    table: name,
                    reason,
                })
            }
        }
    };
    if changes.is_empty() {
        return Ok(Outcome::Current {
            table: name,
            version: have,
        });
    }
    // Every guard first, so a refused table is left untouched.
    let mut from = have;
    for c in &changes {
        if let Some((q, why)) = c.guard {
            let n = db.query_wait(&step_sql(q, table), vec![])?;
            if n.first().and_then(|r| r.at(0).as_int()).unwrap_or(0) != 0 {
                return Ok(Outcome::Refused {
                    table: name,
                    reason: format!("version {from} → {}: {why}", c.to),
                });
            }
        }
        from = c.to;
    }
    if !dry_run {
        match db.dialect() {
            Dialect::Mysql => mysql_wait(db, table, &changes)?,
            Dialect::Postgres => pg_wait(db, table, &changes, want)?,
            Dialect::Sqlite => {
                let exprs: Vec<(&str, &str)> = changes
                    .iter()
                    .flat_map(|c| c.lite.iter().copied())
                    .collect();
                lite::rebuild_wait(db, kind, table, &exprs, want)?
            }
        }
    }
    Ok(Outcome::Migrated {
        table: name,
        from: have,
        to: want,
        steps: changes.into_iter().map(|c| c.label).collect(),
    })
}

const SET_VERSION: &str = "UPDATE version SET table_version = ? WHERE table_name = ?";

/// MySQL: each change's statements, the version recorded after each (DDL
/// commits as it goes).
fn mysql_wait(db: &Db, table: &Ident, changes: &[Change]) -> Result<(), DbError> {
    let mut at = None;
    for c in changes {
        for q in c.mysql {
            db.exec_wait(&step_sql(q, table), vec![])?;
        }
        if at != Some(c.to) {
            db.exec_wait(
                SET_VERSION,
                vec![Value::Int(c.to), Value::text(table.as_str())],
            )?;
            at = Some(c.to);
        }
    }
    Ok(())
}

/// PostgreSQL: every statement and the version update in one DO block,
/// which commits or fails as one (the pool may hand consecutive
/// statements to different connections, so no BEGIN … COMMIT).
fn pg_wait(db: &Db, table: &Ident, changes: &[Change], to: i64) -> Result<(), DbError> {
    let zone = pg_zone();
    let mut body = String::new();
    for c in changes {
        for q in c.pg {
            body.push_str(&step_sql(q, table).replace("{tz}", &zone));
            body.push_str(";\n");
        }
    }
    // The name is a checked identifier: safe as a literal.
    body.push_str(&format!(
        "UPDATE version SET table_version = {to} WHERE table_name = '{}';\n",
        table.as_str()
    ));
    db.exec_wait(
        &format!("DO $lunasip_migrate$ BEGIN\n{body}END $lunasip_migrate$"),
        vec![],
    )?;
    Ok(())
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
        match table_wait(db, kind, &table, dry_run) {
            Ok(o) => out.push(o),
            // The server refused a statement (a view on a column, a value
            // out of range…): said for this table, the others go on.
            Err(e) if !e.is_retryable() => out.push(Outcome::Refused {
                table: name,
                reason: format!(
                    "{e}; {}",
                    match db.dialect() {
                        Dialect::Mysql =>
                            "the steps before it stay done (the version table says which)",
                        _ => "the table is as it was",
                    }
                ),
            }),
            Err(e) => return Err(e),
        }
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
        // Every step leads towards a version lunasip reads, on each
        // backend; SQLite's converted columns are 3.4's.
        for s in STEPS {
            assert!(
                version::expected(s.kind).is_some_and(|w| s.from < w),
                "{}",
                s.kind
            );
            assert!(
                !s.mysql.is_empty() && !s.pg.is_empty(),
                "{} {}",
                s.kind,
                s.from
            );
            let t = Ident::new(s.kind).unwrap();
            let lite = super::super::schema::create(Dialect::Sqlite, s.kind, &t).unwrap();
            for (col, _) in s.lite {
                assert!(lite.contains(&format!("\n    {col} ")), "{col}");
            }
        }
        for r in RESHAPES {
            assert_eq!(version::expected(r.kind), Some(r.version));
        }
    }
}
