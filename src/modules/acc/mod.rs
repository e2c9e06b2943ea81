//! acc (OpenSIPS module of the same name): accounting of transactions
//! and calls. `do_accounting(types, flags, table)` marks a request; tm's
//! observer hook accounts its final reply (answered; negative ones with
//! `failed`, or as a missed call with `missed`); with `cdr` and a dialog,
//! one record (a CDR: duration, setuptime, created) is written when the
//! dialog ends, through dialog's end hook. `acc_log_request`,
//! `acc_db_request` and `acc_evi_request` account the request at once.
//! Backends: the log, the database (OpenSIPS 3.4's `acc` and
//! `missed_calls` tables; rows queued to a writer thread, see
//! [`record`]) and events (E_ACC_CDR, E_ACC_EVENT, E_ACC_MISSED_EVENT).

pub mod extra;
mod logic;
mod lua;
pub mod record;

use std::sync::Arc;

use crate::db::{Db, Ident};
use crate::modules::usrloc::cfg;
use crate::modules::{param, Hooks, Module, Param, ParamKind};
use crate::stats::{stat_group, StatDecl};

/// acc's settings in force.
#[derive(Clone)]
pub struct AccConf {
    pub db_url: Option<String>,
    pub db: Option<Db>,
    pub table: String,
    pub missed_table: String,
    pub extras: extra::Extras,
    /// `leg_fields` read, as `extras`.
    pub legs: extra::Extras,
    /// Account provisional replies with a body (183 with SDP) as they
    /// are relayed (`early_media`).
    pub early_media: bool,
    /// `do_accounting` on a CANCEL marks it (`report_cancels`); else it
    /// is refused with a warning, as OpenSIPS does.
    pub report_cancels: bool,
    /// Records of requests going upstream (a BYE from the callee) swap
    /// From and To tags (`detect_direction`).
    pub detect_direction: bool,
}

impl Default for AccConf {
    fn default() -> Self {
        AccConf {
            db_url: None,
            db: None,
            table: "acc".into(),
            missed_table: "missed_calls".into(),
            extras: Vec::new(),
            legs: Vec::new(),
            early_media: false,
            report_cancels: false,
            detect_direction: false,
        }
    }
}

/// The settings in force (the registry of this thread's environment).
pub fn conf() -> Arc<AccConf> {
    crate::state::module::<AccConf>()
}

/// `config.modules.acc`, read and checked.
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

/// Reads `config.modules.acc` (nothing opened).
pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let Some(t) = cfg::table(modules, "acc")? else {
        return Ok(Prepared::default());
    };
    let m = "acc";
    let db_url = cfg::str(&t, m, "db_url")?;
    if let Some(u) = &db_url {
        crate::db::check_url(u).map_err(|e| format!("config.modules.acc.db_url: {e}"))?;
    }
    let name = |key: &str, def: &str| -> Result<String, String> {
        let v = cfg::str(&t, m, key)?.unwrap_or_else(|| def.to_string());
        Ident::new(&v).map_err(|e| format!("config.modules.acc.{key}: {e}"))?;
        Ok(v)
    };
    let flag = |key: &str| Ok::<bool, String>(cfg::bool(&t, m, key)?.unwrap_or(false));
    // A string, or a list of strings (one per backend), as OpenSIPS's
    // repeated modparam.
    let fields = |key: &str| -> Result<extra::Extras, String> {
        let defs: Vec<String> = match t.get::<mlua::Value>(key).map_err(|e| e.to_string())? {
            mlua::Value::Nil => Vec::new(),
            mlua::Value::Table(list) => list
                .sequence_values::<String>()
                .collect::<Result<_, _>>()
                .map_err(|e| format!("config.modules.acc.{key}: {e}"))?,
            _ => vec![cfg::str(&t, m, key)?.unwrap_or_default()],
        };
        let mut out = Vec::new();
        for d in defs {
            extra::parse(&d, &mut out).map_err(|e| format!("config.modules.acc.{key}: {e}"))?;
        }
        Ok(out)
    };
    let extras = fields("extra_fields")?;
    let legs = fields("leg_fields")?;
    Ok(Prepared {
        conf: Some(AccConf {
            db_url,
            db: None,
            table: name("db_table_acc", "acc")?,
            missed_table: name("db_table_missed_calls", "missed_calls")?,
            extras,
            legs,
            early_media: flag("early_media")?,
            report_cancels: flag("report_cancels")?,
            detect_direction: flag("detect_direction")?,
        }),
    })
}

impl Prepared {
    /// Installs the settings (the pool opened, not connected).
    pub fn commit(self, staged: &mut crate::state::Staged) -> Result<(), String> {
        let mut c = self.conf.unwrap_or_default();
        if let Some(u) = &c.db_url {
            c.db = Some(crate::db::open(u).map_err(|e| format!("acc: {e}"))?);
        }
        staged.put(c);
        crate::modules::dialog::machine::on_end(logic::cdr);
        Ok(())
    }
}

stat_group! {
    /// acc counters, declared in [`MODULE`]'s `stats`.
    pub struct Acc: "acc" {
        written,
        dropped,
        confirmed,
    }
}

pub static ACC: Acc = Acc::new();

static PARAMS: &[Param] = &[
    param("db_url", ParamKind::Str, "none", "Database of the `acc` and `missed_calls` tables (OpenSIPS 3.4 schema; `lunasip db init` creates them)."),
    param("db_table_acc", ParamKind::Str, "acc", "Table of accounted transactions and CDRs."),
    param("db_table_missed_calls", ParamKind::Str, "missed_calls", "Table of missed calls."),
    param("early_media", ParamKind::Bool, "false", "true (or 1): a provisional reply with a body (183 with SDP) of an accounted transaction is accounted too, as it arrives (OpenSIPS `early_media`)."),
    param("report_cancels", ParamKind::Bool, "false", "true (or 1): `do_accounting` on a CANCEL accounts it; false: it is refused with a warning and returns true (OpenSIPS `report_cancels`)."),
    param("detect_direction", ParamKind::Bool, "false", "true (or 1): records of requests going upstream (a BYE sent by the callee, told by rr's `ftag`) carry From and To tags swapped, so `from_tag` is always the caller's side (OpenSIPS `detect_direction`)."),
    param("extra_fields", ParamKind::Str, "none", "Extra values per backend, OpenSIPS syntax: `\"db: caller->caller_id; callee\"` (tag `caller` into column `caller_id`); a list of such strings for several backends (`log`, `db`, `evi`). The script sets them with `$acc_extra(tag)`."),
    param("leg_fields", ParamKind::Str, "none", "Per-leg values, same syntax as `extra_fields` (`\"db: callee->callee_uri\"`); the script sets them with `$acc_leg(tag)` for the newest leg and starts another with `acc_new_leg()`. A record with legs is one database row and one event per leg (core and extra values repeated), and one log line listing every leg's values."),
];

const REC: &[&str] = &["method", "from_tag", "to_tag", "callid", "sip_code", "sip_reason", "time"];

crate::modules::staged_settings!(Prepared);

pub static MODULE: Module = Module {
    name: "acc",
    table: Some("acc"),
    doc: "Accounting (OpenSIPS acc): transactions, missed calls and dialog CDRs to the log, the database (`acc`, `missed_calls`) and events. See docs/acc.md.",
    exports: lua::EXPORTS,
    pvs: extra::PVS,
    events: &[
        crate::event::EventDecl {
            name: "E_ACC_CDR",
            params: &["method", "from_tag", "to_tag", "callid", "sip_code", "sip_reason", "time", "duration", "ms_duration", "setuptime", "created"],
            doc: "A call ended: its CDR (`do_accounting(\"evi\", \"cdr\")`), with the `evi` extra fields.",
        },
        crate::event::EventDecl {
            name: "E_ACC_EVENT",
            params: REC,
            doc: "A transaction or request was accounted (`do_accounting(\"evi\")`, `acc_evi_request`).",
        },
        crate::event::EventDecl {
            name: "E_ACC_MISSED_EVENT",
            params: REC,
            doc: "A missed call (`do_accounting(\"evi\", \"missed\")`).",
        },
    ],
    stats: &[
        StatDecl::counter("written", &ACC.written, "Records written to the database."),
        StatDecl::counter("dropped", &ACC.dropped, "Records lost: database queue full, no db_url, or a failed insert."),
        StatDecl::counter("confirmed", &ACC.confirmed, "Records among `written` whose insert lost its connection after it was sent and that a look-up then found in the table (not sent again: no duplicate CDR)."),
    ],
    params: PARAMS,
    hooks: Hooks {
        tm: Some(logic::observer),
        loose_route: None,
    },
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
