//! Tokens of the OpenSIPS script language, with their line and column.
//! Comments are tokens too, so the translation can carry them over.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, satisfy};
use nom::combinator::recognize;
use nom::sequence::{pair, preceded};
use nom::{IResult, Parser};

/// Where a token starts (1-based) in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A name: `route`, `t_relay`, `myself`, `UDP`.
    Word(String),
    /// A decimal or `0x` hexadecimal integer.
    Int(i64),
    /// An IPv4 address or network (`10.0.0.1`, `10.0.0.0/8`), as written.
    Ip(String),
    /// A quoted string, escapes resolved.
    Str(String),
    /// A pseudo-variable spec as written (`$ru`, `$(avp(x)[1]{s.len})`).
    Pv(String),
    /// An operator or punctuation: `(`, `==`, `+=`, `;`.
    Op(&'static str),
    /// The raw value of a top-level `name = value` line.
    Raw(String),
    /// A comment's text without its markers, one token per comment.
    Comment(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
    /// Line the token ends on (block comments span lines).
    pub end_line: u32,
}

const OPS: &[&str] = &[
    "==", "!=", "=~", "!~", "<=", ">=", "&&", "||", "<<", ">>", "+=", "-=", "*=", "/=", "|=", "&=",
    "%=", "^=", ":=", "(", ")", "{", "}", "[", "]", ";", ",", ":", "=", "<", ">", "+", "-", "*",
    "/", "%", "|", "&", "^", "~", "!",
];

fn word(i: &str) -> IResult<&str, &str> {
    recognize(pair(
        satisfy(|c| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))
    .parse(i)
}

fn hex(i: &str) -> IResult<&str, &str> {
    preceded(
        alt((tag("0x"), tag("0X"))),
        take_while1(|c: char| c.is_ascii_hexdigit()),
    )
    .parse(i)
}

fn ipv4(i: &str) -> IResult<&str, &str> {
    let digits = || take_while1(|c: char| c.is_ascii_digit());
    recognize((
        digits(),
        char('.'),
        digits(),
        char('.'),
        digits(),
        char('.'),
        digits(),
        nom::combinator::opt(pair(char('/'), digits())),
    ))
    .parse(i)
}

/// Splits a file into tokens. `name = value` lines outside blocks keep
/// their value raw (global parameters take free-form values:
/// `socket=udp:*:5060 as 1.2.3.4`).
pub fn tokenize(src: &str) -> Result<Vec<Token>, (Pos, String)> {
    let mut out: Vec<Token> = Vec::new();
    let (mut line, mut col) = (1u32, 1u32);
    let mut rest = src;
    let mut depth = 0i32;
    let mut parens = 0i32;
    let advance = |s: &str, line: &mut u32, col: &mut u32| {
        for c in s.chars() {
            if c == '\n' {
                *line += 1;
                *col = 1;
            } else {
                *col += 1;
            }
        }
    };
    while let Some(c) = rest.chars().next() {
        let pos = Pos { line, col };
        if c.is_whitespace() {
            let n = c.len_utf8();
            advance(&rest[..n], &mut line, &mut col);
            rest = &rest[n..];
            continue;
        }
        let (tok, len): (Tok, usize) = if c == '#' || rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            let skip = if c == '#' { 1 } else { 2 };
            (Tok::Comment(rest[skip..end].trim_end().to_string()), end)
        } else if let Some(body) = rest.strip_prefix("/*") {
            let Some(end) = body.find("*/") else {
                return Err((pos, "unterminated /* comment".into()));
            };
            (Tok::Comment(body[..end].to_string()), end + 4)
        } else if c == '"' || c == '\'' {
            let in_modparam = depth == 0 && parens > 0;
            let after_loadmodule =
                matches!(out.last(), Some(Token { tok: Tok::Word(w), .. }) if w == "loadmodule");
            match string(rest, c, in_modparam) {
                Ok(t) => t,
                // `loadmodule "x.so   # comment` (a published config has it):
                // the name is plain, take it to the first blank.
                Err(_) if after_loadmodule => {
                    let end = rest[1..]
                        .find(|c: char| c.is_whitespace() || c == '#')
                        .map_or(rest.len(), |n| n + 1);
                    (Tok::Str(rest[1..end].to_string()), end)
                }
                Err(m) => return Err((pos, m)),
            }
        } else if c == '$' {
            let n = pv_len(rest)
                .ok_or_else(|| (pos, "unbalanced parenthesis in pseudo-variable".to_string()))?;
            (Tok::Pv(rest[..n].to_string()), n)
        } else if let Ok((r, ip)) = ipv4(rest) {
            (Tok::Ip(ip.to_string()), rest.len() - r.len())
        } else if let Ok((r, h)) = hex(rest) {
            let v = i64::from_str_radix(h, 16).map_err(|e| (pos, format!("bad number: {e}")))?;
            (Tok::Int(v), rest.len() - r.len())
        } else if c.is_ascii_digit() {
            let n = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let v = rest[..n]
                .parse()
                .map_err(|e| (pos, format!("bad number: {e}")))?;
            (Tok::Int(v), n)
        } else if let Ok((r, w)) = word(rest) {
            // OpenSIPS also spells the logical operators as words.
            let t = match w {
                "and" if depth > 0 => Tok::Op("&&"),
                "or" if depth > 0 => Tok::Op("||"),
                "not" if depth > 0 => Tok::Op("!"),
                _ => Tok::Word(w.to_string()),
            };
            (t, rest.len() - r.len())
        } else if let Some(op) = OPS.iter().find(|o| rest.starts_with(**o)) {
            (Tok::Op(op), op.len())
        } else {
            return Err((pos, format!("unexpected character '{c}'")));
        };
        advance(&rest[..len], &mut line, &mut col);
        rest = &rest[len..];
        match tok {
            Tok::Op("{") => depth += 1,
            Tok::Op("}") => depth -= 1,
            Tok::Op("(") => parens += 1,
            Tok::Op(")") => parens -= 1,
            _ => {}
        }
        let global_eq = tok == Tok::Op("=")
            && depth == 0
            && parens == 0
            && matches!(
                out.last(),
                Some(Token {
                    tok: Tok::Word(_),
                    ..
                })
            );
        out.push(Token {
            tok,
            pos,
            end_line: line,
        });
        if global_eq {
            // The value runs to the end of the line or a comment outside quotes.
            let eol = rest.find('\n').unwrap_or(rest.len());
            let mut end = eol;
            let mut quote = None;
            for (i, ch) in rest[..eol].char_indices() {
                match (quote, ch) {
                    (None, '"' | '\'') => quote = Some(ch),
                    (Some(q), _) if ch == q => quote = None,
                    (None, '#') => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let mut value = rest[..end]
                .trim()
                .trim_end_matches(';')
                .trim_end()
                .to_string();
            // A `{` left open (`dst_blacklist = gw:{` …) goes on over the
            // lines up to its `}`, each without its comment.
            while braces_open(&value) {
                let Some(next) = rest[end..].strip_prefix('\n') else {
                    break;
                };
                let l = next.split('\n').next().unwrap_or("");
                value.push('\n');
                value.push_str(strip_comment(l).trim().trim_end_matches(';').trim_end());
                end += 1 + l.len();
            }
            // OpenSIPS 3.x auto_scaling_profile goes on over `scale …` lines.
            while let Some(next) = rest[end..].strip_prefix('\n') {
                let l = next.split('\n').next().unwrap_or("");
                if !(l.starts_with(char::is_whitespace) && l.trim_start().starts_with("scale ")) {
                    break;
                }
                value.push('\n');
                value.push_str(l.trim());
                end += 1 + l.len();
            }
            let vpos = Pos { line, col };
            out.push(Token {
                tok: Tok::Raw(value),
                pos: vpos,
                end_line: line,
            });
            advance(&rest[..end], &mut line, &mut col);
            rest = &rest[end..];
        }
    }
    Ok(out)
}

/// Whether `s` opens more `{` than it closes (outside quotes).
fn braces_open(s: &str) -> bool {
    let mut depth = 0i32;
    let mut quote = None;
    for ch in s.chars() {
        match (quote, ch) {
            (None, '"' | '\'') => quote = Some(ch),
            (Some(q), _) if ch == q => quote = None,
            (None, '{') => depth += 1,
            (None, '}') => depth -= 1,
            _ => {}
        }
    }
    depth > 0
}

/// A line up to its `#` comment (outside quotes).
fn strip_comment(l: &str) -> &str {
    let mut quote = None;
    for (i, ch) in l.char_indices() {
        match (quote, ch) {
            (None, '"' | '\'') => quote = Some(ch),
            (Some(q), _) if ch == q => quote = None,
            (None, '#') => return &l[..i],
            _ => {}
        }
    }
    l
}

/// A quoted string: it must close on its line (an unbalanced quote is the
/// commonest typo in hand-edited configs), except in a `modparam` value,
/// where long values (SQL, accounting fields) are written over lines.
fn string(rest: &str, q: char, multiline: bool) -> Result<(Tok, usize), String> {
    let mut s = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, 'n')) => s.push('\n'),
                Some((_, 'r')) => s.push('\r'),
                Some((_, 't')) => s.push('\t'),
                Some((_, c)) if c == q || c == '\\' => s.push(c),
                Some((_, c)) => {
                    s.push('\\');
                    s.push(c);
                }
                None => break,
            },
            '\n' if !multiline => break,
            c if c == q => return Ok((Tok::Str(s), i + 1)),
            c => s.push(c),
        }
    }
    Err(format!(
        "unbalanced quote: the string opened here with {q} is not closed on its line"
    ))
}

/// Length of a pseudo-variable spec at the start of `s` (which starts with `$`).
pub(crate) fn pv_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    let balanced = |mut i: usize, open: u8, close: u8| -> Option<usize> {
        let mut d = 0;
        while i < b.len() {
            if b[i] == open {
                d += 1;
            } else if b[i] == close {
                d -= 1;
                if d == 0 {
                    return Some(i + 1);
                }
            } else if b[i] == b'\n' {
                return None;
            }
            i += 1;
        }
        None
    };
    if i < b.len() && (b[i] == b'(' || b[i] == b'{') {
        let (o, c) = if b[i] == b'(' {
            (b'(', b')')
        } else {
            (b'{', b'}')
        };
        return balanced(i, o, c);
    }
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
        i += 1;
    }
    // A trailing dot belongs to the text around it (`"$rU."`).
    while i > 1 && b[i - 1] == b'.' {
        i -= 1;
    }
    if i < b.len() && b[i] == b'(' {
        i = balanced(i, b'(', b')')?;
    }
    if i < b.len() && b[i] == b'[' {
        i = balanced(i, b'[', b']')?;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens() {
        assert_eq!(
            toks("if ($(avp(x)[1]) =~ \"a\\\"b\") # c"),
            [
                Tok::Word("if".into()),
                Tok::Op("("),
                Tok::Pv("$(avp(x)[1])".into()),
                Tok::Op("=~"),
                Tok::Str("a\"b".into()),
                Tok::Op(")"),
                Tok::Comment(" c".into()),
            ]
        );
        assert_eq!(
            toks("children=4 # x\nlisten = udp:1.2.3.4:5060 as \"a#b\""),
            [
                Tok::Word("children".into()),
                Tok::Op("="),
                Tok::Raw("4".into()),
                Tok::Comment(" x".into()),
                Tok::Word("listen".into()),
                Tok::Op("="),
                Tok::Raw("udp:1.2.3.4:5060 as \"a#b\"".into()),
            ]
        );
        assert_eq!(toks("src_ip==10.0.0.0/8")[2], Tok::Ip("10.0.0.0/8".into()));
        assert_eq!(toks("0x10"), [Tok::Int(16)]);
        assert_eq!(
            toks("$var(a)+$T_reply_code")[2],
            Tok::Pv("$T_reply_code".into())
        );
    }

    #[test]
    fn unbalanced_quote_names_its_line() {
        let e = tokenize("route {\n$var(x) = \"a=\" + $si\" + \"&u=\" + $fU;\n}").unwrap_err();
        assert_eq!(e.0.line, 2);
        assert!(e.1.contains("unbalanced quote"), "{}", e.1);
    }
}
