//! Extra accounting (OpenSIPS acc `extra_fields`): tags the script fills
//! through `$acc_extra(tag)`, written by each backend under its own name
//! (`"db: caller->caller_id; callee"`: tag `caller` into column
//! `caller_id`, tag `callee` into column `callee`). The values live in the
//! request's accounting context, which the transaction and, for CDRs, the
//! dialog keep. Per-leg fields (`leg_fields`, same syntax) are filled
//! through `$acc_leg(tag)` for the newest leg of the context;
//! `acc_new_leg()` starts another (OpenSIPS acc_extra.c `push_leg`); each
//! leg makes its own database row and event, the log line lists them all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::proxy::context::Call;
use crate::pv::{PvDef, Spec, Value};

/// The accounting context of a request (OpenSIPS `acc_ctx_t`).
#[derive(Debug, Default, Clone)]
pub struct AccCtx {
    /// What `do_accounting` asked of each backend: see [`Marks`].
    pub marks: Marks,
    pub table: Option<String>,
    /// `$acc_extra` values by tag.
    pub extras: HashMap<String, String>,
    /// The request goes upstream and `detect_direction` is on: its
    /// records swap From and To tags.
    pub upstream: bool,
    /// `$acc_leg` values by tag, one map per leg (none until a leg value
    /// is set or `acc_new_leg` runs: then the first leg exists too).
    pub legs: Vec<HashMap<String, String>>,
}

/// `do_accounting`'s marks, one byte per backend as OpenSIPS keeps them
/// (acc_logic.h: a byte per type holding `DO_ACC` and the cdr, missed and
/// failed flags), so `do_accounting("db")` then `do_accounting("log",
/// "missed")` writes missed calls to the log only.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Marks(pub u32);

/// The backend bits (`LOG`, `DB`, `EVI`) in byte order.
const BACKENDS: [u8; 3] = [super::logic::LOG, super::logic::DB, super::logic::EVI];
/// A byte's "account this backend" bit; the flags sit above it.
const ACC: u8 = 1;

impl Marks {
    fn byte(self, i: usize) -> u8 {
        (self.0 >> (8 * i)) as u8
    }

    /// `do_accounting(types, flags)`: acc_bitmask_set.
    pub fn set(&mut self, types: u8, flags: u8) {
        for (i, b) in BACKENDS.iter().enumerate() {
            if types & b != 0 {
                self.0 |= u32::from(ACC | flags << 1) << (8 * i);
            }
        }
    }

    /// `drop_accounting([types], [flags])`: acc_bitmask_reset. Without
    /// types every backend, without flags every flag and the plain mark;
    /// then a backend left with no flag loses its plain mark too (as
    /// OpenSIPS does, whichever backend was named).
    pub fn reset(&mut self, types: Option<u8>, flags: Option<u8>) {
        let types = types.unwrap_or(super::logic::LOG | super::logic::DB | super::logic::EVI);
        let clear = flags.map_or(0xF, |f| f << 1);
        for (i, b) in BACKENDS.iter().enumerate() {
            if types & b != 0 {
                self.0 &= !(u32::from(clear) << (8 * i));
            }
        }
        for i in 0..BACKENDS.len() {
            if self.byte(i) & 0xE == 0 {
                self.0 &= !(u32::from(ACC) << (8 * i));
            }
        }
    }

    /// The backends whose byte `want` accepts (given the byte's flags:
    /// `CDR`, `MISSED`, `FAILED` bits as do_accounting takes them, and
    /// whether the plain mark is on).
    pub fn backends(self, want: impl Fn(bool, u8) -> bool) -> u8 {
        let mut out = 0;
        for (i, b) in BACKENDS.iter().enumerate() {
            let byte = self.byte(i);
            if want(byte & ACC != 0, byte >> 1) {
                out |= b;
            }
        }
        out
    }

    /// Any backend marked at all.
    pub fn any(self) -> bool {
        self.0 != 0
    }

    /// Any backend with flag `f`.
    pub fn has(self, f: u8) -> bool {
        self.backends(|_, flags| flags & f != 0) != 0
    }
}

impl AccCtx {
    /// The legs a record carries: none without `leg_fields`, else at
    /// least one (OpenSIPS makes the first with the context).
    pub fn record_legs(&self) -> Vec<HashMap<String, String>> {
        if super::conf().legs.is_empty() {
            Vec::new()
        } else if self.legs.is_empty() {
            vec![HashMap::new()]
        } else {
            self.legs.clone()
        }
    }
}

/// The context as a request's transaction data (shared: the script may
/// set `$acc_extra` after `do_accounting`, and the CDR reads it later).
#[derive(Clone, Default)]
pub struct AccRef(pub Arc<Mutex<AccCtx>>);

impl AccRef {
    pub fn lock(&self) -> MutexGuard<'_, AccCtx> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The call's context, made on first use.
pub fn ctx_of(call: &mut Call) -> AccRef {
    if let Some(r) = call.tm.data.get::<AccRef>() {
        return r.clone();
    }
    let r = AccRef::default();
    call.tm.data.set(r.clone());
    r
}

/// Which backends an extra definition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Log,
    Db,
    Evi,
}

/// `extra_fields` read: (backend, tag, name) in declaration order.
pub type Extras = Vec<(Backend, String, String)>;

/// Parses one `extra_fields` definition: `backend: tag[->name]; …`.
pub fn parse(def: &str, out: &mut Extras) -> Result<(), String> {
    let (backend, list) = def
        .split_once(':')
        .ok_or_else(|| format!("'{def}': missing backend separator ':'"))?;
    let b = match backend.trim() {
        "log" => Backend::Log,
        "db" => Backend::Db,
        "evi" => Backend::Evi,
        other => return Err(format!("'{def}': backend '{other}' is not log, db or evi")),
    };
    for token in list.split(';').map(str::trim).filter(|t| !t.is_empty()) {
        let (tag, name) = match token.split_once("->") {
            Some((t, n)) => (t.trim(), n.trim()),
            None => (token, token),
        };
        if tag.is_empty() || name.is_empty() {
            return Err(format!("'{def}': empty tag or name in '{token}'"));
        }
        if out.iter().any(|(ob, t, _)| *ob == b && t == tag) {
            return Err(format!("'{def}': tag '{tag}' defined twice for this backend"));
        }
        if b == Backend::Db {
            crate::db::Ident::new(name).map_err(|e| format!("'{def}': {e}"))?;
        }
        out.push((b, tag.to_string(), name.to_string()));
    }
    Ok(())
}

/// (name, value) of the extras of `backend` for a context (empty value
/// for a tag the script did not set).
pub fn values(extras: &Extras, backend: Backend, ctx: &AccCtx) -> Vec<(String, String)> {
    extras
        .iter()
        .filter(|(b, _, _)| *b == backend)
        .map(|(_, tag, name)| (name.clone(), ctx.extras.get(tag).cloned().unwrap_or_default()))
        .collect()
}

/// (name, value) of the leg fields of `backend` for one leg.
pub fn leg_values(legs: &Extras, backend: Backend, leg: &HashMap<String, String>) -> Vec<(String, String)> {
    legs.iter()
        .filter(|(b, _, _)| *b == backend)
        .map(|(_, tag, name)| (name.clone(), leg.get(tag).cloned().unwrap_or_default()))
        .collect()
}

/// acc_new_leg: another leg in the request's context (the first one too
/// when there was none).
pub fn new_leg(call: &mut Call) {
    let r = ctx_of(call);
    let mut ctx = r.lock();
    if ctx.legs.is_empty() {
        ctx.legs.push(HashMap::new());
    }
    ctx.legs.push(HashMap::new());
}

/// The leg `$acc_leg` names: `[n]` from the first (negative: from the
/// last), else the newest.
fn leg_index(c: &Call, s: &Spec, legs: usize) -> Result<usize, String> {
    match s.index(c) {
        None => Ok(legs.saturating_sub(1)),
        Some(Ok(n)) if n >= 0 && (n as usize) < legs.max(1) => Ok(n as usize),
        Some(Ok(n)) if n < 0 && n.unsigned_abs() as usize <= legs.max(1) => {
            Ok(legs.max(1) - n.unsigned_abs() as usize)
        }
        Some(Ok(n)) => Err(format!("$acc_leg: no leg {n} ({} legs)", legs.max(1))),
        Some(Err(())) => Err("$acc_leg: [*] is not a leg".into()),
    }
}

fn get_leg(c: &Call, s: &Spec) -> Value {
    let (Some(r), Some(tag)) = (c.tm.data.get::<AccRef>(), s.name(c)) else {
        return Value::Null;
    };
    let ctx = r.lock();
    let Ok(i) = leg_index(c, s, ctx.legs.len()) else {
        return Value::Null;
    };
    let v = ctx.legs.get(i).and_then(|l| l.get(tag.as_ref())).cloned();
    v.map_or(Value::Null, Value::Str)
}

fn set_leg(c: &mut Call, s: &Spec, v: Value) -> Result<(), String> {
    let tag = s.name(c).ok_or("$acc_leg needs a tag")?.into_owned();
    if !super::conf().legs.iter().any(|(_, t, _)| *t == tag) {
        return Err(format!("$acc_leg({tag}): tag not declared in leg_fields"));
    }
    let r = ctx_of(c);
    let mut ctx = r.lock();
    if ctx.legs.is_empty() {
        ctx.legs.push(HashMap::new());
    }
    let i = leg_index(c, s, ctx.legs.len())?;
    let leg = &mut ctx.legs[i];
    match v.to_text() {
        Some(t) => {
            leg.insert(tag, t.into_owned());
        }
        None => {
            leg.remove(&tag);
        }
    }
    Ok(())
}

fn known(tag: &str) -> bool {
    super::conf().extras.iter().any(|(_, t, _)| t == tag)
}

fn get(c: &Call, s: &Spec) -> Value {
    let (Some(r), Some(tag)) = (c.tm.data.get::<AccRef>(), s.name(c)) else {
        return Value::Null;
    };
    let v = r.lock().extras.get(tag.as_ref()).cloned();
    v.map_or(Value::Null, Value::Str)
}

fn set(c: &mut Call, s: &Spec, v: Value) -> Result<(), String> {
    let tag = s.name(c).ok_or("$acc_extra needs a tag")?.into_owned();
    if !known(&tag) {
        return Err(format!("$acc_extra({tag}): tag not declared in extra_fields"));
    }
    let r = ctx_of(c);
    let mut ctx = r.lock();
    match v.to_text() {
        Some(t) => {
            ctx.extras.insert(tag, t.into_owned());
        }
        None => {
            ctx.extras.remove(&tag);
        }
    }
    Ok(())
}

pub static PVS: &[PvDef] = &[
    PvDef {
        name: "acc_extra",
        get,
        set: Some(set),
        takes_inner: true,
        doc: "acc: the extra accounting value `tag` (declared in `extra_fields`), written with this request's records and its CDR",
        peek: None,
    },
    PvDef {
        name: "acc_leg",
        get: get_leg,
        set: Some(set_leg),
        takes_inner: true,
        doc: "acc: the value `tag` (declared in `leg_fields`) of the newest leg (`acc_new_leg`), or of leg `[n]`; each leg is its own database row and event",
        peek: None,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_fields_parse_as_opensips() {
        let mut e = Extras::new();
        parse("db: caller->caller_id; callee", &mut e).expect("ok");
        parse("log: a->My_a_Field; b;", &mut e).expect("ok");
        assert_eq!(
            e,
            vec![
                (Backend::Db, "caller".into(), "caller_id".into()),
                (Backend::Db, "callee".into(), "callee".into()),
                (Backend::Log, "a".into(), "My_a_Field".into()),
                (Backend::Log, "b".into(), "b".into()),
            ]
        );
        assert!(parse("a->b", &mut e).is_err(), "no backend");
        assert!(parse("aaa: a", &mut e).is_err());
        assert!(parse("db: caller->x", &mut e).is_err(), "twice");
        assert!(parse("db: z->bad name", &mut e).is_err());
    }
}
