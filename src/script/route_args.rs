//! `lunasip check`: arguments that name a route (`t_on_failure("x")`),
//! found in a script line by what vocab marks as [`vocab::Arg::RouteName`].

use super::route::RouteType;

/// Fails when a call in `line` gives, as a string literal, the name of a
/// route that `defined` does not know.
pub(super) fn check_line(
    line: &str,
    defined: impl Fn(RouteType, &str) -> bool,
) -> Result<(), String> {
    for (f, pos, rt) in vocab::functions::route_args() {
        let fname = f.name;
        let mut from = 0;
        while let Some(p) = line[from..].find(fname) {
            let start = from + p;
            from = start + fname.len();
            let glued = line[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let Some(args) = line[from..].trim_start().strip_prefix('(') else {
                continue;
            };
            let Some(name) = literal_arg(args, pos).filter(|_| !glued) else {
                continue;
            };
            if !defined(rt, name) {
                return Err(format!(
                    "{fname}(\"{name}\") names {}.{name}, which is not defined",
                    rt.table()
                ));
            }
        }
    }
    Ok(())
}

/// Functions whose first argument is a reply status code (OpenSIPS refuses
/// one outside 100..699 when it loads the script: signaling's and tm's
/// fixups).
const STATUS_CODE_FUNCTIONS: &[&str] = &["sl_send_reply", "send_reply", "t_reply"];

/// Fails when a call in `line` gives a literal status code outside
/// 100..699 (`sip.signaling.send_reply(99, "x")`).
pub(super) fn check_status_codes(line: &str) -> Result<(), String> {
    for fname in STATUS_CODE_FUNCTIONS {
        let mut from = 0;
        while let Some(p) = line[from..].find(fname) {
            let start = from + p;
            from = start + fname.len();
            let glued = line[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let Some(args) = line[from..].trim_start().strip_prefix('(') else {
                continue;
            };
            if glued {
                continue;
            }
            if literal_arg(args, 1).is_some_and(|r| r.contains("\\r") || r.contains("\\n")) {
                return Err(format!(
                    "{fname}: the reason phrase cannot contain line breaks"
                ));
            }
            let first = args.split([',', ')']).next().unwrap_or("").trim();
            if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if !first.parse::<u32>().is_ok_and(|c| (100..=699).contains(&c)) {
                return Err(format!(
                    "{fname}({first}, …): {first} is not a SIP status code (100-699)"
                ));
            }
        }
    }
    Ok(())
}

/// The core cache functions: their first argument names the engine.
const CACHE_FUNCTIONS: &[&str] = &[
    "cache_store",
    "cache_fetch",
    "cache_remove",
    "cache_add",
    "cache_sub",
    "cache_counter_fetch",
    "cache_raw_query",
];

/// Fails when a cache function names, as a literal, an engine lunasip
/// does not have (`sip.cache_fetch("redis:1", …)`): only `local` exists.
pub(super) fn check_cache_engines(line: &str) -> Result<(), String> {
    for fname in CACHE_FUNCTIONS {
        let mut from = 0;
        while let Some(p) = line[from..].find(fname) {
            let start = from + p;
            from = start + fname.len();
            let glued = line[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let Some(args) = line[from..].trim_start().strip_prefix('(') else {
                continue;
            };
            let Some(id) = literal_arg(args, 0).filter(|_| !glued) else {
                continue;
            };
            let engine = id.split(':').next().unwrap_or(id);
            if engine != "local" && !engine.contains('$') {
                return Err(format!(
                    "{fname}(\"{id}\", …): no cachedb engine '{engine}' (lunasip has \"local\")"
                ));
            }
        }
    }
    Ok(())
}

/// The `pos`-th argument of a call when it is a string literal standing
/// alone (`"x"` but not `"x" .. y`); `args` starts after the `(`.
fn literal_arg(args: &str, pos: usize) -> Option<&str> {
    let b = args.as_bytes();
    let mut i = 0;
    for _ in 0..pos {
        let mut depth = 0usize;
        loop {
            match *b.get(i)? {
                q @ (b'"' | b'\'') => {
                    i += 1;
                    while *b.get(i)? != q {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                }
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth == 0 => return None,
                b')' | b']' | b'}' => depth -= 1,
                b',' if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    let rest = args[i..].trim_start();
    let q = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let end = rest[1..].find(q)?;
    let after = rest[end + 2..].trim_start();
    (after.starts_with(',') || after.starts_with(')')).then(|| &rest[1..1 + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_status_codes() {
        assert!(check_status_codes("sip.signaling.send_reply(404, \"x\")").is_ok());
        assert!(check_status_codes("sip.sl.sl_send_reply( 699 ,\"x\")").is_ok());
        assert!(check_status_codes("sip.sl.sl_send_reply(code, \"x\")").is_ok());
        assert!(check_status_codes("sip.tm.t_reply(7000, \"x\")")
            .unwrap_err()
            .contains("7000 is not a SIP status code"));
        assert!(check_status_codes("sip.signaling.send_reply(99, \"x\")").is_err());
        assert!(check_status_codes("my_send_reply(99)").is_ok());
        assert!(
            check_status_codes("sip.sl.sl_send_reply(404, \"a\\r\\nX: y\")")
                .unwrap_err()
                .contains("line breaks")
        );
    }

    #[test]
    fn literal_cache_engines() {
        assert!(check_cache_engines("sip.cache_store(\"local\", \"k\", \"v\")").is_ok());
        assert!(check_cache_engines("sip.cache_fetch(\"local:calls\", \"k\")").is_ok());
        assert!(check_cache_engines("sip.cache_fetch(id, \"k\")").is_ok());
        assert!(check_cache_engines("sip.cache_fetch(\"redis:1\", \"$ci\")")
            .unwrap_err()
            .contains("no cachedb engine 'redis'"));
    }

    #[test]
    fn literal_args() {
        assert_eq!(literal_arg("\"a\")", 0), Some("a"));
        assert_eq!(literal_arg(" 'a' , 2)", 0), Some("a"));
        assert_eq!(literal_arg("1, f(2, \"x,y\"), \"b\")", 2), Some("b"));
        assert_eq!(literal_arg("'it\\'s', \"b\")", 1), Some("b"));
        assert_eq!(literal_arg("\"a\" .. x)", 0), None);
        assert_eq!(literal_arg("x)", 0), None);
        assert_eq!(literal_arg("\"a\")", 1), None);
    }

    #[test]
    fn every_route_naming_function_is_checked() {
        let none = |_: RouteType, _: &str| false;
        for (line, want) in [
            ("sip.tm.t_on_failure(\"f\")", "failure_route.f"),
            ("tm.t_on_reply('r')", "onreply_route.r"),
            ("  sip.tm.t_on_branch( \"b\" ) -- x", "branch_route.b"),
        ] {
            let e = check_line(line, none).unwrap_err();
            assert!(
                e.ends_with(&format!("names {want}, which is not defined")),
                "{e}"
            );
        }
        let only_f = |rt: RouteType, n: &str| rt == RouteType::Failure && n == "f";
        check_line("sip.tm.t_on_failure('f')", only_f).unwrap();
        assert!(check_line("sip.tm.t_on_reply('f')", only_f).is_err());
        // Not a literal, or not that function: nothing to check.
        check_line("sip.tm.t_on_failure(name)", none).unwrap();
        check_line("sip.tm.t_on_failure('x' .. n)", none).unwrap();
        check_line("my_t_on_failure('x')", none).unwrap();
    }
}
