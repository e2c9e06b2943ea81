//! Transformations (`{s.len}`, `{uri.user}`, `{via.branch}`, …): the
//! registry, argument handling and the evaluation loop, OpenSIPS 3.4
//! semantics. A transformation on a null value yields null; one that
//! cannot apply (a URI that does not parse, a substring out of range) is an
//! error, which the caller reports naming the spec.
//!
//! Files: `string.rs` (s.*), `sip.rs` (uri.*, via.*, param.*, nameaddr.*,
//! csv.*, sdp.*), `net.rs` (ip.*, re.subst).

/// One entry of a transformation registry (`DEFS` of each file below).
macro_rules! tr {
    ($name:literal, $f:ident, $min:literal, $max:literal, $args:literal, $doc:literal) => {
        TrDef {
            name: $name,
            min_args: $min,
            max_args: $max,
            f: $f,
            args_doc: $args,
            doc: $doc,
        }
    };
}

mod net;
mod sip;
mod string;

pub(crate) use string::{b64decode_bytes, b64encode_bytes};

use std::borrow::Cow;
use std::collections::HashMap;

use super::{Spec, Value};
use crate::proxy::context::Call;

/// Evaluates one transformation: call, its arguments, the input value
/// (never null). Errors say what went wrong; the caller adds the spec.
pub type TrFn = fn(&Call, &[Arg], Value) -> Result<Value, String>;

/// One transformation's declaration.
pub struct TrDef {
    pub name: &'static str,
    pub min_args: usize,
    pub max_args: usize,
    pub f: TrFn,
    /// Arguments as the docs show them, e.g. `,offset,length`.
    pub args_doc: &'static str,
    pub doc: &'static str,
}

/// A transformation argument: a literal (its integer value precomputed) or
/// a spec evaluated per use.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Lit(String, Option<i64>),
    Pv(Box<Spec>),
}

impl Arg {
    pub fn lit(s: String) -> Arg {
        let n = s.trim().parse().ok();
        Arg::Lit(s, n)
    }
}

/// A parsed transformation with its arguments.
#[derive(Clone)]
pub struct Trans {
    pub def: &'static TrDef,
    pub args: Vec<Arg>,
}

impl std::fmt::Debug for Trans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{}}}", self.def.name)
    }
}

impl PartialEq for Trans {
    fn eq(&self, o: &Trans) -> bool {
        std::ptr::eq(self.def, o.def) && self.args == o.args
    }
}

/// Every transformation, by class.
pub fn all() -> impl Iterator<Item = &'static TrDef> {
    string::DEFS
        .iter()
        .chain(sip::DEFS.iter())
        .chain(net::DEFS.iter())
}

/// Looks a transformation up by its full name (`s.len`).
pub fn lookup(name: &str) -> Option<&'static TrDef> {
    static INDEX: std::sync::OnceLock<HashMap<&'static str, &'static TrDef>> =
        std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| all().map(|d| (d.name, d)).collect())
        .get(name)
        .copied()
}

/// Applies transformations left to right. Null stops the chain (null out).
pub fn apply(c: &Call, trans: &[Trans], mut v: Value) -> Result<Value, String> {
    for t in trans {
        if v == Value::Null {
            return Ok(Value::Null);
        }
        v = (t.def.f)(c, &t.args, v).map_err(|e| format!("{{{}}}: {e}", t.def.name))?;
    }
    Ok(v)
}

/// Parses `{t1}{t2,arg}` (a chain without a variable) for `sip.tr`.
pub fn parse_chain(s: &str) -> Result<Vec<Trans>, String> {
    // Reuse the spec parser on a bracketed dummy: `$(null{…})`.
    let text = format!("$(null{})", s.trim());
    super::spec::parse_spec_at(&text)
        .map(|sp| sp.trans)
        .map_err(|e| {
            format!(
                "'{}': {} (at offset {})",
                s.trim(),
                e.msg,
                e.pos.saturating_sub(6)
            )
        })
}

/// An argument as text.
pub(crate) fn arg_str<'a>(c: &Call, args: &'a [Arg], i: usize) -> Result<Cow<'a, str>, String> {
    match args.get(i) {
        Some(Arg::Lit(s, _)) => Ok(Cow::Borrowed(s)),
        Some(Arg::Pv(sp)) => match super::eval(c, sp)? {
            Value::Str(s) => Ok(Cow::Owned(s)),
            Value::Int(n) => Ok(Cow::Owned(n.to_string())),
            Value::Null => Err(format!("argument {} ({}) is null", i + 1, sp.text)),
        },
        None => Err(format!("argument {} is missing", i + 1)),
    }
}

/// An argument as an integer.
pub(crate) fn arg_int(c: &Call, args: &[Arg], i: usize) -> Result<i64, String> {
    match args.get(i) {
        Some(Arg::Lit(_, Some(n))) => Ok(*n),
        Some(Arg::Lit(s, None)) => Err(format!("argument {} ('{s}') is not an integer", i + 1)),
        Some(Arg::Pv(sp)) => match super::eval(c, sp)? {
            Value::Int(n) => Ok(n),
            Value::Str(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("argument {} ({}) is not an integer", i + 1, sp.text)),
            Value::Null => Err(format!("argument {} ({}) is null", i + 1, sp.text)),
        },
        None => Err(format!("argument {} is missing", i + 1)),
    }
}

/// The input as text (integers print as decimal).
pub(crate) fn text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::Str(s) => Cow::Borrowed(s),
        Value::Int(n) => Cow::Owned(n.to_string()),
        Value::Null => Cow::Borrowed(""),
    }
}

/// A text result, or null when empty (OpenSIPS: a missing part is null).
pub(crate) fn or_null(s: Option<&str>) -> Value {
    match s {
        Some(s) if !s.is_empty() => Value::Str(s.to_string()),
        _ => Value::Null,
    }
}

/// `{s.int}`'s reading of a string: its leading integer, 0 when none.
pub fn string_leading_int(s: &str) -> i64 {
    string::leading_int(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_and_classed() {
        let mut seen = std::collections::HashSet::new();
        for d in all() {
            assert!(seen.insert(d.name), "{} twice", d.name);
            assert!(d.name.contains('.'), "{}", d.name);
            assert!(d.min_args <= d.max_args, "{}", d.name);
        }
        assert!(lookup("s.len").is_some());
        assert!(lookup("s.nope").is_none());
    }
}
