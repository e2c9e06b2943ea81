//! `lunasip check` support: finds pseudo-variable specs and xlog formats
//! written as string literals in a script line (`sip.pv.get("$(ru{uri.usr})")`,
//! `sip.pv.rX`, `sip.xlog("… $foo …")`, `sip.tr(v, "{s.lenn}")`) and
//! parses them, so a typo is reported with file and line before the
//! proxy starts rather than on the first message.

/// Reads a Lua short string literal at the start of `s` (after optional
/// whitespace); returns its value with the common escapes decoded.
fn string_lit(s: &str) -> Option<String> {
    let s = s.trim_start();
    let q = s.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let mut out = String::new();
    let mut it = s[1..].chars();
    while let Some(ch) = it.next() {
        match ch {
            '\\' => match it.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                other => {
                    if other != '\\' && other != '"' && other != '\'' {
                        out.push('\\');
                    }
                    out.push(other);
                }
            },
            c if c == q => return Some(out),
            c => out.push(c),
        }
    }
    None
}

/// The text after the n-th top-level comma of an argument list (n = 0: the
/// first argument), stopping at the closing parenthesis.
fn nth_arg(args: &str, n: usize) -> Option<&str> {
    let mut depth = 0i32;
    let mut seen = 0;
    let mut q: Option<char> = None;
    let mut esc = false;
    if n == 0 {
        return Some(args);
    }
    for (i, ch) in args.char_indices() {
        if let Some(qc) = q {
            if esc {
                esc = false;
            } else if ch == '\\' {
                esc = true;
            } else if ch == qc {
                q = None;
            }
            continue;
        }
        match ch {
            '"' | '\'' => q = Some(ch),
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' if depth == 0 => return None,
            ')' | '}' | ']' => depth -= 1,
            ',' if depth == 0 => {
                seen += 1;
                if seen == n {
                    return Some(&args[i + 1..]);
                }
            }
            _ => {}
        }
    }
    None
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Checks the literal specs of one script line (comments already removed).
pub fn check_line(line: &str) -> Result<(), String> {
    let mut from = 0;
    while let Some(p) = line[from..].find("sip.") {
        let at = from + p;
        from = at + 4;
        if at > 0
            && line[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            continue;
        }
        let rest = &line[at + 4..];
        let first = ident(rest);
        let after = &rest[first.len()..];
        match first {
            "pv" => {
                let Some(r) = after.strip_prefix('.') else {
                    continue;
                };
                let name = ident(r);
                let tail = r[name.len()..].trim_start();
                match (name, tail.strip_prefix('(')) {
                    ("get" | "set" | "assign", Some(args)) => {
                        if let Some(s) = string_lit(args) {
                            super::parse_spec(&s).map_err(|e| format!("sip.pv.{name}: {e}"))?;
                        }
                    }
                    ("fmt", Some(args)) => {
                        if let Some(s) = string_lit(args) {
                            super::parse_format(&s).map_err(|e| format!("sip.pv.fmt: {e}"))?;
                        }
                    }
                    ("" | "get" | "set" | "fmt" | "assign", _) => {}
                    (n, _) => {
                        super::parse_spec(&format!("${n}"))
                            .map_err(|e| format!("sip.pv.{n}: {e}"))?;
                    }
                }
            }
            "xlog" => {
                let Some(args) = after.trim_start().strip_prefix('(') else {
                    continue;
                };
                for n in 0..2 {
                    if let Some(s) = nth_arg(args, n).and_then(string_lit) {
                        if s.contains('$') {
                            super::parse_format(&s).map_err(|e| format!("sip.xlog: {e}"))?;
                        }
                    }
                }
            }
            "tr" => {
                let Some(args) = after.trim_start().strip_prefix('(') else {
                    continue;
                };
                if let Some(s) = nth_arg(args, 1).and_then(string_lit) {
                    super::tr::parse_chain(&s).map_err(|e| format!("sip.tr: {e}"))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_specs() {
        check_line(r#"local u = sip.pv.get("$(ru{uri.user})")"#).unwrap();
        check_line(r#"if sip.pv.rU == "x" then sip.pv.du = "sip:a" end"#).unwrap();
        check_line(r#"sip.xlog("L_INFO", "$rm from $si\n")"#).unwrap();
        check_line(r#"sip.pv.get(name)"#).unwrap();
        let e = check_line(r#"local u = sip.pv.get("$(ru{uri.usr})")"#).unwrap_err();
        assert!(e.contains("unknown transformation {uri.usr}"), "{e}");
        let e = check_line(r#"x = sip.pv.rX"#).unwrap_err();
        assert!(e.contains("unknown pseudo-variable $rX"), "{e}");
        let e = check_line(r#"sip.xlog("bad $(hdr(Via)[x])")"#).unwrap_err();
        assert!(e.contains("bad index"), "{e}");
        let e = check_line(r#"sip.tr(v, "{s.substr,1}")"#).unwrap_err();
        assert!(e.contains("takes 2 arguments"), "{e}");
        check_line(r#"sip.tr(v, "{s.substr,1,2}")"#).unwrap();
    }
}
