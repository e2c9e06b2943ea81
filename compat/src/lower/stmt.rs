//! Statements: blocks, if/else, switch, loops, return/exit/drop, calls
//! with `$rc` where the script reads it, `async(f, resume)`.

use std::collections::HashSet;

use super::expr::{cfg_text, lua_str};
use super::{route_key, route_ref, Lower};
use crate::ast::{Block, Case, Expr, ItemKind, Script, Stmt, StmtKind};

/// Walks every expression of a statement list.
fn visit_exprs(stmts: &[Stmt], f: &mut dyn FnMut(&Expr)) {
    fn expr(e: &Expr, f: &mut dyn FnMut(&Expr)) {
        f(e);
        match e {
            Expr::Call { args, .. } => args.iter().for_each(|a| expr(a, f)),
            Expr::Unary(_, x) => expr(x, f),
            Expr::Binary(_, a, b) => {
                expr(a, f);
                expr(b, f);
            }
            _ => {}
        }
    }
    for s in stmts {
        match &s.kind {
            StmtKind::Expr(e) | StmtKind::Return(Some(e)) => expr(e, f),
            StmtKind::Assign { target, value, .. } => {
                f(&Expr::Pv(target.clone()));
                expr(value, f);
            }
            StmtKind::If { cond, then, els } => {
                expr(cond, f);
                visit_exprs(&then.stmts, f);
                if let Some(b) = els {
                    visit_exprs(&b.stmts, f);
                }
            }
            StmtKind::Switch { subject, cases } => {
                expr(subject, f);
                for c in cases {
                    visit_exprs(&c.body, f);
                }
            }
            StmtKind::While { cond, body } => {
                expr(cond, f);
                visit_exprs(&body.stmts, f);
            }
            StmtKind::ForEach { body, list, .. } => {
                f(&Expr::Pv(list.clone()));
                visit_exprs(&body.stmts, f);
            }
            StmtKind::Block(b) => visit_exprs(&b.stmts, f),
            _ => {}
        }
    }
}

fn reads_rc(stmts: &[Stmt]) -> bool {
    let mut found = false;
    let mut check = |e: &Expr| {
        if let Expr::Pv(p) = e {
            let n = p.trim_start_matches("$(").trim_start_matches('$');
            if n.starts_with("rc") || n.starts_with("retcode") {
                found = true;
            }
        }
    };
    // An Assign's target is visited too; writing $rc is not reading it,
    // but scripts that write it read it as well.
    visit_exprs(stmts, &mut check);
    found
}

/// Whether a route body reads `$param(n)` (3.x routes with arguments).
pub(super) fn uses_param(b: &Block) -> bool {
    let mut found = false;
    visit_exprs(&b.stmts, &mut |e| match e {
        Expr::Pv(p) if p.contains("param(") => found = true,
        // In a format too (`xlog("… $param(1) …")`).
        Expr::Str(s) if s.contains("$param(") => found = true,
        _ => {}
    });
    found
}

/// Routes whose result is used: called in a condition, or followed by a
/// read of `$rc`, or resumed after `async` where `$rc` is read.
pub(super) fn valued_routes(script: &Script) -> HashSet<String> {
    let mut set = HashSet::new();
    let route_name = |args: &[Expr]| -> Option<String> {
        match args.first()? {
            Expr::Word(w) | Expr::Str(w) => Some(route_ref("route", &route_key(Some(w)))),
            Expr::Int(n) => Some(route_ref("route", &route_key(Some(&n.to_string())))),
            _ => None,
        }
    };
    fn walk(stmts: &[Stmt], set: &mut HashSet<String>, rn: &dyn Fn(&[Expr]) -> Option<String>) {
        for (i, s) in stmts.iter().enumerate() {
            let conds: Vec<&Expr> = match &s.kind {
                StmtKind::If { cond, .. } | StmtKind::While { cond, .. } => vec![cond],
                StmtKind::Return(Some(e)) => vec![e],
                _ => vec![],
            };
            for c in conds {
                visit_exprs(
                    &[Stmt {
                        span: s.span,
                        kind: StmtKind::Expr(c.clone()),
                        trailing: None,
                    }],
                    &mut |e| {
                        if let Expr::Call { name, args, .. } = e {
                            if name == "route" {
                                if let Some(r) = rn(args) {
                                    set.insert(r);
                                }
                            }
                        }
                    },
                );
            }
            if let StmtKind::Expr(Expr::Call { name, args, .. }) = &s.kind {
                if name == "route" && next_reads_rc(&stmts[i + 1..]) {
                    if let Some(r) = rn(args) {
                        set.insert(r);
                    }
                }
            }
            match &s.kind {
                StmtKind::If { then, els, .. } => {
                    walk(&then.stmts, set, rn);
                    if let Some(b) = els {
                        walk(&b.stmts, set, rn);
                    }
                }
                StmtKind::Switch { cases, .. } => cases.iter().for_each(|c| walk(&c.body, set, rn)),
                StmtKind::While { body, .. } | StmtKind::ForEach { body, .. } => {
                    walk(&body.stmts, set, rn)
                }
                StmtKind::Block(b) => walk(&b.stmts, set, rn),
                _ => {}
            }
        }
    }
    for it in &script.items {
        if let ItemKind::Route(r) = &it.kind {
            walk(&r.body.stmts, &mut set, &route_name);
        }
    }
    set
}

/// Whether the next real statement reads `$rc`/`$retcode`.
fn next_reads_rc(rest: &[Stmt]) -> bool {
    rest.iter()
        .find(|s| !matches!(s.kind, StmtKind::Comment(_)))
        .is_some_and(|s| reads_rc(std::slice::from_ref(s)))
}

fn ends_flow(s: &Stmt) -> bool {
    matches!(
        s.kind,
        StmtKind::Return(_) | StmtKind::Exit | StmtKind::Drop | StmtKind::Break
    )
}

/// Whether a `break` sits inside the statements other than at their end
/// (outside loops): a switch case then needs a `repeat … until true`.
fn has_inner_break(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match &s.kind {
        StmtKind::If { then, els, .. } => {
            then.stmts.iter().any(|x| matches!(x.kind, StmtKind::Break))
                || has_inner_break(&then.stmts)
                || els.as_ref().is_some_and(|b| {
                    b.stmts.iter().any(|x| matches!(x.kind, StmtKind::Break))
                        || has_inner_break(&b.stmts)
                })
        }
        StmtKind::Block(b) => {
            b.stmts.iter().any(|x| matches!(x.kind, StmtKind::Break)) || has_inner_break(&b.stmts)
        }
        _ => false,
    })
}

impl Lower<'_> {
    /// A block's statements; `valued`: the enclosing route returns numbers.
    pub(crate) fn block(&mut self, stmts: &[Stmt], valued: bool) {
        let last = stmts
            .iter()
            .rposition(|s| !matches!(s.kind, StmtKind::Comment(_)));
        for (i, s) in stmts.iter().enumerate() {
            let is_last = Some(i) == last;
            let rc = matches!(&s.kind, StmtKind::Expr(Expr::Call { .. }))
                && next_reads_rc(&stmts[i + 1..]);
            self.stmt(s, is_last, valued, rc);
        }
        // A route whose result is used returns 1 when it runs off its end.
        if valued && self.indent == 1 && !last.is_some_and(|i| ends_flow(&stmts[i])) {
            self.line("return 1");
        }
    }

    pub(super) fn with_trailing(&mut self, s: &Stmt, text: String) {
        match &s.trailing {
            Some(c) => self.line(format!("{text} --{c}")),
            None => self.line(text),
        }
    }

    fn stmt(&mut self, s: &Stmt, is_last: bool, valued: bool, set_rc: bool) {
        let span = s.span;
        self.report.count("statements");
        match &s.kind {
            StmtKind::Comment(c) => {
                self.report
                    .translated
                    .entry("statements")
                    .and_modify(|n| *n -= 1);
                self.comment(c);
            }
            StmtKind::Expr(e) => self.expr_stmt(s, e, set_rc),
            StmtKind::Assign { target, op, value } => {
                let (v, _) = self.value(span, value);
                match self.pv_write(span, target, op, v) {
                    Some(code) => self.with_trailing(s, code),
                    None => {
                        let text = format!("{target} {op} {}", cfg_text(value));
                        self.with_trailing(s, format!("unsupported({})", lua_str(&text)));
                    }
                }
            }
            StmtKind::If { cond, then, els } => {
                self.if_stmt(s, cond, then, els.as_ref(), valued, false)
            }
            StmtKind::Switch { subject, cases } => self.switch(s, subject, cases, valued),
            StmtKind::While { cond, body } => {
                let (c, _) = self.cond(span, cond);
                self.with_trailing(s, format!("while {c} do"));
                self.loops += 1;
                self.indent += 1;
                self.block(&body.stmts, false);
                self.indent -= 1;
                self.loops -= 1;
                self.line("end");
            }
            StmtKind::ForEach { var, list, body } => {
                // `$(avp(x)[*])` reads as one value in lunasip: walk the
                // indexes until one is missing.
                let Some((head, tail)) = list.split_once("[*]") else {
                    let c = self.construct(
                        span,
                        &format!("for (… in {list})"),
                        "the list must be a [*] spec",
                    );
                    return self.with_trailing(s, c);
                };
                let check = super::expr::split_spec(list);
                if vocab::pseudo_variable(&check.name).is_none() {
                    let c = self.construct(span, list, "lunasip has no such pseudo-variable");
                    return self.with_trailing(s, c);
                }
                self.with_trailing(s, "for i = 0, math.huge do".into());
                self.loops += 1;
                self.indent += 1;
                let indexed = format!(
                    "{head}[%d]{tail}",
                    head = head.replace('%', "%%"),
                    tail = tail.replace('%', "%%")
                );
                self.line(format!(
                    "local value = sip.pv.get(string.format({}, i))",
                    lua_str(&indexed)
                ));
                self.line("if value == nil then break end");
                if let Some(w) = self.pv_write(span, var, "=", "value".into()) {
                    self.line(w);
                }
                self.block(&body.stmts, false);
                self.indent -= 1;
                self.loops -= 1;
                self.line("end");
            }
            StmtKind::Return(v) => {
                let code = match v {
                    // OpenSIPS: return(0) ends the script, as exit.
                    Some(Expr::Int(0)) => {
                        self.report.count("exits");
                        "sip.exit()".to_string()
                    }
                    Some(e) => {
                        let (x, _) = self.value(span, e);
                        format!("return {x}")
                    }
                    None if valued || self.cur_valued => "return 1".into(),
                    None => "return".into(),
                };
                if code.starts_with("return") && !is_last {
                    self.with_trailing(s, format!("do {code} end"));
                } else {
                    self.with_trailing(s, code);
                }
            }
            StmtKind::Exit => {
                self.report.count("exits");
                self.with_trailing(s, "sip.exit()".into())
            }
            StmtKind::Drop => {
                self.report.count("drops");
                self.with_trailing(s, "sip.drop()".into())
            }
            StmtKind::Break => {
                if self.loops == 0 {
                    // A switch's break: the case ends here.
                    self.with_trailing(s, "-- break".into());
                } else if is_last {
                    self.with_trailing(s, "break".into());
                } else {
                    self.with_trailing(s, "do break end".into());
                }
            }
            StmtKind::Block(b) => {
                self.line("do");
                self.indent += 1;
                self.block(&b.stmts, false);
                self.indent -= 1;
                self.line("end");
            }
        }
    }

    fn expr_stmt(&mut self, s: &Stmt, e: &Expr, set_rc: bool) {
        let span = s.span;
        if let Expr::Call { name, args, .. } = e {
            if name == "async" || name == "launch" {
                return self.async_stmt(s, name, args);
            }
            if name == "route" {
                let r = self.route_call(span, args, set_rc);
                if set_rc {
                    return self.with_trailing(s, format!("sip.pv.rc = {r}"));
                }
                return self.with_trailing(s, r);
            }
        }
        let code = match e {
            Expr::Call { .. } => self.call(e, false),
            other => {
                let (c, _) = self.value(span, other);
                format!("local _ = {c}")
            }
        };
        if set_rc && !code.starts_with("unsupported(") && !code.starts_with("--") {
            self.with_trailing(s, format!("local ok, code = {code}"));
            self.line("sip.pv.rc = code or (ok and 1 or -1)");
        } else {
            self.with_trailing(s, code);
        }
    }

    fn if_stmt(
        &mut self,
        s: &Stmt,
        cond: &Expr,
        then: &Block,
        els: Option<&Block>,
        _valued: bool,
        is_elseif: bool,
    ) {
        let span = s.span;
        // `if (c) { } else { … }` reads better as `if not c then … end`.
        if let Some(b) = els {
            if then.stmts.is_empty() && !is_elseif {
                let neg = Expr::Unary("!", Box::new(cond.clone()));
                return self.if_stmt(s, &neg, b, None, _valued, false);
            }
        }
        let body_reads_rc = reads_rc(&then.stmts) || els.is_some_and(|b| reads_rc(&b.stmts));
        let (inner, negated) = match cond {
            Expr::Unary("!", x) => (&**x, true),
            x => (x, false),
        };
        let c = match inner {
            Expr::Call { name, .. }
                if body_reads_rc && !is_elseif && name != "route" && name != "async" =>
            {
                let code = self.call(inner, true);
                if code.starts_with("unsupported(") {
                    self.cond(span, cond).0
                } else {
                    self.line(format!("local ok, code = {code}"));
                    self.line("sip.pv.rc = code or (ok and 1 or -1)");
                    if negated {
                        "not ok".to_string()
                    } else {
                        "ok".to_string()
                    }
                }
            }
            _ => self.cond(span, cond).0,
        };
        let kw = if is_elseif { "elseif" } else { "if" };
        self.with_trailing(s, format!("{kw} {c} then"));
        self.indent += 1;
        self.block(&then.stmts, false);
        self.indent -= 1;
        if let Some(b) = els {
            // `else if (…)` becomes `elseif`.
            if let [Stmt {
                kind: StmtKind::If { cond, then, els },
                ..
            }] = b.stmts.as_slice()
            {
                let inner = &b.stmts[0];
                return self.if_stmt(inner, cond, then, els.as_ref(), _valued, true);
            }
            self.line("else");
            self.indent += 1;
            self.block(&b.stmts, false);
            self.indent -= 1;
        }
        self.line("end");
    }

    fn switch(&mut self, s: &Stmt, subject: &Expr, cases: &[Case], valued: bool) {
        let span = s.span;
        self.report.count("switches");
        let (subj, _) = self.value(span, subject);
        // Group labels that share a body; a body without a closing break
        // falls through into the next one (its statements are repeated).
        let mut groups: Vec<(Vec<Option<&Expr>>, Vec<Stmt>)> = Vec::new();
        let mut labels = Vec::new();
        for (i, c) in cases.iter().enumerate() {
            labels.push(c.label.as_ref());
            let real: Vec<&Stmt> = c
                .body
                .iter()
                .filter(|x| !matches!(x.kind, StmtKind::Comment(_)))
                .collect();
            if real.is_empty() && i + 1 < cases.len() {
                continue;
            }
            let mut body: Vec<Stmt> = Vec::new();
            let mut j = i;
            loop {
                let b = &cases[j].body;
                let ends = b
                    .iter()
                    .rev()
                    .find(|x| !matches!(x.kind, StmtKind::Comment(_)))
                    .is_some_and(ends_flow);
                body.extend(b.iter().cloned());
                if ends || j + 1 >= cases.len() {
                    break;
                }
                j += 1;
            }
            // The closing break ends the case: nothing to write for it.
            if let Some(p) = body
                .iter()
                .rposition(|x| !matches!(x.kind, StmtKind::Comment(_)))
            {
                if matches!(body[p].kind, StmtKind::Break) {
                    body.remove(p);
                }
            }
            groups.push((std::mem::take(&mut labels), body));
        }
        // default goes last, as `else`.
        let default = groups
            .iter()
            .position(|(ls, _)| ls.iter().any(|l| l.is_none()));
        let mut order: Vec<usize> = (0..groups.len()).filter(|i| Some(*i) != default).collect();
        if let Some(d) = default {
            order.push(d);
        }
        let mut first = true;
        let mut any = false;
        for gi in order {
            let (ls, body) = &groups[gi];
            let conds: Vec<String> = ls
                .iter()
                .flatten()
                .map(|l| {
                    let (v, _) = match l {
                        Expr::Str(st) => (lua_str(st), 0),
                        other => self.value(span, other),
                    };
                    format!("{subj} == {v}")
                })
                .collect();
            let head = if Some(gi) == default {
                if first {
                    "do".to_string()
                } else {
                    "else".to_string()
                }
            } else {
                format!(
                    "{} {} then",
                    if first { "if" } else { "elseif" },
                    conds.join(" or ")
                )
            };
            if first {
                self.with_trailing(s, head);
            } else {
                self.line(head);
            }
            first = false;
            any = true;
            self.indent += 1;
            if has_inner_break(body) {
                self.line("repeat -- a case OpenSIPS leaves with break");
                self.indent += 1;
                self.loops += 1;
                self.block(body, false);
                self.loops -= 1;
                self.indent -= 1;
                self.line("until true");
            } else {
                self.block(body, false);
            }
            self.indent -= 1;
        }
        if any {
            self.line("end");
        }
        let _ = valued;
    }
}
