//! acc's Lua functions (OpenSIPS 3.4 names and arguments).

use mlua::{Lua, MultiValue};

use super::extra::ctx_of;
use super::logic::{self, CDR, DB, EVI, FAILED, LOG, MISSED};
use super::record::{self, Kind, Record};
use crate::db::Ident;
use crate::modules::dialog::machine::{now_unix, CallDlg};
use crate::modules::dialog::store::lock;
use crate::modules::registrar::coded;
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
        ctx.marks.set(types, flags);
        if table.is_some() {
            ctx.table = table;
        }
    }
    if flags & CDR != 0 {
        match call.slot_ref::<CallDlg>().and_then(|c| c.dlg.clone()) {
            Some(d) => {
                let (marks, table) = {
                    let c = r.lock();
                    (c.marks, c.table.clone())
                };
                let mut g = lock(&d);
                logic::cdr_ctx().insert(g.key(), r);
                // Kept with the dialog (and its row, db_mode 1): a CDR is
                // still written for a dialog read back after a restart.
                logic::remember(&mut g, marks, table);
            }
            None => tracing::warn!("{}: cdr accounting without a dialog (call create_dialog first)", a.fname),
        }
    }
    ret(lua, true)
}

/// `drop_accounting([types], [flags])` (acc_logic.c `w_drop_acc`): takes
/// marks back; -1 when this request has none.
fn drop_accounting(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let types = match a.opt_str(0)? {
        Some(t) => Some(parse_set(&a, &t, &[("log", LOG), ("db", DB), ("evi", EVI)])?),
        None => None,
    };
    let flags = match a.opt_str(1)? {
        Some(f) => Some(parse_set(&a, &f, &[("cdr", CDR), ("missed", MISSED), ("failed", FAILED)])?),
        None => None,
    };
    let call = st.call.borrow();
    let Some(r) = call.tm.data.get::<super::extra::AccRef>().cloned() else {
        tracing::error!("{}: do_accounting() was not used for this request", a.fname);
        return coded(lua, -1);
    };
    let (marks, table) = {
        let mut c = r.lock();
        c.marks.reset(types, flags);
        (c.marks, c.table.clone())
    };
    // A dialog keeps the marks for its CDR (and its row, db_mode 1).
    if let Some(d) = call.slot_ref::<CallDlg>().and_then(|c| c.dlg.clone()) {
        let mut g = lock(&d);
        if logic::cdr_ctx().contains_key(&g.key()) {
            logic::remember(&mut g, marks, table);
        }
    }
    coded(lua, 1)
}

/// The request's own accounting context while a dialog's is loaded.
#[derive(Default)]
struct Stored(Option<Option<super::extra::AccRef>>);

/// `acc_load_ctx_from_dlg()` (acc_logic.c `w_load_ctx_from_dlg`): the
/// current dialog's accounting context becomes this route's, so
/// `$acc_extra`/`$acc_leg` reach the dialog's CDR; -1 without a dialog,
/// without a context in it, or when one is loaded already.
fn acc_load_ctx_from_dlg(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mut call = st.call.borrow_mut();
    if call.slot_ref::<Stored>().is_some_and(|s| s.0.is_some()) {
        tracing::error!("{}: a dialog's context is loaded already", a.fname);
        return coded(lua, -1);
    }
    let Some(d) = call.slot_ref::<CallDlg>().and_then(|c| c.dlg.clone()) else {
        return coded(lua, -1);
    };
    let Some(r) = logic::dialog_ctx(&lock(&d)) else {
        return coded(lua, -1);
    };
    let own = call.tm.data.get::<super::extra::AccRef>().cloned();
    call.slot::<Stored>().0 = Some(own);
    call.tm.data.set(r);
    coded(lua, 1)
}

/// `acc_unload_ctx_from_dlg()`: the request's own context back; -1 when
/// none was loaded.
fn acc_unload_ctx_from_dlg(lua: &Lua, st: &State, _: Args) -> mlua::Result<MultiValue> {
    let mut call = st.call.borrow_mut();
    let Some(own) = call.slot::<Stored>().0.take() else {
        return coded(lua, -1);
    };
    match own {
        Some(r) => call.tm.data.set(r),
        None => call.tm.data.remove::<super::extra::AccRef>(),
    }
    coded(lua, 1)
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
    Export {
        name: "drop_accounting",
        args: "([types], [flags])",
        returns: "true, 1; false, -1 when do_accounting was not used for this request",
        routes: R,
        doc: "Takes back what `do_accounting` marked: the `flags` (`cdr`, `missed`, `failed`, joined by `|`) of the `types` (`log`, `db`, `evi`); without flags the types' plain accounting as well, without types every type. As in OpenSIPS (acc_logic.h `acc_bitmask_reset`), every type then left with no flag loses its plain accounting too, whichever types were named.",
        func: Func::Sync(drop_accounting),
    },
    Export {
        name: "acc_load_ctx_from_dlg",
        args: "()",
        returns: "true, 1; false, -1 without a current dialog, without accounting in it (`do_accounting(…, \"cdr\")`), or when one is loaded already",
        routes: RouteMask::ANY,
        doc: "Makes the current dialog's accounting context this route's (e.g. in a sequential request, or after `load_dialog_ctx`), so `$acc_extra` and `$acc_leg` read and change what the dialog's CDR will carry. Not nested: `acc_unload_ctx_from_dlg` first.",
        func: Func::Sync(acc_load_ctx_from_dlg),
    },
    Export {
        name: "acc_unload_ctx_from_dlg",
        args: "()",
        returns: "true, 1; false, -1 when no dialog context was loaded",
        routes: RouteMask::ANY,
        doc: "Gives the route its own accounting context back after `acc_load_ctx_from_dlg`.",
        func: Func::Sync(acc_unload_ctx_from_dlg),
    },
];
