//! When records are made (OpenSIPS acc_logic.c): at a transaction's
//! final reply (tm's observer hook) and at the end of a dialog (dialog's
//! end hook), by the marks `do_accounting` left.

use std::sync::Arc;

use dashmap::DashMap;

use super::extra::{AccCtx, AccRef, Marks};
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

/// Sends `r` to `backends` (`LOG`, `DB`, `EVI` bits).
pub fn account(r: &Record, kind: Kind, ctx: &AccCtx, backends: u8) {
    if backends & LOG != 0 {
        record::to_log(r, kind);
    }
    if backends & EVI != 0 {
        record::to_evi(r, kind);
    }
    if backends & DB != 0 {
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

/// Tells the per-backend layout of `FLAGS_VAL` from the one before it
/// (types << 8 | flags, shared by every backend).
const MARKS_LAYOUT: i64 = 1 << 32;

/// Writes the marks into the dialog's values.
pub fn remember(d: &mut Dlg, marks: Marks, table: Option<String>) {
    use crate::proxy::context::Value;
    d.vals.retain(|(n, _)| n != FLAGS_VAL && n != TABLE_VAL);
    d.vals.push((FLAGS_VAL.into(), Value::Int(MARKS_LAYOUT | i64::from(marks.0))));
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
        if bits & MARKS_LAYOUT != 0 {
            c.marks = Marks(bits as u32);
        } else {
            c.marks.set((bits >> 8) as u8, bits as u8);
        }
        c.table = d.vals.iter().find_map(|(n, v)| match v {
            Value::Str(s) if n == TABLE_VAL => Some(s.clone()),
            _ => None,
        });
    }
    Some(r)
}

/// The accounting context of dialog `d` for its CDR: the one in memory,
/// or the marks its values carry (a dialog read back after a restart),
/// then kept in memory so that changes reach the CDR.
pub fn dialog_ctx(d: &Dlg) -> Option<AccRef> {
    if let Some(r) = cdr_ctx().get(&d.key()) {
        return Some(r.value().clone());
    }
    let r = recalled(d).filter(|r| r.lock().marks.has(CDR))?;
    cdr_ctx().insert(d.key(), r.clone());
    Some(r)
}

/// The dialog's end hook: the CDR of a dialog `do_accounting(…, "cdr")`
/// marked (in memory, or in its values after a restart).
pub fn cdr(d: &Dlg) {
    let r = match cdr_ctx().remove(&d.key()) {
        Some((_, r)) => r,
        None => match recalled(d) {
            Some(r) if r.lock().marks.has(CDR) => r,
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
    let to = ctx.marks.backends(|_, f| f & CDR != 0);
    account(&rec, Kind::Ended, &ctx, to);
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
        let to = ctx.marks.backends(|acc, f| acc && (code < 300 || f & FAILED != 0));
        if to == 0 {
            return;
        }
        let reason = record::reason_of(code).to_string();
        let to_tag = m.to_tag().unwrap_or_default().to_string();
        let rec = record_of(m, &ctx, code.to_string(), reason, to_tag);
        account(&rec, Kind::Answered, &ctx, to);
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
        if !ctx.marks.any() {
            return;
        }
        let dlg = t.data.get::<DlgTxn>();
        let negative = code >= 300;
        if negative {
            // The dialog never answered: no CDR will come.
            if let Some(DlgTxn(d)) = dlg {
                cdr_ctx().remove(&lock(d).key());
            }
        }
        // Per backend: a CDR backend of a dialog is accounted once, when
        // the dialog ends; others when answered, or on a negative reply
        // with `failed`; `missed` writes a negative one as a missed call.
        let cdr_later = !negative && dlg.is_some();
        let missed = if negative { ctx.marks.backends(|_, f| f & MISSED != 0) } else { 0 };
        let answered = ctx.marks.backends(|acc, f| {
            acc && !(cdr_later && f & CDR != 0) && (!negative || f & FAILED != 0)
        });
        if missed == 0 && answered == 0 {
            return;
        }
        let (code_s, reason) = status(t, code);
        let rec = record_of(&t.request, &ctx, code_s, reason, to_tag_of(t));
        if missed != 0 {
            account(&rec, Kind::Missed, &ctx, missed);
        }
        if answered != 0 {
            account(&rec, Kind::Answered, &ctx, answered);
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
    let to = ctx.marks.backends(|acc, _| acc);
    if to == 0 {
        return;
    }
    let reason = reply.reason().unwrap_or_default().to_string();
    let to_tag = reply.to_tag().unwrap_or_default().to_string();
    let rec = record_of(&t.request, &ctx, code.to_string(), reason, to_tag);
    account(&rec, Kind::Answered, &ctx, to);
}

pub fn observer() -> Arc<dyn Observer> {
    Arc::new(TmObserver)
}
