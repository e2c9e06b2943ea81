//! The layering rule of docs/ARCHITECTURE.md, checked on the source:
//! sip ← transport ← transaction ← proxy ← script ← modules; db below
//! modules on nothing but itself; pv on sip,
//! the call context and the transport types it carries; mi never on a
//! module's internals. Every `crate::…` path in a layer's files must
//! name a layer it may use.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Leaf utilities every layer may use: counters and logging.
const LEAVES: &[&str] = &[
    "stats",
    "logging",
    "journal",
    "notify",
    "core_events",
    "supervisor",
    "state",
];

/// What each layer may name: whole top-level modules, or exact paths
/// (`proxy::context` allows `crate::proxy::context::…` only).
fn allowed(layer: &str) -> &'static [&'static str] {
    match layer {
        "sip" => &["sip"],
        "transport" => &["sip", "transport"],
        "transaction" => &["sip", "transport", "transaction"],
        "proxy" => &["sip", "transport", "transaction", "proxy", "config"],
        "pv" => &["pv", "sip", "transport", "proxy::context"],
        // The DB layer: pools and queries, no SIP, no module.
        "db" => &["db"],
        "script" => &[
            "script",
            "proxy",
            "pv",
            "sip",
            "transport",
            "transaction",
            "config",
            // The module registry, never a module's internals.
            "modules::ALL",
            "modules::Module",
            "modules::Prepared",
            "modules::SettingsError",
            "modules::prepare",
            "modules::register",
        ],
        "mi" => &[
            "mi",
            "sip",
            "transport",
            "config",
            "modules::ALL",
            "modules::register",
        ],
        // The event interface: registry, subscribers, delivery; it reads
        // the modules' declared events and nothing else of them.
        "event" => &["event", "modules::ALL"],
        "modules" => &[
            "modules",
            "event",
            "db",
            "script",
            "proxy",
            "pv",
            "sip",
            "transport",
            "transaction",
            "config",
            "mi",
        ],
        _ => &[],
    }
}

const LAYERS: &[&str] = &[
    "sip",
    "transport",
    "transaction",
    "proxy",
    "pv",
    "script",
    "mi",
    "db",
    "event",
    "modules",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The files of a layer: `src/<name>/**.rs` and `src/<name>.rs`.
fn files_of(src: &Path, name: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let dir = src.join(name);
    if dir.is_dir() {
        rust_files(&dir, &mut files);
    }
    let single = src.join(format!("{name}.rs"));
    if single.is_file() {
        files.push(single);
    }
    files
}

/// The code of a file without comments (line comments and doc comments).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // `//` inside a string literal is rare in paths we care about.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` path named in `code`, as "a::b" (or "a"), with the
/// groups of `use crate::{a::b, c}` opened.
fn paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + 7..];
        rest = after;
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item = item.trim();
                let first = ident(item);
                if first.is_empty() {
                    continue;
                }
                let second = item
                    .strip_prefix(&first)
                    .and_then(|r| r.strip_prefix("::"))
                    .map(ident)
                    .unwrap_or_default();
                out.insert(join(&first, &second));
            }
            continue;
        }
        let first = ident(after);
        let tail = after[first.len()..].strip_prefix("::").unwrap_or("");
        if let Some(group) = tail.strip_prefix('{') {
            // `crate::a::{b, c::d}`: each item is a second segment.
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                out.insert(join(&first, &ident(item.trim())));
            }
            continue;
        }
        out.insert(join(&first, &ident(tail)));
    }
    out
}

fn join(first: &str, second: &str) -> String {
    if second.is_empty() || second.starts_with('{') {
        first.to_string()
    } else {
        format!("{first}::{second}")
    }
}

fn permitted(layer: &str, path: &str) -> bool {
    let top = path.split("::").next().unwrap_or("");
    LEAVES.contains(&top)
        || allowed(layer)
            .iter()
            .any(|a| *a == top || *a == path || path.starts_with(&format!("{a}::")))
}

/// (file, path) for every forbidden path under `src/`.
fn violations(src: &Path) -> Vec<(String, String)> {
    let mut bad = Vec::new();
    for layer in LAYERS {
        for f in files_of(src, layer) {
            let text = std::fs::read_to_string(&f).expect("read");
            for p in paths(&code(&text)) {
                if !permitted(layer, &p) {
                    bad.push((f.display().to_string(), p));
                }
            }
        }
    }
    bad
}

#[test]
fn every_layer_uses_only_what_it_may() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "forbidden imports (see docs/ARCHITECTURE.md, Layers):\n{}",
        bad.iter()
            .map(|(f, p)| format!("  {f}: crate::{p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_leaves_use_no_layer() {
    // Counters, logging, the journal and sd-notify are used by every layer;
    // one that imported a layer would close a circle through it.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for leaf in LEAVES {
        for f in files_of(&src, leaf) {
            if f.file_name().is_some_and(|n| n == "tests.rs") {
                continue; // unit tests may look at the whole crate
            }
            let text = std::fs::read_to_string(&f).expect("read");
            for p in paths(&code(&text)) {
                let top = p.split("::").next().unwrap_or("");
                if !LEAVES.contains(&top) {
                    bad.push(format!("{}: crate::{p}", f.display()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "a leaf imports a layer:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_sees_forbidden_paths() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = dir.path().join("proxy");
    std::fs::create_dir_all(&proxy).unwrap();
    std::fs::write(
        proxy.join("x.rs"),
        "use crate::script::host::State;\nuse crate::{sip::Message, modules::rr};\nuse crate::mi::{Ctx};\n\
         // crate::mi::Ctx in a comment does not count\nfn f() { crate::pv::get(); crate::transaction::hash(&[]); }\n",
    )
    .unwrap();
    let pv = dir.path().join("pv");
    std::fs::create_dir_all(&pv).unwrap();
    std::fs::write(
        pv.join("y.rs"),
        "use crate::proxy::context::Call;\nuse crate::proxy::tm::Tm;\n",
    )
    .unwrap();
    let mut bad: Vec<String> = violations(dir.path())
        .into_iter()
        .map(|(f, p)| {
            format!(
                "{}:{p}",
                Path::new(&f).file_name().unwrap().to_string_lossy()
            )
        })
        .collect();
    bad.sort();
    assert_eq!(
        bad,
        [
            "x.rs:mi::Ctx",
            "x.rs:modules::rr",
            "x.rs:pv::get",
            "x.rs:script::host",
            "y.rs:proxy::tm"
        ]
    );
}
