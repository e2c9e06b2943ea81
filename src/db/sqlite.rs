//! The SQLite backend (OpenSIPS db_sqlite), the embedded default: rusqlite
//! with the bundled library on a thread of its own per file, never on a
//! worker or on the layer's runtime. Statements queue to that thread; the
//! answer comes back through a channel the caller awaits.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rusqlite::types::Value as Lite;

use super::value::civil_text;
use super::{DbError, Out, Row, Sent, Value};

struct Job {
    sql: String,
    params: Vec<Value>,
    rows: bool,
    reply: tokio::sync::oneshot::Sender<Result<Out, DbError>>,
}

pub struct Handle {
    tx: Mutex<mpsc::Sender<Job>>,
    shown: String,
}

impl Handle {
    /// `sqlite:///var/lib/lunasip/lunasip.db` (the path after `sqlite://`).
    pub fn new(url: &str, shown: &str) -> Result<Handle, DbError> {
        let path = url.strip_prefix("sqlite://").unwrap_or("").to_string();
        if path.is_empty() {
            return Err(DbError::BadUrl {
                url: shown.to_string(),
                reason: "no file path (sqlite:///path/to/file.db)".into(),
            });
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let who = shown.to_string();
        std::thread::Builder::new()
            .name("db-sqlite".into())
            .spawn(move || serve(&path, &who, rx))
            .map_err(|e| DbError::Internal(format!("cannot start the sqlite thread: {e}")))?;
        Ok(Handle {
            tx: Mutex::new(tx),
            shown: shown.to_string(),
        })
    }

    /// Queues the statement to the file's thread; `sent` is set once it
    /// is queued: from then on it runs whether or not the answer is
    /// awaited (a time limit passing does not stop it).
    pub async fn run(
        &self,
        sql: String,
        params: Vec<Value>,
        rows: bool,
        sent: &Sent,
    ) -> Result<Out, DbError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            sql,
            params,
            rows,
            reply,
        };
        let queued = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(job);
        if queued.is_err() {
            return Err(DbError::Internal(format!(
                "the sqlite thread of {} ended",
                self.shown
            )));
        }
        sent.store(true, std::sync::atomic::Ordering::Relaxed);
        // Dropped unanswered (the thread failed while running it): the
        // statement may have run.
        answer.await.map_err(|_| DbError::Lost {
            url: self.shown.clone(),
            reason: "the sqlite thread ended".into(),
        })?
    }
}

fn serve(path: &str, shown: &str, rx: mpsc::Receiver<Job>) {
    let mut conn: Option<rusqlite::Connection> = None;
    for job in rx {
        if conn.is_none() {
            match rusqlite::Connection::open(path) {
                Ok(c) => {
                    let _ = c.busy_timeout(Duration::from_secs(5));
                    // Readers do not wait for a writer (several processes
                    // may share the file).
                    let _ = c.pragma_update(None, "journal_mode", "WAL");
                    conn = Some(c);
                }
                Err(e) => {
                    let _ = job.reply.send(Err(DbError::Unreachable {
                        url: shown.to_string(),
                        reason: e.to_string(),
                    }));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_ref() else { continue };
        let r = run(c, &job.sql, job.params, job.rows).map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::DatabaseBusy
                ) =>
            {
                DbError::Unreachable {
                    url: shown.to_string(),
                    reason: e.to_string(),
                }
            }
            e => DbError::Query {
                url: shown.to_string(),
                reason: e.to_string(),
            },
        });
        let _ = job.reply.send(r);
    }
}

fn to_lite(v: Value) -> Lite {
    match v {
        Value::Null => Lite::Null,
        Value::Int(i) => Lite::Integer(i),
        Value::Float(f) => Lite::Real(f),
        Value::Text(s) => Lite::Text(s),
        Value::Bytes(b) => Lite::Blob(b),
        Value::Time(t) => Lite::Text(civil_text(t)),
    }
}

fn run(
    c: &rusqlite::Connection,
    sql: &str,
    params: Vec<Value>,
    rows: bool,
) -> Result<Out, rusqlite::Error> {
    let mut stmt = c.prepare_cached(sql)?;
    let params: Vec<Lite> = params.into_iter().map(to_lite).collect();
    let bound = rusqlite::params_from_iter(params.iter());
    if !rows {
        return Ok(Out::Affected(stmt.execute(bound)? as u64));
    }
    let cols: Arc<[String]> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let n = cols.len();
    let mut out = Vec::new();
    let mut q = stmt.query(bound)?;
    while let Some(r) = q.next()? {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            vals.push(match r.get::<_, Lite>(i)? {
                Lite::Null => Value::Null,
                Lite::Integer(i) => Value::Int(i),
                Lite::Real(f) => Value::Float(f),
                Lite::Text(s) => Value::Text(s),
                Lite::Blob(b) => Value::Bytes(b),
            });
        }
        out.push(Row::new(cols.clone(), vals));
    }
    Ok(Out::Rows(out))
}
