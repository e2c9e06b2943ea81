//! Calls: `route(name, …)`, and functions through the mapping table with
//! their arguments by kind (route names checked, specs expanded, formats
//! with `$param`), or `unsupported(...)` with the reason.

use vocab::Arg;

use super::pvtext::{cfg_text, has_spec, lua_str, pv_module, specs_in, split_spec};
use super::{route_key, route_ref, Lower};
use crate::ast::{Expr, Span};
use crate::mapping;
use crate::report::Kind;

impl Lower<'_> {
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
