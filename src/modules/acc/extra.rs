//! Extra accounting (OpenSIPS acc `extra_fields`): tags the script fills
//! through `$acc_extra(tag)`, written by each backend under its own name
//! (`"db: caller->caller_id; callee"`: tag `caller` into column
//! `caller_id`, tag `callee` into column `callee`). The values live in the
//! request's accounting context, which the transaction and, for CDRs, the
//! dialog keep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::proxy::context::Call;
use crate::pv::{PvDef, Spec, Value};

/// The accounting context of a request (OpenSIPS `acc_ctx_t`).
#[derive(Debug, Default, Clone)]
pub struct AccCtx {
    /// `do_accounting` types (log, db, evi bits) and flags (cdr, missed,
    /// failed bits).
    pub types: u8,
    pub flags: u8,
    pub table: Option<String>,
    /// `$acc_extra` values by tag.
    pub extras: HashMap<String, String>,
    /// The request goes upstream and `detect_direction` is on: its
    /// records swap From and To tags.
    pub upstream: bool,
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

pub static PVS: &[PvDef] = &[PvDef {
    name: "acc_extra",
    get,
    set: Some(set),
    takes_inner: true,
    doc: "acc: the extra accounting value `tag` (declared in `extra_fields`), written with this request's records and its CDR",
    peek: None,
}];

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
