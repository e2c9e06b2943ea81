//! Recursive-descent parser over the tokens of one file: top-level items,
//! route blocks, statements and expressions with OpenSIPS's precedence.

use crate::ast::*;
use crate::lex::{Tok, Token};

mod expr;

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

    // ---- statements ----

    fn block(&mut self) -> R<Block> {
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
