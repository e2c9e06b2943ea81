//! How much of OpenSIPS 3.4's script vocabulary lunasip exports.
//!
//! `tests/fixtures/opensips-exports-3.4.txt` lists every script function of
//! the core and of the modules in scope, taken from OpenSIPS 3.4's
//! `cmd_export_t` tables (`core_cmds.c`, `modules/<name>/*.c`; rebuilt by
//! `tests/fixtures/opensips-exports.py`). Each row maps to a lunasip export
//! as DESIGN.md places it: `sip.<fn>` for core and sipmsgops,
//! `sip.<module>.<fn>` for every other module. The rows lunasip does not
//! have yet are listed in `tests/fixtures/opensips-exports-missing.txt`:
//! the test fails when a row is missing but not listed (a regression) and
//! when a listed row is present (remove the line). It prints "N of M" per
//! module, and how much of the real configs in
//! `../shared/corpus/opensips-cfg` lunasip covers.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

const TABLE: &str = "tests/fixtures/opensips-exports-3.4.txt";
const MISSING: &str = "tests/fixtures/opensips-exports-missing.txt";

/// One row of the exports table.
#[derive(Debug, Clone)]
struct Row {
    module: String,
    function: String,
}

impl Row {
    /// Where DESIGN.md puts it in Lua.
    fn lua_name(&self) -> String {
        match self.module.as_str() {
            "core" | "sipmsgops" => format!("sip.{}", self.function),
            m => format!("sip.{m}.{}", self.function),
        }
    }

    fn key(&self) -> (String, String) {
        (self.module.clone(), self.function.clone())
    }
}

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Lines that are not blank or `#` comments, split on tabs.
fn lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split('\t').collect())
}

fn table() -> Vec<Row> {
    lines(&read(TABLE))
        .map(|f| {
            assert_eq!(f.len(), 4, "{TABLE}: 4 tab-separated fields: {f:?}");
            Row {
                module: f[0].to_string(),
                function: f[1].to_string(),
            }
        })
        .collect()
}

fn known_missing() -> Vec<(String, String)> {
    lines(&read(MISSING))
        .map(|f| {
            assert_eq!(f.len(), 2, "{MISSING}: module<TAB>function: {f:?}");
            (f[0].to_string(), f[1].to_string())
        })
        .collect()
}

/// Every Lua name lunasip exports, from the module tables the docs are
/// generated from.
fn exported() -> HashSet<String> {
    lunasip::modules::ALL
        .iter()
        .flat_map(|m| m.exports.iter().map(|e| m.full_name(e)))
        .collect()
}

/// Whether lunasip has the row: at its DESIGN.md place, or under another
/// Lua name whose vocab entry says it is this OpenSIPS function.
fn has(row: &Row, exported: &HashSet<String>) -> bool {
    exported.contains(&row.lua_name())
        || vocab::functions::all().any(|f| {
            f.module == row.module
                && f.opensips_name() == row.function
                && exported.contains(&f.full_name())
        })
}

#[test]
fn opensips_exports_are_covered_or_listed_missing() {
    let rows = table();
    let exported = exported();
    let listed = known_missing();
    let listed_set: HashSet<_> = listed.iter().cloned().collect();
    let known: HashSet<_> = rows.iter().map(Row::key).collect();

    let mut per_module: BTreeMap<&str, (usize, usize, Vec<&str>)> = BTreeMap::new();
    let mut regressions = Vec::new();
    let mut stale = Vec::new();
    for r in &rows {
        let e = per_module.entry(&r.module).or_default();
        e.1 += 1;
        if has(r, &exported) {
            e.0 += 1;
            if listed_set.contains(&r.key()) {
                stale.push(format!("{}\t{}", r.module, r.function));
            }
        } else {
            e.2.push(&r.function);
            if !listed_set.contains(&r.key()) {
                regressions.push(format!("{} ({})", r.lua_name(), r.module));
            }
        }
    }
    let unknown: Vec<_> = listed
        .iter()
        .filter(|k| !known.contains(*k))
        .map(|(m, f)| format!("{m}\t{f}"))
        .collect();

    let (mut have, mut all) = (0, 0);
    println!("OpenSIPS 3.4 exports lunasip has, per module:");
    for (m, (n, total, missing)) in &per_module {
        have += n;
        all += total;
        println!("  {m}: {n} of {total}");
        if !missing.is_empty() {
            println!("    missing: {}", missing.join(", "));
        }
    }
    println!("  all: {have} of {all}");

    assert!(
        regressions.is_empty(),
        "not exported by lunasip and not listed in {MISSING}:\n{}",
        regressions.join("\n")
    );
    assert!(
        stale.is_empty(),
        "exported now: remove these lines from {MISSING}:\n{}",
        stale.join("\n")
    );
    assert!(
        unknown.is_empty(),
        "listed in {MISSING} but not a row of {TABLE}:\n{}",
        unknown.join("\n")
    );
}

/// The names called as functions in an opensips.cfg: an identifier
/// followed by `(` (spaces allowed), outside comments (`#`, `//`, `/* */`)
/// and strings, and not a pseudo-variable name (`$avp(x)`).
fn calls(cfg: &str) -> Vec<String> {
    let b = cfg.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'#' => {
                // `#!define` and friends are preprocessor lines: skip too.
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'"' | b'\'' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let pv = start > 0 && matches!(b[start - 1], b'$' | b'.');
                let mut j = i;
                while j < b.len() && matches!(b[j], b' ' | b'\t') {
                    j += 1;
                }
                if !pv && b.get(j) == Some(&b'(') {
                    out.push(cfg[start..i].to_string());
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[test]
fn call_tokenizer_skips_comments_strings_and_pvs() {
    let cfg = "# is_myself(\"x\")\nif (is_method(\"INVITE\") && $avp(send_reply)) {\n\
               /* send_reply(1, \"a\") */ // t_relay()\n  xlog(\"t_relay() $ru\");\n\
               send_reply (404, \"Not Found\");\n}";
    assert_eq!(calls(cfg), ["if", "is_method", "xlog", "send_reply"]);
}

#[test]
fn corpus_coverage() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/opensips-cfg");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return; // no corpus on this machine
    };
    let rows = table();
    let exported = exported();
    let by_name: HashMap<&str, &Row> = rows.iter().map(|r| (r.function.as_str(), r)).collect();

    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    files.sort();

    let (mut sites, mut covered_sites, mut covered_cfgs) = (0, 0, 0);
    // function -> (module, call sites, configs)
    let mut missing: BTreeMap<&str, (&str, usize, BTreeSet<String>)> = BTreeMap::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        let mut all_there = true;
        for c in calls(&text) {
            let Some(row) = by_name.get(c.as_str()) else {
                continue;
            };
            sites += 1;
            if has(row, &exported) {
                covered_sites += 1;
            } else {
                all_there = false;
                let e = missing.entry(row.function.as_str()).or_insert((
                    row.module.as_str(),
                    0,
                    BTreeSet::new(),
                ));
                e.1 += 1;
                e.2.extend(name.clone());
            }
        }
        covered_cfgs += usize::from(all_there);
    }
    println!(
        "corpus ({} configs): {covered_cfgs} configs use only functions lunasip has; \
         {covered_sites} of {sites} call sites of the modules in scope are covered",
        files.len()
    );
    let mut by_count: Vec<_> = missing.into_iter().collect();
    by_count.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(b.0)));
    println!("missing, by call sites (configs):");
    for (f, (m, n, cfgs)) in by_count {
        println!("  {m}.{f}: {n} ({})", cfgs.len());
    }
    assert!(sites > 0, "the corpus has no call of a function in scope");
}
