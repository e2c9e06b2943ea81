//! What a translation could not carry over, with file and line, and what
//! it did.

use std::collections::BTreeMap;

/// What kind of thing was not translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Module,
    Function,
    Parameter,
    Global,
    PseudoVariable,
    Transformation,
    Construct,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Module => "module",
            Kind::Function => "function",
            Kind::Parameter => "parameter",
            Kind::Global => "global",
            Kind::PseudoVariable => "pseudo-variable",
            Kind::Transformation => "transformation",
            Kind::Construct => "construct",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub file: String,
    pub line: u32,
    pub kind: Kind,
    /// `nat_uac_test`, `nathelper`, `rtpproxy.rtpproxy_sock`.
    pub name: String,
    /// The OpenSIPS module it belongs to, when known.
    pub module: Option<String>,
    pub reason: String,
}

/// Counts of what was translated, by kind of construct.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub unsupported: Vec<Unsupported>,
    /// Translated constructs: "routes", "calls", "modparams", …
    pub translated: BTreeMap<&'static str, usize>,
    /// Calls left out as the user asked (`--skip MODULE`).
    pub skipped: Vec<Unsupported>,
    /// Things dropped on purpose because lunasip does not need them
    /// (`mpath`, `fork`), each said in the Lua as a comment.
    pub not_needed: usize,
}

impl Report {
    pub fn count(&mut self, what: &'static str) {
        *self.translated.entry(what).or_default() += 1;
    }

    /// Unsupported function call sites by module (`?` when unknown).
    pub fn calls_by_module(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for u in self.unsupported.iter().filter(|u| u.kind == Kind::Function) {
            *m.entry(u.module.clone().unwrap_or_else(|| "?".into()))
                .or_default() += 1;
        }
        m
    }

    /// Unsupported call sites by function name.
    pub fn calls_by_function(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for u in self.unsupported.iter().filter(|u| u.kind == Kind::Function) {
            *m.entry(u.name.clone()).or_default() += 1;
        }
        m
    }

    /// Whether the translation is complete (nothing left out at all).
    pub fn is_complete(&self) -> bool {
        self.unsupported.is_empty()
    }

    /// Items left in the Lua as calls that raise when reached (functions,
    /// pseudo-variables, transformations, constructs); modules,
    /// parameters and globals are left as comments and raise nothing.
    pub fn raising(&self) -> usize {
        self.unsupported
            .iter()
            .filter(|u| {
                matches!(
                    u.kind,
                    Kind::Function | Kind::PseudoVariable | Kind::Transformation | Kind::Construct
                )
            })
            .count()
    }

    /// One line per construct kind, then one per unsupported item.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let done: Vec<String> = self
            .translated
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        s.push_str(&format!(
            "translated: {}; not needed: {}; not supported: {}{}\n",
            done.join(", "),
            self.not_needed,
            self.unsupported.len(),
            if self.skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped: {}", self.skipped.len())
            }
        ));
        for u in self.unsupported.iter().chain(&self.skipped) {
            s.push_str(&format!(
                "{}:{}: {} {}{}: {}\n",
                u.file,
                u.line,
                u.kind.name(),
                u.name,
                u.module
                    .as_ref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default(),
                u.reason
            ));
        }
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "complete": self.is_complete(),
            "raising": self.raising(),
            "translated": self.translated,
            "not_needed": self.not_needed,
            "unsupported": self.unsupported.iter().map(|u| serde_json::json!({
                "file": u.file,
                "line": u.line,
                "kind": u.kind.name(),
                "name": u.name,
                "module": u.module,
                "reason": u.reason,
            })).collect::<Vec<_>>(),
            "skipped": self.skipped.iter().map(|u| serde_json::json!({
                "file": u.file,
                "line": u.line,
                "name": u.name,
                "module": u.module,
            })).collect::<Vec<_>>(),
            "unsupported_calls_by_module": self.calls_by_module(),
        })
    }
}
