//! Writes that nobody waits for (accounting rows, dialog state): a
//! bounded queue to one thread that runs them in order with the blocking
//! calls of this layer. `push` never waits: a full queue refuses the row
//! and the caller counts it. Consecutive INSERTs of the same statement
//! that arrive within [`LINGER`] of each other go to the server as one
//! multi-row INSERT (up to [`BATCH`] rows), so a busy proxy costs the
//! database one round trip per batch, not per row.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;

use super::{Db, DbError, Value};

type Job = (Db, String, Vec<Value>);

/// Rows merged into one INSERT at most.
pub const BATCH: usize = 100;

/// How long an INSERT waits for more rows of its kind: a steady flow of
/// rows costs the database a round trip per batch, not per row.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// One writer thread and its queue.
pub struct Writer {
    tx: Mutex<SyncSender<Job>>,
}

/// What a batch reports: the statement (as queued), the rows it held and
/// the result.
pub type Done = fn(&str, usize, Result<u64, DbError>);

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
    loop {
        let (db, sql, mut vals) = match next.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let mut rows = 1;
        let mut batched = sql.clone();
        if let Some(group) = values_group(&sql) {
            let until = std::time::Instant::now() + LINGER;
            while rows < BATCH {
                let wait = until.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(j) if j.1 == sql && j.0.url() == db.url() => {
                        batched.push_str(", ");
                        batched.push_str(group);
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
        done(&sql, rows, db.exec_wait(&batched, vals));
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
}
