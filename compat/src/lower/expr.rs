//! Expressions: pseudo-variables, strings with specs, operators and calls
//! through the mapping table.

use vocab::Arg;

use super::{is_lua_ident, route_key, route_ref, Lower};
use crate::ast::{Expr, Span};
use crate::mapping;
use crate::report::Kind;

/// Lua precedence levels (higher binds tighter).
const OR: u8 = 1;
const AND: u8 = 2;
const CMP: u8 = 3;
const CONCAT: u8 = 5;
const ADD: u8 = 6;
const MUL: u8 = 7;
const UNARY: u8 = 8;
const ATOM: u8 = 10;

pub use super::pvtext::{cfg_text, has_spec, lua_str, specs_in, split_spec, Spec};
use super::pvtext::{keyword, pv_module, NUMERIC_PVS, UNTYPED_PVS};

/// What an expression's value is, as far as the translator can tell.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Ty {
    Str,
    Num,
    Unknown,
}

impl Lower<'_> {
    fn ty(&self, e: &Expr) -> Ty {
        match e {
            Expr::Int(_) => Ty::Num,
            Expr::Str(_) => Ty::Str,
            Expr::Pv(p) => {
                let s = split_spec(p);
                if !s.trans.is_empty() {
                    Ty::Unknown
                } else if NUMERIC_PVS.contains(&s.name.as_str()) {
                    Ty::Num
                } else if UNTYPED_PVS.contains(&s.name.as_str()) {
                    Ty::Unknown
                } else {
                    Ty::Str
                }
            }
            Expr::Binary(op, a, b) => match *op {
                "+" => {
                    let (x, y) = (self.ty(a), self.ty(b));
                    if x == Ty::Str || y == Ty::Str || (x == Ty::Unknown && y == Ty::Unknown) {
                        Ty::Str
                    } else {
                        Ty::Num
                    }
                }
                "-" | "*" | "/" | "%" | "|" | "&" | "^" | "<<" | ">>" => Ty::Num,
                _ => Ty::Unknown,
            },
            Expr::Unary("-" | "~", _) => Ty::Num,
            _ => Ty::Unknown,
        }
    }

    /// A pseudo-variable read.
    pub(crate) fn pv_read(&mut self, span: Span, spec: &str) -> String {
        let s = split_spec(spec);
        if s.name == "param" && s.inner.is_some() {
            let inner = s.inner.clone().unwrap_or_default();
            if self.route_kind == "event_route" {
                return if is_lua_ident(&inner) {
                    format!("ev.{inner}")
                } else {
                    format!("ev[{}]", lua_str(&inner))
                };
            }
            if let Ok(n) = inner.parse::<usize>() {
                return format!("param[{n}]");
            }
        }
        if !self.check_spec(span, spec, &s) {
            return format!("unsupported({})", lua_str(spec));
        }
        if s.index || !s.trans.is_empty() || s.ctx {
            return format!("sip.pv.get({})", lua_str(spec));
        }
        match (s.name.as_str(), &s.inner) {
            ("var", Some(n)) if is_lua_ident(n) => format!("sip.var.{n}"),
            ("avp", Some(n)) if is_lua_ident(n) => format!("sip.avp.{n}"),
            (name, None) if is_lua_ident(name) => format!("sip.pv.{name}"),
            _ => format!("sip.pv.get({})", lua_str(spec)),
        }
    }

    /// Whether lunasip knows the pseudo-variable and its transformations;
    /// what it does not know is reported.
    fn check_spec(&mut self, span: Span, spec: &str, s: &Spec) -> bool {
        let known = vocab::pseudo_variable(&s.name);
        if s.ctx && !(spec.starts_with("$(<request>") || spec.starts_with("$(<reply>")) {
            self.unsupported(
                span,
                Kind::PseudoVariable,
                spec,
                None,
                "OpenSIPS's pseudo-variable contexts are <request> and <reply>",
            );
            self.used_unsupported = true;
            return false;
        }
        let Some(pv) = known else {
            self.unsupported(
                span,
                Kind::PseudoVariable,
                &format!("${}", s.name),
                pv_module(&s.name),
                "lunasip has no such pseudo-variable",
            );
            self.used_unsupported = true;
            return false;
        };
        if s.inner.is_some() && !pv.takes_inner {
            self.unsupported(
                span,
                Kind::PseudoVariable,
                spec,
                None,
                "lunasip's takes no name in parentheses",
            );
            self.used_unsupported = true;
            return false;
        }
        for t in &s.trans {
            if vocab::transformation(t).is_none() {
                self.unsupported(
                    span,
                    Kind::Transformation,
                    &format!("{{{t}}}"),
                    None,
                    "lunasip has no such transformation",
                );
                self.used_unsupported = true;
                return false;
            }
        }
        true
    }

    /// A pseudo-variable write: `sip.var.x = v`, `sip.pv.set(spec, v)`,
    /// `sip.pv.assign(spec, "+=", v)`. None when lunasip cannot write it.
    pub(crate) fn pv_write(
        &mut self,
        span: Span,
        spec: &str,
        op: &str,
        value: String,
    ) -> Option<String> {
        let s = split_spec(spec);
        if !self.check_spec(span, spec, &s) {
            return None;
        }
        if s.ctx || !vocab::pseudo_variable(&s.name).is_some_and(|p| p.writable) {
            let why = match s.ctx {
                true => "lunasip reads <request>/<reply> contexts only",
                false => "read-only in lunasip",
            };
            self.unsupported(span, Kind::PseudoVariable, spec, None, why);
            self.used_unsupported = true;
            return None;
        }
        if op != "=" {
            return Some(format!(
                "sip.pv.assign({}, {}, {value})",
                lua_str(spec),
                lua_str(op)
            ));
        }
        if s.index || !s.trans.is_empty() {
            return Some(format!("sip.pv.set({}, {value})", lua_str(spec)));
        }
        Some(match (s.name.as_str(), &s.inner) {
            ("var", Some(n)) if is_lua_ident(n) => format!("sip.var.{n} = {value}"),
            ("avp", Some(n)) if is_lua_ident(n) => format!("sip.avp.{n} = {value}"),
            (name, None) if is_lua_ident(name) => format!("sip.pv.{name} = {value}"),
            _ => format!("sip.pv.set({}, {value})", lua_str(spec)),
        })
    }

    /// A string in a value position: a literal, or `sip.pv.fmt` when it
    /// holds specs (OpenSIPS expands them there).
    fn string_value(&mut self, span: Span, s: &str) -> String {
        if has_spec(s) {
            for spec in specs_in(s) {
                let sp = split_spec(&spec);
                self.check_spec(span, &spec, &sp);
            }
            format!("sip.pv.fmt({})", lua_str(s))
        } else {
            lua_str(s)
        }
    }

    /// An expression as a value.
    pub(crate) fn value(&mut self, span: Span, e: &Expr) -> (String, u8) {
        match e {
            Expr::Int(n) => (n.to_string(), if *n < 0 { UNARY } else { ATOM }),
            Expr::Str(s) => (self.string_value(span, s), ATOM),
            Expr::Null => ("nil".into(), ATOM),
            Expr::Pv(p) => (self.pv_read(span, p), ATOM),
            Expr::Word(w) => match keyword(w) {
                Some(k) => (k.to_string(), ATOM),
                None => match w.as_str() {
                    "UDP" | "TCP" | "TLS" | "WS" | "WSS" | "SCTP" => {
                        (lua_str(&w.to_ascii_lowercase()), ATOM)
                    }
                    _ => (lua_str(w), ATOM),
                },
            },
            Expr::Call { .. } => (self.call(e, true), ATOM),
            Expr::Unary("-", x) => {
                let v = self.operand(span, x, UNARY);
                (format!("-{v}"), UNARY)
            }
            Expr::Unary("!", _) => self.cond(span, e),
            // Lua 5.1 has no bitwise operators: sip.bit does OpenSIPS's.
            Expr::Unary("~", x) => {
                let v = self.operand(span, x, 0);
                (format!("sip.bit.bnot({v})"), ATOM)
            }
            Expr::Unary(op, _) => (self.construct(span, op, "not an operator here"), ATOM),
            Expr::Binary(op, a, b) => match *op {
                "+" if self.ty(e) == Ty::Str => {
                    let x = self.operand(span, a, CONCAT);
                    let y = self.operand(span, b, CONCAT);
                    (format!("{x} .. {y}"), CONCAT)
                }
                "+" | "-" => {
                    let x = self.operand(span, a, ADD);
                    let y = self.operand(span, b, ADD + 1);
                    (format!("{x} {op} {y}"), ADD)
                }
                "*" => {
                    let x = self.operand(span, a, MUL);
                    let y = self.operand(span, b, MUL + 1);
                    (format!("{x} {op} {y}"), MUL)
                }
                // OpenSIPS divides `int`s (C truncation); Lua's `/` gives a
                // fraction and its `%` floors.
                "/" | "%" => {
                    let x = self.operand(span, a, 0);
                    let y = self.operand(span, b, 0);
                    let f = if *op == "/" { "div" } else { "mod" };
                    (format!("sip.bit.{f}({x}, {y})"), ATOM)
                }
                "|" | "&" | "^" | "<<" | ">>" => {
                    let x = self.operand(span, a, 0);
                    let y = self.operand(span, b, 0);
                    (format!("sip.bit.{}({x}, {y})", bit_fn(op)), ATOM)
                }
                _ => self.cond(span, e),
            },
        }
    }

    fn operand(&mut self, span: Span, e: &Expr, min: u8) -> String {
        let (s, p) = self.value(span, e);
        if p < min {
            format!("({s})")
        } else {
            s
        }
    }

    fn cond_operand(&mut self, span: Span, e: &Expr, min: u8) -> String {
        let (s, p) = self.cond(span, e);
        if p < min {
            format!("({s})")
        } else {
            s
        }
    }

    /// Something the translator cannot express: reported, and a call
    /// that raises in the Lua.
    pub(crate) fn construct(&mut self, span: Span, what: &str, why: &str) -> String {
        self.unsupported(span, Kind::Construct, what, None, why);
        self.used_unsupported = true;
        format!("unsupported({})", lua_str(&format!("{what}: {why}")))
    }

    /// An expression as a condition.
    pub(crate) fn cond(&mut self, span: Span, e: &Expr) -> (String, u8) {
        match e {
            Expr::Unary("!", x) => {
                if let Expr::Call { name, args, .. } = &**x {
                    if name == "route" {
                        let r = self.route_call(span, args, true);
                        return (format!("{r} < 0"), CMP);
                    }
                }
                let v = self.cond_operand(span, x, UNARY);
                (format!("not {v}"), UNARY)
            }
            Expr::Binary("&&", a, b) => {
                let x = self.cond_operand(span, a, AND);
                let y = self.cond_operand(span, b, AND + 1);
                (format!("{x} and {y}"), AND)
            }
            Expr::Binary("||", a, b) => {
                let x = self.cond_operand(span, a, OR);
                let y = self.cond_operand(span, b, OR + 1);
                (format!("{x} or {y}"), OR)
            }
            Expr::Binary(op @ ("==" | "!="), a, b) if matches!(&**b, Expr::Word(w) if w == "myself") =>
            {
                let v = self.operand(span, a, ATOM);
                let call = format!("sip.is_myself({v})");
                if *op == "==" {
                    (call, ATOM)
                } else {
                    (format!("not {call}"), UNARY)
                }
            }
            Expr::Binary(op @ ("==" | "!="), a, b) if matches!(&**b, Expr::Word(w) if w.contains('/')) =>
            {
                let v = self.operand(span, a, ATOM);
                let Expr::Word(net) = &**b else {
                    unreachable!()
                };
                let t = format!(
                    "sip.tr({v}, {}) == 1",
                    lua_str(&format!("{{ip.matches,{net}}}"))
                );
                if *op == "==" {
                    (t, CMP)
                } else {
                    (format!("not ({t})"), UNARY)
                }
            }
            Expr::Binary(op @ ("=~" | "!~"), a, b) => {
                let x = self.operand(span, a, 0);
                let y = match &**b {
                    // A regex literal is not a format: `$` is an anchor.
                    Expr::Str(s) => lua_str(s),
                    other => self.operand(span, other, 0),
                };
                let m = format!("sip.re_match({x}, {y}, \"i\")");
                if *op == "=~" {
                    (m, ATOM)
                } else {
                    (format!("not {m}"), UNARY)
                }
            }
            Expr::Binary(op @ ("==" | "!=" | "<" | ">" | "<=" | ">="), a, b) => {
                let x = self.operand(span, a, CMP + 1);
                let y = self.operand(span, b, CMP + 1);
                let lop = if *op == "!=" { "~=" } else { op };
                (format!("{x} {lop} {y}"), CMP)
            }
            Expr::Call { name, args, .. } if name == "route" => {
                let r = self.route_call(span, args, true);
                (format!("{r} > 0"), CMP)
            }
            Expr::Call { .. } => (self.call(e, true), ATOM),
            Expr::Int(n) => ((*n > 0).to_string(), ATOM),
            // A value is true in OpenSIPS when set and not 0 or "" (a
            // computed one too: `[$var(f) & 4]`, route.c eval_elem).
            Expr::Pv(_)
            | Expr::Unary("~" | "-", _)
            | Expr::Binary("|" | "&" | "^" | "<<" | ">>" | "+" | "-" | "*" | "/" | "%", _, _) => {
                let (v, _) = self.value(span, e);
                self.used_truthy = true;
                (format!("truthy({v})"), ATOM)
            }
            _ => self.value(span, e),
        }
    }

    /// `route(name, args…)` → `route.name(args…)`; the route must exist.
    pub(crate) fn route_call(&mut self, span: Span, args: &[Expr], valued: bool) -> String {
        let Some(first) = args.first() else {
            self.error(span, "route() needs a route name".into());
            return "nil".into();
        };
        let name = match first {
            Expr::Word(w) | Expr::Str(w) => w.clone(),
            Expr::Int(n) => n.to_string(),
            _ => {
                return self.construct(span, "route($var)", "a route named at run time");
            }
        };
        let key = route_key(Some(&name));
        if !self.has_route("route", &key) {
            return self.construct(span, &format!("route({name})"), "no such route is defined");
        }
        let _ = valued;
        let rest: Vec<String> = args[1..].iter().map(|a| self.operand(span, a, 0)).collect();
        self.report.count("route calls");
        format!("{}({})", route_ref("route", &key), rest.join(", "))
    }

    /// A function call through the mapping table, or `unsupported(...)`.
    pub(crate) fn call(&mut self, e: &Expr, in_cond: bool) -> String {
        let Expr::Call { name, args, span } = e else {
            return String::new();
        };
        let span = *span;
        if name == "route" {
            return self.route_call(span, args, false);
        }
        let Some(m) = mapping::lookup(name) else {
            let module = mapping::opensips_module_of(name);
            if let Some(m) = module.filter(|m| self.skip.iter().any(|s| s == m)) {
                self.report.skipped.push(crate::Unsupported {
                    file: self.file_of(span),
                    line: span.line,
                    kind: Kind::Function,
                    name: name.clone(),
                    module: Some(m.to_string()),
                    reason: format!("skipped as asked (--skip {m})"),
                });
                return if in_cond {
                    "true".into()
                } else {
                    format!("-- skipped (--skip {m}): {}", cfg_text(e))
                };
            }
            let reason = match module {
                Some(m) if !mapping::module_known(m) => format!("lunasip has no {m} module"),
                Some(m) => format!("lunasip's {m} has no {name}"),
                None => "not an OpenSIPS 3.4 function lunasip knows".to_string(),
            };
            self.unsupported(span, Kind::Function, name, module, reason);
            self.used_unsupported = true;
            let shown = match module {
                Some(m) => format!("{m}: {}", cfg_text(e)),
                None => cfg_text(e),
            };
            return format!("unsupported({})", lua_str(&shown));
        };
        let f = m.function;
        if args.len() < f.min_args() || args.len() > f.max_args() {
            self.unsupported(
                span,
                Kind::Function,
                name,
                Some(f.module),
                format!(
                    "called with {} arguments; lunasip's {} takes {} to {}",
                    args.len(),
                    f.full_name(),
                    f.min_args(),
                    f.max_args()
                ),
            );
            self.used_unsupported = true;
            return format!("unsupported({})", lua_str(&cfg_text(e)));
        }
        if let Some((what, why)) = self.arg_problem(name, args, f) {
            let module = pv_module(&split_spec(&what).name);
            self.unsupported(span, Kind::PseudoVariable, &what, module, why);
            self.used_unsupported = true;
            return format!("unsupported({})", lua_str(&cfg_text(e)));
        }
        let mut out = Vec::new();
        for (a, kind) in args.iter().zip(arg_kinds(f, args.len())) {
            out.push(self.arg(span, name, a, kind.kind()));
        }
        self.report.count("calls");
        format!("{}({})", f.full_name(), out.join(", "))
    }

    /// An argument lunasip's function would refuse when the script is
    /// checked: a spec it does not know inside a string it expands, or a
    /// cache engine other than `local`.
    fn arg_problem(
        &self,
        name: &str,
        args: &[Expr],
        f: &vocab::Function,
    ) -> Option<(String, String)> {
        if name.starts_with("cache_") {
            if let Some(Expr::Str(engine)) = args.first() {
                if engine != "local" && !engine.starts_with("local:") {
                    return Some((
                        format!("{name}(\"{engine}\")"),
                        "lunasip's cache has the local engine only".into(),
                    ));
                }
            }
        }
        for (a, kind) in args.iter().zip(arg_kinds(f, args.len())) {
            let (Expr::Str(text), Arg::Format | Arg::Str) = (a, kind.kind()) else {
                continue;
            };
            for spec in specs_in(text) {
                let sp = split_spec(&spec);
                let known = vocab::pseudo_variable(&sp.name)
                    .is_some_and(|p| sp.inner.is_none() || p.takes_inner)
                    && sp.trans.iter().all(|t| vocab::transformation(t).is_some());
                if !known {
                    return Some((
                        spec,
                        "lunasip has no such pseudo-variable (or transformation)".into(),
                    ));
                }
            }
        }
        None
    }

    /// A format naming `$param(x)`: lunasip routes take their parameters
    /// as Lua values (`ev.x`, `param[n]`), so those parts are joined in
    /// Lua and the rest stays a format. None when there is no `$param`.
    fn format_with_params(&mut self, span: Span, text: &str) -> Option<String> {
        if !text.contains("$param(") {
            return None;
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            if rest.starts_with("$param(") {
                if let Some(n) = crate::lex::pv_len(rest) {
                    if !lit.is_empty() {
                        parts.push(lua_str(&std::mem::take(&mut lit)));
                    }
                    let v = self.pv_read(span, &rest[..n]);
                    parts.push(format!("({v} or \"<null>\")"));
                    i += n;
                    continue;
                }
            }
            let c = rest.chars().next().unwrap_or(' ');
            lit.push(c);
            i += c.len_utf8();
        }
        if !lit.is_empty() {
            parts.push(lua_str(&lit));
        }
        Some(parts.join(" .. "))
    }

    fn arg(&mut self, span: Span, fname: &str, a: &Expr, kind: Arg) -> String {
        if let (Arg::Format, Expr::Str(s)) = (kind, a) {
            if let Some(joined) = self.format_with_params(span, s) {
                return joined;
            }
        }
        match (kind, a) {
            (Arg::RouteName(t), Expr::Word(n) | Expr::Str(n)) => self.route_arg(span, fname, t, n),
            (Arg::RouteName(t), Expr::Int(n)) => self.route_arg(span, fname, t, &n.to_string()),
            (Arg::Int, Expr::Str(s)) if s.trim().parse::<i64>().is_ok() => s.trim().to_string(),
            (Arg::Pv, Expr::Pv(p)) => lua_str(p),
            (Arg::Flag, Expr::Word(w)) => lua_str(w),
            // OpenSIPS expands specs in string parameters: a lone spec is
            // its value, a string holding some is a format.
            (Arg::Str | Arg::Int | Arg::Flag, Expr::Str(s)) if has_spec(s) => {
                if s.starts_with('$') && crate::lex::pv_len(s) == Some(s.len()) {
                    self.pv_read(span, s)
                } else {
                    self.string_value(span, s)
                }
            }
            (_, Expr::Str(s)) => lua_str(s),
            (_, Expr::Word(w)) => lua_str(w),
            (_, other) => self.operand(span, other, 0),
        }
    }

    fn route_arg(&mut self, span: Span, fname: &str, t: vocab::RouteType, name: &str) -> String {
        let key = route_key(Some(name));
        if !self.has_route(t.table(), &key) {
            return self.construct(
                span,
                &format!("{fname}({name})"),
                &format!("no {}[{name}] is defined", t.table()),
            );
        }
        lua_str(&key)
    }
}

/// The kinds of `n` given arguments: leading optional arguments
/// (`xlog([level,] format)`) are the ones left out first.
fn arg_kinds(f: &vocab::Function, n: usize) -> &'static [Arg] {
    let leading = f.args.iter().take_while(|a| a.is_optional()).count();
    let skip = leading.min(f.args.len().saturating_sub(n));
    &f.args[skip..]
}

/// The `sip.bit` function of an OpenSIPS bitwise operator.
fn bit_fn(op: &str) -> &'static str {
    match op {
        "&" => "band",
        "|" => "bor",
        "^" => "bxor",
        "<<" => "lshift",
        _ => "rshift",
    }
}
