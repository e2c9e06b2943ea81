//! The database layer the DB modules share (OpenSIPS's db_mysql,
//! db_postgres and db_sqlite behind one API): one pool per `db_url`,
//! chosen by its scheme — `mysql://` (mysql_async), `postgres://`
//! (tokio-postgres), `sqlite:///path` (rusqlite on a thread of its own).
//!
//! A SIP worker never waits on a database, and never hands a query to
//! another thread either: each worker is a tokio runtime of its own, and
//! a query awaited there runs on that worker's own connections
//! ([`local`]: a few per worker per `db_url`), so it suspends the route
//! and costs no thread hop or wake-up. Threads outside any runtime
//! (start-up, the MI thread, the CLI, the writers) use the `*_wait` forms,
//! which run the query on the layer's own thread. SQLite blocks, so its
//! statements always go to the file's own thread. Queries take bound
//! parameters only: SQL text is built from checked identifiers
//! ([`Ident`]) and `?` placeholders, never from data. Each query has a
//! time limit; a database that cannot be reached is not asked again
//! before a growing back-off delay (100 ms doubling up to 10 s), shared by
//! every thread, so a dead server costs nothing per call. [`version`]
//! checks OpenSIPS 3.4's `version` table.

mod local;
pub mod migrate;
mod mysql;
mod mysql_wire;
mod pg;
pub mod schema;
mod sqlite;
mod value;
pub mod version;
pub mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use local::{bind_thread, MYSQL_IDLE_KEPT, MYSQL_PER_THREAD, WIRE_PER_THREAD};
pub use value::{parse_civil as value_parse_civil, Row, Value};

/// Default time limit of one query (connecting included).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a query failed. Callers retry what [`DbError::is_retryable`] says
/// may pass later and report the rest as configuration or data errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// `db_url` does not parse or names no known backend.
    #[error("bad db_url '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    /// A table or column name that is not a plain identifier.
    #[error("bad table or column name '{0}' (letters, digits, _ and $; database.table allowed)")]
    BadName(String),
    /// No connection, found before the statement was sent (refused,
    /// unreachable, pool checkout or prepare failed, backing off): the
    /// statement did not run.
    #[error("database {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The connection failed after the statement was sent (an I/O error
    /// or a close while awaiting the answer): it may have run or not.
    #[error("database {url}: {reason} after the statement was sent (it may have run)")]
    Lost { url: String, reason: String },
    /// No answer within the query's time limit; `sent`: the statement
    /// had gone out by then, so it may have run.
    #[error("database {url}: no answer within {ms} ms{}", if *.sent { " after the statement was sent (it may have run)" } else { "" })]
    Timeout { url: String, ms: u64, sent: bool },
    /// The server refused the query (no such table, constraint, grant…).
    #[error("database {url}: {reason}")]
    Query { url: String, reason: String },
    /// The `version` table does not hold the version lunasip reads.
    #[error("table '{table}' has version {found} in the version table, lunasip reads version {want} (OpenSIPS 3.4)")]
    Version {
        table: String,
        found: String,
        want: i64,
    },
    /// The layer itself could not run (thread, runtime).
    #[error("database layer: {0}")]
    Internal(String),
}

impl DbError {
    /// Asking again later may work (the database was down or slow).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DbError::Unreachable { .. }
                | DbError::Lost { .. }
                | DbError::Timeout { .. }
                | DbError::Internal(_)
        )
    }

    /// Whether the statement ran is unknown: it reached the server (or
    /// SQLite's thread) and the answer never came. Sending a non-idempotent
    /// statement again may run it twice.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            DbError::Lost { .. } | DbError::Timeout { sent: true, .. }
        )
    }
}

/// Set by a backend as a statement goes out (after the connection,
/// the prepare and the binding): a failure from then on is
/// [`DbError::Lost`], a time limit [`DbError::Timeout`] with `sent`.
pub(crate) type Sent = AtomicBool;

/// Which SQL dialect a pool speaks (placeholders and types differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Mysql,
    Postgres,
    Sqlite,
}

/// A checked table or column name: `name` or `database.name`, letters,
/// digits, `_` and `$`. The only text other than constants that goes
/// into SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident(String);

impl Ident {
    pub fn new(name: &str) -> Result<Ident, DbError> {
        match Ident::valid(name) {
            true => Ok(Ident(name.to_string())),
            false => Err(DbError::BadName(name.to_string())),
        }
    }

    /// Whether [`Ident::new`] takes `name` (checked without allocating).
    pub fn valid(name: &str) -> bool {
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 64
                && !p.as_bytes()[0].is_ascii_digit()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        };
        let mut parts = name.split('.');
        parts.by_ref().take(2).all(ok) && parts.next().is_none()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Ident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The URL with its password hidden, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((cred, host)) if cred.contains(':') => {
            let user = cred.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// What a pool is, per backend: how a bound thread makes its own
/// connections (MySQL, PostgreSQL), or the one thread of a SQLite file.
enum Kind {
    Mysql(mysql_async::Opts),
    Pg(Box<tokio_postgres::Config>),
    Sqlite(sqlite::Handle),
}

/// When a database that could not be reached is asked again: lock-free,
/// since every worker reads it before each query.
#[derive(Default)]
struct Backoff {
    fails: AtomicU32,
    /// Milliseconds since [`epoch`] before which nobody asks; 0: ask.
    until_ms: AtomicU64,
}

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

struct Inner {
    /// Tells the pools of one bound thread apart.
    id: usize,
    /// The URL with its password hidden.
    shown: String,
    kind: Kind,
    backoff: Backoff,
}

/// A pool for one `db_url`, shared by every module that names it (cheap
/// to clone). Connections are made when first needed, per bound thread
/// ([`bind_thread`]).
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
    timeout: Duration,
}

/// What a statement returns.
enum Out {
    Rows(Vec<Row>),
    Affected(u64),
}

static POOLS: Mutex<Option<HashMap<String, Db>>> = Mutex::new(None);

/// The pool of `url`, made on first use (nothing is connected yet).
pub fn open(url: &str) -> Result<Db, DbError> {
    static IDS: AtomicUsize = AtomicUsize::new(1);
    let mut g = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let map = g.get_or_insert_with(HashMap::new);
    if let Some(db) = map.get(url) {
        return Ok(db.clone());
    }
    let shown = redact(url);
    let bad = |reason: &str| DbError::BadUrl {
        url: shown.clone(),
        reason: reason.to_string(),
    };
    let (scheme, _) = url
        .split_once("://")
        .ok_or_else(|| bad("no scheme (mysql://, postgres://, sqlite:///path)"))?;
    let kind = match scheme {
        "mysql" => Kind::Mysql(mysql::opts(url, &shown)?),
        "postgres" | "postgresql" => Kind::Pg(Box::new(pg::config(url, &shown)?)),
        "sqlite" => Kind::Sqlite(sqlite::Handle::new(url, &shown)?),
        other => {
            return Err(bad(&format!(
                "unknown scheme '{other}' (mysql, postgres, sqlite)"
            )))
        }
    };
    let db = Db {
        inner: Arc::new(Inner {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            shown,
            kind,
            backoff: Backoff::default(),
        }),
        timeout: DEFAULT_TIMEOUT,
    };
    map.insert(url.to_string(), db.clone());
    Ok(db)
}

/// Checks a `db_url` without opening anything (`lunasip check`).
pub fn check_url(url: &str) -> Result<Dialect, DbError> {
    let bad = |reason: String| DbError::BadUrl {
        url: redact(url),
        reason,
    };
    match url.split_once("://") {
        Some(("mysql", _)) => mysql::check_url(url).map(|_| Dialect::Mysql).map_err(bad),
        Some(("postgres" | "postgresql", _)) => url
            .parse::<tokio_postgres::Config>()
            .map(|_| Dialect::Postgres)
            .map_err(|e| bad(e.to_string())),
        Some(("sqlite", path)) if !path.is_empty() => Ok(Dialect::Sqlite),
        Some(("sqlite", _)) => Err(bad("no file path (sqlite:///path/to/file.db)".into())),
        Some((other, _)) => Err(bad(format!(
            "unknown scheme '{other}' (mysql, postgres, sqlite)"
        ))),
        None => Err(bad(
            "no scheme (mysql://, postgres://, sqlite:///path)".into()
        )),
    }
}

/// The layer's own runtime: one bound thread that runs the queries of
/// threads that have no runtime of their own (start-up, MI, CLI, the
/// writers, tests).
fn runtime() -> Result<&'static tokio::runtime::Handle, DbError> {
    static RT: OnceLock<Result<tokio::runtime::Handle, String>> = OnceLock::new();
    RT.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("db".into())
            .spawn(move || {
                local::bind_layer_thread();
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let _ = tx.send(Ok(rt.handle().clone()));
                        rt.block_on(std::future::pending::<()>());
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("cannot start the runtime: {e}")));
                    }
                }
            })
            .map_err(|e| format!("cannot start the database thread: {e}"))?;
        rx.recv()
            .map_err(|_| "the database thread ended".to_string())?
    })
    .as_ref()
    .map_err(|e| DbError::Internal(e.clone()))
}

impl Db {
    /// The same pool with another time limit per query.
    pub fn with_timeout(&self, timeout: Duration) -> Db {
        Db {
            inner: self.inner.clone(),
            timeout,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn dialect(&self) -> Dialect {
        match self.inner.kind {
            Kind::Mysql(_) => Dialect::Mysql,
            Kind::Pg(_) => Dialect::Postgres,
            Kind::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The URL with its password hidden.
    pub fn url(&self) -> &str {
        &self.inner.shown
    }

    /// Runs a query that returns rows (`?` placeholders, `params` bound
    /// in order). Awaited on a SIP worker it runs on that worker's own
    /// connections; awaited elsewhere, on the layer's thread.
    pub fn query(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<Vec<Row>, DbError>> + Send + 'static {
        let fut = self.start(sql, params, true);
        async move {
            match fut.await? {
                Out::Rows(r) => Ok(r),
                Out::Affected(_) => Ok(Vec::new()),
            }
        }
    }

    /// Runs a statement (INSERT, UPDATE, DELETE, DDL); returns the rows
    /// it changed.
    pub fn exec(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> impl Future<Output = Result<u64, DbError>> + Send + 'static {
        let fut = self.start(sql, params, false);
        async move {
            match fut.await? {
                Out::Affected(n) => Ok(n),
                Out::Rows(r) => Ok(r.len() as u64),
            }
        }
    }

    /// [`Db::query`] for a thread that is not a SIP worker (start-up, MI,
    /// CLI): waits for the answer.
    pub fn query_wait(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, DbError> {
        match self.run_wait(sql, params, true)? {
            Out::Rows(r) => Ok(r),
            Out::Affected(_) => Ok(Vec::new()),
        }
    }

    /// [`Db::exec`] for a thread that is not a SIP worker.
    pub fn exec_wait(&self, sql: &str, params: Vec<Value>) -> Result<u64, DbError> {
        match self.run_wait(sql, params, false)? {
            Out::Affected(n) => Ok(n),
            Out::Rows(r) => Ok(r.len() as u64),
        }
    }

    /// Runs on the layer's runtime and blocks this thread for the answer
    /// (never called on a SIP worker).
    fn run_wait(&self, sql: &str, params: Vec<Value>, rows: bool) -> Result<Out, DbError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let db = self.clone();
        let sql = sql.to_string();
        runtime()?.spawn(async move {
            let _ = tx.send(db.run(&sql, params, rows).await);
        });
        rx.recv()
            .map_err(|_| DbError::Internal("the query task ended without an answer".into()))?
    }

    /// The query, run where it is first polled: on a bound thread right
    /// there; SQLite on its file's thread from anywhere; otherwise on the
    /// layer's thread.
    fn start(
        &self,
        sql: &str,
        params: Vec<Value>,
        rows: bool,
    ) -> Pin<Box<dyn Future<Output = Result<Out, DbError>> + Send + 'static>> {
        let db = self.clone();
        let sql = sql.to_string();
        // Boxed once here, so that the callers' futures (a route's
        // suspended call among them) stay small and are not copied by value.
        Box::pin(async move {
            if local::bound() || matches!(db.inner.kind, Kind::Sqlite(_)) {
                return db.run(&sql, params, rows).await;
            }
            let task = runtime()?.spawn(async move { db.run(&sql, params, rows).await });
            match task.await {
                Ok(r) => r,
                Err(e) => Err(DbError::Internal(format!("query task failed: {e}"))),
            }
        })
    }

    /// On a bound thread (or any, for SQLite): back-off, the query, its
    /// time limit.
    async fn run(&self, sql: &str, params: Vec<Value>, rows: bool) -> Result<Out, DbError> {
        let shown = &self.inner.shown;
        if let Some(left) = self.backoff_left() {
            return Err(DbError::Unreachable {
                url: shown.clone(),
                reason: format!("down, next try in {left} ms"),
            });
        }
        let sent = Sent::new(false);
        // Boxed: the drivers' futures are several KB, and every await
        // level above would copy them by value.
        let fut = Box::pin(async {
            match &self.inner.kind {
                Kind::Sqlite(h) => h.run(sql.to_string(), params, rows, &sent).await,
                _ => match local::conns(&self.inner)? {
                    local::Conns::Mysql(p) => p.run(sql, params, rows, &sent).await,
                    local::Conns::Pg(p) => p.run(sql, params, rows, &sent).await,
                },
            }
        });
        let r = match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(DbError::Timeout {
                url: shown.clone(),
                ms: self.timeout.as_millis() as u64,
                sent: sent.load(Ordering::Relaxed),
            }),
        };
        self.note(&r);
        r
    }

    /// Milliseconds left of a back-off in force.
    fn backoff_left(&self) -> Option<u64> {
        let until = self.inner.backoff.until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return None;
        }
        let now = now_ms();
        (until > now).then(|| until - now)
    }

    /// Records whether the database answered, for the back-off.
    fn note(&self, r: &Result<Out, DbError>) {
        let b = &self.inner.backoff;
        match r {
            Err(DbError::Unreachable { reason, .. } | DbError::Lost { reason, .. }) => {
                let fails = b.fails.fetch_add(1, Ordering::Relaxed).saturating_add(1);
                let ms = 100u64.saturating_mul(1 << fails.min(7)).min(10_000);
                b.until_ms.store(now_ms() + ms, Ordering::Relaxed);
                tracing::warn!(
                    "database {}: {reason}; next try in {ms} ms",
                    self.inner.shown
                );
            }
            _ => {
                if b.fails.load(Ordering::Relaxed) > 0 && b.fails.swap(0, Ordering::Relaxed) > 0 {
                    b.until_ms.store(0, Ordering::Relaxed);
                    tracing::info!("database {}: reachable again", self.inner.shown);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents_and_urls() {
        assert!(Ident::new("location").is_ok());
        assert!(Ident::new("opensips.location").is_ok());
        assert!(Ident::new("a.b.c").is_err());
        assert!(Ident::new("x; drop table y").is_err());
        assert!(Ident::new("1abc").is_err());
        assert!(Ident::new("").is_err());
        for bad in ["a.", ".a", "a..b", "a.b.", "é"] {
            assert!(!Ident::valid(bad) && Ident::new(bad).is_err(), "{bad}");
        }
        assert!(Ident::valid("db.t_1$"));
        assert_eq!(check_url("mysql://root@127.0.0.1/test"), Ok(Dialect::Mysql));
        assert_eq!(
            check_url("postgres://postgres@127.0.0.1/test"),
            Ok(Dialect::Postgres)
        );
        assert_eq!(check_url("sqlite:///tmp/x.db"), Ok(Dialect::Sqlite));
        assert!(check_url("oracle://x").is_err());
        assert!(check_url("nothing").is_err());
        assert_eq!(redact("mysql://u:pw@h/db"), "mysql://u:***@h/db");
    }
}
