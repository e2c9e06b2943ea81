//! Generated docs must be current: docs/lua-api.md (export tables),
//! docs/statistics.md (declared statistics), docs/modules.md (modules).

fn check(file: &str, want: String) {
    let path = format!("{}/docs/{file}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/{file} is stale: run `UPDATE_DOCS=1 cargo test --test docs`"
    );
}

#[test]
fn lua_api_doc_is_current() {
    check("lua-api.md", lunasip::docs::lua_api_markdown());
}

#[test]
fn statistics_doc_is_current() {
    lunasip::modules::register();
    check("statistics.md", lunasip::stats::statistics_markdown());
}

#[test]
fn modules_doc_is_current() {
    check("modules.md", lunasip::docs::modules_markdown());
}
