//! The flags of `save` and `lookup` in both spellings OpenSIPS configs
//! use: 3.x named flags (`"memory-only,no-reply,max-contacts=3"`,
//! lib/reg/save_flags.c and lib/reg/lookup.c) and the 2.x letters
//! (`"mrc3p2"`, modules/registrar/save.c and lookup.c of 2.4).

/// How Path headers of a REGISTER are handled (RFC 3327).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathMode {
    /// Not saved (and not echoed).
    #[default]
    Off,
    /// Saved when present.
    Lazy,
    /// Saved; a REGISTER with Path from a UA without `Supported: path` is
    /// refused with 420.
    Strict,
}

/// `save` flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveFlags {
    pub memory_only: bool,
    pub no_reply: bool,
    pub socket_header: bool,
    pub path: Option<PathMode>,
    pub path_received: bool,
    pub force: bool,
    pub max_contacts: Option<u32>,
    pub min_expires: Option<u32>,
    pub max_expires: Option<u32>,
    pub matching_mode: Option<u8>,
}

/// `lookup` flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupFlags {
    pub method_filtering: bool,
    pub no_branches: bool,
    pub to_branches_only: bool,
    /// `ua-filtering=/re/`: only contacts whose User-Agent the pattern
    /// finds (kept in the extended syntax; `icase` from
    /// `case-insensitive`).
    pub ua_filter: Option<(String, bool)>,
    /// `sort-by-latency`: contacts by nathelper's ping latency, lowest
    /// first, those without one last.
    pub sort_by_latency: bool,
    /// `max-ping-latency=N`: contacts whose ping latency is over N µs are
    /// left out (0: no limit).
    pub max_latency: u32,
    /// `branch`: the AoRs of the branches are looked up too, after the
    /// R-URI's, and the branches replaced by their contacts.
    pub branch: bool,
}

/// The pattern of `ua-filtering=/re/` (lib/reg/lookup.c
/// `reg_fixup_lookup_flags`): between the leading `/` and the next one,
/// not empty; a basic POSIX pattern unless `extended-regexp` is given.
fn ua_pattern(v: &str, extended: bool, icase: bool) -> Result<(String, bool), String> {
    let body = v
        .strip_prefix('/')
        .ok_or_else(|| format!("ua-filtering '{v}' does not start with '/'"))?;
    let (re, _) = body
        .split_once('/')
        .ok_or_else(|| format!("ua-filtering '{v}' has no closing '/'"))?;
    if re.is_empty() {
        return Err("ua-filtering has an empty pattern".into());
    }
    let ere = match extended {
        true => re.to_string(),
        false => crate::pv::re_basic::to_extended(re)?,
    };
    let posix = crate::pv::re::Posix {
        icase,
        newline: false,
    };
    crate::pv::re::posix(&ere, posix)?;
    Ok((ere, icase))
}

fn num(v: &str, what: &str) -> Result<u32, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{what} '{v}' is not a number"))
}

/// 3.x named flags: comma-separated names and `key=value`s.
fn named(s: &str) -> bool {
    s.contains(',') || s.contains('=') || s.contains('-') || s.len() > 6
}

/// Parses `save`'s flags.
pub fn save(s: &str) -> Result<SaveFlags, String> {
    let mut f = SaveFlags::default();
    let s = s.trim();
    if s.is_empty() {
        return Ok(f);
    }
    if named(s) || matches!(s, "memory" | "global") {
        for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let (k, v) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            match (k, v) {
                ("memory-only", None) => f.memory_only = true,
                ("no-reply", None) => f.no_reply = true,
                ("socket-header", None) => f.socket_header = true,
                ("path-strict", None) => f.path = Some(PathMode::Strict),
                ("path-lazy", None) => f.path = Some(PathMode::Lazy),
                ("path-off", None) => f.path = Some(PathMode::Off),
                ("path-received", None) => f.path_received = true,
                ("force-registration", None) => f.force = true,
                ("only-request-contacts", None) => {}
                ("max-contacts", Some(v)) => f.max_contacts = Some(num(v, "max-contacts")?),
                ("min-expires", Some(v)) => f.min_expires = Some(num(v, "min-expires")?),
                ("max-expires", Some(v)) => f.max_expires = Some(num(v, "max-expires")?),
                ("matching-mode", Some(v)) => {
                    f.matching_mode = Some(match v {
                        "0" => 0,
                        "1" => 1,
                        _ => return Err(format!("matching-mode '{v}' is not 0 or 1")),
                    })
                }
                _ => return Err(format!("unknown save flag '{item}'")),
            }
        }
        return Ok(f);
    }
    // 2.x letters.
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| -> Option<u32> {
        let start = *i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        *i = end - 1;
        s.get(start..end).and_then(|d| d.parse().ok())
    };
    while i < b.len() {
        match b[i] {
            b'm' => f.memory_only = true,
            b'r' => f.no_reply = true,
            b's' => f.socket_header = true,
            b'v' => f.path_received = true,
            b'f' => f.force = true,
            b'c' => f.max_contacts = Some(digits(&mut i).unwrap_or(0)),
            b'e' => f.min_expires = Some(digits(&mut i).unwrap_or(0)),
            b'E' => f.max_expires = Some(digits(&mut i).unwrap_or(0)),
            b'p' => {
                i += 1;
                f.path = Some(match b.get(i) {
                    Some(b'0') => PathMode::Off,
                    Some(b'1') => PathMode::Lazy,
                    Some(b'2') => PathMode::Strict,
                    _ => return Err(format!("save flag 'p' needs 0, 1 or 2 in '{s}'")),
                });
            }
            other => return Err(format!("unknown save flag '{}' in '{s}'", other as char)),
        }
        i += 1;
    }
    Ok(f)
}

thread_local! {
    /// Flags strings parsed on this thread (a script has a handful).
    static LOOKUP_CACHE: std::cell::RefCell<std::collections::HashMap<String, std::rc::Rc<LookupFlags>>> =
        Default::default();
}

/// [`lookup`], parsed once per flags string and thread.
pub fn lookup_cached(s: &str) -> Result<std::rc::Rc<LookupFlags>, String> {
    if let Some(f) = LOOKUP_CACHE.with_borrow(|c| c.get(s).cloned()) {
        return Ok(f);
    }
    let f = std::rc::Rc::new(lookup(s)?);
    LOOKUP_CACHE.with_borrow_mut(|c| {
        // Flags built from message data could grow it without end.
        if c.len() >= 256 {
            c.clear();
        }
        c.insert(s.to_string(), f.clone());
    });
    Ok(f)
}

/// Parses `lookup`'s flags.
pub fn lookup(s: &str) -> Result<LookupFlags, String> {
    let mut f = LookupFlags::default();
    let s = s.trim();
    if s.is_empty() {
        return Ok(f);
    }
    if !letters(s) {
        let items: Vec<&str> = s.split(',').map(str::trim).filter(|x| !x.is_empty()).collect();
        // The pattern's flags apply wherever they stand in the list.
        let extended = items.contains(&"extended-regexp");
        let icase = items.contains(&"case-insensitive");
        for item in items {
            let (k, v) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            match (k, v) {
                ("method-filtering", None) => f.method_filtering = true,
                ("no-branches", None) => f.no_branches = true,
                ("to-branches-only", None) => f.to_branches_only = true,
                ("case-insensitive" | "extended-regexp", None) => {}
                ("ua-filtering", Some(v)) => f.ua_filter = Some(ua_pattern(v, extended, icase)?),
                // Only a federation cluster (CM_FEDERATION_CACHEDB) reads a
                // global record; lunasip has none, so the local one is read
                // as OpenSIPS does in every other cluster mode.
                ("global", None) => {}
                ("sort-by-latency", None) => f.sort_by_latency = true,
                ("branch", None) => f.branch = true,
                ("max-ping-latency", Some(v)) => f.max_latency = num(v, "max-ping-latency")?,
                _ => return Err(format!("unknown lookup flag '{item}'")),
            }
        }
        return Ok(f);
    }
    // 2.x letters (modules/registrar/lookup.c of 2.4 `parse_lookup_flags`):
    // `u/re/` with `i` and `e` wherever they stand, `g` without effect.
    let (letters, pattern) = match s.split_once("u/") {
        Some((before, r)) => {
            let (re, after) = r
                .split_once('/')
                .ok_or_else(|| format!("lookup flag 'u' has no closing '/' in '{s}'"))?;
            (format!("{before}{after}"), Some(re))
        }
        None => (s.to_string(), None),
    };
    let mut cs = letters.chars().peekable();
    while let Some(c) = cs.next() {
        match c {
            'm' => f.method_filtering = true,
            'b' => f.no_branches = true,
            'r' => f.branch = true,
            'Y' => f.sort_by_latency = true,
            // `y<N>`: the digits that follow (none: 0, no limit).
            'y' => {
                let mut n: u32 = 0;
                while let Some(d) = cs.peek().and_then(|d| d.to_digit(10)) {
                    n = n
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(d))
                        .ok_or_else(|| format!("lookup flag 'y' has too large a number in '{s}'"))?;
                    cs.next();
                }
                f.max_latency = n;
            }
            'g' | 'i' | 'e' => {}
            other => return Err(format!("unknown lookup flag '{other}' in '{s}'")),
        }
    }
    if let Some(re) = pattern {
        let (extended, icase) = (letters.contains('e'), letters.contains('i'));
        f.ua_filter = Some(ua_pattern(&format!("/{re}/"), extended, icase)?);
    }
    Ok(f)
}

/// `lookup`'s flags are 2.x letters (`m`, `b`, `g`, `r`, `i`, `e`,
/// `u/re/`, `y<N>`, `Y`): no comma or `=`, and only flag letters before
/// any `/`.
fn letters(s: &str) -> bool {
    let head = s.split('/').next().unwrap_or("");
    !s.contains([',', '=']) && head.chars().all(|c| "mbgieurYy0123456789".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings() {
        let a = save("memory-only,no-reply,max-contacts=3,path-strict").expect("named");
        let b = save("mrc3p2").expect("letters");
        assert_eq!(a, b);
        assert_eq!(a.max_contacts, Some(3));
        assert!(save("r").expect("r").no_reply);
        assert_eq!(save("p1").expect("p1").path, Some(PathMode::Lazy));
        assert!(save("x").is_err());
        assert!(save("max-contacts=x").is_err());
        assert!(lookup("m").expect("m").method_filtering);
        assert!(lookup("method-filtering").expect("mf").method_filtering);
        assert!(lookup("no-branches").expect("nb").no_branches);
        assert!(lookup("q").is_err());
        assert!(lookup("global").expect("global") == LookupFlags::default());
        let a = lookup("branch,sort-by-latency,max-ping-latency=250000").expect("named");
        let b = lookup("rYy250000").expect("letters");
        assert_eq!(a, b);
        assert!(a.branch && a.sort_by_latency);
        assert_eq!(a.max_latency, 250000);
        assert_eq!(lookup("y").expect("y").max_latency, 0);
        assert_eq!(lookup("my12b").expect("digits end").max_latency, 12);
        assert!(lookup("my12b").expect("digits end").no_branches);
        assert!(lookup("max-ping-latency=-1").is_err());
        assert!(lookup("max-ping-latency=1ms").is_err());
        assert!(lookup("max-ping-latency").is_err());
        assert!(lookup("y99999999999").is_err());
    }

    #[test]
    fn lookup_flags_are_parsed_once_per_string() {
        let a = lookup_cached("method-filtering,branch").expect("ok");
        let b = lookup_cached("method-filtering,branch").expect("ok");
        assert!(std::rc::Rc::ptr_eq(&a, &b));
        assert!(a.method_filtering && a.branch);
        assert!(lookup_cached("bogus").is_err());
        assert!(lookup_cached("bogus").is_err());
    }

    #[test]
    fn ua_filtering() {
        let f = lookup("method-filtering,ua-filtering=/Yealink\\|Poly (x)/").expect("basic");
        assert_eq!(f.ua_filter, Some(("Yealink|Poly \\(x\\)".to_string(), false)));
        let f = lookup("ua-filtering=/Yealink|Poly/,extended-regexp,case-insensitive").expect("ere");
        assert_eq!(f.ua_filter, Some(("Yealink|Poly".to_string(), true)));
        assert!(lookup("ua-filtering=Yealink").is_err());
        assert!(lookup("ua-filtering=/Yealink").is_err());
        assert!(lookup("ua-filtering=//").is_err());
        assert!(lookup("ua-filtering=/a(/,extended-regexp").is_err());
        assert!(lookup("ua-filtering=/a(/").is_ok());
        // 2.x letters: u/re/, i and e anywhere, g without effect.
        let f = lookup("mu/Yealink|Poly/ie").expect("2.x");
        assert!(f.method_filtering);
        assert_eq!(f.ua_filter, Some(("Yealink|Poly".to_string(), true)));
        let f = lookup("gu/a(b)/").expect("2.x basic");
        assert_eq!(f.ua_filter, Some(("a\\(b\\)".to_string(), false)));
        assert!(lookup("u/abc").is_err());
        assert!(lookup("u//").is_err());
        assert!(lookup("mx").is_err());
    }
}
