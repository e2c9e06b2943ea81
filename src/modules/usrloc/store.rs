//! The location tables ("domains" in OpenSIPS: `location`, or any table
//! a script names), shared by every worker: address of record → its
//! contacts in a sharded map, and how each change reaches the database by
//! `db_mode` — 0 memory only, 1 write-through (the route waits for the
//! write), 2 write-back (changes queued and flushed by the timer), 3 DB
//! only (every read is a query: several proxies share one table).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use dashmap::DashMap;

use super::contact::{self, now, split_aor, Contact, COLUMNS};
use super::{conf, events, UlConf};
use crate::db::{version, Db, DbError, Ident, Value};

/// One location table.
pub struct Domain {
    pub name: String,
    pub table: Ident,
    pub(super) records: DashMap<String, Vec<Contact>>,
    /// db_mode 2: writes waiting for the flush, by contact id (None:
    /// delete), with their address of record.
    dirty: Mutex<HashMap<u64, (String, Option<Contact>)>>,
    /// Rows read into memory (db_mode 1 and 2) / version checked.
    loaded: AtomicBool,
    checked: AtomicBool,
    /// The statements on this table, made once each.
    sql: Statements,
}

/// A table's SELECT (by use_domain), INSERT, UPDATE and DELETE texts.
#[derive(Default)]
struct Statements {
    select: [OnceLock<String>; 2],
    insert: OnceLock<String>,
    update: OnceLock<String>,
    delete: OnceLock<String>,
}

/// The tables in memory (the registry's long-lived state).
#[derive(Default)]
struct Domains(DashMap<String, Arc<Domain>>);

fn domains() -> Arc<Domains> {
    crate::state::state::<Domains>()
}

/// Every table used so far.
pub fn all() -> Vec<Arc<Domain>> {
    let mut v: Vec<Arc<Domain>> = domains().0.iter().map(|d| d.value().clone()).collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The table named `name`, made on first use (the name is checked, as it
/// goes into SQL).
pub fn domain(name: &str) -> Result<Arc<Domain>, DbError> {
    let domains = domains();
    if let Some(d) = domains.0.get(name) {
        return Ok(d.clone());
    }
    let table = Ident::new(name)?;
    let d = domains
        .0
        .entry(name.to_string())
        .or_insert_with(|| {
            Arc::new(Domain {
                name: name.to_string(),
                table,
                records: DashMap::new(),
                dirty: Mutex::new(HashMap::new()),
                loaded: AtomicBool::new(false),
                checked: AtomicBool::new(false),
                sql: Default::default(),
            })
        })
        .clone();
    Ok(d)
}

/// Forgets every table (a new config with another db_mode or URL).
pub fn reset() {
    domains().0.clear();
}

/// Changes a closure made to an AoR's contacts, for the database and
/// the events.
struct Diff {
    inserted: Vec<Contact>,
    updated: Vec<Contact>,
    deleted: Vec<Contact>,
}

fn diff(before: &[Contact], after: &[Contact]) -> Diff {
    let mut d = Diff {
        inserted: Vec::new(),
        updated: Vec::new(),
        deleted: Vec::new(),
    };
    for a in after {
        match before.iter().find(|b| b.id == a.id) {
            None => d.inserted.push(a.clone()),
            Some(b) if b != a => d.updated.push(a.clone()),
            Some(_) => {}
        }
    }
    for b in before {
        if !after.iter().any(|a| a.id == b.id) {
            d.deleted.push(b.clone());
        }
    }
    d
}

impl Domain {
    pub(super) fn db(&self, c: &UlConf) -> Result<Db, DbError> {
        c.db.clone()
            .ok_or_else(|| DbError::Internal("usrloc: db_mode needs a db_url".into()))
    }

    fn select_sql(&self, c: &UlConf) -> &str {
        self.sql.select[usize::from(c.use_domain)].get_or_init(|| {
            let cols = COLUMNS.join(", ");
            match c.use_domain {
                true => format!(
                    "SELECT {cols} FROM {} WHERE username = ? AND domain = ?",
                    self.table
                ),
                false => format!("SELECT {cols} FROM {} WHERE username = ?", self.table),
            }
        })
    }

    fn key_params(aor: &str, c: &UlConf) -> Vec<Value> {
        let (u, d) = split_aor(aor, c.use_domain);
        match c.use_domain {
            true => vec![Value::text(u), Value::text(d.unwrap_or(""))],
            false => vec![Value::text(u)],
        }
    }

    /// Checks the table's version once (db_mode 1-3).
    pub(super) async fn check(&self, c: &UlConf) -> Result<(), DbError> {
        if c.db_mode == 0 || self.checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        version::check(&self.db(c)?, "location", &self.table).await?;
        self.checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Reading this table now may wait for the database (db_mode 3, or a
    /// table not read into memory yet in db_mode 1 and 2).
    pub fn read_waits(&self) -> bool {
        match conf().db_mode {
            0 => false,
            3 => true,
            _ => !self.loaded.load(Ordering::Acquire),
        }
    }

    /// db_mode 1 and 2: reads the table into memory once.
    pub async fn ensure_loaded(&self) -> Result<(), DbError> {
        let c = conf();
        if !matches!(c.db_mode, 1 | 2) || self.loaded.load(Ordering::Acquire) {
            return Ok(());
        }
        self.check(&c).await?;
        let sql = format!(
            "SELECT {}, username, domain FROM {} WHERE expires = 0 OR expires > ?",
            COLUMNS.join(", "),
            self.table
        );
        let rows = self.db(&c)?.query(&sql, vec![Value::Int(now())]).await?;
        self.load_rows(&rows, &c);
        Ok(())
    }

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

    pub(super) fn load_rows(&self, rows: &[crate::db::Row], c: &UlConf) {
        let mut n = 0;
        for r in rows {
            let Some(ct) = Contact::from_row(r) else { continue };
            let aor = contact::aor_of_row(r, c.use_domain);
            let mut e = self.records.entry(aor).or_default();
            if !e.iter().any(|x| x.id == ct.id) {
                e.push(ct);
                n += 1;
            }
        }
        self.loaded.store(true, Ordering::Release);
        tracing::info!("usrloc: {n} contacts loaded from table {}", self.table);
    }

    /// The valid contacts of `aor` (db_mode 3 reads the table).
    pub async fn get(&self, aor: &str) -> Result<Vec<Contact>, DbError> {
        let c = conf();
        if c.db_mode == 3 {
            return self.read(aor, &c).await;
        }
        self.ensure_loaded().await?;
        Ok(self.get_memory(aor))
    }

    /// The valid contacts in memory (never waits; db_mode 3 has none).
    pub fn get_memory(&self, aor: &str) -> Vec<Contact> {
        let t = now();
        self.records
            .get(aor)
            .map(|v| v.iter().filter(|c| c.valid(t)).cloned().collect())
            .unwrap_or_default()
    }

    async fn read(&self, aor: &str, c: &UlConf) -> Result<Vec<Contact>, DbError> {
        self.check(c).await?;
        let rows = self
            .db(c)?
            .query(self.select_sql(c), Self::key_params(aor, c))
            .await?;
        let t = now();
        Ok(rows
            .iter()
            .filter_map(Contact::from_row)
            .filter(|ct| ct.valid(t))
            .collect())
    }

    /// Lets `f` edit the contacts of `aor` (expired ones already gone)
    /// and stores the result as `db_mode` says; `persist` false keeps it
    /// in memory only (save's memory-only flag).
    pub async fn update<R>(
        &self,
        aor: &str,
        persist: bool,
        f: impl FnOnce(&mut Vec<Contact>) -> R,
    ) -> Result<R, DbError> {
        let c = conf();
        let t = now();
        if c.db_mode == 3 {
            // Expired rows are left to the timer's DELETE.
            let before = self.read(aor, &c).await?;
            let mut after = before.clone();
            let r = f(&mut after);
            let d = diff(&before, &after);
            self.write(aor, &d, &c).await?;
            events::raise_diff(&self.name, aor, &before, &after);
            return Ok(r);
        }
        self.ensure_loaded().await?;
        let (r, before, after) = {
            let mut e = self.records.entry(aor.to_string()).or_default();
            let before = e.clone();
            e.retain(|ct| ct.valid(t));
            let r = f(&mut e);
            (r, before, e.clone())
        };
        self.records.remove_if(aor, |_, v| v.is_empty());
        let d = diff(&before, &after);
        match c.db_mode {
            1 if persist => {
                if let Err(e) = self.write(aor, &d, &c).await {
                    // Write-through failed: memory goes back to what the
                    // table holds (unless another change came in between).
                    let mut cur = self.records.entry(aor.to_string()).or_default();
                    if *cur == after {
                        *cur = before;
                    }
                    drop(cur);
                    self.records.remove_if(aor, |_, v| v.is_empty());
                    return Err(e);
                }
            }
            2 if persist => self.queue(aor, &d),
            _ => {}
        }
        events::raise_diff(&self.name, aor, &before, &after);
        Ok(r)
    }

    /// Writes a change set to the table (db_mode 1 and 3).
    async fn write(&self, aor: &str, d: &Diff, c: &UlConf) -> Result<(), DbError> {
        if d.inserted.is_empty() && d.updated.is_empty() && d.deleted.is_empty() {
            return Ok(());
        }
        let db = self.db(c)?;
        let (user, dom) = split_aor(aor, c.use_domain);
        for ct in &d.deleted {
            db.exec(self.delete_sql(), vec![Value::Int(ct.id as i64)])
                .await?;
        }
        for ct in &d.updated {
            let mut vals = contact::values(ct, user, dom);
            let id = vals.remove(0);
            vals.push(id);
            db.exec(self.update_sql(), vals).await?;
        }
        for ct in &d.inserted {
            db.exec(self.insert_sql(), contact::values(ct, user, dom))
                .await?;
        }
        Ok(())
    }

    fn insert_sql(&self) -> &str {
        self.sql.insert.get_or_init(|| {
            let marks = vec!["?"; COLUMNS.len()].join(", ");
            format!(
                "INSERT INTO {} ({}) VALUES ({marks})",
                self.table,
                COLUMNS.join(", ")
            )
        })
    }

    fn update_sql(&self) -> &str {
        self.sql.update.get_or_init(|| {
            let set: Vec<String> = COLUMNS[1..].iter().map(|c| format!("{c} = ?")).collect();
            format!(
                "UPDATE {} SET {} WHERE contact_id = ?",
                self.table,
                set.join(", ")
            )
        })
    }

    fn delete_sql(&self) -> &str {
        self.sql.delete.get_or_init(|| format!("DELETE FROM {} WHERE contact_id = ?", self.table))
    }

    /// db_mode 2: remembers the change for the next flush.
    fn queue(&self, aor: &str, d: &Diff) {
        let mut q = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        for ct in &d.deleted {
            q.insert(ct.id, (aor.to_string(), None));
        }
        for ct in d.inserted.iter().chain(&d.updated) {
            q.insert(ct.id, (aor.to_string(), Some(ct.clone())));
        }
    }

    /// Changes waiting for the flush (db_mode 2).
    pub fn pending(&self) -> usize {
        self.dirty.lock().unwrap_or_else(|e| e.into_inner()).len()
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
