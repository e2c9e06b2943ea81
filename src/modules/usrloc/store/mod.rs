//! The location tables ("domains" in OpenSIPS: `location`, or any table
//! a script names), shared by every worker: address of record → its
//! contacts in a sharded map, and how each change reaches the database by
//! `db_mode` — 0 memory only, 1 write-through (the route waits for the
//! write), 2 write-back (changes queued and flushed by the timer), 3 DB
//! only (every read is a query: several proxies share one table).
//!
//! Here the tables and what a worker's route awaits; `wait.rs` is the same
//! for the threads that may block (the timer's flush and expiry, the MI);
//! `sql.rs` the statements, made once per table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use super::contact::{self, now, split_aor, Contact, COLUMNS};
use super::{conf, events, UlConf};
use crate::db::{version, Db, DbError, Ident, Value};

mod sql;
mod wait;

use sql::Statements;

/// One location table.
pub struct Domain {
    pub name: String,
    pub table: Ident,
    /// By AoR (ahash: keyed per process like SipHash, cheaper on short keys).
    pub(super) records: DashMap<String, Vec<Contact>, ahash::RandomState>,
    /// db_mode 2: writes waiting for the flush, by contact id (None:
    /// delete), with their address of record.
    dirty: Mutex<HashMap<u64, (String, Option<Contact>)>>,
    /// Rows read into memory (db_mode 1 and 2) / version checked.
    loaded: AtomicBool,
    checked: AtomicBool,
    /// The statements on this table, made once each.
    sql: Statements,
}

/// The tables in memory (the registry's long-lived state).
#[derive(Default)]
struct Domains(DashMap<String, Arc<Domain>, ahash::RandomState>);

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
                records: DashMap::default(),
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
pub(super) struct Diff {
    inserted: Vec<Contact>,
    updated: Vec<Contact>,
    deleted: Vec<Contact>,
}

pub(super) fn diff(before: &[Contact], after: &[Contact]) -> Diff {
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

    /// The valid contacts of `aor` where reading them needs no database
    /// (see [`Domain::read_waits`]); None where it must wait: [`Domain::get`].
    pub fn get_now(&self, aor: &str) -> Option<Vec<Contact>> {
        (!self.read_waits()).then(|| self.get_memory(aor))
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
        let (r, before, after) = self.edit_memory(aor, t, f);
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

    /// [`Domain::update`] at once where it needs no database: db_mode 0,
    /// and in db_mode 1 (a memory-only change) and 2 a table already in
    /// memory. Where it must wait, `f` comes back untouched.
    pub fn update_now<R, F>(&self, aor: &str, persist: bool, f: F) -> Result<R, F>
    where
        F: FnOnce(&mut Vec<Contact>) -> R,
    {
        let c = conf();
        // A write-through change waits for its INSERT/UPDATE.
        if (c.db_mode == 1 && persist) || self.read_waits() {
            return Err(f);
        }
        let (r, before, after) = self.edit_memory(aor, now(), f);
        if c.db_mode == 2 && persist {
            self.queue(aor, &diff(&before, &after));
        }
        events::raise_diff(&self.name, aor, &before, &after);
        Ok(r)
    }

    /// Lets `f` edit the contacts of `aor` in memory, expired ones (at
    /// `t`) already gone: its result, the contacts before and after.
    fn edit_memory<R>(
        &self,
        aor: &str,
        t: i64,
        f: impl FnOnce(&mut Vec<Contact>) -> R,
    ) -> (R, Vec<Contact>, Vec<Contact>) {
        let (r, before, after) = {
            let mut e = self.records.entry(aor.to_string()).or_default();
            let before = e.clone();
            e.retain(|ct| ct.valid(t));
            let r = f(&mut e);
            (r, before, e.clone())
        };
        self.records.remove_if(aor, |_, v| v.is_empty());
        (r, before, after)
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

    /// db_mode 2: remembers the change for the next flush.
    pub(super) fn queue(&self, aor: &str, d: &Diff) {
        let mut q = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        for ct in &d.deleted {
            q.insert(ct.id, (aor.to_string(), None));
        }
        for ct in d.inserted.iter().chain(&d.updated) {
            q.insert(ct.id, (aor.to_string(), Some(ct.clone())));
        }
    }

    /// nathelper's ping latency of contact `id` (µs), kept in memory only
    /// and never in db_mode 3, whose contacts live in the table (OpenSIPS
    /// `update_sipping_latency`); raises `E_UL_LATENCY_UPDATE` as the
    /// filters say.
    pub fn set_latency(&self, aor: &str, id: u64, us: i32) {
        let c = conf();
        if c.db_mode == 3 {
            return;
        }
        let (old, ct) = {
            let Some(mut v) = self.records.get_mut(aor) else { return };
            let Some(ct) = v.iter_mut().find(|x| x.id == id) else { return };
            (std::mem::replace(&mut ct.latency, us), ct.clone())
        };
        let (new, old) = (i64::from(us), i64::from(old));
        let (min, delta) = (c.latency_event_min_us, c.latency_event_min_us_delta);
        // dlist.c: a rise only (its `abs` is taken of the comparison).
        let raise = (min > 0 && new >= min)
            || (delta > 0 && old != 0 && new - old >= delta)
            || (min == 0 && delta == 0);
        if raise {
            events::raise("E_UL_LATENCY_UPDATE", &self.name, aor, Some(&ct));
        }
    }

    /// Changes waiting for the flush (db_mode 2).
    pub fn pending(&self) -> usize {
        self.dirty.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
