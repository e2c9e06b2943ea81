//! The argument forms of the `ds_*` functions, as OpenSIPS 3.4's
//! dispatcher.c parses them: `ds_select_dst` flags, set ids with their
//! partition (also in the 2.x list form), `ds_mark_dst` states and
//! `ds_count` filters. Plain strings in, values or a message out, so the
//! MI commands parse the same forms.

use super::sets::{ACTIVE, INACTIVE, PROBING};

/// `ds_select_dst` flags (`"fUsD M 5"`, or only a number for max_results).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    pub failover: bool,
    pub user_only: bool,
    pub force: bool,
    pub use_default: bool,
    pub append: bool,
    pub max_results: usize,
}

/// Parses the flags argument of `ds_select_dst` / `ds_select_domain`.
pub fn parse_flags(s: &str) -> Result<Flags, String> {
    let mut f = Flags::default();
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        f.max_results = s.parse().map_err(|_| format!("bad max_results '{s}'"))?;
        return Ok(f);
    }
    let (flags, max) = match s.split_once(['M', 'm']) {
        Some((a, b)) => (a, Some(b.trim())),
        None => (s, None),
    };
    for c in flags.chars() {
        match c.to_ascii_lowercase() {
            'f' => f.failover = true,
            'u' => f.user_only = true,
            's' => f.force = true,
            'd' => f.use_default = true,
            'a' => f.append = true,
            ' ' | '\t' => {}
            other => return Err(format!("unknown flag '{other}'")),
        }
    }
    if let Some(m) = max {
        f.max_results = m.parse().map_err(|_| format!("bad max_results '{m}'"))?;
    }
    Ok(f)
}

/// `"part:5"`, `"5"` or a number, with an optional partition argument.
pub fn parse_set(set: &str, partition: Option<&str>) -> Result<(Option<String>, i64), String> {
    let (part, id) = match set.split_once(':') {
        Some((p, id)) => (Some(p.trim().to_string()), id.trim()),
        None => (partition.map(str::to_string), set.trim()),
    };
    let id = id
        .parse()
        .map_err(|_| format!("set '{set}' is not a number"))?;
    Ok((part, id))
}

/// Set ids of the first argument: a number, `"part:5"`, or the 2.x list
/// form `"1,2"` (tried in order).
pub fn parse_sets(arg: &str, partition: Option<&str>) -> Result<Vec<(Option<String>, i64)>, String> {
    arg.split(',').map(|s| parse_set(s, partition)).collect()
}

/// `ds_mark_dst` states: i/I/0 inactive, a/A/1 active, p/P/2 probing.
pub fn parse_mark(s: &str) -> Option<u8> {
    match s.trim() {
        "i" | "I" | "0" => Some(INACTIVE),
        "a" | "A" | "1" => Some(ACTIVE),
        "p" | "P" | "2" => Some(PROBING),
        _ => None,
    }
}

/// `ds_count` filter: a/A/1 active, i/I/0 inactive, p/P/2 probing.
pub fn parse_filter(s: &str) -> Result<[bool; 3], String> {
    let mut f = [false; 3];
    for c in s.chars() {
        match c {
            'a' | 'A' | '1' => f[ACTIVE as usize] = true,
            'i' | 'I' | '0' => f[INACTIVE as usize] = true,
            'p' | 'P' | '2' => f[PROBING as usize] = true,
            ' ' => {}
            other => return Err(format!("unknown filter '{other}' (a, i or p)")),
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_forms() {
        let f = parse_flags("fUsD M 5").expect("flags");
        assert!(f.failover && f.user_only && f.force && f.use_default);
        assert_eq!(f.max_results, 5);
        assert_eq!(parse_flags("3").expect("n").max_results, 3);
        assert!(parse_flags("z").is_err());
        assert_eq!(parse_set("p2 : 4", None), Ok((Some("p2".into()), 4)));
        assert_eq!(parse_set("4", Some("x")), Ok((Some("x".into()), 4)));
        assert!(parse_set("x", None).is_err());
        assert_eq!(parse_filter("ip").expect("f"), [false, true, true]);
        assert_eq!(parse_mark("0"), Some(INACTIVE));
    }
}
