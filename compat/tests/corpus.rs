//! Every config of the shared corpus (../shared/corpus/opensips-cfg, when
//! present) parses and translates, except lineblocs-proxy.cfg which gives
//! its unbalanced-quote error; prints per config what translated and the
//! unsupported calls by module.

use std::path::{Path, PathBuf};

use compat::corpus::{configs, options_for, summary};
use compat::{translate_file, Error};

fn corpus_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/opensips-cfg");
    d.is_dir().then_some(d)
}

/// Configs published broken, with the error each must give:
/// lineblocs-proxy.cfg line 971 has an unbalanced quote; openxcap's has
/// 36 '}' for 34 '{' (two else-if bodies without braces), which
/// OpenSIPS's grammar rejects as well.
const EXPECTED_ERRORS: &[(&str, u32, &str)] = &[
    ("lineblocs-proxy.cfg", 971, "unbalanced quote"),
    ("openxcap-presence-2009.cfg", 130, "unbalanced braces"),
];

#[test]
fn corpus_translates() {
    let Some(dir) = corpus_dir() else {
        eprintln!("corpus not present, skipped");
        return;
    };
    let cfgs = configs(&dir);
    assert!(cfgs.len() >= 31, "{} configs", cfgs.len());
    let mut failures = Vec::new();
    for cfg in &cfgs {
        let name = cfg.file_name().unwrap().to_string_lossy().into_owned();
        let r = translate_file(cfg, &options_for(&dir, cfg));
        if let Some((_, line, what)) = EXPECTED_ERRORS.iter().find(|e| e.0 == name) {
            match r {
                Err(Error::Syntax(e)) if e.line == *line && e.msg.contains(what) => {
                    println!("{name}: {e}")
                }
                other => failures.push(format!(
                    "{name}: expected '{what}' at line {line}, got {:?}",
                    other.map(|t| t.report.text())
                )),
            }
            continue;
        }
        match r {
            Ok(t) => {
                if let Ok(out) = std::env::var("TRANSLATE_OUT") {
                    let p = Path::new(&out).join(name.replace(".cfg", ".lua"));
                    std::fs::write(&p, &t.lua).unwrap();
                    std::fs::write(p.with_extension("txt"), t.report.text()).unwrap();
                }
                println!("{}", summary(&name, &t));
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
