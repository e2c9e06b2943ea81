//! `async(f(...), resume)` and `launch(f(...) [, report [, "p"]])`
//! (OpenSIPS 3.x async.c): the call in line then the resume route, or
//! both in a function `sip.launch` runs detached.

use super::expr::{cfg_text, lua_str};
use super::{route_key, route_ref, Lower};
use crate::ast::{Expr, Stmt};

impl Lower<'_> {
    /// `async(f(...), resume)`: routes suspend by themselves in lunasip,
    /// so the call runs in line and the resume route follows; as in
    /// OpenSIPS, the script ends when the resume route does.
    pub(super) fn async_stmt(&mut self, s: &Stmt, name: &str, args: &[Expr]) {
        let span = s.span;
        if name == "launch" {
            return self.launch_stmt(s, args);
        }
        let (Some(call @ Expr::Call { .. }), Some(resume)) = (args.first(), args.get(1)) else {
            let c = self.construct(
                span,
                "async()",
                "expects a function call and a resume route",
            );
            return self.with_trailing(s, c);
        };
        let rname = match resume {
            Expr::Word(w) | Expr::Str(w) => w.clone(),
            Expr::Int(n) => n.to_string(),
            _ => {
                let c = self.construct(span, "async()", "the resume route must be a name");
                return self.with_trailing(s, c);
            }
        };
        let key = route_key(Some(&rname));
        if !self.has_route("route", &key) {
            self.error(span, format!("async(…, {rname}): no route[{rname}]"));
        }
        self.report.count("async calls");
        self.line(format!("-- OpenSIPS: async({}, {rname})", cfg_text(call)));
        let code = self.call(call, false);
        if code.starts_with("unsupported(") || code.starts_with("--") {
            self.with_trailing(s, code);
        } else {
            self.with_trailing(s, format!("local ok, code = {code}"));
            self.line("sip.pv.rc = code or (ok and 1 or -1)");
        }
        self.line(format!("{}()", route_ref("route", &key)));
        self.line("sip.exit()");
    }

    /// `launch(f(...) [, report [, "param"]])` (OpenSIPS 3.x async.c):
    /// `f` runs detached and the route goes on; the report route runs
    /// once `f` is done, with `$rc` its result and `$param(1)` the string.
    /// Both go in the function `sip.launch` runs on a call of its own.
    fn launch_stmt(&mut self, s: &Stmt, args: &[Expr]) {
        let span = s.span;
        let Some(call @ Expr::Call { .. }) = args.first().filter(|_| args.len() <= 3) else {
            let c = self.construct(
                span,
                "launch()",
                "expects a function call, a report route and its parameter",
            );
            return self.with_trailing(s, c);
        };
        let report = match args.get(1) {
            None => None,
            Some(Expr::Word(w) | Expr::Str(w)) => Some(w.clone()),
            Some(Expr::Int(n)) => Some(n.to_string()),
            Some(_) => {
                let c = self.construct(span, "launch()", "the report route must be a name");
                return self.with_trailing(s, c);
            }
        };
        let key = report.as_ref().map(|r| route_key(Some(r)));
        if let (Some(r), Some(k)) = (&report, &key) {
            if !self.has_route("route", k) {
                self.error(span, format!("launch(…, {r}): no route[{r}]"));
            }
        }
        let param = match args.get(2) {
            None => String::new(),
            Some(Expr::Str(p)) => lua_str(p),
            Some(_) => {
                let c = self.construct(span, "launch()", "the report parameter must be a string");
                return self.with_trailing(s, c);
            }
        };
        self.report.count("launch calls");
        let shown: Vec<String> = args.iter().map(cfg_text).collect();
        self.line(format!("-- OpenSIPS: launch({})", shown.join(", ")));
        let code = self.call(call, false);
        if code.starts_with("unsupported(") || code.starts_with("--") {
            return self.with_trailing(s, code);
        }
        let Some(k) = key else {
            return self.with_trailing(s, format!("sip.launch(function() {code} end)"));
        };
        self.with_trailing(s, "sip.launch(function()".to_string());
        self.indent += 1;
        self.line(format!("local ok, code = {code}"));
        self.line("sip.pv.rc = code or (ok and 1 or -1)");
        self.line(format!("{}({param})", route_ref("route", &k)));
        self.indent -= 1;
        self.line("end)");
    }
}
