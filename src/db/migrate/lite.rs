//! SQLite's way to change column types, which it cannot ALTER: in one
//! transaction for all the tables, create each table in OpenSIPS 3.4's
//! shape under a temporary name (`schema::create`), copy the rows
//! (columns of both by name, renamed ones into their new name, converted
//! ones by their expression, columns only the old table has kept as they
//! were), drop the old table, rename the new one, and make its indexes
//! again. Any failure rolls everything back.

use super::super::{schema, Db, DbError, Dialect, Ident, Value};
use super::{Failed, Planned};

/// A column of the old table, from `pragma_table_info`.
struct Col {
    name: String,
    decl: String,
    not_null: bool,
    default: Option<String>,
}

/// A declared type as SQLite stored it, if it is plain (`CHAR(64)`,
/// `INT(10) UNSIGNED`): the only kind put back into SQL.
fn plain_type(t: &str) -> bool {
    t.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" (),".contains(&b))
}

/// A default that is a plain literal ('text' without quotes inside, a
/// number, NULL).
fn plain_default(d: &str) -> bool {
    let quoted = d.len() >= 2
        && d.starts_with('\'')
        && d.ends_with('\'')
        && !d[1..d.len() - 1].contains('\'');
    let number = !d.is_empty()
        && d.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    quoted || number || d.eq_ignore_ascii_case("NULL")
}

fn columns(db: &Db, table: &str) -> Result<Vec<Col>, DbError> {
    let rows = db.query_wait(
        "SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info(?)",
        vec![Value::text(table)],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Col {
                name: r.at(0).as_text()?,
                decl: r.at(1).as_text().unwrap_or_default(),
                not_null: r.at(2).as_int().unwrap_or(0) != 0,
                default: r.at(3).as_text(),
            })
        })
        .collect())
}

/// Every planned table rebuilt, in one transaction.
pub(super) fn apply_wait(db: &Db, plans: &[Planned]) -> Result<(), Failed> {
    db.exec_wait("BEGIN IMMEDIATE", vec![])?;
    let r = plans.iter().try_for_each(|p| {
        let exprs: Vec<(&str, &str)> = p
            .changes
            .iter()
            .flat_map(|c| c.lite.iter().copied())
            .collect();
        let renames: Vec<(&str, &str)> = p
            .changes
            .iter()
            .flat_map(|c| c.renames.iter().copied())
            .collect();
        rebuild_wait(db, &p.kind, &p.table, &exprs, &renames, p.to).map_err(Failed::of(&p.table))
    });
    match r {
        Ok(()) => db
            .exec_wait("COMMIT", vec![])
            .map(|_| ())
            .map_err(Failed::from),
        Err(e) => {
            let _ = db.exec_wait("ROLLBACK", vec![]);
            Err(e)
        }
    }
}

/// Rebuilds `table` (kind `kind`) in OpenSIPS 3.4's shape, `exprs`
/// giving the columns not copied as they are and `renames` the columns
/// copied under another name, and records version `to` (inside the
/// caller's transaction).
fn rebuild_wait(
    db: &Db,
    kind: &str,
    table: &Ident,
    exprs: &[(&str, &str)],
    renames: &[(&str, &str)],
    to: i64,
) -> Result<(), DbError> {
    let bad = |why: String| DbError::Internal(format!("table {table}: {why}"));
    let base = table.as_str();
    let tmp = Ident::new(&format!("{base}__new"))
        .map_err(|_| bad("the name is too long for the temporary copy".into()))?;
    // 3.4's statement for the table itself (its constraint names), made
    // under the temporary name.
    let create = schema::create(Dialect::Sqlite, kind, table)
        .and_then(|sql| {
            let head = format!("CREATE TABLE IF NOT EXISTS {table} (");
            sql.strip_prefix(&head)
                .map(|rest| format!("CREATE TABLE {tmp} ({rest}"))
        })
        .ok_or_else(|| bad(format!("no schema for {kind}")))?;
    let old = columns(db, base)?;
    if old.is_empty() {
        return Err(bad("no such table".into()));
    }
    for c in &old {
        Ident::new(&c.name).map_err(|_| bad(format!("column '{}' is not a plain name", c.name)))?;
    }
    let indexes: Vec<String> = db
        .query_wait(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            vec![Value::text(base)],
        )?
        .iter()
        .filter_map(|r| r.at(0).as_text())
        .collect();
    {
        db.exec_wait(&format!("DROP TABLE IF EXISTS {tmp}"), vec![])?;
        db.exec_wait(&create, vec![])?;
        let new: Vec<String> = columns(db, tmp.as_str())?
            .into_iter()
            .map(|c| c.name)
            .collect();
        // Columns 3.4 does not have (ha1b…) are kept, as on the others.
        let renamed = |n: &str| renames.iter().find(|(o, _)| *o == n).map(|(_, to)| *to);
        for c in old
            .iter()
            .filter(|c| !new.contains(&c.name) && renamed(&c.name).is_none())
        {
            let mut def = c.name.clone();
            if plain_type(&c.decl) {
                def = format!("{def} {}", c.decl);
            }
            if let Some(d) = c.default.as_deref().filter(|d| plain_default(d)) {
                def = format!("{def} DEFAULT {d}");
                if c.not_null {
                    def.push_str(" NOT NULL");
                }
            }
            db.exec_wait(&format!("ALTER TABLE {tmp} ADD COLUMN {def}"), vec![])?;
        }
        let mut names = Vec::new();
        let mut values = Vec::new();
        for c in &old {
            names.push(renamed(&c.name).unwrap_or(&c.name).to_string());
            match exprs.iter().find(|(n, _)| *n == c.name) {
                Some((_, e)) => values.push(e.to_string()),
                None => values.push(c.name.clone()),
            }
        }
        db.exec_wait(
            &format!(
                "INSERT INTO {tmp} ({}) SELECT {} FROM {table}",
                names.join(", "),
                values.join(", ")
            ),
            vec![],
        )?;
        db.exec_wait(&format!("DROP TABLE {table}"), vec![])?;
        db.exec_wait(&format!("ALTER TABLE {tmp} RENAME TO {base}"), vec![])?;
        // The old table's own indexes (their SQL as SQLite kept it: every
        // column they name is still there), then lunasip's.
        for ix in &indexes {
            db.exec_wait(ix, vec![])?;
        }
        for ix in schema::indexes(Dialect::Sqlite, kind, table) {
            db.exec_wait(&ix, vec![])?;
        }
        db.exec_wait(
            "UPDATE version SET table_version = ? WHERE table_name = ?",
            vec![Value::Int(to), Value::text(base)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_sql_is_put_back() {
        assert!(plain_type("INT(10) UNSIGNED"));
        assert!(plain_type("CHAR(64)"));
        assert!(!plain_type("CHAR(64); DROP TABLE x"));
        assert!(plain_default("''"));
        assert!(plain_default("'Default-Call-ID'"));
        assert!(plain_default("-1.5"));
        assert!(plain_default("NULL"));
        assert!(!plain_default("'a' || (SELECT 1)"));
        assert!(!plain_default("'x''y'"));
    }
}
