//! Parsing pseudo-variable specs and xlog format strings:
//! `$name`, `$name(inner)`, `$(name)`, `$(name(inner)[idx])`.
//! Transformations (`{uri.user}`) are recognised and rejected clearly
//! until the transformation set lands.

use super::{lookup, PvDef};

/// Which value(s) of a multi-valued variable: `[n]`, `[-1]`, `[*]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    At(i32),
    All,
}

/// A parsed pseudo-variable reference.
#[derive(Clone)]
pub struct Spec {
    pub def: &'static PvDef,
    /// The text inside `(...)`, e.g. the header name of `$hdr(Via)`.
    pub inner: Option<String>,
    pub index: Option<Index>,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${}", self.def.name)?;
        if let Some(i) = &self.inner {
            write!(f, "({i})")?;
        }
        if let Some(ix) = self.index {
            write!(f, "[{ix:?}]")?;
        }
        Ok(())
    }
}

/// A piece of a format string.
#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    Spec(Spec),
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

/// Parses one spec at the start of `s`; returns it and the bytes consumed.
fn parse_at(s: &str) -> Result<(Spec, usize), String> {
    let b = s.as_bytes();
    if b.first() != Some(&b'$') {
        return Err(format!("'{s}': a pseudo-variable starts with $"));
    }
    let bracketed = b.get(1) == Some(&b'(');
    let mut i = if bracketed { 2 } else { 1 };
    let start = i;
    while i < b.len() && is_name_char(b[i]) {
        i += 1;
    }
    let name = &s[start..i];
    if name.is_empty() {
        return Err(format!("'{s}': missing pseudo-variable name"));
    }
    let def = lookup(name).ok_or_else(|| format!("unknown pseudo-variable ${name}"))?;
    let mut inner = None;
    if def.takes_inner && b.get(i) == Some(&b'(') {
        let close = find_close(b, i).ok_or_else(|| format!("'{s}': unbalanced ("))?;
        inner = Some(s[i + 1..close].to_string());
        i = close + 1;
    } else if def.takes_inner {
        return Err(format!("${name} needs a name in parentheses"));
    }
    let mut index = None;
    if bracketed {
        if b.get(i) == Some(&b'[') {
            let close = s[i..]
                .find(']')
                .map(|c| c + i)
                .ok_or_else(|| format!("'{s}': unbalanced ["))?;
            let ix = s[i + 1..close].trim();
            index = Some(if ix == "*" {
                Index::All
            } else {
                Index::At(ix.parse().map_err(|_| format!("'{s}': bad index [{ix}]"))?)
            });
            i = close + 1;
        }
        if b.get(i) == Some(&b'{') {
            return Err(format!("'{s}': transformations are not supported yet"));
        }
        if b.get(i) != Some(&b')') {
            return Err(format!("'{s}': expected )"));
        }
        i += 1;
    }
    Ok((Spec { def, inner, index }, i))
}

fn find_close(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// Parses a whole string as exactly one spec.
pub fn parse_spec(s: &str) -> Result<Spec, String> {
    let s = s.trim();
    let (spec, used) = parse_at(s)?;
    if used != s.len() {
        return Err(format!("'{s}': trailing text after the pseudo-variable"));
    }
    Ok(spec)
}

/// Parses an xlog format: text with specs; `\n`, `\t`, `\\` and `\$` escapes.
pub fn parse_format(s: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                match b[i + 1] {
                    b'n' => text.push('\n'),
                    b't' => text.push('\t'),
                    b'r' => text.push('\r'),
                    b'\\' => text.push('\\'),
                    b'$' => text.push('$'),
                    other => {
                        text.push('\\');
                        text.push(other as char);
                    }
                }
                i += 2;
            }
            b'$' if b
                .get(i + 1)
                .is_some_and(|c| *c == b'(' || c.is_ascii_alphabetic() || *c == b'_') =>
            {
                let (spec, used) = parse_at(&s[i..])?;
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Spec(spec));
                i += used;
            }
            _ => {
                // Copy a whole UTF-8 char.
                let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
                text.push_str(&s[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_forms() {
        assert_eq!(parse_spec("$ru").unwrap().def.name, "ru");
        assert_eq!(parse_spec("$(ru)").unwrap().def.name, "ru");
        let h = parse_spec("$hdr(Via)").unwrap();
        assert_eq!(h.inner.as_deref(), Some("Via"));
        let h = parse_spec("$(hdr(Via)[1])").unwrap();
        assert_eq!(h.index, Some(Index::At(1)));
        let h = parse_spec("$(hdr(Route)[*])").unwrap();
        assert_eq!(h.index, Some(Index::All));
        assert!(parse_spec("$nope").is_err());
        assert!(parse_spec("$hdr").is_err());
        assert!(parse_spec("$(ru{uri.user})")
            .unwrap_err()
            .contains("transformations"));
        assert!(parse_spec("$ru x").is_err());
    }

    #[test]
    fn formats() {
        let p = parse_format("from $fu to $(ru) costs $5\\n").unwrap();
        let kinds: Vec<_> = p.iter().map(|p| matches!(p, Part::Spec(_))).collect();
        assert_eq!(kinds, vec![false, true, false, true, false]);
        match &p[4] {
            Part::Text(t) => assert_eq!(t, " costs $5\n"),
            _ => panic!(),
        }
        assert!(parse_format("$unknown_pv").is_err());
    }
}
