//! Connections per thread. A thread that runs a tokio runtime of its own
//! for its whole life — each SIP worker, and the layer's `db` thread —
//! binds itself ([`bind_thread`]); on such a thread a query runs right
//! there, on connections that belong to that thread and its runtime: no
//! hand-over to another thread, no wake-up of one. Kamailio and OpenSIPS
//! work the same way (each process its own connection per `db_url`), with
//! the difference that a worker here keeps serving other messages while
//! its queries are under way.
//!
//! Each bound thread has, per `db_url`, a small pool made on its first
//! query: MySQL up to [`MYSQL_PER_THREAD`] connections, [`MYSQL_IDLE_KEPT`]
//! of them kept while idle (the URL's `pool_min`/`pool_max` replace both,
//! per thread), PostgreSQL up to [`super::pg::CONNS`]; MySQL reads also
//! keep up to [`WIRE_PER_THREAD`] lean connections per thread outside the
//! pool (`mysql_wire`).
//! Connections are opened when first needed, so a worker that never
//! queries a database opens nothing. At most, a database sees (SIP
//! workers + 1) × that many connections (plus the lean ones) per lunasip
//! per `db_url` (docs/ARCHITECTURE.md, "The database layer").

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::{mysql, pg, DbError, Inner, Kind};

/// MySQL connections a bound thread may have open per `db_url` at once
/// (opened on demand).
pub const MYSQL_PER_THREAD: usize = 8;

/// Of those, how many stay open while idle (a worker that queries now
/// and then does not reconnect each time).
pub const MYSQL_IDLE_KEPT: usize = 2;

/// Lean MySQL read connections (`mysql_wire`) a bound thread keeps per
/// `db_url` at most, outside its pool: more reads at once go through the
/// pool.
pub const WIRE_PER_THREAD: usize = 4;

/// How long a connection above [`MYSQL_IDLE_KEPT`] stays open unused.
pub const MYSQL_IDLE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// A bound thread's connections to one database.
#[derive(Clone)]
pub(super) enum Conns {
    Mysql(mysql::Pool),
    Pg(Arc<pg::Pool>),
}

thread_local! {
    static BOUND: Cell<bool> = const { Cell::new(false) };
    /// Pools of this thread, by the id of the `Db` they serve.
    static POOLS: RefCell<Vec<(usize, Conns)>> = const { RefCell::new(Vec::new()) };
}

/// Lets queries awaited on this thread run on it. Only for a thread
/// whose one tokio runtime lives as long as the thread (the connections
/// are bound to it): the SIP workers. With `LUNASIP_DB_HANDOVER=1` in the
/// environment (a switch for measuring, bench/RESULTS.md session 8) the
/// workers hand their queries to the layer's thread instead, as lunasip
/// did before.
pub fn bind_thread() {
    static HANDOVER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let handover =
        *HANDOVER.get_or_init(|| std::env::var_os("LUNASIP_DB_HANDOVER").is_some_and(|v| v == "1"));
    if !handover {
        bind_layer_thread();
    }
}

/// Binds the layer's own thread (always).
pub(super) fn bind_layer_thread() {
    BOUND.with(|b| b.set(true));
}

/// This thread runs its queries itself.
pub(super) fn bound() -> bool {
    BOUND.with(|b| b.get())
}

/// This thread's pool for `inner`, made on first use.
pub(super) fn conns(inner: &Inner) -> Result<Conns, DbError> {
    POOLS.with(|p| {
        let mut p = p.borrow_mut();
        if let Some((_, c)) = p.iter().find(|(id, _)| *id == inner.id) {
            return Ok(c.clone());
        }
        let c = match &inner.kind {
            Kind::Mysql(opts) => Conns::Mysql(mysql::Pool::new(opts.clone(), &inner.shown)),
            Kind::Pg(cfg) => Conns::Pg(Arc::new(pg::Pool::new((**cfg).clone(), &inner.shown))),
            Kind::Sqlite(_) => {
                return Err(DbError::Internal(
                    "sqlite runs on its own thread, not on a pool".into(),
                ))
            }
        };
        p.push((inner.id, c.clone()));
        Ok(c)
    })
}
