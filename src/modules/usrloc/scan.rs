//! Every valid contact of a location table at once, for a module that
//! walks them all (nathelper's NAT pinging, OpenSIPS usrloc
//! `get_domain_ucontacts`): memory in db_mode 0-2, the table in db_mode 3.

use super::contact::{self, now, Contact, COLUMNS};
use super::conf;
use super::store::Domain;
use crate::db::{DbError, Value};

impl Domain {
    /// `(aor, contact)` for each contact still bound, only those whose id
    /// leaves remainder `k` divided by `n` when `part` is `(n, k)` (a slice
    /// of the table, as OpenSIPS's pinger takes one per second); the route
    /// or task awaiting it waits for the database in db_mode 3 (and 1-2
    /// until the table was read).
    pub async fn scan(&self, part: Option<(u64, u64)>) -> Result<Vec<(String, Contact)>, DbError> {
        let c = conf();
        let t = now();
        let in_part = |id: u64| part.is_none_or(|(n, k)| n == 0 || id % n == k);
        if c.db_mode == 3 {
            self.check(&c).await?;
            let mut sql = format!(
                "SELECT {}, username, domain FROM {} WHERE (expires = 0 OR expires > ?)",
                COLUMNS.join(", "),
                self.table
            );
            let mut params = vec![Value::Int(t)];
            if let Some((n, k)) = part.filter(|(n, _)| *n > 0) {
                sql.push_str(" AND contact_id % ? = ?");
                params.push(Value::Int(n as i64));
                params.push(Value::Int(k as i64));
            }
            let rows = self.db(&c)?.query(&sql, params).await?;
            return Ok(rows
                .iter()
                .filter_map(|r| {
                    let ct = Contact::from_row(r).filter(|ct| ct.valid(t))?;
                    Some((contact::aor_of_row(r, c.use_domain), ct))
                })
                .collect());
        }
        self.ensure_loaded().await?;
        Ok(self
            .records
            .iter()
            .flat_map(|e| {
                let aor = e.key().clone();
                e.value()
                    .iter()
                    .filter(|ct| ct.valid(t) && in_part(ct.id))
                    .map(|ct| (aor.clone(), ct.clone()))
                    .collect::<Vec<_>>()
            })
            .collect())
    }
}
