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

/// A string literal standing alone as an argument (followed by `,` or
/// `)`, not `..`): what a check may judge without running the script.
fn standalone_lit(args: &str) -> Option<String> {
    let s = args.trim_start();
    let q = s.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let mut esc = false;
    let end = s[1..].char_indices().find_map(|(i, c)| {
        if esc {
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == q {
            return Some(i + 1);
        }
        None
    })?;
    let after = s[end + 1..].trim_start();
    (after.starts_with(',') || after.starts_with(')')).then(|| string_lit(s))?
}

/// The argument lists (text after the `(`) of the calls of `full` (a
/// whole `sip.…` name, not part of a longer one) in `line`.
fn calls<'l>(line: &'l str, full: &str) -> Vec<&'l str> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = line[from..].find(full) {
        let at = from + p;
        from = at + full.len();
        let glued = line[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if let Some(args) = line[from..].trim_start().strip_prefix('(') {
            if !glued {
                out.push(args);
            }
        }
    }
    out
}

/// Literal regular expressions and `subst` expressions given to the
/// functions vocab marks as taking them (`sip.textops.subst("/a/b/")`,
/// `sip.remove_hf_re("^X-")`): compiled as the function will.
fn check_patterns(line: &str) -> Result<(), String> {
    use vocab::functions::Arg;
    for f in vocab::functions::all() {
        if !f
            .args
            .iter()
            .any(|a| matches!(a.kind(), Arg::Regex | Arg::Subst))
        {
            continue;
        }
        let full = f.full_name();
        for args in calls(line, &full) {
            for (i, a) in f.args.iter().enumerate() {
                let Some(lit) = nth_arg(args, i).and_then(standalone_lit) else {
                    continue;
                };
                match a.kind() {
                    Arg::Regex => {
                        super::re::posix(&lit, super::re::Posix::PARAM)
                            .map_err(|e| format!("{full}: {e}"))?;
                    }
                    Arg::Subst => {
                        super::re::subst_expr(&lit).map_err(|e| format!("{full}: {e}"))?;
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// What a literal argument of a message function must be.
#[derive(Clone, Copy)]
enum Literal {
    Methods,
    /// Header lines (checked when no pseudo-variable is in them).
    Lines,
    Name,
    /// nathelper flag names or numbers.
    Flags(&'static [&'static str]),
}

/// sipmsgops functions whose literal arguments are checked as the
/// functions check them (`crate::sip::args`).
const MESSAGE_ARGS: &[(&str, usize, Literal)] = &[
    ("sip.is_method", 0, Literal::Methods),
    ("sip.append_hf", 0, Literal::Lines),
    ("sip.append_hf", 1, Literal::Name),
    ("sip.insert_hf", 0, Literal::Lines),
    ("sip.insert_hf", 1, Literal::Name),
    ("sip.append_to_reply", 0, Literal::Lines),
    ("sip.remove_hf", 0, Literal::Name),
    ("sip.is_present_hf", 0, Literal::Name),
    (
        "sip.nathelper.nat_uac_test",
        0,
        Literal::Flags(crate::sip::args::NAT_UAC_TEST_FLAGS),
    ),
    (
        "sip.nathelper.fix_nated_sdp",
        0,
        Literal::Flags(crate::sip::args::FIX_NATED_SDP_FLAGS),
    ),
];

fn check_message_args(line: &str) -> Result<(), String> {
    use crate::sip::args;
    for (full, i, kind) in MESSAGE_ARGS {
        for a in calls(line, full) {
            let Some(lit) = nth_arg(a, *i).and_then(standalone_lit) else {
                continue;
            };
            let r = match kind {
                Literal::Methods => args::parse_methods(&lit).map(|_| ()),
                Literal::Lines if !lit.contains('$') => args::header_lines(&lit).map(|_| ()),
                Literal::Lines => Ok(()),
                Literal::Name => args::check_name(&lit),
                Literal::Flags(names) => args::named_flags(&lit, names).map(|_| ()),
            };
            r.map_err(|e| format!("{full}: {e}"))?;
        }
    }
    Ok(())
}

/// Checks the literal specs of one script line (comments already removed).
pub fn check_line(line: &str) -> Result<(), String> {
    check_patterns(line)?;
    check_message_args(line)?;
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

    #[test]
    fn literal_patterns() {
        check_line(r#"sip.textops.subst('/^(.*)@(.*)$/\\1@example.com/ig')"#).unwrap();
        check_line(r#"sip.textops.search_append('m:.*sip:[^>[:cntrl:]]*', ';nat=yes')"#).unwrap();
        check_line(r#"sip.textops.subst("/a/" .. x .. "/")"#).unwrap();
        let e = check_line(r#"if sip.textops.search("(") then"#).unwrap_err();
        assert!(
            e.starts_with("sip.textops.search: bad regular expression '('"),
            "{e}"
        );
        let e = check_line(r#"sip.textops.subst_uri("/a/b/q")"#).unwrap_err();
        assert!(e.contains("unknown flag 'q'"), "{e}");
        let e = check_line(r#"sip.remove_hf_re("X-[")"#).unwrap_err();
        assert!(e.starts_with("sip.remove_hf_re:"), "{e}");
        let e = check_line(r#"sip.stream_delete("video", "RTP/(")"#).unwrap_err();
        assert!(e.starts_with("sip.stream_delete:"), "{e}");
    }

    #[test]
    fn literal_message_args() {
        check_line(r#"if sip.is_method("REGISTER|MESSAGE") then sip.append_hf("P-hint: outbound\r\n") end"#).unwrap();
        check_line(r#"sip.append_hf("X-A: $var(x)\r\n\r\n")"#).unwrap();
        let e = check_line(r#"sip.is_method("INVITE|KDMQ")"#).unwrap_err();
        assert!(e.starts_with("sip.is_method: 'KDMQ'"), "{e}");
        let e = check_line(r#"sip.append_hf("X-A: 1\r\n\r\nbody")"#).unwrap_err();
        assert!(e.starts_with("sip.append_hf:"), "{e}");
        let e = check_line(r#"sip.insert_hf("X-A: 1", "Via\r\nX")"#).unwrap_err();
        assert!(e.starts_with("sip.insert_hf:"), "{e}");
        let e = check_line(r#"if sip.is_present_hf("X Bad") then end"#).unwrap_err();
        assert!(e.starts_with("sip.is_present_hf:"), "{e}");
        check_line(r#"sip.nathelper.nat_uac_test("private-contact,diff-port-src-via")"#).unwrap();
        check_line(r#"sip.nathelper.fix_nated_sdp("10")"#).unwrap();
        let e = check_line(r#"sip.nathelper.nat_uac_test("private-contact,nated")"#).unwrap_err();
        assert!(
            e.starts_with("sip.nathelper.nat_uac_test: unknown flag 'nated'"),
            "{e}"
        );
        let e = check_line(r#"sip.nathelper.fix_nated_sdp("64")"#).unwrap_err();
        assert!(e.starts_with("sip.nathelper.fix_nated_sdp:"), "{e}");
    }
}
