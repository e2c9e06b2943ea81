//! Writes that nobody waits for (accounting rows, dialog state): a
//! bounded queue to one thread that runs them in order with the blocking
//! calls of this layer. `push` never waits: a full queue refuses the row
//! and the caller counts it.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Mutex;

use super::{Db, DbError, Value};

type Job = (Db, String, Vec<Value>);

/// One writer thread and its queue.
pub struct Writer {
    tx: Mutex<SyncSender<Job>>,
}

impl Writer {
    /// Starts the thread `name` with a queue of `bound` statements;
    /// `done` sees each result (on the writer thread). None when the
    /// thread cannot start.
    pub fn start(name: &str, bound: usize, done: fn(&str, Result<u64, DbError>)) -> Option<Writer> {
        let (tx, rx) = sync_channel::<Job>(bound);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for (db, sql, vals) in rx {
                    done(&sql, db.exec_wait(&sql, vals));
                }
            })
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
