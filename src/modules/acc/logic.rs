//! When records are made (OpenSIPS acc_logic.c): at a transaction's
//! final reply (tm's observer hook) and at the end of a dialog (dialog's
//! end hook), by the marks `do_accounting` left.

use std::sync::Arc;

use dashmap::DashMap;

use super::extra::{AccCtx, AccRef};
use super::record::{self, Kind, Record};
use super::conf;
use crate::modules::dialog::machine::{now_ms, now_unix, DlgTxn};
use crate::modules::dialog::store::{lock, Dlg, CALLEE, CALLER};
use crate::proxy::tm::hooks::Observer;
use crate::proxy::tm::Txn;
use crate::sip::Message;

pub const LOG: u8 = 1;
pub const DB: u8 = 2;
pub const EVI: u8 = 4;
pub const CDR: u8 = 1;
pub const MISSED: u8 = 2;
pub const FAILED: u8 = 4;

/// Accounting contexts of dialogs that want a CDR, by dialog key.
/// (The registry's long-lived state: a reload keeps it.)
pub fn cdr_ctx() -> Arc<CdrCtx> {
    crate::state::state::<CdrCtx>()
}

/// The map [`cdr_ctx`] returns.
#[derive(Default)]
pub struct CdrCtx(DashMap<u64, AccRef>);

impl std::ops::Deref for CdrCtx {
    type Target = DashMap<u64, AccRef>;
    fn deref(&self) -> &DashMap<u64, AccRef> {
        &self.0
    }
}

/// Sends `r` to the backends `ctx.types` names.
pub fn account(r: &Record, kind: Kind, ctx: &AccCtx) {
    if ctx.types & LOG != 0 {
        record::to_log(r, kind);
    }
    if ctx.types & EVI != 0 {
        record::to_evi(r, kind);
    }
    if ctx.types & DB != 0 {
        let c = conf();
        let table = match kind {
            Kind::Missed => c.missed_table.clone(),
            _ => ctx.table.clone().unwrap_or_else(|| c.table.clone()),
        };
        record::to_db(r, &table);
    }
}

/// Dialog values holding the accounting marks (OpenSIPS keeps its acc
/// context in `accX_*` dialog values the same way).
const FLAGS_VAL: &str = "accX_flags";
const TABLE_VAL: &str = "accX_table";

/// Writes the marks into the dialog's values.
pub fn remember(d: &mut Dlg, types: u8, flags: u8, table: Option<String>) {
    use crate::proxy::context::Value;
    d.vals.retain(|(n, _)| n != FLAGS_VAL && n != TABLE_VAL);
    d.vals.push((FLAGS_VAL.into(), Value::Int(i64::from(types) << 8 | i64::from(flags))));
    if let Some(t) = table {
        d.vals.push((TABLE_VAL.into(), Value::Str(t)));
    }
}

/// The marks a dialog read back from the database carries.
fn recalled(d: &Dlg) -> Option<AccRef> {
    use crate::proxy::context::Value;
    let bits = d.vals.iter().find_map(|(n, v)| match v {
        Value::Int(i) if n == FLAGS_VAL => Some(*i),
        _ => None,
    })?;
    let r = AccRef::default();
    {
        let mut c = r.lock();
        c.types = (bits >> 8) as u8;
        c.flags = bits as u8;
        c.table = d.vals.iter().find_map(|(n, v)| match v {
            Value::Str(s) if n == TABLE_VAL => Some(s.clone()),
            _ => None,
        });
    }
    Some(r)
}

/// The dialog's end hook: the CDR of a dialog `do_accounting(…, "cdr")`
/// marked (in memory, or in its values after a restart).
pub fn cdr(d: &Dlg) {
    let r = match cdr_ctx().remove(&d.key()) {
        Some((_, r)) => r,
        None => match recalled(d) {
            Some(r) if r.lock().flags & CDR != 0 => r,
            _ => return,
        },
    };
    let ctx = r.lock();
    let ms = (now_ms() - d.start_ms).max(0);
    let rec = Record {
        method: "INVITE".into(),
        from_tag: d.legs[CALLER].tag.clone(),
        to_tag: d.legs[CALLEE].tag.clone(),
        callid: d.callid.clone(),
        code: "200".into(),
        reason: "OK".into(),
        time: d.start_ts,
        // OpenSIPS: duration is the milliseconds rounded up.
        cdr: Some(((ms + 999) / 1000, ms, d.start_ts - d.created, d.created)),
        extras: ctx.extras.clone(),
        legs: ctx.record_legs(),
    };
    account(&rec, Kind::Ended, &ctx);
}

/// Code and reason of the response the caller got (the reply's status
/// line, or OpenSIPS's text for one made here).
fn status(t: &Txn, code: u16) -> (String, String) {
    let line = t
        .last_response
        .as_ref()
        .and_then(|b| std::str::from_utf8(b.get(..b.len().min(200))?).ok())
        .and_then(|s| s.lines().next())
        .and_then(|l| l.splitn(3, ' ').nth(2))
        .map(str::to_string);
    let reason = line.unwrap_or_else(|| record::reason_of(code).to_string());
    (code.to_string(), reason)
}

fn to_tag_of(t: &Txn) -> String {
    t.last_response
        .as_ref()
        .and_then(|b| crate::sip::Message::parse(b.clone()).ok())
        .and_then(|m| m.to_tag().map(str::to_string))
        .or_else(|| t.request.to_tag().map(str::to_string))
        .unwrap_or_default()
}

/// tm's observer: a marked transaction's final reply.
struct TmObserver;

impl Observer for TmObserver {
    /// `report_cancels`: the CANCEL `do_accounting` marked, with the
    /// answer it got here.
    fn cancel_answered(&self, m: &Message, data: &crate::proxy::tm::hooks::TxnData, code: u16) {
        let Some(r) = data.get::<AccRef>() else {
            return;
        };
        let ctx = r.lock().clone();
        if ctx.types == 0 || ctx.flags & FAILED == 0 && code >= 300 {
            return;
        }
        let reason = record::reason_of(code).to_string();
        let to_tag = m.to_tag().unwrap_or_default().to_string();
        let rec = record_of(m, &ctx, code.to_string(), reason, to_tag);
        account(&rec, Kind::Answered, &ctx);
    }

    fn reply_in(&self, t: &Txn, _branch: usize, reply: &Message) {
        early_media(t, reply);
    }

    fn completed(&self, t: &Txn, code: u16) {
        let Some(r) = t.data.get::<AccRef>() else {
            return;
        };
        // A copy: the context is not held while the dialog is locked
        // (dialog's end hook locks them the other way round).
        let ctx = r.lock().clone();
        if ctx.types == 0 {
            return;
        }
        let dlg = t.data.get::<DlgTxn>();
        let negative = code >= 300;
        if negative {
            // The dialog never answered: no CDR will come.
            if let Some(DlgTxn(d)) = dlg {
                cdr_ctx().remove(&lock(d).key());
            }
        } else if ctx.flags & CDR != 0 && dlg.is_some() {
            // Accounted once, when the dialog ends.
            return;
        }
        let missed = negative && ctx.flags & MISSED != 0;
        let answered = !negative || ctx.flags & FAILED != 0;
        if !missed && !answered {
            return;
        }
        let (code_s, reason) = status(t, code);
        let rec = record_of(&t.request, &ctx, code_s, reason, to_tag_of(t));
        if missed {
            account(&rec, Kind::Missed, &ctx);
        }
        if answered {
            account(&rec, Kind::Answered, &ctx);
        }
    }
}

/// The record of request `req` with the reply's code, reason and To tag;
/// From and To tags swapped for an upstream request (acc.c does so under
/// `detect_direction`).
fn record_of(req: &Message, ctx: &AccCtx, code: String, reason: String, to_tag: String) -> Record {
    let mut from_tag = req.from_tag().unwrap_or_default().to_string();
    let mut to_tag = to_tag;
    if ctx.upstream {
        std::mem::swap(&mut from_tag, &mut to_tag);
    }
    Record {
        method: req.method().to_string(),
        from_tag,
        to_tag,
        callid: req.call_id().unwrap_or_default().to_string(),
        code,
        reason,
        time: now_unix(),
        cdr: None,
        extras: ctx.extras.clone(),
        legs: ctx.record_legs(),
    }
}

/// `early_media`: a provisional reply with a body (OpenSIPS
/// `should_acc_reply`: code < 200 and a Content-Length above 0) of a
/// transaction marked for accounting is accounted as it arrives.
fn early_media(t: &Txn, reply: &Message) {
    let code = reply.status().unwrap_or(0);
    if !(101..200).contains(&code) || reply.body().is_empty() || !super::conf().early_media {
        return;
    }
    let Some(r) = t.data.get::<AccRef>() else {
        return;
    };
    let ctx = r.lock().clone();
    if ctx.types == 0 {
        return;
    }
    let reason = reply.reason().unwrap_or_default().to_string();
    let to_tag = reply.to_tag().unwrap_or_default().to_string();
    let rec = record_of(&t.request, &ctx, code.to_string(), reason, to_tag);
    account(&rec, Kind::Answered, &ctx);
}

pub fn observer() -> Arc<dyn Observer> {
    Arc::new(TmObserver)
}
