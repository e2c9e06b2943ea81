//! docs/migration.md is generated from the mapping table:
//! `UPDATE_DOCS=1 cargo test -p lunasip-compat --test docs` rewrites it.

#[test]
fn migration_doc_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/migration.md");
    let want = compat::docs::migration_markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/migration.md is stale: run `UPDATE_DOCS=1 cargo test -p lunasip-compat --test docs`"
    );
}
