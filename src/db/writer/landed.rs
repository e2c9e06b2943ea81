//! Did a batch land? When the connection fails after a multi-row INSERT
//! was sent, the server may have committed it (the OK was lost) or not.
//! A multi-row INSERT is atomic (one statement: InnoDB, PostgreSQL and
//! SQLite commit all its rows or none), so its last row tells: the writer
//! counts the rows equal to it in every column the INSERT sets before
//! sending the batch again. Only on that path: a normal write costs
//! nothing more.
//!
//! Equality is NULL-safe without dialect operators: `col = ?` for a value,
//! `col IS NULL` for a NULL. Unlike PostgreSQL's `IS NOT DISTINCT FROM`,
//! both can use an index on all three backends (OpenSIPS's scripts index
//! acc by `callid`; the tables `lunasip db init` makes do not yet).
//!
//! It cannot tell the batch from rows written before with the very same
//! values in every column: such a batch is taken as written.

use crate::db::{Db, DbError, Ident, Value};

/// A look-up for the last row of an INSERT batch.
#[derive(Debug, PartialEq)]
pub struct Probe {
    /// `SELECT COUNT(*) AS n FROM t WHERE …`, `?` placeholders.
    pub sql: String,
    /// The last row's non-NULL values, in placeholder order.
    pub vals: Vec<Value>,
    /// Rows of the batch equal to its last one: the table holds at least
    /// this many more if the batch landed.
    pub want: i64,
}

impl Probe {
    /// The probe of `insert` (one `INSERT INTO t (a, b) VALUES (?, ?)`
    /// as queued) run with `vals` (one or more rows of values). None when
    /// the statement is not such an INSERT or the values do not fill
    /// whole rows.
    pub fn of(insert: &str, vals: &[Value]) -> Option<Probe> {
        probe(insert, vals)
    }

    /// Whether the batch is in the table (asked on the layer's thread).
    pub fn landed(&self, db: &Db) -> Result<bool, DbError> {
        let rows = db.query_wait(&self.sql, self.vals.clone())?;
        Ok(rows.first().and_then(|r| r.int("n")).unwrap_or(0) >= self.want)
    }
}

fn probe(insert: &str, vals: &[Value]) -> Option<Probe> {
    let rest = insert.strip_prefix("INSERT INTO ")?;
    let (table, rest) = rest.split_once(" (")?;
    let (cols, group) = rest.split_once(") VALUES ")?;
    let table = Ident::new(table).ok()?;
    let cols = cols
        .split(", ")
        .map(|c| Ident::new(c).ok().filter(|i| !i.as_str().contains('.')))
        .collect::<Option<Vec<_>>>()?;
    let marks = format!("({})", vec!["?"; cols.len()].join(", "));
    if group != marks || vals.is_empty() || vals.len() % cols.len() != 0 {
        return None;
    }
    let last = &vals[vals.len() - cols.len()..];
    let want = vals.chunks(cols.len()).filter(|r| *r == last).count() as i64;
    let mut sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE ");
    let mut bound = Vec::with_capacity(cols.len());
    for (i, (c, v)) in cols.iter().zip(last).enumerate() {
        if i > 0 {
            sql.push_str(" AND ");
        }
        if *v == Value::Null {
            sql.push_str(&format!("{c} IS NULL"));
        } else {
            sql.push_str(&format!("{c} = ?"));
            bound.push(v.clone());
        }
    }
    Some(Probe {
        sql,
        vals: bound,
        want,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACC: &str = "INSERT INTO acc (method, callid, created) VALUES (?, ?, ?)";

    fn row(m: &str, c: &str, created: Option<i64>) -> Vec<Value> {
        vec![
            Value::text(m),
            Value::text(c),
            created.map_or(Value::Null, Value::Time),
        ]
    }

    #[test]
    fn the_last_row_null_safe() {
        let mut vals = row("INVITE", "a", Some(5));
        vals.extend(row("BYE", "b", None));
        let p = probe(ACC, &vals).expect("probe");
        assert_eq!(
            p.sql,
            "SELECT COUNT(*) AS n FROM acc WHERE method = ? AND callid = ? AND created IS NULL"
        );
        assert_eq!(p.vals, vec![Value::text("BYE"), Value::text("b")]);
        assert_eq!(p.want, 1);
        let p = probe(ACC, &row("INVITE", "a", Some(5))).expect("probe");
        assert!(p.sql.ends_with("created = ?"), "{}", p.sql);
        assert_eq!(p.vals.len(), 3);
    }

    #[test]
    fn equal_rows_in_one_batch_are_all_wanted() {
        // acc legs with the same values: two identical rows in a batch.
        let mut vals = row("INVITE", "a", None);
        vals.extend(row("INVITE", "b", None));
        vals.extend(row("INVITE", "b", None));
        assert_eq!(probe(ACC, &vals).expect("probe").want, 2);
    }

    #[test]
    fn the_same_probe_for_every_dialect() {
        // `?` everywhere (the PostgreSQL backend numbers them) and no
        // dialect operator: what each backend is given.
        let p = probe(
            "INSERT INTO db1.dialog (dlg_id, vars) VALUES (?, ?)",
            &[Value::Int(7), Value::Bytes(b"x#1#y|".to_vec())],
        )
        .expect("probe");
        assert_eq!(
            p.sql,
            "SELECT COUNT(*) AS n FROM db1.dialog WHERE dlg_id = ? AND vars = ?"
        );
        assert_eq!(
            crate::db::pg::numbered(&p.sql),
            "SELECT COUNT(*) AS n FROM db1.dialog WHERE dlg_id = $1 AND vars = $2"
        );
    }

    #[test]
    fn only_plain_inserts_of_whole_rows() {
        let one = row("INVITE", "a", None);
        assert_eq!(
            probe("DELETE FROM dialog WHERE dlg_id = ?", &one[..1]),
            None
        );
        assert_eq!(probe("INSERT INTO acc (a) SELECT (?)", &one[..1]), None);
        assert_eq!(
            probe("INSERT INTO acc (a, b) VALUES (?, f(?))", &one[..2]),
            None
        );
        assert_eq!(probe("INSERT INTO acc (a, b) VALUES (?, ?)", &one), None);
        assert_eq!(probe("INSERT INTO acc (a, b) VALUES (?, ?)", &[]), None);
        assert_eq!(probe("INSERT INTO acc (a; b) VALUES (?)", &one[..1]), None);
    }
}
