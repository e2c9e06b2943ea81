//! OpenSIPS's `version` table: each table's schema version, checked
//! before a module reads or writes the table, so a table of another
//! OpenSIPS release is refused with a message naming it, not misread.

use super::{Db, DbError, Ident, Value};

/// The table versions of OpenSIPS 3.4 (its `scripts/*/…-create.sql`).
pub const OPENSIPS_3_4: &[(&str, i64)] = &[
    ("location", 1013),
    ("subscriber", 8),
    ("uri", 2),
    ("dispatcher", 9),
    ("domain", 3),
    ("dbaliases", 2),
    ("address", 5),
    ("usr_preferences", 3),
    ("acc", 7),
    ("missed_calls", 5),
    ("dialog", 12),
    ("clusterer", 4),
];

/// The version lunasip reads for a kind of table (`location`…).
pub fn expected(kind: &str) -> Option<i64> {
    OPENSIPS_3_4
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| *v)
}

const SQL: &str = "SELECT table_version FROM version WHERE table_name = ?";

fn judge(kind: &str, table: &Ident, rows: Result<Vec<super::Row>, DbError>) -> Result<(), DbError> {
    let want =
        expected(kind).ok_or_else(|| DbError::Internal(format!("no known version for {kind}")))?;
    let rows = rows.map_err(|e| match e {
        DbError::Query { url, reason } => DbError::Query {
            url,
            reason: format!("cannot read the version of table '{table}' ({reason}); `lunasip db init` creates the version table"),
        },
        other => other,
    })?;
    match rows.first().and_then(|r| r.at(0).as_int()) {
        Some(v) if v == want => Ok(()),
        Some(v) => Err(DbError::Version {
            table: table.to_string(),
            found: v.to_string(),
            want,
        }),
        None => Err(DbError::Version {
            table: table.to_string(),
            found: "none (no row)".into(),
            want,
        }),
    }
}

/// Checks that `table` (a table of kind `kind`, e.g. a `location` table
/// named `location_a`) has the version lunasip reads.
pub async fn check(db: &Db, kind: &str, table: &Ident) -> Result<(), DbError> {
    let rows = db.query(SQL, vec![Value::text(table.as_str())]).await;
    judge(kind, table, rows)
}

/// [`check`] for a thread that is not a SIP worker.
pub fn check_wait(db: &Db, kind: &str, table: &Ident) -> Result<(), DbError> {
    let rows = db.query_wait(SQL, vec![Value::text(table.as_str())]);
    judge(kind, table, rows)
}
