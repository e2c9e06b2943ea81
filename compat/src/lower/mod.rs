//! Lowering the syntax tree to Lua: the `config` table from globals and
//! modparams (config.rs), each route block to a function of its route
//! table (stmt.rs), expressions and calls through the mapping table
//! (expr.rs). The output is meant to be read and kept by a person.

mod asyncs;
mod call;
mod config;
mod expr;
mod globals;
mod pvtext;
mod stmt;

use std::collections::{HashMap, HashSet};

use crate::ast::{Item, ItemKind, Route, Script, Span};
use crate::report::{Kind, Report, Unsupported};
use crate::{Error, SyntaxError, Translation};

/// Lua's reserved words: route names that are one become `t["name"]`.
const LUA_KEYWORDS: &[&str] = &[
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
    "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
];

pub fn is_lua_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !LUA_KEYWORDS.contains(&s)
}

/// The key a route gets in its Lua table: `main` for the unnamed one,
/// `r1` for OpenSIPS 1.x numbered routes, else its name.
pub fn route_key(name: Option<&str>) -> String {
    match name {
        None => "main".into(),
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => format!("r{n}"),
        Some(n) => n.to_string(),
    }
}

/// `route.relay` or `route["my-route"]`.
pub fn route_ref(table: &str, key: &str) -> String {
    if is_lua_ident(key) {
        format!("{table}.{key}")
    } else {
        format!("{table}[{}]", expr::lua_str(key))
    }
}

/// The Lua table of an OpenSIPS route keyword (`onreply_route` …).
fn route_table(kind: &str) -> &str {
    kind
}

pub(crate) struct Lower<'s> {
    script: &'s Script,
    pub(crate) out: Vec<String>,
    pub(crate) indent: usize,
    pub(crate) report: Report,
    /// Defined routes: (table, key).
    routes: HashSet<(String, String)>,
    /// Routes whose result the script uses: they end with `return 1`.
    valued: HashSet<String>,
    pub(crate) errors: Vec<SyntaxError>,
    pub(crate) used_unsupported: bool,
    /// A condition tests a bare value: the `truthy` helper is written.
    pub(crate) used_truthy: bool,
    /// The route being lowered: its table, and whether it takes `$param`s.
    pub(crate) route_kind: String,
    /// Depth of enclosing Lua loops (`break` needs one).
    pub(crate) loops: usize,
    /// The route being lowered returns numbers (its result is used).
    pub(crate) cur_valued: bool,
    /// Modules whose calls the user asked to leave out (`--skip acc`).
    pub(crate) skip: Vec<String>,
    /// Modules loaded (by `loadmodule`) that lunasip lacks.
    missing_modules: HashMap<String, u32>,
}

pub fn lower(script: &Script, opts: &crate::Options) -> Result<Translation, Error> {
    let mut l = Lower {
        script,
        out: Vec::new(),
        indent: 0,
        report: Report::default(),
        routes: HashSet::new(),
        valued: HashSet::new(),
        errors: Vec::new(),
        used_unsupported: false,
        used_truthy: false,
        route_kind: String::new(),
        loops: 0,
        cur_valued: false,
        skip: opts.skip_modules.clone(),
        missing_modules: HashMap::new(),
    };
    for it in &script.items {
        if let ItemKind::Route(r) = &it.kind {
            l.routes
                .insert((r.kind.clone(), route_key(r.name.as_deref())));
        }
    }
    l.valued = stmt::valued_routes(script);
    let config = config::lower_config(&mut l);
    let mut body = std::mem::take(&mut l.out);
    let mut pending: Vec<&Item> = Vec::new();
    let mut first_route = true;
    for it in &script.items {
        match &it.kind {
            ItemKind::Comment(_) | ItemKind::Blank => pending.push(it),
            ItemKind::Route(r) => {
                if first_route {
                    // Comments right before the first route belong to it;
                    // earlier ones went with the config.
                    first_route = false;
                }
                l.out.push(String::new());
                for c in pending.drain(..) {
                    if let ItemKind::Comment(t) = &c.kind {
                        l.comment(t);
                    }
                }
                l.route(it.span, r);
                body.append(&mut l.out);
            }
            _ => pending.clear(),
        }
    }
    if !pending.is_empty() {
        body.push(String::new());
        for c in pending {
            if let ItemKind::Comment(t) = &c.kind {
                l.comment(t);
            }
        }
        body.append(&mut l.out);
    }
    if let Some(e) = l.errors.first() {
        return Err(Error::Syntax(e.clone()));
    }
    let mut lua = Vec::new();
    let main = script.files.first().map(|f| {
        std::path::Path::new(f)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| f.clone())
    });
    lua.push(format!(
        "-- Translated from {} by `lunasip translate` (see docs/migration.md).",
        main.unwrap_or_default()
    ));
    if l.used_unsupported {
        lua.push(String::new());
        lua.push("-- What lunasip cannot do yet raises this error when reached;".into());
        lua.push("-- `lunasip translate` lists each call site with its line.".into());
        lua.push("local function unsupported(what)".into());
        lua.push("  error(\"not supported by lunasip: \" .. what, 2)".into());
        lua.push("end".into());
    }
    if l.used_truthy {
        lua.push(String::new());
        lua.push("-- OpenSIPS's truth of a value: set, and not 0 or \"\".".into());
        lua.push("local function truthy(v)".into());
        lua.push("  return v ~= nil and v ~= 0 and v ~= \"\"".into());
        lua.push("end".into());
    }
    lua.push(String::new());
    lua.extend(config);
    lua.extend(body);
    // Collapse runs of blank lines.
    let mut text = String::new();
    let mut blank = false;
    for line in lua {
        let line = line.trim_end();
        if line.is_empty() {
            if blank {
                continue;
            }
            blank = true;
        } else {
            blank = false;
        }
        text.push_str(line);
        text.push('\n');
    }
    Ok(Translation {
        lua: text,
        report: l.report,
    })
}

impl Lower<'_> {
    pub(crate) fn file_of(&self, s: Span) -> String {
        self.script.files.get(s.file).cloned().unwrap_or_default()
    }

    pub(crate) fn line(&mut self, text: impl AsRef<str>) {
        let pad = "  ".repeat(self.indent);
        self.out.push(format!("{pad}{}", text.as_ref()));
    }

    pub(crate) fn comment(&mut self, text: &str) {
        for l in text.lines() {
            self.line(format!("--{l}"));
        }
        if text.is_empty() {
            self.line("--");
        }
    }

    pub(crate) fn unsupported(
        &mut self,
        span: Span,
        kind: Kind,
        name: &str,
        module: Option<&str>,
        reason: impl Into<String>,
    ) {
        self.report.unsupported.push(Unsupported {
            file: self.file_of(span),
            line: span.line,
            kind,
            name: name.to_string(),
            module: module.map(str::to_string),
            reason: reason.into(),
        });
    }

    pub(crate) fn error(&mut self, span: Span, msg: String) {
        self.errors.push(SyntaxError {
            file: self.file_of(span),
            line: span.line,
            col: span.col,
            msg,
        });
    }

    pub(crate) fn has_route(&self, table: &str, key: &str) -> bool {
        self.routes.contains(&(table.to_string(), key.to_string()))
    }

    pub(crate) fn is_valued(&self, r: &str) -> bool {
        self.valued.contains(r)
    }

    fn route(&mut self, span: Span, r: &Route) {
        self.report.count("routes");
        let table = route_table(&r.kind);
        let key = route_key(r.name.as_deref());
        let rref = route_ref(table, &key);
        if let Some(n) = &r.name {
            if n.bytes().all(|b| b.is_ascii_digit()) {
                self.line(format!("-- OpenSIPS {}[{n}]", r.kind));
            }
        }
        self.route_kind = r.kind.clone();
        let params = if r.kind == "event_route" {
            "ev"
        } else if stmt::uses_param(&r.body) {
            "..."
        } else {
            ""
        };
        let valued = self.is_valued(&rref);
        self.cur_valued = valued;
        if r.kind == "timer_route" {
            self.line(format!("{rref} = {{"));
            self.indent += 1;
            self.line(format!("interval = {},", r.interval.unwrap_or(60)));
            self.line("fn = function()");
            self.indent += 1;
            self.block(&r.body.stmts, valued);
            self.indent -= 1;
            self.line("end,");
            self.indent -= 1;
            self.line("}");
        } else if is_lua_ident(&key) {
            self.line(format!("function {rref}({params})"));
            self.route_body(r, params, valued);
            self.line("end");
        } else {
            self.line(format!("{rref} = function({params})"));
            self.route_body(r, params, valued);
            self.line("end");
        }
        let _ = span;
    }

    fn route_body(&mut self, r: &Route, params: &str, valued: bool) {
        self.indent += 1;
        if params == "..." {
            self.line("local param = { ... }");
        }
        self.block(&r.body.stmts, valued);
        self.indent -= 1;
    }
}
