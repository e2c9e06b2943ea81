//! Statements: blocks, `if`/`while`/`for … in`/`switch` with their
//! bodies, `return`/`exit`/`drop`/`break`, assignments and calls, and the
//! comments met between them.

use super::{Parser, R};
use crate::ast::*;
use crate::lex::Tok;

impl Parser<'_> {
    pub(super) fn block(&mut self) -> R<Block> {
        self.expect_op("{")?;
        let mut stmts = Vec::new();
        loop {
            if self.is_op("}") {
                self.flush_comments(&mut stmts);
                self.next();
                return Ok(Block { stmts });
            }
            if self.peek().is_none() {
                return self.fail("'}'");
            }
            self.flush_comments(&mut stmts);
            if self.eat_op(";") {
                continue;
            }
            let s = self.stmt()?;
            stmts.push(s);
        }
    }

    fn flush_comments(&mut self, stmts: &mut Vec<Stmt>) {
        for (span, c) in self.take_pending() {
            stmts.push(Stmt {
                span,
                kind: StmtKind::Comment(c),
                trailing: None,
            });
        }
    }

    /// A block, or one statement where OpenSIPS allows it (`if (c) f();`).
    fn body(&mut self) -> R<Block> {
        if self.is_op("{") {
            return self.block();
        }
        let s = self.stmt()?;
        Ok(Block { stmts: vec![s] })
    }

    fn stmt(&mut self) -> R<Stmt> {
        let Some(t) = self.peek() else {
            return self.fail("a statement");
        };
        let span = self.span_of(t);
        let kind = match &t.tok {
            Tok::Op("{") => StmtKind::Block(self.block()?),
            Tok::Word(w) => match w.as_str() {
                "if" => {
                    self.next();
                    let cond = self.paren_expr()?;
                    let then = self.body()?;
                    let els = if self.is_word("else") {
                        self.next();
                        Some(self.body()?)
                    } else {
                        None
                    };
                    StmtKind::If { cond, then, els }
                }
                "while" => {
                    self.next();
                    let cond = self.paren_expr()?;
                    StmtKind::While {
                        cond,
                        body: self.body()?,
                    }
                }
                "for" => {
                    self.next();
                    self.expect_op("(")?;
                    let var = self.pv("a variable")?;
                    if !self.is_word("in") {
                        return self.fail("'in'");
                    }
                    self.next();
                    let list = self.pv("a pseudo-variable to iterate over")?;
                    self.expect_op(")")?;
                    StmtKind::ForEach {
                        var,
                        list,
                        body: self.body()?,
                    }
                }
                "switch" => {
                    self.next();
                    let subject = self.paren_expr()?;
                    StmtKind::Switch {
                        subject,
                        cases: self.cases()?,
                    }
                }
                "return" => {
                    self.next();
                    let v = if self.is_op(";") || self.is_op("}") {
                        None
                    } else if self.eat_op("(") {
                        let v = if self.is_op(")") {
                            None
                        } else {
                            Some(self.expr()?)
                        };
                        self.expect_op(")")?;
                        v
                    } else {
                        Some(self.expr()?)
                    };
                    self.end()?;
                    StmtKind::Return(v)
                }
                "exit" | "drop" | "break" => {
                    self.next();
                    if self.eat_op("(") {
                        self.expect_op(")")?;
                    }
                    self.end()?;
                    match w.as_str() {
                        "exit" => StmtKind::Exit,
                        "drop" => StmtKind::Drop,
                        _ => StmtKind::Break,
                    }
                }
                _ => {
                    let e = self.expr()?;
                    self.end()?;
                    StmtKind::Expr(e)
                }
            },
            Tok::Pv(p) => {
                self.next();
                let op = match self.next().map(|t| &t.tok) {
                    Some(Tok::Op(o))
                        if ["=", "+=", "-=", "*=", "/=", "%=", "|=", "&=", "^=", ":="]
                            .contains(o) =>
                    {
                        *o
                    }
                    _ => {
                        self.i -= 1;
                        return self.fail("an assignment operator (= += -= *= /= %= |= &= ^= :=)");
                    }
                };
                let value = self.expr()?;
                self.end()?;
                StmtKind::Assign {
                    target: p.clone(),
                    op,
                    value,
                }
            }
            _ => return self.fail("a statement"),
        };
        let trailing = self.trailing_comment(self.last_line);
        Ok(Stmt {
            span,
            kind,
            trailing,
        })
    }

    /// A statement's `;` (optional before `}` as OpenSIPS tolerates it).
    fn end(&mut self) -> R<()> {
        if self.eat_op(";") || self.is_op("}") {
            Ok(())
        } else {
            self.fail("';'")
        }
    }

    fn cases(&mut self) -> R<Vec<Case>> {
        self.expect_op("{")?;
        let mut cases: Vec<Case> = Vec::new();
        loop {
            let mut pending = Vec::new();
            self.flush_comments(&mut pending);
            if let Some(c) = cases.last_mut() {
                c.body.extend(pending);
            }
            let Some(t) = self.peek() else {
                return self.fail("'}'");
            };
            let span = self.span_of(t);
            if self.eat_op("}") {
                return Ok(cases);
            }
            if self.is_word("case") {
                self.next();
                let neg = self.eat_op("-");
                let label = match self.next().map(|t| &t.tok) {
                    Some(Tok::Int(n)) => Expr::Int(if neg { -n } else { *n }),
                    Some(Tok::Str(s)) => Expr::Str(s.clone()),
                    Some(Tok::Word(w)) => Expr::Word(w.clone()),
                    _ => {
                        self.i -= 1;
                        return self.fail("a case value (number or string)");
                    }
                };
                self.expect_op(":")?;
                cases.push(Case {
                    span,
                    label: Some(label),
                    body: Vec::new(),
                });
            } else if self.is_word("default") {
                self.next();
                self.expect_op(":")?;
                cases.push(Case {
                    span,
                    label: None,
                    body: Vec::new(),
                });
            } else if let Some(c) = cases.last_mut() {
                if self.is_op(";") {
                    self.next();
                    continue;
                }
                let _ = c;
                let s = self.stmt()?;
                if let Some(c) = cases.last_mut() {
                    c.body.push(s);
                }
            } else {
                return self.fail("'case' or 'default'");
            }
        }
    }

    fn pv(&mut self, what: &str) -> R<String> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Pv(p)) => {
                self.next();
                Ok(p.clone())
            }
            _ => self.fail(what),
        }
    }
}
