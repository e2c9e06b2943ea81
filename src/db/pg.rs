//! The PostgreSQL backend (OpenSIPS db_postgres): per bound thread (see
//! `local`) a few tokio-postgres connections, each with its prepared
//! statements, made and driven on that thread's runtime; a query takes
//! the first free one that is connected, so a thread opens a second only
//! while the first is busy. Parameters are bound with the types the
//! server gives the statement's placeholders, so a module passes an
//! integer for an INTEGER column and text for VARCHAR as on the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use super::value::{civil, from_civil};
use super::{DbError, Out, Row, Sent, Value};

/// Connections per bound thread per URL.
pub const CONNS: usize = 4;

struct Conn {
    client: Client,
    stmts: HashMap<String, Statement>,
}

pub struct Pool {
    cfg: tokio_postgres::Config,
    conns: Vec<tokio::sync::Mutex<Option<Conn>>>,
    next: AtomicUsize,
    shown: String,
}

/// Checks and reads a `postgres://` URL.
pub fn config(url: &str, shown: &str) -> Result<tokio_postgres::Config, DbError> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| DbError::BadUrl {
        url: shown.to_string(),
        reason: format!("{e}"),
    })?;
    cfg.connect_timeout(Duration::from_secs(3));
    Ok(cfg)
}

/// `?` placeholders as `$1, $2…` (outside quoted text).
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

type Param = Box<dyn ToSql + Sync + Send>;

impl Pool {
    /// A pool of this thread (nothing connected yet).
    pub fn new(cfg: tokio_postgres::Config, shown: &str) -> Pool {
        Pool {
            cfg,
            conns: (0..CONNS).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            shown: shown.to_string(),
        }
    }

    /// The first free slot holding a connection, else the first free
    /// one, else (all busy) the next in turn, waited for.
    async fn slot(&self) -> tokio::sync::MutexGuard<'_, Option<Conn>> {
        let mut empty = None;
        for s in &self.conns {
            if let Ok(g) = s.try_lock() {
                if g.as_ref().is_some_and(|c| !c.client.is_closed()) {
                    return g;
                }
                if empty.is_none() {
                    empty = Some(g);
                }
            }
        }
        if let Some(g) = empty {
            return g;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].lock().await
    }

    fn err(&self, e: tokio_postgres::Error) -> DbError {
        let url = self.shown.clone();
        match e.as_db_error() {
            Some(d) => DbError::Query {
                url,
                reason: format!("{}: {}", d.severity(), d.message()),
            },
            None => DbError::Unreachable {
                url,
                reason: e.to_string(),
            },
        }
    }

    /// The error of the execute itself: anything but the server's own
    /// answer (the connection closed, an I/O error, a message out of
    /// place) leaves unknown whether the statement ran.
    fn err_sent(&self, e: tokio_postgres::Error) -> DbError {
        match e.as_db_error() {
            Some(_) => self.err(e),
            None => DbError::Lost {
                url: self.shown.clone(),
                reason: e.to_string(),
            },
        }
    }

    /// Runs `sql`; `sent` is set once the statement goes out (after the
    /// connect, the prepare and the binding, which run nothing).
    pub async fn run(
        &self,
        sql: &str,
        params: Vec<Value>,
        rows: bool,
        sent: &Sent,
    ) -> Result<Out, DbError> {
        let mut slot = self.slot().await;
        if slot.as_ref().is_none_or(|c| c.client.is_closed()) {
            let (client, conn) = self.cfg.connect(NoTls).await.map_err(|e| self.err(e))?;
            let shown = self.shown.clone();
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("database {shown}: connection ended: {e}");
                }
            });
            *slot = Some(Conn {
                client,
                stmts: HashMap::new(),
            });
        }
        let Some(conn) = slot.as_mut() else {
            return Err(DbError::Internal("no connection".into()));
        };
        let r = self.on(conn, sql, params, rows, sent).await;
        if conn.client.is_closed() {
            *slot = None;
        }
        r
    }

    async fn on(
        &self,
        conn: &mut Conn,
        sql: &str,
        params: Vec<Value>,
        rows: bool,
        sent: &Sent,
    ) -> Result<Out, DbError> {
        let stmt = match conn.stmts.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = conn
                    .client
                    .prepare(&numbered(sql))
                    .await
                    .map_err(|e| self.err(e))?;
                if conn.stmts.len() > 256 {
                    conn.stmts.clear();
                }
                conn.stmts.insert(sql.to_string(), s.clone());
                s
            }
        };
        let types = stmt.params();
        if types.len() != params.len() {
            return Err(DbError::Query {
                url: self.shown.clone(),
                reason: format!(
                    "the statement takes {} parameters, {} given",
                    types.len(),
                    params.len()
                ),
            });
        }
        let bound: Vec<Param> = params
            .into_iter()
            .zip(types)
            .map(|(v, t)| bind(v, t))
            .collect::<Result<_, String>>()
            .map_err(|reason| DbError::Query {
                url: self.shown.clone(),
                reason,
            })?;
        let refs: Vec<&(dyn ToSql + Sync)> = bound
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        if conn.client.is_closed() {
            return Err(DbError::Unreachable {
                url: self.shown.clone(),
                reason: "connection closed".into(),
            });
        }
        sent.store(true, Ordering::Relaxed);
        if rows {
            let got = conn
                .client
                .query(&stmt, &refs)
                .await
                .map_err(|e| self.err_sent(e))?;
            Ok(Out::Rows(convert(&stmt, &got)))
        } else {
            let n = conn
                .client
                .execute(&stmt, &refs)
                .await
                .map_err(|e| self.err_sent(e))?;
            Ok(Out::Affected(n))
        }
    }
}

/// A value as the Rust type tokio-postgres binds to the placeholder's type.
fn bind(v: Value, t: &Type) -> Result<Param, String> {
    let bad = |v: &Value| format!("cannot bind {v:?} to a {t} parameter");
    Ok(match *t {
        Type::INT2 => match v {
            Value::Null => Box::new(None::<i16>),
            v => Box::new(
                v.as_int()
                    .and_then(|i| i16::try_from(i).ok())
                    .ok_or_else(|| bad(&v))?,
            ),
        },
        Type::INT4 => match v {
            Value::Null => Box::new(None::<i32>),
            v => Box::new(
                v.as_int()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(|| bad(&v))?,
            ),
        },
        Type::INT8 => match v {
            Value::Null => Box::new(None::<i64>),
            v => Box::new(v.as_int().ok_or_else(|| bad(&v))?),
        },
        Type::FLOAT4 => match v {
            Value::Null => Box::new(None::<f32>),
            v => Box::new(v.as_float().ok_or_else(|| bad(&v))? as f32),
        },
        Type::FLOAT8 => match v {
            Value::Null => Box::new(None::<f64>),
            v => Box::new(v.as_float().ok_or_else(|| bad(&v))?),
        },
        Type::BOOL => match v {
            Value::Null => Box::new(None::<bool>),
            v => Box::new(v.as_int().ok_or_else(|| bad(&v))? != 0),
        },
        Type::BYTEA => match v {
            Value::Null => Box::new(None::<Vec<u8>>),
            Value::Bytes(b) => Box::new(b),
            v => Box::new(v.as_text().unwrap_or_default().into_bytes()),
        },
        Type::TIMESTAMP | Type::TIMESTAMPTZ => match v {
            Value::Null => Box::new(None::<SystemTime>),
            Value::Time(secs) => Box::new(pg_time(secs, *t == Type::TIMESTAMP)),
            v => {
                let t2 = v
                    .as_text()
                    .and_then(|s| super::value::parse_civil(&s))
                    .ok_or_else(|| bad(&v))?;
                Box::new(pg_time(t2, *t == Type::TIMESTAMP))
            }
        },
        _ => match v {
            Value::Null => Box::new(None::<String>),
            v => Box::new(v.as_text().unwrap_or_default()),
        },
    })
}

/// TIMESTAMP WITHOUT TIME ZONE holds the local civil time (as OpenSIPS
/// writes it); tokio-postgres reads a SystemTime as UTC civil time.
fn pg_time(secs: i64, civil_local: bool) -> SystemTime {
    let s = match civil_local {
        true => {
            let d = civil(secs);
            jiff::tz::TimeZone::UTC
                .to_timestamp(d)
                .map_or(secs, |t| t.as_second())
        }
        false => secs,
    };
    match u64::try_from(s) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH,
    }
}

fn from_pg_time(t: SystemTime, civil_local: bool) -> i64 {
    let s = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    if !civil_local {
        return s;
    }
    match jiff::Timestamp::from_second(s) {
        Ok(ts) => from_civil(jiff::tz::TimeZone::UTC.to_datetime(ts)),
        Err(_) => s,
    }
}

fn convert(stmt: &Statement, rows: &[tokio_postgres::Row]) -> Vec<Row> {
    let cols: Arc<[String]> = stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    rows.iter()
        .map(|r| {
            let vals = stmt
                .columns()
                .iter()
                .enumerate()
                .map(|(i, c)| column(r, i, c.type_()))
                .collect();
            Row::new(cols.clone(), vals)
        })
        .collect()
}

fn column(r: &tokio_postgres::Row, i: usize, t: &Type) -> Value {
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
        r: &'a tokio_postgres::Row,
        i: usize,
    ) -> Option<T> {
        r.try_get::<_, Option<T>>(i).ok().flatten()
    }
    match *t {
        Type::INT2 => get::<i16>(r, i).map_or(Value::Null, |v| Value::Int(v.into())),
        Type::INT4 => get::<i32>(r, i).map_or(Value::Null, |v| Value::Int(v.into())),
        Type::INT8 => get::<i64>(r, i).map_or(Value::Null, Value::Int),
        Type::OID => get::<u32>(r, i).map_or(Value::Null, |v| Value::Int(v.into())),
        Type::FLOAT4 => get::<f32>(r, i).map_or(Value::Null, |v| Value::Float(v.into())),
        Type::FLOAT8 => get::<f64>(r, i).map_or(Value::Null, Value::Float),
        Type::BOOL => get::<bool>(r, i).map_or(Value::Null, |v| Value::Int(v.into())),
        Type::BYTEA => get::<Vec<u8>>(r, i).map_or(Value::Null, Value::Bytes),
        Type::TIMESTAMP => {
            get::<SystemTime>(r, i).map_or(Value::Null, |v| Value::Time(from_pg_time(v, true)))
        }
        Type::TIMESTAMPTZ => {
            get::<SystemTime>(r, i).map_or(Value::Null, |v| Value::Time(from_pg_time(v, false)))
        }
        _ => get::<String>(r, i).map_or(Value::Null, Value::Text),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_numbered_outside_quotes() {
        assert_eq!(
            super::numbered("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2"
        );
    }
}
