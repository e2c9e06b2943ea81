//! Expressions: OpenSIPS's flat precedence levels (`LEVELS`), unary
//! operators, primaries (literals, pseudo-variables, calls, `myself`) and
//! call arguments, including cfg.y's empty argument (NULL).

use super::{Parser, LEVELS, R};
use crate::ast::*;
use crate::lex::{Tok, Token};

impl<'a> Parser<'a> {
    pub(super) fn paren_expr(&mut self) -> R<Expr> {
        self.expect_op("(")?;
        let e = self.expr()?;
        self.expect_op(")")?;
        Ok(e)
    }

    pub fn expr(&mut self) -> R<Expr> {
        self.binary(0)
    }

    pub(super) fn binary(&mut self, level: usize) -> R<Expr> {
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        loop {
            let op = match self.peek().map(|t| &t.tok) {
                Some(Tok::Op(o)) if LEVELS[level].contains(o) => *o,
                _ => return Ok(lhs),
            };
            self.next();
            let rhs = self.binary(level + 1)?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
    }

    pub(super) fn unary(&mut self) -> R<Expr> {
        for op in ["!", "~", "-"] {
            if self.eat_op(op) {
                let e = self.unary()?;
                return Ok(match (op, e) {
                    ("-", Expr::Int(n)) => Expr::Int(-n),
                    (op, e) => Expr::Unary(op, Box::new(e)),
                });
            }
        }
        self.primary()
    }

    pub(super) fn primary(&mut self) -> R<Expr> {
        let Some(t) = self.peek() else {
            return self.fail("an expression");
        };
        let span = self.span_of(t);
        let e = match &t.tok {
            Tok::Op("(") => return self.paren_expr(),
            // `while ([1])`: brackets group like parentheses.
            Tok::Op("[") => {
                self.next();
                let e = self.expr()?;
                self.expect_op("]")?;
                return Ok(e);
            }
            Tok::Int(n) => Expr::Int(*n),
            Tok::Str(s) => {
                // Adjacent strings join, as in C: "a " "b".
                let mut s = s.clone();
                self.next();
                while let Some(Token {
                    tok: Tok::Str(more),
                    ..
                }) = self.peek()
                {
                    s.push_str(more);
                    self.next();
                }
                return Ok(Expr::Str(s));
            }
            Tok::Pv(p) => Expr::Pv(p.clone()),
            Tok::Ip(ip) => Expr::Word(ip.clone()),
            Tok::Word(w) if w == "NULL" || w == "null" => Expr::Null,
            Tok::Word(w) => {
                self.next();
                // `msg:len`, the 1.x core keyword.
                if w == "msg" && self.eat_op(":") {
                    let Some(Token {
                        tok: Tok::Word(f), ..
                    }) = self.next()
                    else {
                        return self.fail("a msg: field");
                    };
                    return Ok(Expr::Word(format!("msg:{f}")));
                }
                if self.is_op("(") {
                    self.next();
                    let mut args = Vec::new();
                    if !self.eat_op(")") {
                        loop {
                            // OpenSIPS 3.x leaves an optional parameter
                            // out by writing nothing (`f(4, , "p")`, cfg.y's
                            // NULLV_ST): it reads as NULL.
                            if self.is_op(",") || self.is_op(")") {
                                args.push(Expr::Null);
                            } else {
                                args.push(self.arg()?);
                            }
                            if self.eat_op(")") {
                                break;
                            }
                            self.expect_op(",")?;
                        }
                    }
                    return Ok(Expr::Call {
                        name: w.clone(),
                        args,
                        span,
                    });
                }
                return Ok(Expr::Word(w.clone()));
            }
            _ => return self.fail("an expression"),
        };
        self.next();
        Ok(e)
    }

    /// A call argument: an expression, where a bare word is a name
    /// (`route(relay)`, `t_on_failure(missed)`) and a nested call is
    /// allowed (`async(rest_get(...), resume)`).
    pub(super) fn arg(&mut self) -> R<Expr> {
        let e = self.expr()?;
        // A socket written bare: `force_send_socket(udp:192.168.0.6:5080)`.
        if let Expr::Word(w) = &e {
            if self.is_op(":") {
                let mut text = w.clone();
                while self.eat_op(":") {
                    text.push(':');
                    match self.next().map(|t| &t.tok) {
                        Some(Tok::Ip(x)) | Some(Tok::Word(x)) => text.push_str(x),
                        Some(Tok::Int(n)) => text.push_str(&n.to_string()),
                        Some(Tok::Op("*")) => text.push('*'),
                        _ => {
                            self.i -= 1;
                            return self.fail("a socket (proto:host:port)");
                        }
                    }
                }
                return Ok(Expr::Word(text));
            }
        }
        Ok(e)
    }
}
