//! The database source: a partition whose destinations are the rows of
//! an OpenSIPS `dispatcher` table (`db_url`, `table_name`), read through
//! the shared DB layer (`crate::db`: MySQL/MariaDB, PostgreSQL, SQLite).
//!
//! Loads happen at config time and from `ds_reload`, both outside any SIP
//! worker, so a load may wait (`query_wait`: the query runs on the DB
//! layer's own thread), bounded by [`TIMEOUT`]. A partition whose first
//! load fails stays empty and is tried again every `db_retry_interval`
//! seconds by one background thread until a load succeeds.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::db::Value;

use super::sets::{Row, Source, ACTIVE, INACTIVE, PROBING};

/// Default `table_name`, as in OpenSIPS.
pub const DEFAULT_TABLE: &str = "dispatcher";

/// Default `db_retry_interval`.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(5);

/// Connecting and reading the table together take at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(4);

/// Why the table could not be read: the DB layer's error (callers retry
/// what [`DbError::is_retryable`] says may pass later).
pub use crate::db::DbError;

/// Checks a `db_url` (`mysql://…`, `postgres://…`, `sqlite:///path`).
pub fn check_url(url: &str) -> Result<(), DbError> {
    crate::db::check_url(url).map(|_| ())
        
}

/// Checks a `table_name`: `table` or `database.table`, letters, digits,
/// `_` and `$` (it is put in the query, so nothing else is accepted).
pub fn check_table(name: &str) -> Result<(), DbError> {
    crate::db::Ident::new(name)
        .map(|_| ())
        .map_err(|_| DbError::BadName(name.to_string()))
}

/// The URL with its password hidden, for logs.
pub fn redact(url: &str) -> String {
    crate::db::redact(url)
}

/// Reads every row of `table`: the rows that make destinations, and one
/// message (naming the row id) for each row that does not. An error means
/// nothing could be read (database unreachable, no such table, timeout).
/// Never on a SIP worker: at start, on the MI thread (ds_reload) or on
/// the retry thread.
pub fn read(url: &str, table: &str) -> Result<(Vec<Row>, Vec<String>), DbError> {
    let ident =
        crate::db::Ident::new(table).map_err(|_| DbError::BadName(table.to_string()))?;
    let pool = crate::db::open(url)
        ?
        .with_timeout(TIMEOUT);
    let rows = pool
        .query_wait(&format!("SELECT * FROM {ident}"), vec![])
        ?;
    let (mut rows, errs) = convert(&rows);
    // In `id` order whatever the engine's scan order (stable: rows without
    // an id keep theirs), so equal priorities keep a predictable order.
    rows.sort_by_key(|r| r.id.unwrap_or(i64::MAX));
    Ok((rows, errs))
}

fn convert(rows: &[crate::db::Row]) -> (Vec<Row>, Vec<String>) {
    let mut out = Vec::with_capacity(rows.len());
    let mut errs = Vec::new();
    for (n, r) in rows.iter().enumerate() {
        match row_from(|name| r.get(name)) {
            Ok(row) => out.push(row),
            Err((Some(id), e)) => errs.push(format!("row id {id}: {e}")),
            Err((None, e)) => errs.push(format!("row {}: {e}", n + 1)),
        }
    }
    (out, errs)
}

/// A column's value as text (NULL: None).
fn text(v: &Value) -> Option<String> {
    v.as_text()
}

/// A column's value as an integer (NULL: None; text that is not a number:
/// an error quoting it).
fn int(v: &Value) -> Result<Option<i64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Int(i) => Ok(Some(*i)),
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
fn row_from<'a>(get: impl Fn(&str) -> &'a Value) -> Result<Row, (Option<i64>, String)> {
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

/// Partitions waiting for their database and the thread retrying them
/// (the registry's long-lived state).
#[derive(Default)]
struct Retry {
    pending: Mutex<Vec<Pending>>,
    thread: std::sync::OnceLock<()>,
}

fn retry() -> std::sync::Arc<Retry> {
    crate::state::state::<Retry>()
}

/// Schedules another load of `partition` in `every` (the background thread
/// starts on first use).
pub fn retry_later(partition: &str, every: Duration) {
    let every = every.max(Duration::from_millis(100));
    {
        let r = retry();
        let mut p = r.pending.lock().unwrap_or_else(|e| e.into_inner());
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
    retry().thread.get_or_init(|| {
        let reg = crate::state::current();
        let spawned = std::thread::Builder::new()
            .name("ds-db-retry".into())
            .spawn(move || {
                let _in = crate::state::enter(reg);
                retry_loop()
            });
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
    retry()
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|x| x.partition != partition);
}

/// Partitions waiting for a retry (for tests and logs).
pub fn pending() -> Vec<String> {
    retry()
        .pending
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
        let due: Vec<(String, Duration)> = retry()
            .pending
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
                    let r = retry();
                    let mut p = r.pending.lock().unwrap_or_else(|e| e.into_inner());
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

    /// A row as the DB layer gives it: values by column name.
    fn row<'a>(cols: &'a [&'a str], vals: &'a [Value]) -> impl Fn(&str) -> &'a Value {
        const NULL: &Value = &Value::Null;
        move |name| {
            cols.iter()
                .position(|c| c.eq_ignore_ascii_case(name))
                .and_then(|i| vals.get(i))
                .unwrap_or(NULL)
        }
    }

    fn b(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    #[test]
    fn rows_by_column_name() {
        let c = [
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
        ];
        let v = [
            b("7"),
            b("2"),
            b(" sip:10.0.0.1:5070 "),
            Value::Null,
            b("1"),
            b("1"),
            b("3"),
            b("-1"),
            Value::Null,
            b("box"),
        ];
        let r = row_from(row(&c, &v)).expect("row");
        assert_eq!(r.id, Some(7));
        assert_eq!((r.setid, r.uri.as_str()), (2, "sip:10.0.0.1:5070"));
        assert_eq!((r.state, r.weight, r.priority), (INACTIVE, 3, -1));
        assert_eq!((r.probe_mode, r.socket), (1, None));
        assert_eq!((r.attrs.as_str(), r.description.as_str()), ("", "box"));

        // An OpenSIPS 2.x/3.0 table: integer weight, no probe_mode; typed
        // values.
        let old = ["id", "setid", "destination", "weight", "extra"];
        let v = [Value::Int(3), Value::Int(1), b("sip:a"), Value::Int(5), b("x")];
        let r = row_from(row(&old, &v)).expect("row");
        assert_eq!((r.weight, r.state, r.probe_mode), (5, ACTIVE, 0));
    }

    #[test]
    fn bad_rows_name_their_id() {
        let c = ["id", "setid", "destination", "weight", "state"];
        let e = row_from(row(&c, &[b("9"), b("1"), b("sip:a"), b("heavy"), b("0")])).unwrap_err();
        assert_eq!(e.0, Some(9));
        assert!(e.1.contains("weight 'heavy' is not a number"), "{}", e.1);
        let e = row_from(row(&c, &[b("4"), b("x"), b("sip:a"), b("1"), b("0")])).unwrap_err();
        assert!(e.1.contains("setid 'x'"), "{}", e.1);
        let e = row_from(row(&c, &[b("5"), b("1"), b(""), b("1"), b("0")])).unwrap_err();
        assert!(e.1.contains("no destination"));
        let e = row_from(row(&c, &[b("6"), b("1"), b("sip:a"), b("1"), b("9")])).unwrap_err();
        assert!(e.1.contains("state 9"));
        let e = row_from(row(&c, &[b("8"), b("1"), b("sip:a"), b("fs://:pw@fs1"), b("0")]))
            .unwrap_err();
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
        assert!(check_url("postgres://postgres@127.0.0.1/test").is_ok());
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
        assert_eq!(bad.unwrap_err(), DbError::BadName("no;table".into()));
        assert!(t.elapsed() < TIMEOUT + Duration::from_secs(1));
    }
}
