//! One accounting record and its three backends (OpenSIPS acc.c): a log
//! line (`ACC: call ended: created=…;call_start_time=…;duration=…;…`), an
//! event (E_ACC_CDR, E_ACC_EVENT, E_ACC_MISSED_EVENT) and a database row
//! in OpenSIPS 3.4's `acc` / `missed_calls` columns. Rows go through a
//! bounded queue to a writer thread: whoever accounts never waits; a full
//! queue or a failed insert is counted in `acc:dropped` and logged.

use serde_json::{Map, Value as Json};

use super::extra::{self, Backend};
use super::{conf, ACC};
use crate::db::{Ident, Value as DbValue};
use crate::db::writer::Written;

/// What a record is, which picks the log text, the event and the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A transaction's final reply (`transaction answered`).
    Answered,
    /// A negative final reply with the `missed` flag.
    Missed,
    /// A dialog that ended (CDR).
    Ended,
    /// `acc_*_request` from the script (`request accounted`).
    Request,
}

/// The core columns of a record.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub method: String,
    pub from_tag: String,
    pub to_tag: String,
    pub callid: String,
    /// Empty when an `acc_*_request` comment carried no code.
    pub code: String,
    pub reason: String,
    /// Unix time: of the reply, or the call's start for a CDR.
    pub time: i64,
    /// CDR: (duration, ms_duration, setuptime, created).
    pub cdr: Option<(i64, i64, i64, i64)>,
    /// `$acc_extra` values by tag.
    pub extras: std::collections::HashMap<String, String>,
    /// `$acc_leg` values by tag, one map per leg (empty without
    /// `leg_fields`).
    pub legs: Vec<std::collections::HashMap<String, String>>,
}

impl Record {
    fn ctx(&self) -> super::extra::AccCtx {
        super::extra::AccCtx {
            extras: self.extras.clone(),
            ..Default::default()
        }
    }

    /// The log line, as OpenSIPS's acc_log_request / acc_log_cdrs write it.
    pub fn log_line(&self, kind: Kind) -> String {
        let text = match kind {
            Kind::Answered => "ACC: transaction answered: ",
            Kind::Missed => "ACC: call missed: ",
            Kind::Ended => "ACC: call ended: ",
            Kind::Request => "ACC: request accounted: ",
        };
        let mut s = String::from(text);
        match self.cdr {
            Some((d, ms, setup, created)) => s.push_str(&format!(
                "created={created};call_start_time={};duration={d};ms_duration={ms};setuptime={setup}",
                self.time
            )),
            None => s.push_str(&format!("timestamp={}", self.time)),
        }
        for (k, v) in [
            ("method", &self.method),
            ("from_tag", &self.from_tag),
            ("to_tag", &self.to_tag),
            ("call_id", &self.callid),
            ("code", &self.code),
            ("reason", &self.reason),
        ] {
            s.push_str(&format!(";{k}={v}"));
        }
        let c = conf();
        for (k, v) in extra::values(&c.extras, Backend::Log, &self.ctx()) {
            s.push_str(&format!(";{k}={v}"));
        }
        for leg in &self.legs {
            for (k, v) in extra::leg_values(&c.legs, Backend::Log, leg) {
                s.push_str(&format!(";{k}={v}"));
            }
        }
        s
    }

    /// One map of `$acc_leg` values per row or event: each leg's, or a
    /// single empty one without legs.
    fn per_leg(&self) -> Vec<std::collections::HashMap<String, String>> {
        if self.legs.is_empty() {
            vec![Default::default()]
        } else {
            self.legs.clone()
        }
    }

    /// The events' parameters: one set per leg (acc.c raises the event
    /// once per leg).
    pub fn events(&self) -> Vec<Map<String, Json>> {
        let c = conf();
        let base = self.event_params();
        self.per_leg()
            .iter()
            .map(|leg| {
                let mut m = base.clone();
                for (k, v) in extra::leg_values(&c.legs, Backend::Evi, leg) {
                    m.insert(k, Json::from(v));
                }
                m
            })
            .collect()
    }

    /// The INSERTs for `table`: one row per leg (acc.c `acc_db_cdrs`).
    pub fn inserts(&self, table: &Ident) -> Vec<(String, Vec<DbValue>)> {
        let c = conf();
        let (sql, vals) = self.insert(table);
        let legs = self.per_leg();
        let leg_cols: Vec<String> = extra::leg_values(&c.legs, Backend::Db, &legs[0])
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        if leg_cols.is_empty() {
            return vec![(sql, vals)];
        }
        let cols = sql
            .split_once(" (")
            .and_then(|(_, r)| r.split_once(") VALUES"))
            .map_or("", |(c, _)| c);
        let mut all: Vec<String> = cols.split(", ").map(str::to_string).collect();
        all.extend(leg_cols);
        let marks = vec!["?"; all.len()].join(", ");
        let sql = format!("INSERT INTO {table} ({}) VALUES ({marks})", all.join(", "));
        legs.iter()
            .map(|leg| {
                let mut v = vals.clone();
                v.extend(
                    extra::leg_values(&c.legs, Backend::Db, leg)
                        .into_iter()
                        .map(|(_, x)| DbValue::text(x)),
                );
                (sql.clone(), v)
            })
            .collect()
    }

    /// The event's parameters (OpenSIPS acc.c names).
    pub fn event_params(&self) -> Map<String, Json> {
        let mut m = Map::new();
        for (k, v) in [
            ("method", &self.method),
            ("from_tag", &self.from_tag),
            ("to_tag", &self.to_tag),
            ("callid", &self.callid),
            ("sip_code", &self.code),
            ("sip_reason", &self.reason),
        ] {
            m.insert(k.into(), Json::from(v.as_str()));
        }
        m.insert("time".into(), Json::from(self.time));
        if let Some((d, ms, setup, created)) = self.cdr {
            m.insert("duration".into(), Json::from(d));
            m.insert("ms_duration".into(), Json::from(ms));
            m.insert("setuptime".into(), Json::from(setup));
            m.insert("created".into(), Json::from(created));
        }
        for (k, v) in extra::values(&conf().extras, Backend::Evi, &self.ctx()) {
            m.insert(k, Json::from(v));
        }
        m
    }

    /// INSERT and values for `table` (`missed_calls` has no durations).
    pub fn insert(&self, table: &Ident) -> (String, Vec<DbValue>) {
        let mut cols: Vec<String> = ["method", "from_tag", "to_tag", "callid", "sip_code", "sip_reason", "time"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        let mut vals = vec![
            DbValue::text(&self.method),
            DbValue::text(&self.from_tag),
            DbValue::text(&self.to_tag),
            DbValue::text(&self.callid),
            DbValue::text(&self.code),
            DbValue::text(&self.reason),
            DbValue::Time(self.time),
        ];
        if let Some((d, ms, setup, created)) = self.cdr {
            cols.extend(["duration", "ms_duration", "setuptime", "created"].map(String::from));
            vals.extend([DbValue::Int(d), DbValue::Int(ms), DbValue::Int(setup), DbValue::Time(created)]);
        }
        for (k, v) in extra::values(&conf().extras, Backend::Db, &self.ctx()) {
            cols.push(k);
            vals.push(DbValue::text(v));
        }
        let marks = vec!["?"; cols.len()].join(", ");
        (format!("INSERT INTO {table} ({}) VALUES ({marks})", cols.join(", ")), vals)
    }
}

/// Rows waiting for the database, at most this many.
const QUEUE: usize = 10_000;

fn written(sql: &str, rows: usize, r: Result<Written, crate::db::DbError>) {
    match r {
        Ok(w) => {
            ACC.written.add(rows as u64);
            if w == Written::Found {
                ACC.confirmed.add(rows as u64);
            }
        }
        Err(e) => {
            ACC.dropped.add(rows as u64);
            tracing::error!("acc: {rows} record(s) not written ({e}): {sql}");
        }
    }
}

fn writer() -> Option<&'static crate::db::writer::Writer> {
    static W: std::sync::OnceLock<Option<crate::db::writer::Writer>> = std::sync::OnceLock::new();
    W.get_or_init(|| crate::db::writer::Writer::start("acc-db", QUEUE, written))
        .as_ref()
}

/// Queues the record's row for `table`; never waits.
pub fn to_db(r: &Record, table: &str) -> bool {
    let Some(db) = conf().db.clone() else {
        tracing::error!("acc: db accounting needs config.modules.acc.db_url");
        ACC.dropped.inc();
        return false;
    };
    let Ok(t) = Ident::new(table) else {
        ACC.dropped.inc();
        return false;
    };
    let mut sent = true;
    for (sql, vals) in r.inserts(&t) {
        if !writer().is_some_and(|w| w.push(db.clone(), sql, vals)) {
            ACC.dropped.inc();
            tracing::warn!("acc: database queue full, record of {} dropped", r.callid);
            sent = false;
        }
    }
    sent
}

pub fn to_log(r: &Record, kind: Kind) {
    tracing::info!("{}", r.log_line(kind));
}

pub fn to_evi(r: &Record, kind: Kind) {
    let ev = match kind {
        Kind::Ended => "E_ACC_CDR",
        Kind::Missed => "E_ACC_MISSED_EVENT",
        Kind::Answered | Kind::Request => "E_ACC_EVENT",
    };
    for params in r.events() {
        crate::event::raise_declared(ev, params);
    }
}

/// The reason phrase OpenSIPS's `error_text` gives a code it made itself.
pub fn reason_of(code: u16) -> &'static str {
    match code {
        0 => "",
        200 => "OK",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_read_as_opensips_writes_them() {
        let r = Record {
            method: "INVITE".into(),
            from_tag: "f".into(),
            to_tag: "t".into(),
            callid: "c".into(),
            code: "200".into(),
            reason: "OK".into(),
            time: 100,
            cdr: Some((5, 4500, 2, 98)),
            ..Default::default()
        };
        assert_eq!(
            r.log_line(Kind::Ended),
            "ACC: call ended: created=98;call_start_time=100;duration=5;ms_duration=4500;setuptime=2;method=INVITE;from_tag=f;to_tag=t;call_id=c;code=200;reason=OK"
        );
        let r = Record { cdr: None, ..r };
        assert!(r.log_line(Kind::Missed).starts_with("ACC: call missed: timestamp=100;method=INVITE"));
        let (sql, vals) = r.insert(&Ident::new("acc").expect("name"));
        assert_eq!(sql, "INSERT INTO acc (method, from_tag, to_tag, callid, sip_code, sip_reason, time) VALUES (?, ?, ?, ?, ?, ?, ?)");
        assert_eq!(vals.len(), 7);
    }
}
