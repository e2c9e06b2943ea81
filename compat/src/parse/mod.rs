//! Recursive-descent parser over the tokens of one file: top-level items
//! and route blocks here, statements in `stmt.rs`, expressions with
//! OpenSIPS's precedence in `expr.rs`.

use crate::ast::*;
use crate::lex::{Tok, Token};

mod expr;
mod stmt;

/// What went wrong and where (in the file being parsed).
pub struct Fail {
    pub pos: Pos,
    pub msg: String,
}

type R<T> = Result<T, Fail>;

/// A top-level item, or an include the caller resolves.
pub enum Top {
    Item(Item),
    Include { path: String, span: Span },
}

pub struct Parser<'a> {
    toks: &'a [Token],
    i: usize,
    file: usize,
    /// Comments met inside a statement, emitted before the next one.
    pending: Vec<(Span, String)>,
    last_line: u32,
    /// The last route block begun (keyword, line), for brace errors.
    last_route: Option<(String, u32)>,
}

const ROUTE_KINDS: &[&str] = &[
    "route",
    "branch_route",
    "failure_route",
    "onreply_route",
    "local_route",
    "startup_route",
    "timer_route",
    "event_route",
    "error_route",
];

/// Binary operators by precedence, loosest first, each level left
/// associative. OpenSIPS cfg.y (1.4 to 3.x) gives `||` and `&&` one level
/// (`%left OR AND`), every bitwise operator one level (`%left BOR BAND
/// BXOR BLSHIFT BRSHIFT`) and the arithmetic ones one level (`%left PLUS
/// MINUS SLASH MULT MODULO`): `1 + 2 * 3` is 9 there, and the Lua keeps
/// that with parentheses. Comparisons only join a variable and a value in
/// OpenSIPS (`exp_cond`), so they bind tighter than the bitwise level.
const LEVELS: &[&[&str]] = &[
    &["||", "&&"],
    &["|", "&", "^", "<<", ">>"],
    &["==", "!=", "=~", "!~"],
    &["<", ">", "<=", ">="],
    &["+", "-", "*", "/", "%"],
];

impl<'a> Parser<'a> {
    pub fn new(toks: &'a [Token], file: usize) -> Parser<'a> {
        Parser {
            toks,
            i: 0,
            file,
            pending: Vec::new(),
            last_line: 0,
            last_route: None,
        }
    }

    fn span_of(&self, t: &Token) -> Span {
        Span {
            file: self.file,
            line: t.pos.line,
            col: t.pos.col,
        }
    }

    fn eof_pos(&self) -> Pos {
        self.toks
            .last()
            .map(|t| Pos {
                line: t.end_line,
                col: t.pos.col + 1,
            })
            .unwrap_or(Pos { line: 1, col: 1 })
    }

    /// The next token that is not a comment (comments are set aside).
    fn peek(&mut self) -> Option<&'a Token> {
        while let Some(t) = self.toks.get(self.i) {
            if let Tok::Comment(c) = &t.tok {
                self.pending.push((self.span_of(t), c.clone()));
                self.i += 1;
            } else {
                return Some(t);
            }
        }
        None
    }

    fn next(&mut self) -> Option<&'a Token> {
        let t = self.peek()?;
        self.i += 1;
        self.last_line = t.end_line;
        Some(t)
    }

    fn fail<T>(&mut self, expected: &str) -> R<T> {
        match self.peek() {
            Some(t) => Err(Fail {
                pos: t.pos,
                msg: format!("expected {expected}, found {}", describe(&t.tok)),
            }),
            None => Err(Fail {
                pos: self.eof_pos(),
                msg: format!("expected {expected}, found the end of the file"),
            }),
        }
    }

    fn is_op(&mut self, op: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Op(o), .. }) if *o == op)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> R<()> {
        if self.eat_op(op) {
            Ok(())
        } else {
            self.fail(&format!("'{op}'"))
        }
    }

    fn is_word(&mut self, w: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(x), .. }) if x == w)
    }

    /// A comment token at the current position on the line `line`, taken.
    fn trailing_comment(&mut self, line: u32) -> Option<String> {
        match self.toks.get(self.i) {
            Some(Token {
                tok: Tok::Comment(c),
                pos,
                ..
            }) if pos.line == line => {
                self.i += 1;
                Some(c.clone())
            }
            _ => None,
        }
    }

    fn take_pending(&mut self) -> Vec<(Span, String)> {
        std::mem::take(&mut self.pending)
    }

    // ---- top level ----

    /// Parses the whole file into items and includes.
    pub fn file(&mut self) -> R<Vec<Top>> {
        let mut out = Vec::new();
        let mut prev_line = 0u32;
        loop {
            // Comments and blank lines between items.
            while let Some(t) = self.toks.get(self.i) {
                let Tok::Comment(c) = &t.tok else { break };
                if prev_line > 0 && t.pos.line > prev_line + 1 {
                    out.push(Top::Item(Item {
                        span: self.span_of(t),
                        kind: ItemKind::Blank,
                    }));
                }
                out.push(Top::Item(Item {
                    span: self.span_of(t),
                    kind: ItemKind::Comment(c.clone()),
                }));
                prev_line = t.end_line;
                self.i += 1;
            }
            let Some(t) = self.peek() else { break };
            if prev_line > 0 && t.pos.line > prev_line + 1 {
                out.push(Top::Item(Item {
                    span: self.span_of(t),
                    kind: ItemKind::Blank,
                }));
            }
            let item = self.top_item()?;
            prev_line = self.last_line;
            // Comments passed over while reading the item come after it.
            let passed = self.take_pending();
            if let Some(c) = self.trailing_comment(prev_line) {
                let span = match &item {
                    Top::Item(i) => i.span,
                    Top::Include { span, .. } => *span,
                };
                out.push(item);
                out.push(Top::Item(Item {
                    span,
                    kind: ItemKind::Comment(c),
                }));
            } else {
                out.push(item);
            }
            for (span, c) in passed {
                out.push(Top::Item(Item {
                    span,
                    kind: ItemKind::Comment(c),
                }));
            }
        }
        Ok(out)
    }

    fn top_item(&mut self) -> R<Top> {
        let Some(t) = self.next() else {
            return self.fail("a global parameter, loadmodule, modparam or a route");
        };
        let span = self.span_of(t);
        if t.tok == Tok::Op("}") || t.tok == Tok::Word("else".into()) {
            return Err(Fail {
                pos: t.pos,
                msg: match self.last_route {
                    Some((ref kind, line)) => format!(
                        "unbalanced braces: the {kind} block opened at line {line} was closed before this"
                    ),
                    None => "unbalanced braces: '}' outside any block".into(),
                },
            });
        }
        let Tok::Word(w) = &t.tok else {
            self.i -= 1;
            return self.fail("a global parameter, loadmodule, modparam or a route");
        };
        match w.as_str() {
            "loadmodule" => {
                let m = self.string("a module file name")?;
                self.eat_op(";");
                Ok(Top::Item(Item {
                    span,
                    kind: ItemKind::LoadModule(m),
                }))
            }
            "include_file" | "import_file" => {
                let paren = self.eat_op("(");
                let path = self.string("a file name")?;
                if paren {
                    self.expect_op(")")?;
                }
                self.eat_op(";");
                Ok(Top::Include { path, span })
            }
            "modparam" => {
                self.expect_op("(")?;
                let module = self.string("a module name")?;
                self.expect_op(",")?;
                let name = self.string("a parameter name")?;
                self.expect_op(",")?;
                let neg = self.eat_op("-");
                let value = match self.next().map(|t| &t.tok) {
                    Some(Tok::Str(s)) => Value::Str(s.clone()),
                    Some(Tok::Int(n)) => Value::Int(if neg { -n } else { *n }),
                    // `modparam("auth_db", "calculate_ha1", yes)`
                    Some(Tok::Word(w)) => match w.as_str() {
                        "yes" | "on" | "true" => Value::Int(1),
                        "no" | "off" | "false" => Value::Int(0),
                        _ => Value::Str(w.clone()),
                    },
                    _ => {
                        self.i -= 1;
                        return self.fail("a string or a number");
                    }
                };
                self.expect_op(")")?;
                self.eat_op(";");
                Ok(Top::Item(Item {
                    span,
                    kind: ItemKind::ModParam {
                        module,
                        name,
                        value,
                    },
                }))
            }
            k if ROUTE_KINDS.contains(&k) && (self.is_op("[") || self.is_op("{")) => {
                self.last_route = Some((k.to_string(), span.line));
                let route = self.route(k)?;
                Ok(Top::Item(Item {
                    span,
                    kind: ItemKind::Route(route),
                }))
            }
            name => {
                if self.eat_op("=") {
                    let Some(Token {
                        tok: Tok::Raw(v), ..
                    }) = self.next()
                    else {
                        return self.fail("a value");
                    };
                    return Ok(Top::Item(Item {
                        span,
                        kind: ItemKind::Global {
                            name: name.to_string(),
                            value: v.clone(),
                        },
                    }));
                }
                self.i -= 1;
                self.fail("a global parameter, loadmodule, modparam or a route")
            }
        }
    }

    fn string(&mut self, what: &str) -> R<String> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => {
                self.next();
                Ok(s.clone())
            }
            _ => self.fail(what),
        }
    }

    /// `[name]`, `[name, interval]` then the block.
    fn route(&mut self, kind: &str) -> R<Route> {
        let (mut name, mut interval) = (None, None);
        if self.eat_op("[") {
            let mut text = String::new();
            while let Some(t) = self.peek() {
                match &t.tok {
                    Tok::Op("]") | Tok::Op(",") => break,
                    Tok::Word(w) | Tok::Str(w) => text.push_str(w),
                    Tok::Int(n) => text.push_str(&n.to_string()),
                    Tok::Op(o) => text.push_str(o),
                    _ => return self.fail("a route name"),
                }
                self.next();
            }
            if text.is_empty() {
                return self.fail("a route name");
            }
            name = Some(text);
            if self.eat_op(",") {
                match self.next().map(|t| &t.tok) {
                    Some(Tok::Int(n)) => interval = Some(*n),
                    // event_route[E_X, sync|async]: lunasip runs handlers off the workers.
                    Some(Tok::Word(_)) => {}
                    _ => {
                        self.i -= 1;
                        return self.fail("the timer interval in seconds");
                    }
                }
                // OpenSIPS 3.x: optional `, ASYNC`-like extras are not in 3.4.
            }
            self.expect_op("]")?;
        }
        let body = self.block()?;
        Ok(Route {
            kind: kind.to_string(),
            name,
            interval,
            body,
        })
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("'{w}'"),
        Tok::Int(n) => format!("number {n}"),
        Tok::Ip(ip) => format!("address {ip}"),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Pv(p) => format!("pseudo-variable {p}"),
        Tok::Op(o) => format!("'{o}'"),
        Tok::Raw(r) => format!("value '{r}'"),
        Tok::Comment(_) => "a comment".into(),
    }
}
