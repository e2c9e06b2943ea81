//! Golden translations: each tests/golden/NAME.cfg (one construct each)
//! translates to exactly tests/golden/NAME.lua and the report NAME.txt.
//! `UPDATE_GOLDEN=1 cargo test -p lunasip-compat --test golden` rewrites
//! them (review the diff).

use std::path::Path;

#[test]
fn golden_translations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cfgs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    cfgs.sort();
    assert!(cfgs.len() >= 6);
    let mut stale = Vec::new();
    for cfg in cfgs {
        let name = cfg.file_name().unwrap().to_string_lossy().into_owned();
        let t = compat::translate_file(&cfg, &compat::Options::default())
            .unwrap_or_else(|e| panic!("{e}"));
        // Reports name files by path; keep the golden ones independent of it.
        let report = t.report.text().replace(&format!("{}/", dir.display()), "");
        let _ = &name;
        for (ext, want) in [("lua", t.lua.clone()), ("txt", report)] {
            let path = cfg.with_extension(ext);
            if std::env::var_os("UPDATE_GOLDEN").is_some() {
                std::fs::write(&path, &want).unwrap();
            }
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            if have != want {
                stale.push(format!("{}:\n{want}", path.display()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale golden files (UPDATE_GOLDEN=1):\n{}",
        stale.join("\n")
    );
}

#[test]
fn bad_input_is_an_error_with_its_line() {
    let o = compat::Options::default();
    let e = compat::translate_str(
        "x.cfg",
        "route {\n  if (is_method(\"INVITE\") {\n  }\n}\n",
        &o,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "x.cfg:2:27: expected ')', found '{'");
    let e = compat::translate_str("x.cfg", "include_file \"nowhere.cfg\"\n", &o).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("x.cfg:1:1: include_file \"nowhere.cfg\": no such file"),
        "{e}"
    );
    let dir = tempfile_dir();
    std::fs::write(dir.join("a.cfg"), "include_file \"b.cfg\"\n").unwrap();
    std::fs::write(dir.join("b.cfg"), "include_file \"a.cfg\"\n").unwrap();
    let e = compat::translate_file(&dir.join("a.cfg"), &o).unwrap_err();
    assert!(e.to_string().contains("b.cfg:1:1: include loop"), "{e}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("compat-golden-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
