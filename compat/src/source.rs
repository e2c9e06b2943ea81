//! Reading a script: m4 templates, `include_file`/`import_file` resolution
//! with loop detection, and parsing each file into one [`Script`].

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ast::{Item, Script, Span};
use crate::parse::{Parser, Top};
use crate::{Error, Options};

/// Whether the text is an m4 template (OpenSIPS menuconfig and templated
/// deployments): m4's quoting and macro calls, not a `dnl` in a comment.
pub fn has_m4_markers(text: &str) -> bool {
    ["ifelse(`", "define(`", "divert(", "include(`"]
        .iter()
        .any(|m| text.contains(m))
}

/// `${NAME}` replaced by the environment variable NAME where it is set,
/// as templated deployments run `envsubst` before OpenSIPS; unset ones stay.
pub fn envsubst(text: &str) -> String {
    if !text.contains("${") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        match (after[name_len..].starts_with('}'), std::env::var(name)) {
            (true, Ok(v)) if !name.is_empty() => {
                out.push_str(&v);
                rest = &after[name_len + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Runs the text through m4 with the definition files first.
fn run_m4(path: &Path, text: &str, defs: &[PathBuf]) -> Result<String, Error> {
    use std::io::Write;
    let mut cmd = Command::new("m4");
    cmd.args(defs).arg("-");
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::M4 {
        file: path.display().to_string(),
        msg: format!("this file is an m4 template and m4 could not be run ({e}); install m4 or expand it first"),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| Error::M4 {
        file: path.display().to_string(),
        msg: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(Error::M4 {
            file: path.display().to_string(),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where an include's file is: as written, beside the including file,
/// then under each include directory by ever shorter tails of the path
/// (`/etc/opensips/settings/tm.cfg` is found as `settings/tm.cfg`).
fn resolve(path: &str, from: &Path, dirs: &[PathBuf]) -> Option<PathBuf> {
    let p = Path::new(path);
    if p.is_absolute() && p.is_file() {
        return Some(p.to_path_buf());
    }
    let base = from.parent().unwrap_or(Path::new("."));
    let parts: Vec<_> = p
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    let mut roots = vec![base.to_path_buf()];
    roots.extend(dirs.iter().cloned());
    for start in 0..parts.len() {
        let tail: PathBuf = parts[start..].iter().collect();
        for r in &roots {
            let c = r.join(&tail);
            if c.is_file() {
                return Some(c);
            }
        }
    }
    None
}

pub struct Loader<'o> {
    opts: &'o Options,
    pub script: Script,
    /// Texts of the files as parsed (after m4), for error excerpts.
    stack: Vec<PathBuf>,
}

impl<'o> Loader<'o> {
    pub fn new(opts: &'o Options) -> Loader<'o> {
        Loader {
            opts,
            script: Script {
                files: Vec::new(),
                items: Vec::new(),
            },
            stack: Vec::new(),
        }
    }

    /// Reads `path` (or the given text for it) and everything it includes.
    pub fn load(
        &mut self,
        path: &Path,
        text: Option<String>,
        at: Option<Span>,
    ) -> Result<(), Error> {
        let canon = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.stack.contains(&canon) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .chain(std::iter::once(&canon))
                .map(|p| p.display().to_string())
                .collect();
            return Err(self.error_at(at, format!("include loop: {}", chain.join(" -> "))));
        }
        let text = match text {
            Some(t) => t,
            None => std::fs::read_to_string(path)
                .map_err(|e| self.error_at(at, format!("cannot read {}: {e}", path.display())))?,
        };
        let text = envsubst(&text);
        let text = if has_m4_markers(&text) {
            run_m4(path, &text, &self.opts.m4_defs)?
        } else {
            text
        };
        let file = self.script.files.len();
        let name = path.display().to_string();
        self.script.files.push(name.clone());
        let toks = crate::lex::tokenize(&text).map_err(|(pos, msg)| {
            Error::Syntax(crate::SyntaxError {
                file: name.clone(),
                line: pos.line,
                col: pos.col,
                msg,
            })
        })?;
        let tops = Parser::new(&toks, file).file().map_err(|f| {
            Error::Syntax(crate::SyntaxError {
                file: name.clone(),
                line: f.pos.line,
                col: f.pos.col,
                msg: f.msg,
            })
        })?;
        self.stack.push(canon);
        for t in tops {
            match t {
                Top::Item(i) => self.script.items.push(i),
                Top::Include { path: inc, span } => {
                    let Some(found) = resolve(&inc, path, &self.opts.include_dirs) else {
                        return Err(self.error_at(
                            Some(span),
                            format!("include_file \"{inc}\": no such file (searched beside the script and in the include directories)"),
                        ));
                    };
                    self.script.items.push(Item {
                        span,
                        kind: crate::ast::ItemKind::Comment(format!(" ---- {inc} ----")),
                    });
                    self.load(&found, None, Some(span))?;
                }
            }
        }
        self.stack.pop();
        Ok(())
    }

    fn error_at(&self, at: Option<Span>, msg: String) -> Error {
        match at {
            Some(s) => Error::Syntax(crate::SyntaxError {
                file: self.script.files.get(s.file).cloned().unwrap_or_default(),
                line: s.line,
                col: s.col,
                msg,
            }),
            None => Error::Io(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envsubst_replaces_set_variables_only() {
        std::env::set_var("COMPAT_TEST_IP", "192.0.2.7");
        assert_eq!(
            envsubst("socket=udp:${COMPAT_TEST_IP}:5060 as ${COMPAT_UNSET_X}"),
            "socket=udp:192.0.2.7:5060 as ${COMPAT_UNSET_X}"
        );
        assert_eq!(envsubst("a ${ b $"), "a ${ b $");
    }

    #[test]
    fn m4_markers() {
        assert!(has_m4_markers("ifelse(`${X}',`yes',`a')"));
        assert!(!has_m4_markers(
            "listen=udp:1.2.3.4:5060 # CUSTOMIZE ME dnl"
        ));
    }
}
