//! Writes that nobody waits for (accounting rows, dialog state): a
//! bounded queue to one thread that runs them in order with the blocking
//! calls of this layer. `push` never waits: a full queue refuses the row
//! and the caller counts it. Consecutive INSERTs of the same statement
//! that arrive within [`LINGER`] of each other go to the server as one
//! multi-row INSERT (up to [`BATCH`] rows), so a busy proxy costs the
//! database one round trip per batch, not per row.
//!
//! A database that goes away (a restart, a network cut) holds the batch
//! in hand for up to [`HOLD`], tried again with a backoff, while new rows
//! wait in the queue; past that the batches are counted as not written
//! until the database answers again, so a long outage ends in counted
//! drops, never in a queue that only grows.
//!
//! A failure after the batch was sent ([`DbError::is_ambiguous`]: the
//! connection closed while awaiting the OK) leaves unknown whether it
//! was committed. An INSERT batch is then looked for in its table
//! ([`landed`]) before it is sent again, so a billing row is neither
//! written twice nor lost. The other statements the writers run are
//! idempotent and simply sent again: dialog's `DELETE … WHERE dlg_id = ?`
//! (run twice, it deletes the same row once), and the writer runs nothing
//! between the two tries.

pub mod landed;

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;

use super::{Db, DbError, Value};
use landed::Probe;

type Job = (Db, String, Vec<Value>);

/// Rows merged into one INSERT at most. A batch goes as INSERTs of a
/// power of two rows each ([`chunks`]): a prepared statement is kept per
/// distinct text on every connection (MySQL holds its parameters'
/// metadata server-side), so only 7 shapes per table exist, not one per
/// batch size.
pub const BATCH: usize = 64;

/// How long an INSERT waits for more rows of its kind: a steady flow of
/// rows costs the database a round trip per batch, not per row.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// How long a database that stopped answering may hold the writer
/// before its rows are counted as not written (a MariaDB restart takes a
/// few seconds).
pub const HOLD: std::time::Duration = std::time::Duration::from_secs(10);

/// The first and the longest pause between two tries of a held batch.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// One writer thread and its queue.
pub struct Writer {
    tx: Mutex<SyncSender<Job>>,
}

/// How a batch was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The server answered: rows changed.
    Sent(u64),
    /// The connection failed after the batch was sent, and a look-up
    /// found its rows in the table: not sent again.
    Found,
}

/// What a batch reports: the statement (as queued), the rows it held and
/// the result.
pub type Done = fn(&str, usize, Result<Written, DbError>);

impl Writer {
    /// Starts the thread `name` with a queue of `bound` statements;
    /// `done` sees each result (on the writer thread). None when the
    /// thread cannot start.
    pub fn start(name: &str, bound: usize, done: Done) -> Option<Writer> {
        let (tx, rx) = sync_channel::<Job>(bound);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(rx, done))
            .map_err(|e| tracing::error!("{name}: cannot start the database writer: {e}"))
            .ok()?;
        Some(Writer { tx: Mutex::new(tx) })
    }

    /// Queues a statement; false when the queue is full.
    pub fn push(&self, db: Db, sql: String, vals: Vec<Value>) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        !matches!(
            tx.try_send((db, sql, vals)),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
        )
    }
}

/// The `(?, …)` group of an `INSERT … VALUES (?, …)` statement, if it
/// ends with one.
fn values_group(sql: &str) -> Option<&str> {
    if !sql.starts_with("INSERT INTO ") {
        return None;
    }
    let at = sql.rfind(" VALUES (")?;
    let group = &sql[at + " VALUES ".len()..];
    (group.ends_with(')') && !group[1..].contains('(')).then_some(group)
}

fn run(rx: Receiver<Job>, done: Done) {
    let mut next: Option<Job> = None;
    // Since when the database has not answered (None: it did last time).
    let mut down_since: Option<std::time::Instant> = None;
    loop {
        let (db, sql, mut vals) = match next.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let mut rows = 1;
        if values_group(&sql).is_some() {
            let until = std::time::Instant::now() + LINGER;
            while rows < BATCH {
                let wait = until.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(j) if j.1 == sql && j.0.url() == db.url() => {
                        vals.extend(j.2);
                        rows += 1;
                    }
                    Ok(j) => {
                        next = Some(j);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if rows == 1 {
            write(&db, &sql, &sql, vals, 1, &mut down_since, done);
            continue;
        }
        // Every row of one INSERT has as many values.
        let width = vals.len() / rows;
        let mut vals = vals.into_iter();
        for n in chunks(rows) {
            let part: Vec<Value> = vals.by_ref().take(n * width).collect();
            write(&db, &sql, &batched(&sql, n), part, n, &mut down_since, done);
        }
    }
}

/// Sizes of the INSERTs a batch of `rows` rows goes as, in order: the
/// powers of two of its binary form, largest first.
fn chunks(rows: usize) -> impl Iterator<Item = usize> {
    (0..usize::BITS)
        .rev()
        .map(|b| 1usize << b)
        .filter(move |n| rows & n != 0)
}

/// `sql` (an INSERT with one VALUES group) for `n` rows.
fn batched(sql: &str, n: usize) -> String {
    let Some(group) = values_group(sql) else {
        return sql.to_string();
    };
    let mut out = String::with_capacity(sql.len() + (n - 1) * (group.len() + 2));
    out.push_str(sql);
    for _ in 1..n {
        out.push_str(", ");
        out.push_str(group);
    }
    out
}

/// Sends one INSERT (`sent`: `queued` for `rows` rows) and reports it.
fn write(
    db: &Db,
    queued: &str,
    sent: &str,
    vals: Vec<Value>,
    rows: usize,
    down_since: &mut Option<std::time::Instant>,
    done: Done,
) {
    let r = exec_held(db, (queued, sent), vals, down_since);
    if r == Ok(Written::Found) {
        tracing::info!(
            "database {}: {rows} row(s) found written after the connection failed, not sent again: {queued}",
            db.url()
        );
    }
    done(queued, rows, r);
}

/// Runs one batch (`sql`: as queued, and as sent); while the database
/// is unreachable and has been for less than [`HOLD`], waits and tries
/// again. After a failure that leaves unknown whether an INSERT ran, it
/// is looked for before it is sent again.
fn exec_held(
    db: &Db,
    (queued, sql): (&str, &str),
    vals: Vec<Value>,
    down_since: &mut Option<std::time::Instant>,
) -> Result<Written, DbError> {
    let mut pause = RETRY_FIRST;
    // The ambiguous failure of the last send, while its probe has not
    // answered.
    let mut unsure: Option<(DbError, Probe)> = None;
    loop {
        let r = match &unsure {
            None => db.exec_wait(sql, vals.clone()).map(Written::Sent),
            Some((first, p)) => match p.landed(db) {
                Ok(true) => Ok(Written::Found),
                Ok(false) => {
                    // Not there: sending it again writes it once.
                    tracing::debug!("database {}: the batch did not land, sent again", db.url());
                    unsure = None;
                    continue;
                }
                Err(e) if e.is_retryable() => Err(e),
                Err(e) => {
                    // Neither sent again (it may be there) nor counted
                    // written (it may not).
                    tracing::warn!("database {}: cannot look for the batch: {e}", db.url());
                    return Err(first.clone());
                }
            },
        };
        match r {
            Err(e) if e.is_retryable() => {
                // Only an INSERT has a probe; the other statements are
                // idempotent (module doc) and go again as they are.
                let fresh = e.is_ambiguous() && unsure.is_none();
                if fresh {
                    unsure = Probe::of(queued, &vals).map(|p| (e.clone(), p));
                }
                let since = *down_since.get_or_insert_with(std::time::Instant::now);
                // The server took the batch just now: it is asked once
                // at least, however long it was down before.
                if since.elapsed() >= HOLD && !(fresh && unsure.is_some()) {
                    // Unknown whether it landed: say so rather than "down".
                    return Err(unsure.map_or(e, |(first, _)| first));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(RETRY_MAX);
            }
            r => {
                if r.is_ok() {
                    *down_since = None;
                }
                return r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_inserts_batch() {
        assert_eq!(
            values_group("INSERT INTO acc (a, b) VALUES (?, ?)"),
            Some("(?, ?)")
        );
        assert_eq!(values_group("DELETE FROM dialog WHERE dlg_id = ?"), None);
        assert_eq!(values_group("INSERT INTO t (a) SELECT (1)"), None);
        assert_eq!(values_group("INSERT INTO t (a) VALUES (f(?))"), None);
    }

    #[test]
    fn batches_keep_order_in_powers_of_two() {
        assert_eq!(chunks(1).collect::<Vec<_>>(), [1]);
        assert_eq!(chunks(45).collect::<Vec<_>>(), [32, 8, 4, 1]);
        assert_eq!(chunks(BATCH).collect::<Vec<_>>(), [64]);
        assert_eq!(chunks(63).sum::<usize>(), 63);
        // Every size a batch can take becomes one of 7 statements.
        let shapes: std::collections::BTreeSet<usize> = (1..=BATCH).flat_map(chunks).collect();
        assert_eq!(shapes.len(), 7);
        let one = "INSERT INTO t (a, b) VALUES (?, ?)";
        assert_eq!(batched(one, 1), one);
        assert_eq!(
            batched(one, 3),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
    }
}
