//! The syntax tree of an opensips.cfg: every node keeps where it was
//! written (file and line) and comments stay in place as nodes.

pub use crate::lex::Pos;

/// A place in the script: index into [`Script::files`], line, column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub file: usize,
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// The files read, the main one first, then each include.
    pub files: Vec<String>,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub span: Span,
    pub kind: ItemKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    /// `name = value` (value raw, as written).
    Global {
        name: String,
        value: String,
    },
    LoadModule(String),
    ModParam {
        module: String,
        name: String,
        value: Value,
    },
    Route(Route),
    Comment(String),
    /// An empty line between items, kept for readability.
    Blank,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The block keyword: `route`, `failure_route`, `timer_route`, …
    pub kind: String,
    /// The name in brackets (`None` for the main route of a type).
    pub name: Option<String>,
    /// `timer_route[name, interval]`.
    pub interval: Option<i64>,
    pub body: Block,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Block {
    pub stmts: Vec<Stmt>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub span: Span,
    pub kind: StmtKind,
    /// A comment on the same line after the statement.
    pub trailing: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// A call (or any expression) used as a statement.
    Expr(Expr),
    Assign {
        target: String,
        op: &'static str,
        value: Expr,
    },
    If {
        cond: Expr,
        then: Block,
        els: Option<Block>,
    },
    Switch {
        subject: Expr,
        cases: Vec<Case>,
    },
    While {
        cond: Expr,
        body: Block,
    },
    /// `for ($var(x) in $avp(list)[*])`.
    ForEach {
        var: String,
        list: String,
        body: Block,
    },
    Return(Option<Expr>),
    Exit,
    Drop,
    Break,
    Comment(String),
    Block(Block),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub span: Span,
    /// `None` for `default:`.
    pub label: Option<Expr>,
    pub body: Vec<Stmt>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Int(i64),
    Str(String),
    /// A pseudo-variable spec as written.
    Pv(String),
    Null,
    /// A bare word: `myself`, `INET`, `UDP`, a route name, an IP address.
    Word(String),
    Call {
        name: String,
        args: Vec<Expr>,
        span: Span,
    },
    Unary(&'static str, Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
}
