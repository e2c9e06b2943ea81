//! MySQL/MariaDB, whose DDL commits statement by statement: each table is
//! migrated in a copy (`t__new`: CREATE TABLE … LIKE, its rows, its
//! AUTO_INCREMENT, then the steps' statements), the `version` table too,
//! and all copies replace their originals in one RENAME TABLE, which the
//! server applies atomically (MySQL 8.0 manual "RENAME TABLE"; MariaDB's
//! says the same). A failure before it drops the copies: every table and
//! the version table stay as they were. The originals (`t__old`) are
//! dropped after. A table written while it is copied (its CHECKSUM TABLE
//! differs before and after) stops the migration: the writer's change
//! would be lost.

use super::super::{Db, DbError, Ident, Value};
use super::{step_sql, Failed, Planned};

/// The schema part of `t` as an SQL value (NULL: the connection's).
fn parts(t: &Ident) -> (Value, Value) {
    match t.as_str().split_once('.') {
        Some((s, b)) => (Value::text(s), Value::text(b)),
        None => (Value::Null, Value::text(t.as_str())),
    }
}

fn count(db: &Db, sql: &str, t: &Ident, extra: Option<&str>) -> Result<i64, DbError> {
    let (schema, base) = parts(t);
    let mut params = vec![schema, base];
    if let Some(x) = extra {
        params.push(Value::text(x));
    }
    Ok(db
        .query_wait(sql, params)?
        .first()
        .and_then(|r| r.at(0).as_int())
        .unwrap_or(0))
}

/// Why `table` cannot be rebuilt in a copy, if it cannot: triggers go
/// with the old table, and foreign keys would point at it.
pub(super) fn obstacle(db: &Db, table: &Ident) -> Result<Option<String>, DbError> {
    let triggers = count(
        db,
        "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = COALESCE(?, DATABASE()) AND EVENT_OBJECT_TABLE = ?",
        table,
        None,
    )?;
    let keys = count(
        db,
        "SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE WHERE REFERENCED_TABLE_SCHEMA = COALESCE(?, DATABASE()) AND REFERENCED_TABLE_NAME = ?",
        table,
        None,
    )?;
    Ok((triggers + keys > 0).then(|| {
        format!("it has {triggers} trigger(s) and {keys} foreign key(s) pointing at it, which migrating it in a copy would lose; drop them, migrate, and make them again")
    }))
}

/// `t` with a suffix, for its copy or its original.
fn named(t: &Ident, suffix: &str) -> Result<Ident, DbError> {
    Ident::new(&format!("{}{suffix}", t.as_str()))
}

fn checksum(db: &Db, t: &Ident) -> Result<Option<String>, DbError> {
    Ok(db
        .query_wait(&format!("CHECKSUM TABLE {t}"), vec![])?
        .first()
        .and_then(|r| r.at(1).as_text()))
}

/// Builds `p`'s table in its copy; its checksum before the copy.
fn build(db: &Db, p: &Planned) -> Result<Option<String>, DbError> {
    let t = &p.table;
    let new = named(t, "__new")?;
    db.exec_wait(&format!("DROP TABLE IF EXISTS {new}"), vec![])?;
    db.exec_wait(
        &format!("DROP TABLE IF EXISTS {}", named(t, "__old")?),
        vec![],
    )?;
    let sum = checksum(db, t)?;
    db.exec_wait(&format!("CREATE TABLE {new} LIKE {t}"), vec![])?;
    db.exec_wait(&format!("INSERT INTO {new} SELECT * FROM {t}"), vec![])?;
    // Ids deleted at the end are not handed out again.
    let next = count(
        db,
        "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
        t,
        None,
    )?;
    if next > 0 {
        db.exec_wait(
            &format!("ALTER TABLE {new} AUTO_INCREMENT = {next}"),
            vec![],
        )?;
    }
    for c in &p.changes {
        if let Some((key, _)) = c.drop_key {
            let has = count(
                db,
                "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND INDEX_NAME = ?",
                &new,
                Some(key),
            )?;
            if has > 0 {
                db.exec_wait(&format!("ALTER TABLE {new} DROP INDEX {key}"), vec![])?;
            }
        }
        for q in c.mysql {
            db.exec_wait(&step_sql(q, &new), vec![])?;
        }
    }
    Ok(sum)
}

/// Every planned table migrated in its copy, then all swapped in at once.
pub(super) fn apply_wait(db: &Db, plans: &[Planned]) -> Result<(), Failed> {
    let version = Ident::new("version")?;
    let copies: Vec<Ident> = plans
        .iter()
        .map(|p| named(&p.table, "__new"))
        .chain([named(&version, "__new")])
        .collect::<Result<_, _>>()?;
    let r = swap(db, plans, &version);
    if r.is_err() {
        for c in &copies {
            let _ = db.exec_wait(&format!("DROP TABLE IF EXISTS {c}"), vec![]);
        }
        return r;
    }
    for t in plans.iter().map(|p| &p.table).chain([&version]) {
        if let Ok(old) = named(t, "__old") {
            if let Err(e) = db.exec_wait(&format!("DROP TABLE IF EXISTS {old}"), vec![]) {
                tracing::warn!("db migrate: {t} migrated, but its original {old} is left: {e}");
            }
        }
    }
    Ok(())
}

fn swap(db: &Db, plans: &[Planned], version: &Ident) -> Result<(), Failed> {
    let mut sums = Vec::new();
    for p in plans {
        sums.push(build(db, p).map_err(Failed::of(&p.table))?);
    }
    let vnew = named(version, "__new")?;
    db.exec_wait(&format!("DROP TABLE IF EXISTS {vnew}"), vec![])?;
    db.exec_wait(
        &format!("DROP TABLE IF EXISTS {}", named(version, "__old")?),
        vec![],
    )?;
    db.exec_wait(&format!("CREATE TABLE {vnew} LIKE {version}"), vec![])?;
    db.exec_wait(
        &format!("INSERT INTO {vnew} SELECT * FROM {version}"),
        vec![],
    )?;
    for p in plans {
        db.exec_wait(
            &format!("UPDATE {vnew} SET table_version = ? WHERE table_name = ?"),
            vec![Value::Int(p.to), Value::text(p.table.as_str())],
        )?;
    }
    let mut renames = Vec::new();
    for (p, before) in plans.iter().zip(sums) {
        let t = &p.table;
        if checksum(db, t).map_err(Failed::of(t))? != before {
            return Err(Failed {
                table: Some(t.to_string()),
                err: DbError::Internal(format!(
                    "table {t} was written while it was being migrated; stop what writes it (OpenSIPS, lunasip) and run migrate again"
                )),
            });
        }
        renames.push(format!(
            "{t} TO {}, {} TO {t}",
            named(t, "__old")?,
            named(t, "__new")?
        ));
    }
    renames.push(format!(
        "{version} TO {}, {vnew} TO {version}",
        named(version, "__old")?
    ));
    db.exec_wait(&format!("RENAME TABLE {}", renames.join(", ")), vec![])?;
    Ok(())
}
