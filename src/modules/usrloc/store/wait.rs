//! The location tables from threads that may block on the database (the
//! usrloc timer, the MI): the same operations as a worker's, waited for.

use std::sync::atomic::Ordering;

use super::super::contact::{self, now, split_aor, Contact, COLUMNS};
use super::super::{conf, events, UlConf};
use super::{diff, Diff, Domain};
use crate::db::{version, DbError, Value};

impl Domain {
    /// [`Domain::ensure_loaded`] for a thread that is not a worker.
    pub fn ensure_loaded_wait(&self) -> Result<(), DbError> {
        let c = conf();
        if !matches!(c.db_mode, 1 | 2) || self.loaded.load(Ordering::Acquire) {
            return Ok(());
        }
        let db = self.db(&c)?;
        version::check_wait(&db, "location", &self.table)?;
        self.checked.store(true, Ordering::Relaxed);
        let sql = format!(
            "SELECT {}, username, domain FROM {} WHERE expires = 0 OR expires > ?",
            COLUMNS.join(", "),
            self.table
        );
        let rows = db.query_wait(&sql, vec![Value::Int(now())])?;
        self.load_rows(&rows, &c);
        Ok(())
    }

    /// db_mode 2: writes what is queued (each contact deleted then
    /// inserted, the same on every backend). On an error the rest stays
    /// queued for the next flush.
    pub fn flush_wait(&self) -> Result<usize, DbError> {
        let c = conf();
        let work: Vec<(u64, (String, Option<Contact>))> = {
            let mut q = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
            q.drain().collect()
        };
        if work.is_empty() {
            return Ok(0);
        }
        let db = self.db(&c)?;
        let mut done = 0;
        let mut it = work.into_iter();
        while let Some((id, (aor, ct))) = it.next() {
            let r = (|| {
                db.exec_wait(self.delete_sql(), vec![Value::Int(id as i64)])?;
                if let Some(ct) = &ct {
                    let (u, d) = split_aor(&aor, c.use_domain);
                    db.exec_wait(self.insert_sql(), contact::values(ct, u, d))?;
                }
                Ok::<(), DbError>(())
            })();
            if let Err(e) = r {
                let mut q = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
                q.entry(id).or_insert((aor, ct));
                for (id, v) in it {
                    q.entry(id).or_insert(v);
                }
                return Err(e);
            }
            done += 1;
        }
        Ok(done)
    }

    /// Drops expired contacts (the timer): from memory, and from the table
    /// as `db_mode` says. Returns how many expired.
    pub fn expire_wait(&self) -> Result<usize, DbError> {
        let c = conf();
        let t = now();
        if c.db_mode == 3 {
            let db = self.db(&c)?;
            let n = db.exec_wait(
                &format!(
                    "DELETE FROM {} WHERE expires > 0 AND expires <= ?",
                    self.table
                ),
                vec![Value::Int(t)],
            )?;
            return Ok(n as usize);
        }
        let mut gone: Vec<(String, Contact)> = Vec::new();
        self.records.retain(|aor, v| {
            let before = v.clone();
            v.retain(|ct| ct.valid(t));
            for ct in before.into_iter().filter(|ct| !ct.valid(t)) {
                gone.push((aor.clone(), ct));
            }
            if v.is_empty() {
                events::raise("E_UL_AOR_DELETE", &self.name, aor, None);
            }
            !v.is_empty()
        });
        for (aor, ct) in &gone {
            events::raise("E_UL_CONTACT_DELETE", &self.name, aor, Some(ct));
        }
        match c.db_mode {
            1 => {
                let db = self.db(&c)?;
                for (_, ct) in &gone {
                    db.exec_wait(self.delete_sql(), vec![Value::Int(ct.id as i64)])?;
                }
            }
            2 => {
                let mut q = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
                for (aor, ct) in &gone {
                    q.insert(ct.id, (aor.clone(), None));
                }
            }
            _ => {}
        }
        Ok(gone.len())
    }

    /// Removes an AoR (MI `ul_rm`): memory and table. False if unknown.
    pub fn remove_aor_wait(&self, aor: &str) -> Result<bool, DbError> {
        self.edit_wait(aor, |v| {
            let had = !v.is_empty();
            v.clear();
            had
        })
    }

    /// Applies `f` from a thread that is not a worker (MI), as
    /// [`Domain::update`] does.
    pub fn edit_wait<R: Send + 'static>(
        &self,
        aor: &str,
        f: impl FnOnce(&mut Vec<Contact>) -> R + Send + 'static,
    ) -> Result<R, DbError> {
        let c = conf();
        if c.db_mode == 3 {
            let db = self.db(&c)?;
            let rows = db.query_wait(self.select_sql(&c), Self::key_params(aor, &c))?;
            let before: Vec<Contact> = rows.iter().filter_map(Contact::from_row).collect();
            let mut after = before.clone();
            let r = f(&mut after);
            self.write_wait(aor, &diff(&before, &after), &c)?;
            events::raise_diff(&self.name, aor, &before, &after);
            return Ok(r);
        }
        self.ensure_loaded_wait()?;
        let (r, before, after) = {
            let mut e = self.records.entry(aor.to_string()).or_default();
            let before = e.clone();
            let r = f(&mut e);
            (r, before, e.clone())
        };
        self.records.remove_if(aor, |_, v| v.is_empty());
        events::raise_diff(&self.name, aor, &before, &after);
        let d = diff(&before, &after);
        match c.db_mode {
            1 => self.write_wait(aor, &d, &c)?,
            2 => self.queue(aor, &d),
            _ => {}
        }
        Ok(r)
    }

    /// [`Domain::write`] for a thread that is not a worker.
    fn write_wait(&self, aor: &str, d: &Diff, c: &UlConf) -> Result<(), DbError> {
        if d.inserted.is_empty() && d.updated.is_empty() && d.deleted.is_empty() {
            return Ok(());
        }
        let db = self.db(c)?;
        let (user, dom) = split_aor(aor, c.use_domain);
        for ct in &d.deleted {
            db.exec_wait(self.delete_sql(), vec![Value::Int(ct.id as i64)])?;
        }
        for ct in &d.updated {
            let mut vals = contact::values(ct, user, dom);
            let id = vals.remove(0);
            vals.push(id);
            db.exec_wait(self.update_sql(), vals)?;
        }
        for ct in &d.inserted {
            db.exec_wait(self.insert_sql(), contact::values(ct, user, dom))?;
        }
        Ok(())
    }

    /// MI `ul_sync`: the table (or one AoR's rows) rewritten from memory.
    pub fn sync_wait(&self, only: Option<&str>) -> Result<usize, DbError> {
        let c = conf();
        let db = self.db(&c)?;
        match only {
            Some(aor) => {
                let (u, d) = split_aor(aor, c.use_domain);
                let mut sql = format!("DELETE FROM {} WHERE username = ?", self.table);
                let mut p = vec![Value::text(u)];
                if c.use_domain {
                    sql.push_str(" AND domain = ?");
                    p.push(Value::text(d.unwrap_or("")));
                }
                db.exec_wait(&sql, p)?;
            }
            None => {
                db.exec_wait(&format!("DELETE FROM {}", self.table), vec![])?;
            }
        }
        let mut n = 0;
        let list: Vec<(String, Vec<Contact>)> = self
            .records
            .iter()
            .filter(|e| only.is_none_or(|a| a == e.key()))
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        for (aor, cts) in list {
            let (u, d) = split_aor(&aor, c.use_domain);
            for ct in cts {
                db.exec_wait(self.insert_sql(), contact::values(&ct, u, d))?;
                n += 1;
            }
        }
        self.dirty.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(n)
    }

    /// Every AoR with its contacts (MI `ul_dump`); db_mode 3 reads the
    /// table.
    pub fn dump_wait(&self) -> Result<Vec<(String, Vec<Contact>)>, DbError> {
        let c = conf();
        if c.db_mode == 3 {
            let db = self.db(&c)?;
            let sql = format!(
                "SELECT {}, username, domain FROM {}",
                COLUMNS.join(", "),
                self.table
            );
            let rows = db.query_wait(&sql, vec![])?;
            let mut by: std::collections::BTreeMap<String, Vec<Contact>> = Default::default();
            let t = now();
            for r in &rows {
                let Some(ct) = Contact::from_row(r).filter(|ct| ct.valid(t)) else {
                    continue;
                };
                let aor = contact::aor_of_row(r, c.use_domain);
                by.entry(aor).or_default().push(ct);
            }
            return Ok(by.into_iter().collect());
        }
        self.ensure_loaded_wait()?;
        let mut v: Vec<(String, Vec<Contact>)> = self
            .records
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }

    /// One AoR's contacts for a thread that is not a worker.
    pub fn get_wait(&self, aor: &str) -> Result<Vec<Contact>, DbError> {
        let c = conf();
        if c.db_mode == 3 {
            let db = self.db(&c)?;
            let rows = db.query_wait(self.select_sql(&c), Self::key_params(aor, &c))?;
            let t = now();
            return Ok(rows
                .iter()
                .filter_map(Contact::from_row)
                .filter(|ct| ct.valid(t))
                .collect());
        }
        self.ensure_loaded_wait()?;
        Ok(self.get_memory(aor))
    }
}
