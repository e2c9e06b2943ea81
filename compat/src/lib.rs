//! opensips.cfg → lunasip Lua.
//!
//! [`translate_file`] reads an OpenSIPS script of versions 1.4 to 3.x (m4
//! templates expanded, includes followed), parses it into a syntax tree
//! that keeps comments and lines ([`ast`]), and lowers it to the Lua a
//! person would write against lunasip's API (docs/lua-api.md). What has no
//! lunasip counterpart is listed in the [`Report`] with its line and left
//! in the Lua as a call that raises when reached. This crate knows the
//! daemon only through the `vocab` crate.

#![forbid(unsafe_code)]

pub mod ast;
pub mod corpus;
pub mod docs;
pub mod lex;
pub mod lower;
pub mod mapping;
pub mod parse;
pub mod report;
pub mod source;

use std::path::{Path, PathBuf};

pub use report::{Report, Unsupported};

/// A syntax error, named as `file:line:column: what was expected`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {msg}")]
pub struct SyntaxError {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub msg: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error("{file}: {msg}")]
    M4 { file: String, msg: String },
    #[error("{0}")]
    Io(String),
}

/// How to read the script.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Directories searched for `include_file`/`import_file` targets.
    pub include_dirs: Vec<PathBuf>,
    /// m4 files given to m4 before a templated script (macro definitions).
    pub m4_defs: Vec<PathBuf>,
    /// OpenSIPS modules whose calls are left out as comments (listed in
    /// the report as skipped) instead of raising: for a module whose work
    /// the operator gives up knowingly, such as `acc` accounting.
    pub skip_modules: Vec<String>,
}

/// The result: the Lua text and what could not be translated.
#[derive(Debug, Clone)]
pub struct Translation {
    pub lua: String,
    pub report: Report,
}

/// Reads, parses and translates an opensips.cfg.
pub fn translate_file(path: &Path, opts: &Options) -> Result<Translation, Error> {
    let script = parse_file(path, opts)?;
    lower::lower(&script, opts)
}

/// Translates script text as if read from `name`.
pub fn translate_str(name: &str, text: &str, opts: &Options) -> Result<Translation, Error> {
    let mut l = source::Loader::new(opts);
    l.load(Path::new(name), Some(text.to_string()), None)?;
    lower::lower(&l.script, opts)
}

/// Reads and parses an opensips.cfg with its includes.
pub fn parse_file(path: &Path, opts: &Options) -> Result<ast::Script, Error> {
    let mut l = source::Loader::new(opts);
    l.load(path, None, None)?;
    Ok(l.script)
}

/// Whether a file looks like an opensips.cfg rather than a Lua script:
/// by extension `.cfg` (or `.m4`), else by content (`loadmodule`,
/// `modparam(`, a `route {` block).
pub fn is_opensips_cfg(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("cfg") | Some("m4") => return true,
        Some("lua") => return false,
        _ => {}
    }
    text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("loadmodule ")
            || l.starts_with("modparam(")
            || l.starts_with("route{")
            || l.starts_with("route {")
    })
}
