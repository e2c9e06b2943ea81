//! The MySQL/MariaDB backend (OpenSIPS db_mysql): a mysql_async pool per
//! bound thread (see `local`), used only on that thread's runtime.
//! Statements with parameters go as prepared statements (bound values,
//! never spliced into the text).
//!
//! Reads keep one connection of their own per thread and URL, outside the
//! pool: taking a connection from the pool and giving it back (a check,
//! a lock, a wake-up of the pool's recycler task each time) cost a few
//! per cent of an authenticated registration's CPU (bench/RESULTS.md,
//! Session 16). A read
//! can be sent again, so one that fails on that connection (the server
//! closed it meanwhile) is retried once on a connection from the pool,
//! which checks its idle connections before handing one over. Writes
//! always take theirs from the pool: whether a failed one ran cannot be
//! known ([`DbError::Lost`]).
//!
//! Reads with parameters go first through [`mysql_wire`], a lean client of
//! the thread's own (up to `WIRE_PER_THREAD` connections per thread and
//! URL); what it declines (TLS, sockets, other authentication), and reads
//! beyond those connections, go through mysql_async as above.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::Value as My;

use super::local::WIRE_PER_THREAD;
use super::mysql_wire::{Wire, WireError};
use super::value::{civil, from_civil};
use super::{DbError, Out, Row, Sent, Value};

/// Prepared statements of more parameters than this are closed after
/// use rather than kept for the next (the writer's 1–8-row INSERTs of a
/// CDR stay under it, its 16–64-row ones go over).
const KEEP_PARAMS: usize = 128;

#[derive(Clone)]
pub struct Pool {
    pool: mysql_async::Pool,
    opts: mysql_async::Opts,
    shown: Arc<str>,
    /// Tells this pool's read connection from other pools' on the thread.
    id: usize,
    /// Set once the lean client declined this URL or server.
    wire_off: Arc<AtomicBool>,
}

thread_local! {
    /// Each pool's read connection on this thread, while no read uses it.
    static READER: RefCell<Vec<(usize, mysql_async::Conn)>> = const { RefCell::new(Vec::new()) };
    /// Each pool's lean read connections on this thread.
    static WIRE: RefCell<Vec<(usize, Lean)>> = const { RefCell::new(Vec::new()) };
}

/// One pool's lean connections on this thread.
#[derive(Default)]
struct Lean {
    idle: Vec<Wire>,
    /// Idle and in use.
    open: usize,
}

/// A lean connection in use (or a place for one, `wire: None`, to be
/// connected). Dropped without `sound` — the read failed, or its future
/// was dropped mid-read (a time limit) — the connection is closed and its
/// place freed; with `sound`, it goes back to the idle ones.
struct Lease {
    id: usize,
    wire: Option<Wire>,
    sound: bool,
}

impl Lease {
    /// An idle connection of pool `id`, or a place for a new one while
    /// fewer than [`WIRE_PER_THREAD`] are open; `None` when all are busy.
    fn take(id: usize) -> Option<Lease> {
        WIRE.with(|w| {
            let mut w = w.borrow_mut();
            let i = match w.iter().position(|(p, _)| *p == id) {
                Some(i) => i,
                None => {
                    w.push((id, Lean::default()));
                    w.len() - 1
                }
            };
            let lean = &mut w[i].1;
            let wire = match lean.idle.pop() {
                Some(c) => Some(c),
                None if lean.open < WIRE_PER_THREAD => {
                    lean.open += 1;
                    None
                }
                None => return None,
            };
            Some(Lease {
                id,
                wire,
                sound: false,
            })
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let back = self.wire.take().filter(|_| self.sound);
        // A thread-local is gone only while the thread exits.
        let _ = WIRE.try_with(|w| {
            let mut w = w.borrow_mut();
            if let Some((_, lean)) = w.iter_mut().find(|(p, _)| *p == self.id) {
                match back {
                    Some(c) => lean.idle.push(c),
                    None => lean.open = lean.open.saturating_sub(1),
                }
            }
        });
    }
}

/// `LUNASIP_MYSQL_WIRE=0` in the environment sends every read through
/// mysql_async (a switch for measuring the lean client against it).
fn wire_allowed() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("LUNASIP_MYSQL_WIRE").is_none_or(|v| v != "0"))
}

/// Checks a `mysql://user:password@host:port/database` URL.
pub fn check_url(url: &str) -> Result<(), String> {
    mysql_async::Opts::from_url(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The options every thread's pool of `url` is made with.
pub fn opts(url: &str, shown: &str) -> Result<mysql_async::Opts, DbError> {
    let opts = mysql_async::Opts::from_url(url).map_err(|e| DbError::BadUrl {
        url: shown.to_string(),
        reason: e.to_string(),
    })?;
    let mut pool_opts = opts.pool_opts().clone();
    let mut b = mysql_async::OptsBuilder::from_opts(opts);
    // Stay on the TCP address given: the server's Unix socket may meet
    // another authentication (Debian's root@localhost).
    if !url.contains("prefer_socket=") {
        b = b.prefer_socket(false);
    }
    // A connection going back to the pool is not reset (COM_RESET_CONNECTION
    // also empties its prepared-statement cache, so every query cost a
    // reset, a prepare and a close on top of the execute). lunasip keeps no
    // session state on a connection: no transactions, variables or
    // temporary tables. `?reset_connection=true` in the URL restores it.
    if !url.contains("reset_connection=") {
        pool_opts = pool_opts.with_reset_connection(false);
    }
    // Each bound thread (every SIP worker) has a pool of its own: up to
    // MYSQL_PER_THREAD connections, of which MYSQL_IDLE_KEPT stay open
    // while idle (the others close after MYSQL_IDLE_TTL unused), unless
    // the URL says otherwise.
    if !url.contains("pool_min=") && !url.contains("pool_max=") {
        use super::local::{MYSQL_IDLE_KEPT, MYSQL_IDLE_TTL, MYSQL_PER_THREAD};
        if let Some(c) = mysql_async::PoolConstraints::new(MYSQL_IDLE_KEPT, MYSQL_PER_THREAD) {
            pool_opts = pool_opts.with_constraints(c);
        }
        if !url.contains("inactive_connection_ttl=") {
            pool_opts = pool_opts.with_inactive_connection_ttl(MYSQL_IDLE_TTL);
        }
    }
    Ok(b.pool_opts(pool_opts).into())
}

impl Pool {
    /// A pool of this thread (its connections live on the runtime of the
    /// thread that first uses it).
    pub fn new(opts: mysql_async::Opts, shown: &str) -> Pool {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Pool {
            pool: mysql_async::Pool::new(opts.clone()),
            opts,
            shown: Arc::from(shown),
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            wire_off: Arc::new(AtomicBool::new(!wire_allowed())),
        }
    }

    /// A read on the lean client: `None` when it is declined, its
    /// connection failed, or all [`WIRE_PER_THREAD`] lean connections of
    /// this thread are busy; the read then goes through mysql_async.
    async fn wire_read(
        &self,
        sql: &str,
        params: &[Value],
        sent: &Sent,
    ) -> Option<Result<Out, DbError>> {
        let mut lease = Lease::take(self.id)?;
        if lease.wire.is_none() {
            match Wire::connect(&self.opts).await {
                Ok(w) => lease.wire = Some(w),
                Err(WireError::Unsupported(why)) => {
                    self.wire_off.store(true, Ordering::Relaxed);
                    tracing::info!(
                        "database {}: reads use the general client: {why}",
                        self.shown
                    );
                    return None;
                }
                Err(e) => {
                    tracing::debug!("database {}: lean connection: {e:?}", self.shown);
                    return None;
                }
            }
        }
        let wire = lease.wire.as_mut()?;
        sent.store(true, Ordering::Relaxed);
        let r = match wire.read(sql, params).await {
            Ok(rows) => Some(Ok(Out::Rows(rows))),
            Err(WireError::Server(reason)) => Some(Err(DbError::Query {
                url: self.shown.to_string(),
                reason,
            })),
            Err(WireError::Unsupported(why)) => {
                tracing::debug!(
                    "database {}: read through the general client: {why}",
                    self.shown
                );
                sent.store(false, Ordering::Relaxed);
                None
            }
            Err(WireError::Broken(why)) => {
                // Closed under it: the read goes again through mysql_async,
                // and a later one opens a new lean connection.
                tracing::debug!("database {}: read again: {why}", self.shown);
                sent.store(false, Ordering::Relaxed);
                return None;
            }
        };
        lease.sound = true;
        r
    }

    /// This pool's read connection, when no read holds it.
    fn take_reader(&self) -> Option<mysql_async::Conn> {
        READER.with(|r| {
            let mut r = r.borrow_mut();
            let i = r.iter().position(|(id, _)| *id == self.id)?;
            Some(r.swap_remove(i).1)
        })
    }

    /// Keeps `conn` as this pool's read connection, unless one is kept
    /// already (then it goes back to the pool when dropped).
    fn keep_reader(&self, conn: mysql_async::Conn) {
        READER.with(|r| {
            let mut r = r.borrow_mut();
            if !r.iter().any(|(id, _)| *id == self.id) {
                r.push((self.id, conn));
            }
        });
    }

    /// The error of a step before the statement went out.
    fn err(&self, e: mysql_async::Error) -> DbError {
        let url = self.shown.to_string();
        match e {
            mysql_async::Error::Server(e) => DbError::Query {
                url,
                reason: e.to_string(),
            },
            mysql_async::Error::Url(e) => DbError::BadUrl {
                url,
                reason: e.to_string(),
            },
            other => DbError::Unreachable {
                url,
                reason: other.to_string(),
            },
        }
    }

    /// The error of the execute itself: anything but the server's own
    /// answer (an I/O error, the connection closed while awaiting the
    /// OK) leaves unknown whether the statement ran.
    fn err_sent(&self, e: mysql_async::Error) -> DbError {
        match e {
            e @ (mysql_async::Error::Server(_) | mysql_async::Error::Url(_)) => self.err(e),
            other => DbError::Lost {
                url: self.shown.to_string(),
                reason: other.to_string(),
            },
        }
    }

    /// Runs `sql`; `sent` is set once the statement goes out. The pool
    /// checks an idle connection before handing it over, and the prepare
    /// (from the connection's cache, or a round trip that runs nothing)
    /// comes before the execute, so only the execute's failures are
    /// [`DbError::Lost`].
    pub async fn run(
        &self,
        sql: &str,
        params: Vec<Value>,
        rows: bool,
        sent: &Sent,
    ) -> Result<Out, DbError> {
        if rows && !params.is_empty() && !self.wire_off.load(Ordering::Relaxed) {
            if let Some(r) = self.wire_read(sql, &params, sent).await {
                return r;
            }
        }
        if rows {
            if let Some(mut conn) = self.take_reader() {
                let r = self
                    .run_on(&mut conn, sql, params.clone(), rows, sent)
                    .await;
                if answered(&r) {
                    self.keep_reader(conn);
                    return r;
                }
                // Closed under it: the read goes again on a checked one.
                if let Err(e) = r {
                    tracing::debug!("database {}: read again: {e}", self.shown);
                }
            }
        }
        let mut conn = self.pool.get_conn().await.map_err(|e| self.err(e))?;
        let r = self.run_on(&mut conn, sql, params, rows, sent).await;
        if rows && answered(&r) {
            self.keep_reader(conn);
        }
        r
    }

    /// Runs `sql` on `conn` (see [`Pool::run`]).
    async fn run_on(
        &self,
        conn: &mut mysql_async::Conn,
        sql: &str,
        params: Vec<Value>,
        rows: bool,
        sent: &Sent,
    ) -> Result<Out, DbError> {
        if params.is_empty() {
            // The text protocol: nothing to prepare.
            sent.store(true, Ordering::Relaxed);
            return if rows {
                let got: Vec<mysql_async::Row> =
                    conn.query(sql).await.map_err(|e| self.err_sent(e))?;
                Ok(Out::Rows(convert(got)))
            } else {
                conn.query_drop(sql).await.map_err(|e| self.err_sent(e))?;
                Ok(Out::Affected(conn.affected_rows()))
            };
        }
        let stmt = conn.prep(sql).await.map_err(|e| self.err(e))?;
        let params = mysql_async::Params::Positional(params.into_iter().map(to_my).collect());
        sent.store(true, Ordering::Relaxed);
        let out = if rows {
            let got: Vec<mysql_async::Row> = conn
                .exec(&stmt, params)
                .await
                .map_err(|e| self.err_sent(e))?;
            Out::Rows(convert(got))
        } else {
            conn.exec_drop(&stmt, params)
                .await
                .map_err(|e| self.err_sent(e))?;
            Out::Affected(conn.affected_rows())
        };
        // The server keeps each prepared statement's parameter metadata
        // until it is closed: a large one (a multi-row INSERT of the
        // writer) is not kept in the connection's cache.
        if stmt.num_params() as usize > KEEP_PARAMS {
            if let Err(e) = conn.close(stmt).await {
                tracing::debug!("database {}: closing a statement: {e}", self.shown);
            }
        }
        Ok(out)
    }
}

/// The server answered (rows, or its own error): the connection is sound.
fn answered(r: &Result<Out, DbError>) -> bool {
    matches!(r, Ok(_) | Err(DbError::Query { .. }))
}

pub(super) fn to_my(v: Value) -> My {
    match v {
        Value::Null => My::NULL,
        Value::Int(i) => My::Int(i),
        Value::Float(f) => My::Double(f),
        Value::Text(s) => My::Bytes(s.into_bytes()),
        Value::Bytes(b) => My::Bytes(b),
        Value::Time(t) => {
            let d = civil(t);
            My::Date(
                d.year() as u16,
                d.month() as u8,
                d.day() as u8,
                d.hour() as u8,
                d.minute() as u8,
                d.second() as u8,
                0,
            )
        }
    }
}

pub(super) fn from_my(v: &My) -> Value {
    match v {
        My::NULL => Value::Null,
        My::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::Text(s.to_string()),
            Err(_) => Value::Bytes(b.clone()),
        },
        My::Int(i) => Value::Int(*i),
        My::UInt(u) => Value::Int(i64::try_from(*u).unwrap_or(i64::MAX)),
        My::Float(f) => Value::Float(f64::from(*f)),
        My::Double(d) => Value::Float(*d),
        My::Date(y, mo, d, h, mi, s, _) => {
            let dt = jiff::civil::DateTime::new(
                *y as i16, *mo as i8, *d as i8, *h as i8, *mi as i8, *s as i8, 0,
            );
            dt.map_or(Value::Null, |dt| Value::Time(from_civil(dt)))
        }
        other => Value::Text(other.as_sql(true)),
    }
}

fn convert(rows: Vec<mysql_async::Row>) -> Vec<Row> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let cols: Arc<[String]> = first
        .columns_ref()
        .iter()
        .map(|c| c.name_str().to_string())
        .collect();
    rows.iter()
        .map(|r| {
            let vals = (0..r.len())
                .map(|i| r.as_ref(i).map_or(Value::Null, from_my))
                .collect();
            Row::new(cols.clone(), vals)
        })
        .collect()
}
