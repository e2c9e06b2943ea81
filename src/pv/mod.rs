//! Pseudo-variables (OpenSIPS `$ru`, `$hdr(Via)`, …): spec parsing, the
//! registry of getters and setters, transformations and `xlog`-style
//! format strings.
//!
//! A spec is parsed once and cached per worker ([`Cache`]); evaluating it
//! allocates only for the result. The registry (the `DEFS` tables of
//! `core.rs`, `msg.rs`, `vars.rs` and `misc.rs`) is the one list of what
//! exists; `tr/` holds the transformations, `re.rs` the regex cache,
//! `hash.rs` the digests.

/// Entries of the pseudo-variable registries (`DEFS` of the files below):
/// `ro!(name, get, doc)`, `ro!(name, get, inner, doc)` (takes a name in
/// parentheses), `ro!(name, get, peek, doc)` (with a borrowing reader),
/// `rw!(name, get, set, takes_inner, doc)`.
macro_rules! ro {
    ($name:literal, $get:ident, $doc:literal) => {
        PvDef {
            name: $name,
            get: $get,
            set: None,
            takes_inner: false,
            doc: $doc,
            peek: None,
        }
    };
    ($name:literal, $get:ident, inner, $doc:literal) => {
        PvDef {
            name: $name,
            get: $get,
            set: None,
            takes_inner: true,
            doc: $doc,
            peek: None,
        }
    };
    ($name:literal, $get:ident, $peek:ident, $doc:literal) => {
        PvDef {
            name: $name,
            get: $get,
            set: None,
            takes_inner: false,
            doc: $doc,
            peek: Some($peek),
        }
    };
}
macro_rules! rw {
    ($name:literal, $get:ident, $set:ident, $inner:literal, $doc:literal) => {
        PvDef {
            name: $name,
            get: $get,
            set: Some($set),
            takes_inner: $inner,
            doc: $doc,
            peek: None,
        }
    };
}

pub mod core;
pub mod hash;
pub mod lint;
pub mod misc;
pub mod msg;
pub mod re;
pub mod re_basic;
pub mod spec;
pub mod tr;
pub mod vars;

pub use spec::{
    parse_format, parse_format_at, parse_spec, parse_spec_at, Index, Inner, Part, Spec, SpecError,
};

use std::collections::HashMap;
use std::rc::Rc;

use crate::proxy::context::Call;

pub use crate::proxy::context::Value;

impl Value {
    /// Text as xlog prints it (`<null>` for null, as OpenSIPS does).
    pub fn write_to(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("<null>"),
            Value::Int(i) => {
                use std::fmt::Write;
                let _ = write!(out, "{i}");
            }
            Value::Str(s) => out.push_str(s),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as text; None for null.
    pub fn to_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Value::Null => None,
            Value::Int(i) => Some(std::borrow::Cow::Owned(i.to_string())),
            Value::Str(s) => Some(std::borrow::Cow::Borrowed(s)),
        }
    }

    /// The value as an integer: ints as they are, strings by their leading
    /// number (OpenSIPS `{s.int}`), null as None.
    pub fn to_int(&self) -> Option<i64> {
        match self {
            Value::Null => None,
            Value::Int(i) => Some(*i),
            Value::Str(s) => Some(tr::string_leading_int(s)),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("<null>"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => f.write_str(s),
        }
    }
}

/// Reads a pseudo-variable from the current call.
pub type Getter = fn(&Call, &Spec) -> Value;
/// Writes one; `Value::Null` deletes where OpenSIPS allows `$x = NULL`.
pub type Setter = fn(&mut Call, &Spec, Value) -> Result<(), String>;

/// Reads a text variable without copying it (None = null): the fast path
/// for plain reads (`sip.pv.ru`, xlog), which then copy once, into Lua or
/// into the output string.
pub type Peek = for<'a> fn(&'a Call, &Spec) -> Option<&'a str>;

/// One pseudo-variable's declaration.
pub struct PvDef {
    pub name: &'static str,
    pub get: Getter,
    pub set: Option<Setter>,
    /// Whether the name takes `(inner)`.
    pub takes_inner: bool,
    pub doc: &'static str,
    /// A borrowing getter, for variables that are a slice of the message.
    pub peek: Option<Peek>,
}

impl PvDef {
    /// A read-only pseudo-variable without `(inner)` (modules declare
    /// theirs with it).
    pub const fn ro(name: &'static str, get: Getter, doc: &'static str) -> PvDef {
        PvDef {
            name,
            get,
            set: None,
            takes_inner: false,
            doc,
            peek: None,
        }
    }

    /// A writable one without `(inner)`.
    pub const fn rw(name: &'static str, get: Getter, set: Setter, doc: &'static str) -> PvDef {
        PvDef {
            name,
            get,
            set: Some(set),
            takes_inner: false,
            doc,
            peek: None,
        }
    }
}

/// The pseudo-variables modules declare, handed over once at start
/// (`modules::register`): pv knows no module.
static MODULE_PVS: std::sync::OnceLock<Vec<&'static PvDef>> = std::sync::OnceLock::new();

/// Adds the modules' pseudo-variables (the first call wins; later calls do
/// nothing).
pub fn register_module_pvs(defs: impl Iterator<Item = &'static PvDef>) {
    let _ = MODULE_PVS.set(defs.collect());
}

fn module_pvs() -> impl Iterator<Item = &'static PvDef> {
    MODULE_PVS.get().into_iter().flatten().copied()
}

/// Every pseudo-variable, in documentation order (the modules' last).
pub fn all() -> impl Iterator<Item = &'static PvDef> {
    core::DEFS
        .iter()
        .chain(msg::DEFS.iter())
        .chain(vars::DEFS.iter())
        .chain(misc::DEFS.iter())
        .chain(module_pvs())
}

/// Looks a pseudo-variable up by name.
pub fn lookup(name: &str) -> Option<&'static PvDef> {
    static INDEX: std::sync::OnceLock<HashMap<&'static str, &'static PvDef>> =
        std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| {
            misc::started();
            core::DEFS
                .iter()
                .chain(msg::DEFS.iter())
                .chain(vars::DEFS.iter())
                .chain(misc::DEFS.iter())
                .map(|d| (d.name, d))
                .collect()
        })
        .get(name)
        .copied()
        .or_else(|| module_pvs().find(|d| d.name == name))
}

/// The borrowing fast path: `Some(result)` when the spec is a plain read of
/// a variable that has one (no index, no transformation).
pub fn peek<'a>(call: &'a Call, spec: &Spec) -> Option<Option<&'a str>> {
    match spec.def.peek {
        Some(p)
            if spec.trans.is_empty()
                && spec.ctx.is_none()
                && spec.index.is_none()
                && !matches!(spec.inner, Some(Inner::Dyn(_))) =>
        {
            Some(p(call, spec))
        }
        _ => None,
    }
}

/// Evaluates a spec: the variable, then its transformations. An error
/// (a transformation that cannot apply) names the spec.
pub fn eval(call: &Call, spec: &Spec) -> Result<Value, String> {
    if let Some(ctx) = spec.ctx {
        // Null where the context has no message (no transaction, no reply
        // yet), as OpenSIPS when its context function finds none.
        return match call.context_call(ctx == spec::Ctx::Reply) {
            Some(c) => eval_here(&c, spec),
            None => Ok(Value::Null),
        };
    }
    eval_here(call, spec)
}

/// [`eval`] on `call`'s own message.
fn eval_here(call: &Call, spec: &Spec) -> Result<Value, String> {
    let v = (spec.def.get)(call, spec);
    if spec.trans.is_empty() {
        return Ok(v);
    }
    tr::apply(call, &spec.trans, v).map_err(|e| format!("{}: {e}", spec.text))
}

/// Evaluates a spec; a failing transformation gives null (as OpenSIPS
/// goes on with a null). Use [`eval`] to see the error.
pub fn get(call: &Call, spec: &Spec) -> Value {
    eval(call, spec).unwrap_or(Value::Null)
}

/// Assigns a spec; errors name the spec when it is read-only.
pub fn set(call: &mut Call, spec: &Spec, v: Value) -> Result<(), String> {
    if spec.ctx.is_some() {
        return Err(format!(
            "{}: cannot assign in a <request>/<reply> context",
            spec.text
        ));
    }
    if !spec.trans.is_empty() {
        return Err(format!(
            "{}: cannot assign through a transformation",
            spec.text
        ));
    }
    match spec.def.set {
        Some(set) => set(call, spec, v).map_err(|e| {
            if e.starts_with('$') {
                e
            } else {
                format!("{}: {e}", spec.text)
            }
        }),
        None => Err(format!("${} is read-only", spec.def.name)),
    }
}

/// Expands a parsed format string; a spec that fails prints `<null>`.
pub fn format(call: &Call, parts: &[Part], out: &mut String) {
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Spec(s) => match peek(call, s) {
                Some(Some(t)) => out.push_str(t),
                Some(None) => out.push_str("<null>"),
                None => get(call, s).write_to(out),
            },
        }
    }
}

/// [`format`] that stops at the first failing spec, with its error.
pub fn try_format(call: &Call, parts: &[Part], out: &mut String) -> Result<(), String> {
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Spec(s) => eval(call, s)?.write_to(out),
        }
    }
    Ok(())
}

/// FxHash (rustc's): the cache is keyed by short script literals that are
/// not attacker-chosen, so a fast non-keyed hash is the right trade; SipHash
/// was a visible share of a `sip.pv.ru` read.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<V> = HashMap<String, V, std::hash::BuildHasherDefault<FxHasher>>;

/// Values keyed by the identity of the (immutable, interned) script string
/// they were parsed from, each with that string kept alive so the identity
/// cannot be reused by another string.
type KeyMap<T> = HashMap<usize, (Keep, T), std::hash::BuildHasherDefault<FxHasher>>;
/// Whatever keeps a keyed string alive (a Lua string, for the Lua surface).
type Keep = Box<dyn std::any::Any>;

/// Per-worker cache of parsed specs and format strings, keyed by their text
/// (and, for `sip.pv.fmt`, by the identity of the Lua string).
#[derive(Default)]
pub struct Cache {
    specs: FxMap<Rc<Spec>>,
    named: FxMap<Rc<Spec>>,
    formats: FxMap<Rc<[Part]>>,
    chains: FxMap<Rc<[tr::Trans]>>,
    formats_by_key: KeyMap<Rc<[Part]>>,
}

/// Entries kept before a cache is cleared (scripts that build specs
/// dynamically must not grow memory without bound).
const CACHE_MAX: usize = 4096;

fn cached<T: ?Sized>(
    map: &mut FxMap<Rc<T>>,
    key: &str,
    make: impl FnOnce() -> Result<Rc<T>, String>,
) -> Result<Rc<T>, String> {
    if let Some(v) = map.get(key) {
        return Ok(v.clone());
    }
    let v = make()?;
    if map.len() >= CACHE_MAX {
        map.clear();
    }
    map.insert(key.to_string(), v.clone());
    Ok(v)
}

impl Cache {
    pub fn spec(&mut self, text: &str) -> Result<Rc<Spec>, String> {
        cached(&mut self.specs, text, || parse_spec(text).map(Rc::new))
    }

    /// `sip.pv.ru` sugar: the spec for `$name`, keyed by the bare name.
    pub fn named(&mut self, name: &str) -> Result<Rc<Spec>, String> {
        cached(&mut self.named, name, || {
            parse_spec(&format!("${name}")).map(Rc::new)
        })
    }

    pub fn format(&mut self, text: &str) -> Result<Rc<[Part]>, String> {
        cached(&mut self.formats, text, || {
            parse_format(text).map(Into::into)
        })
    }

    /// The format remembered for a string identity; `keep` (see
    /// [`Cache::remember_format`]) holds the string alive.
    pub fn format_by_key(&self, key: usize) -> Option<Rc<[Part]>> {
        self.formats_by_key.get(&key).map(|(_, f)| f.clone())
    }

    /// Remembers a parsed format under a string identity.
    pub fn remember_format(&mut self, key: usize, keep: Keep, f: Rc<[Part]>) {
        if self.formats_by_key.len() >= CACHE_MAX {
            self.formats_by_key.clear();
        }
        self.formats_by_key.insert(key, (keep, f));
    }

    /// A transformation chain for `sip.tr` (`"{uri.user}{s.len}"`).
    pub fn chain(&mut self, text: &str) -> Result<Rc<[tr::Trans]>, String> {
        cached(&mut self.chains, text, || {
            tr::parse_chain(text).map(Into::into)
        })
    }
}
