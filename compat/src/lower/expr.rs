//! Expressions: pseudo-variables, strings with specs and operators; calls
//! are in `call.rs`.

use super::{is_lua_ident, Lower};
use crate::ast::{Expr, Span};
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
    pub(super) fn string_value(&mut self, span: Span, s: &str) -> String {
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

    pub(super) fn operand(&mut self, span: Span, e: &Expr, min: u8) -> String {
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
