//! Every valid contact of a location table at once, for a module that
//! walks them all (nathelper's NAT pinging, OpenSIPS usrloc
//! `get_domain_ucontacts`): memory in db_mode 0-2, the table in db_mode 3.

use super::contact::{self, now, Contact, COLUMNS};
use super::conf;
use super::store::Domain;
use crate::db::{DbError, Value};

impl Domain {
    /// `(aor, contact)` for each contact still bound; the route or task
    /// awaiting it waits for the database in db_mode 3 (and 1-2 until the
    /// table was read).
    pub async fn scan(&self) -> Result<Vec<(String, Contact)>, DbError> {
        let c = conf();
        let t = now();
        if c.db_mode == 3 {
            self.check(&c).await?;
            let sql = format!(
                "SELECT {}, username, domain FROM {} WHERE expires = 0 OR expires > ?",
                COLUMNS.join(", "),
                self.table
            );
            let rows = self.db(&c)?.query(&sql, vec![Value::Int(t)]).await?;
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
                    .filter(|ct| ct.valid(t))
                    .map(|ct| (aor.clone(), ct.clone()))
                    .collect::<Vec<_>>()
            })
            .collect())
    }
}
