//! The allow/deny files of permissions (OpenSIPS 3.4
//! modules/permissions/parse_config.c and rule.c): one rule a line,
//! `left : right`, each side `ALL` or a comma-separated list of POSIX
//! extended regular expressions (matched without case, anywhere in the
//! text), optionally followed by ` EXCEPT ` and a list of exceptions.
//! Double quotes protect commas, colons and `#`; the last colon outside
//! quotes splits the sides; `#` starts a comment. A line that does not
//! parse (no colon, an empty expression, a bad regular expression) is
//! skipped with a warning, as OpenSIPS does.

use regex::Regex;

use crate::pv::re::{posix_owned, Posix};

/// POSIX flags of rule.c: REG_EXTENDED | REG_ICASE (no REG_NEWLINE).
const FLAGS: Posix = Posix {
    icase: true,
    newline: false,
};

/// One side of a rule: None is `ALL`.
#[derive(Debug, Clone, Default)]
struct Side {
    list: Option<Vec<Regex>>,
    except: Vec<Regex>,
}

fn any(list: &[Regex], value: &str) -> bool {
    list.iter().any(|r| r.is_match(value))
}

impl Side {
    fn matches(&self, value: &str) -> bool {
        self.list.as_ref().is_none_or(|l| any(l, value)) && !any(&self.except, value)
    }
}

#[derive(Debug, Clone, Default)]
struct Rule {
    left: Side,
    right: Side,
}

/// The rules of one file, in file order.
#[derive(Debug, Clone, Default)]
pub struct Rules(Vec<Rule>);

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// rule.c search_rule: some rule matches both sides.
    pub fn search(&self, left: &str, right: &str) -> bool {
        self.0
            .iter()
            .any(|r| r.left.matches(left) && r.right.matches(right))
    }

    /// Parses a file's text; the lines skipped come back as warnings
    /// (`line N: why`).
    pub fn parse(text: &str) -> (Rules, Vec<String>) {
        let mut rules = Vec::new();
        let mut warnings = Vec::new();
        for (n, line) in text.lines().enumerate() {
            match parse_line(line) {
                Ok(Some(r)) => rules.push(r),
                Ok(None) => {}
                Err(e) => warnings.push(format!("line {}: {e}", n + 1)),
            }
        }
        (Rules(rules), warnings)
    }
}

/// parse_config_line: None for a blank or comment line.
fn parse_line(line: &str) -> Result<Option<Rule>, String> {
    let mut quoted = false;
    let mut colon = None;
    let mut end = line.len();
    let mut seen = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                seen = true;
            }
            ':' => {
                if !quoted {
                    colon = Some(i);
                }
                seen = true;
            }
            '#' if !quoted => {
                end = i;
                break;
            }
            '\r' | '\n' => {
                end = i;
                break;
            }
            ' ' | '\t' => {}
            _ => seen = true,
        }
    }
    if !seen {
        return Ok(None);
    }
    let Some(colon) = colon.filter(|&c| c > 0 && c + 1 < end) else {
        return Err(format!("no 'left : right' in '{}'", line.trim()));
    };
    Ok(Some(Rule {
        left: side(&line[..colon])?,
        right: side(&line[colon + 1..end])?,
    }))
}

/// parse_expression: `ALL` or a list, then ` EXCEPT ` and a list.
fn side(s: &str) -> Result<Side, String> {
    let (main, except) = match s.find(" EXCEPT ") {
        Some(i) => (&s[..i], list(&s[i + 8..])?),
        None => (s, Vec::new()),
    };
    let main = main.trim();
    let list = match main == "ALL" {
        true => None,
        false => Some(self::list(main)?),
    };
    Ok(Side { list, except })
}

/// parse_expression_list: comma-separated words (commas inside quotes do
/// not split), each trimmed and stripped of one pair of quotes.
fn list(s: &str) -> Result<Vec<Regex>, String> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    let mut push = |w: &str| -> Result<(), String> {
        let w = w.trim_matches([' ', '\t']);
        let w = w.strip_prefix('"').unwrap_or(w);
        let w = w.strip_suffix('"').unwrap_or(w);
        if w.is_empty() {
            return Err("an empty expression".into());
        }
        out.push(posix_owned(w, FLAGS)?);
        Ok(())
    };
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                push(&s[start..i])?;
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&s[start..])?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Rules;

    #[test]
    fn opensips_readme_examples() {
        let (r, w) = Rules::parse(
            "# comment\n\
             \n\
             ALL : \"^sip:361[0-9]*@abc\\.com$\" EXCEPT \"^sip:361[0-9]*3@abc\\.com$\", \"^sip:361[0-9]*4@abc\\.com$\"\n\
             \"^sip:3677[0-9]*@abc\\.com$\", \"^sip:bob@\" : ALL  # trailing comment\n\
             broken line without colon\n\
             \"(\" : ALL\n",
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("line 5:"), "{w:?}");
        assert!(r.search("sip:anyone@x", "sip:3612@abc.com"));
        assert!(!r.search("sip:anyone@x", "sip:3613@abc.com"), "EXCEPT");
        assert!(r.search("sip:36771@ABC.com", "sip:whatever@y"), "any case");
        assert!(r.search("sip:BOB@y", "sip:whatever@y"));
        assert!(!r.search("sip:carol@y", "sip:whatever@y"));
        // The last colon outside quotes splits the sides.
        let (r, w) = Rules::parse("\"sip:a@\" : \"sip:b@\"\n");
        assert!(w.is_empty());
        assert!(r.search("sip:a@h", "sip:b@h") && !r.search("sip:b@h", "sip:a@h"));
        let (r, _) = Rules::parse("ALL : ALL\n");
        assert!(r.search("", ""));
        assert!(Rules::parse("# only\n").0.is_empty());
    }
}
