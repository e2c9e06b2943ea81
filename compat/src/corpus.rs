//! A directory of opensips.cfg files laid out as the shared corpus:
//! `NAME.cfg` beside `includes/NAME/` (its include files and m4
//! definitions). Used by the corpus tests and the benchmark.

use std::path::{Path, PathBuf};

use crate::{Options, Translation};

/// The `.cfg` files of `dir`, sorted by name.
pub fn configs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Options for one config: `includes/NAME/` searched for includes, its
/// `.m4` files given to m4.
pub fn options_for(dir: &Path, cfg: &Path) -> Options {
    let stem = cfg
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let inc = dir.join("includes").join(stem);
    let mut o = Options::default();
    if inc.is_dir() {
        if let Ok(rd) = std::fs::read_dir(&inc) {
            let mut m4: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "m4"))
                .collect();
            m4.sort();
            o.m4_defs = m4;
        }
        o.include_dirs.push(inc);
    }
    o
}

/// One line: what translated and the unsupported calls by module.
pub fn summary(name: &str, t: &Translation) -> String {
    let by_mod: Vec<String> = t
        .report
        .calls_by_module()
        .iter()
        .map(|(m, n)| format!("{m} {n}"))
        .collect();
    let done: Vec<String> = t
        .report
        .translated
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    format!(
        "{name}: {}; unsupported items {}; unsupported calls by module: {}",
        done.join(", "),
        t.report.unsupported.len(),
        if by_mod.is_empty() {
            "none".into()
        } else {
            by_mod.join(", ")
        }
    )
}
