//! acc's Lua functions (OpenSIPS 3.4 names and arguments).

use mlua::{Lua, MultiValue};

use super::extra::ctx_of;
use super::logic::{self, CDR, DB, EVI, FAILED, LOG, MISSED};
use super::record::{self, Kind, Record};
use crate::db::Ident;
use crate::modules::dialog::machine::{now_unix, CallDlg};
use crate::modules::dialog::store::lock;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// `"log|db"` → bits; an unknown name is a script error.
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
    let conf = super::conf();
    let mut call = st.call.borrow_mut();
    // OpenSIPS acc_logic.c: a CANCEL is accounted only with report_cancels.
    let cancel = call.msg.as_ref().is_some_and(|m| m.method() == "CANCEL");
    if cancel && !conf.report_cancels {
        tracing::warn!("{}: on a CANCEL without report_cancels: not accounted", a.fname);
        return ret(lua, true);
    }
    let upstream = conf.detect_direction && crate::modules::rr::upstream(&call);
    let r = ctx_of(&mut call);
    {
        let mut ctx = r.lock();
        ctx.upstream |= upstream;
        ctx.types |= types;
        ctx.flags |= flags;
        if table.is_some() {
            ctx.table = table;
        }
    }
    if flags & CDR != 0 {
        match call.slot_ref::<CallDlg>().and_then(|c| c.dlg.clone()) {
            Some(d) => {
                let (all_types, all_flags, table) = {
                    let c = r.lock();
                    (c.types, c.flags, c.table.clone())
                };
                let mut g = lock(&d);
                logic::cdr_ctx().insert(g.key(), r);
                // Kept with the dialog (and its row, db_mode 1): a CDR is
                // still written for a dialog read back after a restart.
                logic::remember(&mut g, all_types, all_flags, table);
            }
            None => tracing::warn!("{}: cdr accounting without a dialog (call create_dialog first)", a.fname),
        }
    }
    ret(lua, true)
}

/// `"200 OK"` → ("200", "OK"); without three digits, no code.
fn comment(c: &str) -> (String, String) {
    let b = c.as_bytes();
    if b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit) {
        (c[..3].to_string(), c[3..].trim_start().to_string())
    } else {
        (String::new(), c.to_string())
    }
}

/// The current request as a record with the comment's code and reason.
fn request_record(st: &State, a: &Args) -> mlua::Result<(Record, super::extra::AccRef)> {
    let (code, reason) = comment(&a.str(0)?);
    let mut call = st.call.borrow_mut();
    let r = ctx_of(&mut call);
    let m = call.msg.as_ref().ok_or_else(|| a.err("no message"))?;
    let (extras, legs) = {
        let ctx = r.lock();
        (ctx.extras.clone(), ctx.record_legs())
    };
    let rec = Record {
        method: m.method().to_string(),
        from_tag: m.from_tag().unwrap_or_default().to_string(),
        to_tag: m.to_tag().unwrap_or_default().to_string(),
        callid: m.call_id().unwrap_or_default().to_string(),
        code,
        reason,
        time: now_unix(),
        cdr: None,
        extras,
        legs,
    };
    Ok((rec, r))
}

fn acc_log_request(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (rec, _) = request_record(st, &a)?;
    record::to_log(&rec, Kind::Request);
    ret(lua, true)
}

fn acc_db_request(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let table = a.str(1)?;
    Ident::new(&table).map_err(|e| a.err(e))?;
    let (rec, _) = request_record(st, &a)?;
    ret(lua, record::to_db(&rec, &table))
}

fn acc_evi_request(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (rec, _) = request_record(st, &a)?;
    record::to_evi(&rec, Kind::Request);
    ret(lua, true)
}

/// acc_new_leg (OpenSIPS acc_logic.c `w_new_leg`).
fn acc_new_leg(lua: &Lua, st: &State, _: Args) -> mlua::Result<MultiValue> {
    super::extra::new_leg(&mut st.call.borrow_mut());
    ret(lua, true)
}

const R: RouteMask = RouteMask::REQUEST.or(RouteMask::BRANCH).or(RouteMask::FAILURE);
const ANY_MSG: RouteMask = R.or(RouteMask::ONREPLY);

pub static EXPORTS: &[Export] = &[
    Export {
        name: "do_accounting",
        args: "(types, [flags], [table])",
        returns: "true",
        routes: R,
        doc: "Accounts this request: `types` `log`, `db`, `evi` joined by `|`. Without flags its transaction is accounted when answered (2xx). Flags: `cdr` (after create_dialog: one record when the dialog ends, with duration, ms_duration, setuptime and created, instead of the answer's), `missed` (a negative final reply is written to `missed_calls` / E_ACC_MISSED_EVENT / `call missed`), `failed` (a negative final reply is accounted as an answer too). `table` instead of `db_table_acc`. Database rows are queued to a writer thread, never waited for (`acc:dropped` counts losses).",
        func: Func::Sync(do_accounting),
    },
    Export {
        name: "acc_log_request",
        args: "(comment)",
        returns: "true",
        routes: ANY_MSG,
        doc: "Logs this request now (`ACC: request accounted: …`); a comment starting with three digits gives the code (`\"403 Forbidden\"`).",
        func: Func::Sync(acc_log_request),
    },
    Export {
        name: "acc_db_request",
        args: "(comment, table)",
        returns: "true, false when the row could not be queued",
        routes: ANY_MSG,
        doc: "Writes this request now into `table` (acc columns; the row is queued, not waited for).",
        func: Func::Sync(acc_db_request),
    },
    Export {
        name: "acc_evi_request",
        args: "(comment)",
        returns: "true",
        routes: ANY_MSG,
        doc: "Raises E_ACC_EVENT for this request now.",
        func: Func::Sync(acc_evi_request),
    },
    Export {
        name: "acc_new_leg",
        args: "()",
        returns: "true",
        routes: R,
        doc: "Starts another leg in this request's accounting context: `$acc_leg(tag)` now sets its values (`leg_fields`); the record (or CDR) is then one database row and one event per leg.",
        func: Func::Sync(acc_new_leg),
    },
];
