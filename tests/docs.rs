//! docs/lua-api.md is generated from the export tables: it must be current.

#[test]
fn lua_api_doc_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lua-api.md");
    let want = lunasip::docs::lua_api_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/lua-api.md is stale: run `UPDATE_DOCS=1 cargo test --test docs`"
    );
}
