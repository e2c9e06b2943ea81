//! Pseudo-variables (OpenSIPS `$ru`, `$hdr(Via)`, …): spec parsing, the
//! registry of getters and setters, and `xlog`-style format strings.
//!
//! A spec is parsed once and cached per worker ([`Cache`]); evaluating it
//! allocates only for the result. The registry ([`core::DEFS`]) is the one
//! list of what exists; the full OpenSIPS set and transformations extend it.

pub mod core;
pub mod spec;

pub use spec::{parse_format, parse_spec, Index, Part, Spec};

use std::collections::HashMap;
use std::rc::Rc;

use crate::script::call::Call;

/// A pseudo-variable's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Str(String),
}

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
}

/// Reads a pseudo-variable from the current call.
pub type Getter = fn(&Call, &Spec) -> Value;
/// Writes one; `Value::Null` deletes where OpenSIPS allows `$x = NULL`.
pub type Setter = fn(&mut Call, &Spec, Value) -> Result<(), String>;

/// One pseudo-variable's declaration.
pub struct PvDef {
    pub name: &'static str,
    pub get: Getter,
    pub set: Option<Setter>,
    /// Whether the name takes `(inner)`.
    pub takes_inner: bool,
    pub doc: &'static str,
}

/// Looks a pseudo-variable up by name.
pub fn lookup(name: &str) -> Option<&'static PvDef> {
    static INDEX: std::sync::OnceLock<HashMap<&'static str, &'static PvDef>> =
        std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| core::DEFS.iter().map(|d| (d.name, d)).collect())
        .get(name)
        .copied()
}

/// Evaluates a spec.
pub fn get(call: &Call, spec: &Spec) -> Value {
    (spec.def.get)(call, spec)
}

/// Assigns a spec; errors name the spec when it is read-only.
pub fn set(call: &mut Call, spec: &Spec, v: Value) -> Result<(), String> {
    match spec.def.set {
        Some(set) => set(call, spec, v),
        None => Err(format!("${} is read-only", spec.def.name)),
    }
}

/// Expands a parsed format string.
pub fn format(call: &Call, parts: &[Part], out: &mut String) {
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Spec(s) => get(call, s).write_to(out),
        }
    }
}

/// Per-worker cache of parsed specs and format strings, keyed by their text.
#[derive(Default)]
pub struct Cache {
    specs: HashMap<String, Rc<Spec>>,
    formats: HashMap<String, Rc<[Part]>>,
}

/// Entries kept before a cache is cleared (scripts that build specs
/// dynamically must not grow memory without bound).
const CACHE_MAX: usize = 4096;

impl Cache {
    pub fn spec(&mut self, text: &str) -> Result<Rc<Spec>, String> {
        if let Some(s) = self.specs.get(text) {
            return Ok(s.clone());
        }
        let s = Rc::new(parse_spec(text)?);
        if self.specs.len() >= CACHE_MAX {
            self.specs.clear();
        }
        self.specs.insert(text.to_string(), s.clone());
        Ok(s)
    }

    /// `sip.pv.ru` sugar: the spec for `$name`, keyed by the bare name.
    pub fn named(&mut self, name: &str) -> Result<Rc<Spec>, String> {
        if let Some(s) = self.specs.get(name) {
            return Ok(s.clone());
        }
        let s = Rc::new(parse_spec(&format!("${name}"))?);
        self.specs.insert(name.to_string(), s.clone());
        Ok(s)
    }

    pub fn format(&mut self, text: &str) -> Result<Rc<[Part]>, String> {
        if let Some(f) = self.formats.get(text) {
            return Ok(f.clone());
        }
        let f: Rc<[Part]> = parse_format(text)?.into();
        if self.formats.len() >= CACHE_MAX {
            self.formats.clear();
        }
        self.formats.insert(text.to_string(), f.clone());
        Ok(f)
    }
}
