//! `lunasip db migrate`: brings tables of an older OpenSIPS release to
//! the versions lunasip reads (OpenSIPS 3.4), one version step at a time,
//! where the step is mechanical, on MySQL/MariaDB, PostgreSQL and SQLite
//! (the steps and their sources: `steps.rs`). A step that needs knowledge
//! the database does not hold is refused with the reason, and the table
//! is left as it was.
//!
//! Every table is judged first (its version, its steps, their guards);
//! the tables that can migrate then change together, all or nothing: a
//! statement that fails leaves every table and the `version` table as
//! they were. MySQL, whose DDL commits as it goes, builds each table's
//! new shape in a copy and swaps all copies in, the `version` table's
//! too, with one RENAME TABLE (`shadow.rs`); PostgreSQL runs everything
//! in one block; SQLite, which cannot change a column's type, rebuilds
//! the tables in OpenSIPS 3.4's shape in one transaction (`lite.rs`).

mod lite;
mod shadow;
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
    /// Not migrated, with the reason; the table is as it was.
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
    renames: &'static [(&'static str, &'static str)],
    drop_key: Option<(&'static str, &'static str)>,
}

/// A table whose changes are decided and checked, before any runs.
struct Planned {
    table: Ident,
    kind: String,
    /// The version it has now.
    from: i64,
    /// The version it has after the changes (OpenSIPS 3.4's).
    to: i64,
    changes: Vec<Change>,
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
            renames: s.renames,
            drop_key: s.drop_key,
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
            renames: &[],
            drop_key: None,
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

/// What to do with one table: nothing (and why), or its plan.
enum Decision {
    Done(Outcome),
    Migrate(Planned),
}

/// Judges one table of kind `kind`: its version, the steps to 3.4's and
/// their guards. Changes nothing.
fn decide(db: &Db, kind: &str, table: &Ident) -> Result<Decision, DbError> {
    let name = table.to_string();
    let refuse = |reason: String| {
        Ok(Decision::Done(Outcome::Refused {
            table: name.clone(),
            reason,
        }))
    };
    let want = version::expected(kind)
        .ok_or_else(|| DbError::Internal(format!("no known version for {kind}")))?;
    let rows = db.query_wait(
        "SELECT table_version FROM version WHERE table_name = ?",
        vec![Value::text(table.as_str())],
    )?;
    let Some(have) = rows.first().and_then(|r| r.at(0).as_int()) else {
        return refuse("no row in the version table".into());
    };
    if have > want {
        return refuse(format!(
            "version {have} is newer than OpenSIPS 3.4's {want}"
        ));
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
            Err(reason) => return refuse(reason),
        }
    };
    if changes.is_empty() {
        return Ok(Decision::Done(Outcome::Current {
            table: name,
            version: have,
        }));
    }
    let mut from = have;
    for c in &changes {
        if let Some((q, why)) = c.guard {
            let n = db.query_wait(&step_sql(q, table), vec![])?;
            if n.first().and_then(|r| r.at(0).as_int()).unwrap_or(0) != 0 {
                return refuse(format!("version {from} → {}: {why}", c.to));
            }
        }
        from = c.to;
    }
    if db.dialect() == Dialect::Mysql {
        if let Some(why) = shadow::obstacle(db, table)? {
            return refuse(why);
        }
    }
    Ok(Decision::Migrate(Planned {
        table: table.clone(),
        kind: kind.to_string(),
        from: have,
        to: want,
        changes,
    }))
}

impl Planned {
    fn outcome(&self) -> Outcome {
        Outcome::Migrated {
            table: self.table.to_string(),
            from: self.from,
            to: self.to,
            steps: self.changes.iter().map(|c| c.label.clone()).collect(),
        }
    }
}

/// Why a migration did not happen: the error, and the table whose
/// statement failed when known. Nothing was changed.
struct Failed {
    table: Option<String>,
    err: DbError,
}

impl Failed {
    fn of(table: &Ident) -> impl Fn(DbError) -> Failed + '_ {
        move |err| Failed {
            table: Some(table.to_string()),
            err,
        }
    }
}

impl From<DbError> for Failed {
    fn from(err: DbError) -> Failed {
        Failed { table: None, err }
    }
}

/// PostgreSQL: every table's statements and its version update in one
/// DO block, which commits or fails as one (the pool may hand
/// consecutive statements to different connections, so no BEGIN …
/// COMMIT). Each table's part says its name when it fails.
fn pg_wait(db: &Db, plans: &[Planned]) -> Result<(), Failed> {
    let zone = pg_zone();
    let mut body = String::new();
    for p in plans {
        let t = &p.table;
        body.push_str("BEGIN\n");
        for c in &p.changes {
            if let Some((_, key)) = c.drop_key {
                body.push_str(&format!(
                    "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {key};\n"
                ));
            }
            for q in c.pg {
                body.push_str(&step_sql(q, t).replace("{tz}", &zone));
                body.push_str(";\n");
            }
        }
        // The name is a checked identifier: safe as a literal.
        body.push_str(&format!(
            "UPDATE version SET table_version = {} WHERE table_name = '{}';\n\
             EXCEPTION WHEN OTHERS THEN RAISE EXCEPTION 'table %: %', '{}', SQLERRM;\nEND;\n",
            p.to,
            t.as_str(),
            t.as_str()
        ));
    }
    db.exec_wait(
        &format!("DO $lunasip_migrate$ BEGIN\n{body}END $lunasip_migrate$"),
        vec![],
    )
    .map_err(|err| {
        let text = err.to_string();
        Failed {
            table: plans
                .iter()
                .map(|p| p.table.to_string())
                .find(|t| text.contains(&format!("table {t}: "))),
            err,
        }
    })?;
    Ok(())
}

/// The migration itself, all or nothing, on the pool's backend.
fn apply_wait(db: &Db, plans: &[Planned]) -> Result<(), Failed> {
    match db.dialect() {
        Dialect::Mysql => shadow::apply_wait(db, plans),
        Dialect::Postgres => pg_wait(db, plans),
        Dialect::Sqlite => lite::apply_wait(db, plans),
    }
}

/// Every table the `version` table lists: its kind is its name, or what
/// `kinds` (table → kind) says. The tables that can migrate do so
/// together or not at all.
pub fn all_wait(
    db: &Db,
    kinds: &[(String, String)],
    dry_run: bool,
) -> Result<Vec<Outcome>, DbError> {
    // Copying a large table takes longer than a query may.
    let db = &db.with_timeout(std::time::Duration::from_secs(3600));
    let rows = db.query_wait(
        "SELECT table_name, table_version FROM version ORDER BY table_name",
        vec![],
    )?;
    let mut out = Vec::new();
    let mut plans: Vec<(usize, Planned)> = Vec::new();
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
        match decide(db, kind, &table) {
            Ok(Decision::Done(o)) => out.push(o),
            Ok(Decision::Migrate(p)) => {
                out.push(p.outcome());
                plans.push((out.len() - 1, p));
            }
            // The server refused a query about this table (a guard on a
            // column it lacks…): said for it, the others go on.
            Err(e) if !e.is_retryable() => out.push(Outcome::Refused {
                table: name,
                reason: format!("{e}; the table is as it was"),
            }),
            Err(e) => return Err(e),
        }
    }
    if dry_run || plans.is_empty() {
        return Ok(out);
    }
    let (at, plans): (Vec<usize>, Vec<Planned>) = plans.into_iter().unzip();
    if let Err(f) = apply_wait(db, &plans) {
        for (i, p) in at.into_iter().zip(&plans) {
            let t = p.table.to_string();
            let reason = match &f.table {
                Some(c) if *c == t => format!("{}; nothing was changed", f.err),
                Some(c) => {
                    format!("table {c} failed and the tables migrate together: nothing was changed")
                }
                None => format!("{}; nothing was changed", f.err),
            };
            out[i] = Outcome::Refused { table: t, reason };
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
        assert_eq!(plan("location", 1009, 1013).unwrap().len(), 4);
        assert!(plan("location", 1008, 1013).is_err_and(|e| e.contains("version 1008 to 1009")));
        assert!(plan("dialog", 9, 12).is_ok());
        assert!(plan("clusterer", 1, 4).is_ok());
        assert!(plan("subscriber", 6, 8).is_err());
        // Every step leads towards a version lunasip reads, on each
        // backend; SQLite's converted columns are 3.4's.
        for s in STEPS {
            assert!(
                version::expected(s.kind).is_some_and(|w| s.from < w),
                "{}",
                s.kind
            );
            // Both backends change something, or neither (a version
            // that only stops reading columns).
            assert_eq!(s.mysql.is_empty(), s.pg.is_empty(), "{} {}", s.kind, s.from);
            for (old, new) in s.renames {
                assert!(
                    s.mysql.iter().any(|q| q.contains(&format!("{old} {new}"))),
                    "{old}"
                );
                assert!(
                    s.pg.iter().any(|q| q.contains(&format!("{old} TO {new}"))),
                    "{old}"
                );
            }
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
