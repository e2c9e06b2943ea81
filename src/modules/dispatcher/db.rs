//! The MySQL/MariaDB source: a partition whose destinations are the rows of
//! an OpenSIPS `dispatcher` table (`db_url`, `table_name`).
//!
//! Loads happen at config time and from `ds_reload`, both outside any SIP
//! worker, so a load may wait: it runs on a thread of its own with a
//! single-threaded tokio runtime (never inside a caller's runtime), bounded
//! by [`TIMEOUT`]. A partition whose first load fails stays empty and is
//! tried again every `db_retry_interval` seconds by one background thread
//! until a load succeeds.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::Value;

use super::sets::{Row, Source, ACTIVE, INACTIVE, PROBING};

/// Default `table_name`, as in OpenSIPS.
pub const DEFAULT_TABLE: &str = "dispatcher";

/// Default `db_retry_interval`.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(5);

/// Connecting and reading the table together take at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(4);

/// Why the table could not be read. Callers retry what may pass later (a
/// database that is down or slow) and report the rest as configuration
/// errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// `db_url` does not parse.
    #[error("bad db_url '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    /// `table_name` is not a plain (database.)table name.
    #[error("bad table_name '{0}' (letters, digits, _ and $; database.table allowed)")]
    BadTable(String),
    /// No connection: refused, unreachable, closed.
    #[error("database {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// Connected, but no answer in time.
    #[error("database {url}: no answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    /// The server refused the query (no such table, no grant…).
    #[error("database {url}: {reason}")]
    Query { url: String, reason: String },
    /// The reader itself could not run (thread, runtime).
    #[error("database reader: {0}")]
    Internal(String),
}

impl DbError {
    /// Asking again later may work (the database was down or slow).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DbError::Unreachable { .. } | DbError::Timeout { .. } | DbError::Internal(_)
        )
    }

    fn from_driver(url: &str, e: mysql_async::Error) -> DbError {
        let url = redact(url);
        match e {
            mysql_async::Error::Url(e) => DbError::BadUrl {
                url,
                reason: e.to_string(),
            },
            mysql_async::Error::Server(e) => DbError::Query {
                url,
                reason: e.to_string(),
            },
            other => DbError::Unreachable {
                url,
                reason: other.to_string(),
            },
        }
    }
}

/// Checks a `db_url` (`mysql://user:password@host:port/database`).
pub fn check_url(url: &str) -> Result<(), DbError> {
    mysql_async::Opts::from_url(url)
        .map(|_| ())
        .map_err(|e| DbError::BadUrl {
            url: redact(url),
            reason: e.to_string(),
        })
}

/// Checks a `table_name`: `table` or `database.table`, letters, digits,
/// `_` and `$` (it is put in the query, so nothing else is accepted).
pub fn check_table(name: &str) -> Result<(), DbError> {
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 64
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() <= 2 && parts.iter().all(|p| ok(p)) {
        Ok(())
    } else {
        Err(DbError::BadTable(name.to_string()))
    }
}

/// The URL with its password hidden, for logs.
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

/// Reads every row of `table`: the rows that make destinations, and one
/// message (naming the row id) for each row that does not. An error means
/// nothing could be read (database unreachable, no such table, timeout).
pub fn read(url: &str, table: &str) -> Result<(Vec<Row>, Vec<String>), DbError> {
    check_table(table)?;
    let quoted: Vec<String> = table.split('.').map(|p| format!("`{p}`")).collect();
    let sql = format!("SELECT * FROM {}", quoted.join("."));
    let url_owned = url.to_string();
    // Never on a SIP worker: at start, on the MI thread (ds_reload) or on
    // the retry thread; a thread of its own keeps their runtimes apart.
    let handle = std::thread::Builder::new()
        .name("ds-db-load".into())
        .spawn(move || -> Result<Vec<mysql_async::Row>, DbError> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| DbError::Internal(format!("cannot start a runtime: {e}")))?;
            rt.block_on(async {
                match tokio::time::timeout(TIMEOUT, fetch(&url_owned, &sql)).await {
                    Ok(r) => r,
                    Err(_) => Err(DbError::Timeout {
                        url: redact(&url_owned),
                        secs: TIMEOUT.as_secs(),
                    }),
                }
            })
        })
        .map_err(|e| DbError::Internal(format!("cannot start the database thread: {e}")))?;
    let rows = handle
        .join()
        .map_err(|_| DbError::Internal("the database thread panicked".into()))??;
    let (mut rows, errs) = convert(&rows);
    // In `id` order whatever the engine's scan order (stable: rows without
    // an id keep theirs), so equal priorities keep a predictable order.
    rows.sort_by_key(|r| r.id.unwrap_or(i64::MAX));
    Ok((rows, errs))
}

/// Reads the rows of `sql` (async: runs on the caller's runtime).
pub async fn fetch(url: &str, sql: &str) -> Result<Vec<mysql_async::Row>, DbError> {
    let e = |e| DbError::from_driver(url, e);
    let opts = mysql_async::Opts::from_url(url).map_err(|x| e(x.into()))?;
    let mut b = mysql_async::OptsBuilder::from_opts(opts);
    // Stay on the TCP address given: switching to the server's Unix socket
    // may meet another authentication (Debian's root@localhost).
    if !url.contains("prefer_socket=") {
        b = b.prefer_socket(false);
    }
    let mut conn = mysql_async::Conn::new(b).await.map_err(e)?;
    let rows: Vec<mysql_async::Row> = conn.query(sql).await.map_err(e)?;
    let _ = conn.disconnect().await;
    Ok(rows)
}

fn convert(rows: &[mysql_async::Row]) -> (Vec<Row>, Vec<String>) {
    let mut out = Vec::with_capacity(rows.len());
    let mut errs = Vec::new();
    for (n, r) in rows.iter().enumerate() {
        let cols: Vec<String> = r
            .columns_ref()
            .iter()
            .map(|c| c.name_str().to_ascii_lowercase())
            .collect();
        let vals: Vec<Value> = (0..r.len())
            .map(|i| r.as_ref(i).cloned().unwrap_or(Value::NULL))
            .collect();
        match row_from(&cols, &vals) {
            Ok(row) => out.push(row),
            Err((Some(id), e)) => errs.push(format!("row id {id}: {e}")),
            Err((None, e)) => errs.push(format!("row {}: {e}", n + 1)),
        }
    }
    (out, errs)
}

/// A column's value as text (NULL: None).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        other => Some(other.as_sql(true)),
    }
}

/// A column's value as an integer (NULL: None; text that is not a number:
/// an error quoting it).
fn int(v: &Value) -> Result<Option<i64>, String> {
    match v {
        Value::NULL => Ok(None),
        Value::Int(i) => Ok(Some(*i)),
        Value::UInt(u) => i64::try_from(*u)
            .map(Some)
            .map_err(|_| format!("{u} is out of range")),
        other => {
            let t = text(other).unwrap_or_default();
            let t = t.trim();
            t.parse()
                .map(Some)
                .map_err(|_| format!("'{}' is not a number", shorten(t)))
        }
    }
}

/// Quotes at most 40 characters of a bad value; a URL-looking weight (a
/// FreeSWITCH ESL address, which may hold a password) is not quoted.
fn shorten(t: &str) -> String {
    if t.contains("://") {
        return "<a URL>".into();
    }
    match t.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

/// One table row, read by column name so that tables from older OpenSIPS
/// versions (no `probe_mode`) and with extra columns (`comm_socket`) load.
/// The error carries the row's id when it has one.
fn row_from(cols: &[String], vals: &[Value]) -> Result<Row, (Option<i64>, String)> {
    let get = |name: &str| {
        cols.iter()
            .position(|c| c == name)
            .and_then(|i| vals.get(i))
            .unwrap_or(&Value::NULL)
    };
    let id = int(get("id")).ok().flatten();
    let bad = |e: String| (id, e);
    let setid = int(get("setid"))
        .map_err(|e| bad(format!("setid {e}")))?
        .ok_or_else(|| bad("no setid".into()))?;
    let uri = text(get("destination"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no destination".into()))?;
    let state = match int(get("state")).map_err(|e| bad(format!("state {e}")))? {
        None | Some(0) => ACTIVE,
        Some(1) => INACTIVE,
        Some(2) => PROBING,
        Some(n) => return Err(bad(format!("state {n} is not 0, 1 or 2"))),
    };
    let weight = match text(get("weight")).map(|s| s.trim().to_string()) {
        None => 1,
        Some(w) if w.is_empty() => 1,
        Some(w) => w
            .parse::<u32>()
            .map_err(|_| bad(format!("weight '{}' is not a number", shorten(&w))))?,
    };
    let priority = int(get("priority"))
        .map_err(|e| bad(format!("priority {e}")))?
        .unwrap_or(0);
    let probe_mode = int(get("probe_mode"))
        .map_err(|e| bad(format!("probe_mode {e}")))?
        .unwrap_or(0);
    Ok(Row {
        id,
        setid,
        uri,
        socket: text(get("socket"))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        state,
        weight,
        priority,
        attrs: text(get("attrs")).unwrap_or_default(),
        description: text(get("description")).unwrap_or_default(),
        probe_mode: u32::try_from(probe_mode).unwrap_or(0),
    })
}

/// A partition waiting for its database.
struct Pending {
    partition: String,
    every: Duration,
    next: Instant,
}

static PENDING: Mutex<Vec<Pending>> = Mutex::new(Vec::new());
static RETRY_THREAD: std::sync::Once = std::sync::Once::new();

/// Schedules another load of `partition` in `every` (the background thread
/// starts on first use).
pub fn retry_later(partition: &str, every: Duration) {
    let every = every.max(Duration::from_millis(100));
    {
        let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        let next = Instant::now() + every;
        match p.iter_mut().find(|x| x.partition == partition) {
            Some(x) => {
                x.every = every;
                x.next = next;
            }
            None => p.push(Pending {
                partition: partition.to_string(),
                every,
                next,
            }),
        }
    }
    RETRY_THREAD.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("ds-db-retry".into())
            .spawn(retry_loop);
        if let Err(e) = spawned {
            super::report(
                tracing::Level::ERROR,
                format!("dispatcher: cannot start the database retry thread: {e}"),
            );
        }
    });
}

/// `partition` loaded: no more retries for it.
pub fn loaded(partition: &str) {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|x| x.partition != partition);
}

/// Partitions waiting for a retry (for tests and logs).
pub fn pending() -> Vec<String> {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|x| x.partition.clone())
        .collect()
}

fn retry_loop() {
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = Instant::now();
        let due: Vec<(String, Duration)> = PENDING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|x| x.next <= now)
            .map(|x| (x.partition.clone(), x.every))
            .collect();
        for (name, every) in due {
            let cur = super::current();
            let still_db = cur
                .partition(Some(&name))
                .is_some_and(|p| matches!(p.source, Source::Db { .. }));
            if !still_db {
                loaded(&name);
                continue;
            }
            match super::reload(Some(&name), true) {
                Ok(()) => {
                    let n: usize = super::current()
                        .partition(Some(&name))
                        .map_or(0, |p| p.sets.iter().map(|s| s.dests.len()).sum());
                    super::report(
                        tracing::Level::INFO,
                        format!("dispatcher: partition {name}: database reachable again, {n} destinations loaded"),
                    );
                    loaded(&name);
                }
                Err(e) => {
                    super::report(
                        tracing::Level::WARN,
                        format!("{e}; trying again in {} s", every.as_secs_f64().max(0.1)),
                    );
                    let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(x) = p.iter_mut().find(|x| x.partition == name) {
                        x.next = Instant::now() + x.every;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn b(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    #[test]
    fn rows_by_column_name() {
        let c = cols(&[
            "id",
            "setid",
            "destination",
            "socket",
            "state",
            "probe_mode",
            "weight",
            "priority",
            "attrs",
            "description",
        ]);
        let r = row_from(
            &c,
            &[
                b("7"),
                b("2"),
                b(" sip:10.0.0.1:5070 "),
                Value::NULL,
                b("1"),
                b("1"),
                b("3"),
                b("-1"),
                Value::NULL,
                b("box"),
            ],
        )
        .expect("row");
        assert_eq!(r.id, Some(7));
        assert_eq!((r.setid, r.uri.as_str()), (2, "sip:10.0.0.1:5070"));
        assert_eq!((r.state, r.weight, r.priority), (INACTIVE, 3, -1));
        assert_eq!((r.probe_mode, r.socket), (1, None));
        assert_eq!((r.attrs.as_str(), r.description.as_str()), ("", "box"));

        // An OpenSIPS 2.x/3.0 table: integer weight, no probe_mode; binary
        // protocol values.
        let old = cols(&["id", "setid", "destination", "weight", "extra"]);
        let r = row_from(
            &old,
            &[
                Value::UInt(3),
                Value::Int(1),
                b("sip:a"),
                Value::Int(5),
                b("x"),
            ],
        )
        .expect("row");
        assert_eq!((r.weight, r.state, r.probe_mode), (5, ACTIVE, 0));
    }

    #[test]
    fn bad_rows_name_their_id() {
        let c = cols(&["id", "setid", "destination", "weight", "state"]);
        let e = row_from(&c, &[b("9"), b("1"), b("sip:a"), b("heavy"), b("0")]).unwrap_err();
        assert_eq!(e.0, Some(9));
        assert!(e.1.contains("weight 'heavy' is not a number"), "{}", e.1);
        let e = row_from(&c, &[b("4"), b("x"), b("sip:a"), b("1"), b("0")]).unwrap_err();
        assert!(e.1.contains("setid 'x'"), "{}", e.1);
        let e = row_from(&c, &[b("5"), b("1"), b(""), b("1"), b("0")]).unwrap_err();
        assert!(e.1.contains("no destination"));
        let e = row_from(&c, &[b("6"), b("1"), b("sip:a"), b("1"), b("9")]).unwrap_err();
        assert!(e.1.contains("state 9"));
        let e = row_from(&c, &[b("8"), b("1"), b("sip:a"), b("fs://:pw@fs1"), b("0")]).unwrap_err();
        assert!(!e.1.contains("pw"), "{}", e.1);
    }

    #[test]
    fn table_names_and_urls() {
        assert!(check_table("dispatcher").is_ok());
        assert!(check_table("opensips.dispatcher").is_ok());
        assert!(check_table("a.b.c").is_err());
        assert!(check_table("x; drop table y").is_err());
        assert!(check_table("").is_err());
        assert!(check_url("mysql://root@127.0.0.1:3306/test").is_ok());
        assert!(check_url("not a url").is_err());
        assert_eq!(
            redact("mysql://u:secret@db:3306/x"),
            "mysql://u:***@db:3306/x"
        );
        assert_eq!(redact("mysql://u@db/x"), "mysql://u@db/x");
    }

    #[test]
    fn unreachable_database_is_an_error_not_a_hang() {
        // A port nothing listens on: refused at once, well within TIMEOUT.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let t = Instant::now();
        let r = read(&format!("mysql://root@127.0.0.1:{port}/x"), "dispatcher");
        // Down is worth trying again; a bad table name never is.
        assert!(r.as_ref().is_err_and(DbError::is_retryable), "{r:?}");
        let bad = read(&format!("mysql://root@127.0.0.1:{port}/x"), "no;table");
        assert_eq!(bad.unwrap_err(), DbError::BadTable("no;table".into()));
        assert!(t.elapsed() < TIMEOUT + Duration::from_secs(1));
    }
}
