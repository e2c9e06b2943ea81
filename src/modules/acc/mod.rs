//! acc (OpenSIPS module of the same name), first part: `do_accounting`
//! with the `log`, `db` and `evi` types and the `cdr`, `missed` and
//! `failed` flags. A CDR is written when the dialog ends (dialog's end
//! hook: setuptime, created, duration); a transaction is accounted at its
//! final reply (tm's observer hook): answered ones always (without `cdr`),
//! negative ones with `missed` (into `missed_calls`) or `failed`.
//! Database rows go through a bounded queue to a writer thread: a worker
//! never waits, a full queue drops the row and counts it (`acc:dropped`).

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex, RwLock};

use dashmap::DashMap;
use mlua::{Lua, MultiValue};
use serde_json::{Map, Value as Json};

use crate::db::{Db, Ident, Value as DbValue};
use crate::modules::dialog::machine::{self as dlg, CallDlg, DlgTxn};
use crate::modules::dialog::store::{lock, Dlg, CALLEE, CALLER};
use crate::modules::usrloc::cfg;
use crate::modules::{param, Hooks, Module, Param, ParamKind};
use crate::proxy::tm::hooks::Observer;
use crate::proxy::tm::Txn;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::stats::{stat_group, StatDecl};

const LOG: u8 = 1;
const DB: u8 = 2;
const EVI: u8 = 4;
const CDR: u8 = 1;
const MISSED: u8 = 2;
const FAILED: u8 = 4;

/// What `do_accounting` asked for a request.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    types: u8,
    flags: u8,
    table: Option<String>,
}

#[derive(Clone, Default)]
pub struct AccConf {
    pub db_url: Option<String>,
    pub db: Option<Db>,
    pub table: String,
    pub missed_table: String,
}

static CONF: RwLock<Option<Arc<AccConf>>> = RwLock::new(None);

fn conf() -> Arc<AccConf> {
    CONF.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_else(|| {
        Arc::new(AccConf {
            table: "acc".into(),
            missed_table: "missed_calls".into(),
            ..Default::default()
        })
    })
}

#[derive(Clone, Default)]
pub struct Prepared {
    conf: Option<AccConf>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.conf.as_ref();
        f.debug_struct("acc::Prepared")
            .field("db_url", &c.and_then(|c| c.db_url.as_deref()).map(crate::db::redact))
            .finish()
    }
}

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let Some(t) = cfg::table(modules, "acc")? else {
        return Ok(Prepared::default());
    };
    let db_url = cfg::str(&t, "acc", "db_url")?;
    if let Some(u) = &db_url {
        crate::db::check_url(u).map_err(|e| format!("config.modules.acc.db_url: {e}"))?;
    }
    let name = |key: &str, def: &str| -> Result<String, String> {
        let v = cfg::str(&t, "acc", key)?.unwrap_or_else(|| def.to_string());
        Ident::new(&v).map_err(|e| format!("config.modules.acc.{key}: {e}"))?;
        Ok(v)
    };
    Ok(Prepared {
        conf: Some(AccConf {
            db_url,
            db: None,
            table: name("db_table_acc", "acc")?,
            missed_table: name("db_table_missed_calls", "missed_calls")?,
        }),
    })
}

impl Prepared {
    pub fn commit(self) -> Result<(), String> {
        let mut c = self.conf.unwrap_or(AccConf {
            table: "acc".into(),
            missed_table: "missed_calls".into(),
            ..Default::default()
        });
        if let Some(u) = &c.db_url {
            c.db = Some(crate::db::open(u).map_err(|e| format!("acc: {e}"))?);
        }
        *CONF.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(c));
        dlg::on_end(cdr);
        Ok(())
    }
}

stat_group! {
    /// acc counters.
    pub struct Acc: "acc" {
        written,
        dropped,
    }
}

pub static ACC: Acc = Acc::new();

/// Marks per dialog (key), for its CDR.
fn cdr_marks() -> &'static DashMap<u64, Marks> {
    static M: std::sync::OnceLock<DashMap<u64, Marks>> = std::sync::OnceLock::new();
    M.get_or_init(DashMap::new)
}

/// One accounting record: OpenSIPS's acc columns.
struct Record {
    method: String,
    from_tag: String,
    to_tag: String,
    callid: String,
    code: u16,
    reason: String,
    time: i64,
    /// CDR only: (duration, setuptime, created).
    cdr: Option<(i64, i64, i64)>,
}

impl Record {
    fn json(&self) -> Map<String, Json> {
        let mut m = Map::new();
        m.insert("method".into(), Json::from(self.method.as_str()));
        m.insert("from_tag".into(), Json::from(self.from_tag.as_str()));
        m.insert("to_tag".into(), Json::from(self.to_tag.as_str()));
        m.insert("callid".into(), Json::from(self.callid.as_str()));
        m.insert("sip_code".into(), Json::from(self.code.to_string()));
        m.insert("sip_reason".into(), Json::from(self.reason.as_str()));
        m.insert("time".into(), Json::from(self.time));
        if let Some((d, s, c)) = self.cdr {
            m.insert("duration".into(), Json::from(d));
            m.insert("ms_duration".into(), Json::from(d * 1000));
            m.insert("setuptime".into(), Json::from(s));
            m.insert("created".into(), Json::from(c));
        }
        m
    }
}

/// A row for the writer thread: (db, SQL, values).
type Row = (Db, String, Vec<DbValue>);

fn writer() -> Option<&'static Mutex<SyncSender<Row>>> {
    static W: std::sync::OnceLock<Option<Mutex<SyncSender<Row>>>> = std::sync::OnceLock::new();
    W.get_or_init(|| {
        let (tx, rx) = sync_channel::<Row>(10_000);
        let spawned = std::thread::Builder::new().name("acc-db".into()).spawn(move || {
            for (db, sql, vals) in rx {
                match db.exec_wait(&sql, vals) {
                    Ok(_) => ACC.written.inc(),
                    Err(e) => {
                        ACC.dropped.inc();
                        tracing::error!("acc: cannot write a record: {e}");
                    }
                }
            }
        });
        spawned.ok().map(|_| Mutex::new(tx))
    })
    .as_ref()
}

fn write_db(r: &Record, table: &str) {
    let c = conf();
    let Some(db) = c.db.clone() else {
        tracing::error!("acc: db accounting without config.modules.acc.db_url");
        ACC.dropped.inc();
        return;
    };
    let Ok(t) = Ident::new(table) else { return };
    let mut cols = vec!["method", "from_tag", "to_tag", "callid", "sip_code", "sip_reason", "time"];
    let mut vals = vec![
        DbValue::text(&r.method),
        DbValue::text(&r.from_tag),
        DbValue::text(&r.to_tag),
        DbValue::text(&r.callid),
        DbValue::text(r.code.to_string()),
        DbValue::text(&r.reason),
        DbValue::Time(r.time),
    ];
    if let Some((d, s, created)) = r.cdr {
        cols.extend(["duration", "ms_duration", "setuptime", "created"]);
        vals.extend([DbValue::Int(d), DbValue::Int(d * 1000), DbValue::Int(s), DbValue::Time(created)]);
    }
    let marks = vec!["?"; cols.len()].join(", ");
    let sql = format!("INSERT INTO {t} ({}) VALUES ({marks})", cols.join(", "));
    let sent = writer().is_some_and(|w| {
        w.lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_send((db, sql, vals))
            .is_ok()
    });
    if !sent {
        ACC.dropped.inc();
    }
}

fn emit(r: &Record, m: &Marks, missed: bool) {
    let kind = if r.cdr.is_some() { "call ended" } else if missed { "call missed" } else { "transaction answered" };
    if m.types & LOG != 0 {
        let extra = match r.cdr {
            Some((d, s, c)) => format!("created={c};call_start_time={};duration={d};ms_duration={};setuptime={s};", r.time, d * 1000),
            None => format!("timestamp={};", r.time),
        };
        tracing::info!(
            "ACC: {kind}: {extra}method={};from_tag={};to_tag={};call_id={};code={};reason={}",
            r.method, r.from_tag, r.to_tag, r.callid, r.code, r.reason
        );
    }
    if m.types & EVI != 0 {
        let ev = if r.cdr.is_some() { "E_ACC_CDR" } else if missed { "E_ACC_MISSED_EVENT" } else { "E_ACC_EVENT" };
        crate::event::raise_declared(ev, r.json());
    }
    if m.types & DB != 0 {
        let c = conf();
        let table = m.table.clone().unwrap_or_else(|| if missed { c.missed_table.clone() } else { c.table.clone() });
        write_db(r, &table);
    }
}

/// The dialog's end hook: its CDR.
fn cdr(d: &Dlg) {
    let Some((_, m)) = cdr_marks().remove(&d.key()) else { return };
    let now = dlg::now_unix();
    let r = Record {
        method: "INVITE".into(),
        from_tag: d.legs[CALLER].tag.clone(),
        to_tag: d.legs[CALLEE].tag.clone(),
        callid: d.callid.clone(),
        code: 200,
        reason: "OK".into(),
        time: d.start_ts,
        cdr: Some((now - d.start_ts, d.start_ts - d.created, d.created)),
    };
    emit(&r, &m, false);
}

/// tm's observer: transactions end accounted.
struct TmObserver;

impl Observer for TmObserver {
    fn completed(&self, t: &Txn, code: u16) {
        let Some(m) = t.data.get::<Marks>() else { return };
        let missed = code >= 300;
        if missed && m.flags & (MISSED | FAILED) == 0 {
            if let Some(DlgTxn(d)) = t.data.get::<DlgTxn>() {
                cdr_marks().remove(&lock(d).key());
            }
            return;
        }
        if !missed && m.flags & CDR != 0 && t.data.get::<DlgTxn>().is_some() {
            return;
        }
        let req = &t.request;
        let reason = t
            .last_response
            .as_ref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.lines().next())
            .and_then(|l| l.splitn(3, ' ').nth(2))
            .unwrap_or("")
            .to_string();
        let to_tag = t
            .last_response
            .as_ref()
            .and_then(|b| crate::sip::Message::parse(b.clone()).ok())
            .and_then(|m| m.to_tag().map(str::to_string))
            .unwrap_or_default();
        let r = Record {
            method: req.method().to_string(),
            from_tag: req.from_tag().unwrap_or_default().to_string(),
            to_tag,
            callid: req.call_id().unwrap_or_default().to_string(),
            code,
            reason,
            time: dlg::now_unix(),
            cdr: None,
        };
        let mut mm = m.clone();
        if missed && m.flags & MISSED != 0 {
            mm.table = None;
        }
        emit(&r, &mm, missed && m.flags & MISSED != 0);
    }
}

fn observer() -> Arc<dyn Observer> {
    Arc::new(TmObserver)
}

fn parse_set(a: &Args, s: &str, names: &[(&str, u8)]) -> mlua::Result<u8> {
    let mut v = 0;
    for part in s.split('|').map(str::trim).filter(|p| !p.is_empty()) {
        v |= names
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(part))
            .map(|(_, b)| *b)
            .ok_or_else(|| a.err(format!("unknown '{part}'")))?;
    }
    Ok(v)
}

fn do_accounting(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let types = parse_set(&a, &a.str(0)?, &[("log", LOG), ("db", DB), ("evi", EVI)])?;
    let flags = match a.opt_str(1)? {
        Some(f) => parse_set(&a, &f, &[("cdr", CDR), ("missed", MISSED), ("failed", FAILED)])?,
        None => 0,
    };
    let table = a.opt_str(2)?.filter(|t| !t.is_empty());
    if let Some(t) = &table {
        Ident::new(t).map_err(|e| a.err(e))?;
    }
    let mut call = st.call.borrow_mut();
    let mut m = call.tm.data.get::<Marks>().cloned().unwrap_or_default();
    m.types |= types;
    m.flags |= flags;
    if table.is_some() {
        m.table = table;
    }
    if m.flags & CDR != 0 {
        if let Some(d) = call.slot_ref::<CallDlg>().and_then(|c| c.dlg.clone()) {
            cdr_marks().insert(lock(&d).key(), m.clone());
        }
    }
    call.tm.data.set(m);
    ret(lua, true)
}

static PARAMS: &[Param] = &[
    param("db_url", ParamKind::Str, "none", "Database of the `acc` and `missed_calls` tables (OpenSIPS 3.4 schema, `lunasip db init` creates them)."),
    param("db_table_acc", ParamKind::Str, "acc", "Table of answered calls and CDRs."),
    param("db_table_missed_calls", ParamKind::Str, "missed_calls", "Table of missed calls."),
];

const REC: &[&str] = &["method", "from_tag", "to_tag", "callid", "sip_code", "sip_reason", "time"];

pub static MODULE: Module = Module {
    name: "acc",
    table: Some("acc"),
    doc: "Accounting (OpenSIPS acc): transactions and dialog CDRs to the log, the database (`acc`, `missed_calls`) and events.",
    exports: &[Export {
        name: "do_accounting",
        args: "(types, [flags], [table])",
        returns: "true",
        routes: RouteMask::REQUEST.or(RouteMask::BRANCH).or(RouteMask::FAILURE),
        doc: "Accounts this request: `types` `log`, `db`, `evi` joined by `|`; `flags` `cdr` (one record when the dialog ends, with duration, setuptime and created; needs create_dialog first), `missed` (a negative final reply goes to `missed_calls` / E_ACC_MISSED_EVENT), `failed` (a negative final reply is accounted as well); `table` instead of `db_table_acc`. Database rows are queued to a writer thread (never waited for; `acc:dropped` counts losses).",
        func: Func::Sync(do_accounting),
    }],
    events: &[
        crate::event::EventDecl { name: "E_ACC_CDR", params: &["method", "from_tag", "to_tag", "callid", "sip_code", "sip_reason", "time", "duration", "ms_duration", "setuptime", "created"], doc: "A call ended: its CDR (`do_accounting(\"evi\", \"cdr\")`)." },
        crate::event::EventDecl { name: "E_ACC_EVENT", params: REC, doc: "A transaction was accounted (`do_accounting(\"evi\")`)." },
        crate::event::EventDecl { name: "E_ACC_MISSED_EVENT", params: REC, doc: "A missed call (`do_accounting(\"evi\", \"missed\")`)." },
    ],
    stats: &[
        StatDecl::counter("written", &ACC.written, "Records written to the database."),
        StatDecl::counter("dropped", &ACC.dropped, "Records lost: queue full, no database, or a failed insert."),
    ],
    params: PARAMS,
    hooks: Hooks { tm: Some(observer), loose_route: None },
    ..Module::NONE
};
