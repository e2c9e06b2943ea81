//! POSIX basic regular expressions (`regcomp` without REG_EXTENDED, as
//! glibc reads them), rewritten into the extended syntax that
//! [`super::re::posix`] compiles. OpenSIPS compiles a few patterns this
//! way: `lookup`'s `ua-filtering` unless `extended-regexp` is given.
//!
//! In a basic pattern `\(` `\)` group, `\{m,n\}` bounds, and glibc's
//! `\|` `\+` `\?` are alternation and the two repeats; unescaped
//! `( ) { } | + ?` are plain characters. `*` is plain at the start of
//! the pattern or of a group or alternative (and just after a leading
//! `^`); `^` anchors only there and `$` only at the end of one.
//! Back-references (`\1`…) have no counterpart and are refused.

/// The extended spelling of the basic pattern `p`.
pub fn to_extended(p: &str) -> Result<String, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    // Where `*` is a plain character and `^` an anchor.
    let mut start = true;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        let mut now_start = false;
        match c {
            '\\' => {
                let Some(&n) = chars.get(i) else {
                    return Err(format!("bad regular expression '{p}': trailing backslash"));
                };
                i += 1;
                match n {
                    '(' | '|' => {
                        out.push(n);
                        now_start = true;
                    }
                    ')' | '{' | '}' | '+' | '?' => out.push(n),
                    '1'..='9' => {
                        return Err(format!(
                        "bad regular expression '{p}': back-references (\\{n}) are not supported"
                    ))
                    }
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '(' | ')' | '{' | '}' | '|' | '+' | '?' => {
                out.push('\\');
                out.push(c);
            }
            '*' if start => out.push_str("\\*"),
            '^' if start => {
                out.push('^');
                now_start = true;
            }
            '^' => out.push_str("\\^"),
            '$' => {
                let ends = match chars.get(i) {
                    None => true,
                    Some('\\') => matches!(chars.get(i + 1), Some(')' | '|')),
                    Some(_) => false,
                };
                out.push_str(if ends { "$" } else { "\\$" });
            }
            '[' => i = bracket(&chars, i, &mut out),
            _ => out.push(c),
        }
        start = now_start;
    }
    Ok(out)
}

/// Copies a bracket expression whose `[` was just read (at `i`) as it is:
/// it reads the same in both syntaxes. Returns where it ended.
fn bracket(chars: &[char], mut i: usize, out: &mut String) -> usize {
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    // A `]` first is a member, not the end.
    if chars.get(i) == Some(&']') {
        out.push(']');
        i += 1;
    }
    while let Some(&c) = chars.get(i) {
        i += 1;
        out.push(c);
        match c {
            ']' => return i,
            // [:class:], [.x.], [=x=]
            '[' if matches!(chars.get(i), Some(':' | '.' | '=')) => {
                while let Some(&d) = chars.get(i) {
                    i += 1;
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::to_extended;
    use crate::pv::re::{posix, Posix};

    fn matches(basic: &str, s: &str) -> bool {
        let ere = to_extended(basic).expect("translates");
        posix(
            &ere,
            Posix {
                icase: false,
                newline: false,
            },
        )
        .expect("compiles")
        .is_match(s)
    }

    #[test]
    fn basic_operators_and_plain_characters() {
        assert_eq!(to_extended("a\\(b\\|c\\)\\{2\\}").unwrap(), "a(b|c){2}");
        assert_eq!(to_extended("(x)+?|{").unwrap(), "\\(x\\)\\+\\?\\|\\{");
        assert!(matches("Linphone (Linux)", "Linphone (Linux) 5.2"));
        assert!(!matches("Linphone (Linux)", "Linphone Linux"));
        assert!(matches("a\\+b", "aaab"));
        assert!(matches("a+b", "a+b"));
        assert!(!matches("a+b", "aab"));
        assert!(matches("Yealink\\|Polycom", "PolycomVVX"));
        assert!(matches("x\\{2\\}y", "axxy"));
    }

    #[test]
    fn anchors_and_star_by_position() {
        assert!(matches("*ua", "a*ua"));
        assert!(matches("^*x", "*x"));
        assert!(matches("a^b", "a^b"));
        assert!(matches("a$b", "a$b"));
        assert!(matches("^Zoiper$", "Zoiper"));
        assert!(!matches("^Zoiper$", "Zoiper 5"));
        assert!(matches("\\(^a\\)", "ab"));
        assert!(matches("ab*", "a"));
        assert!(matches("[(]x[]a]", "(x]"));
        assert!(matches("[[:digit:]]\\{3\\}", "v123"));
        assert!(to_extended("a\\1").is_err());
        assert!(to_extended("a\\").is_err());
    }
}
