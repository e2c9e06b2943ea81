//! docs/mi.md's command table is generated from the MI registry: it must be current.

#[test]
fn mi_doc_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/mi.md");
    let have = std::fs::read_to_string(path).unwrap_or_default();
    let start = "-->\n";
    let open = have
        .find("<!-- commands:")
        .expect("docs/mi.md lost its commands marker");
    let body_at = open + have[open..].find(start).unwrap() + start.len();
    let close = have
        .find("<!-- /commands -->")
        .expect("docs/mi.md lost its end marker");
    let want = format!(
        "{}{}{}",
        &have[..body_at],
        lunasip::mi::commands_markdown(),
        &have[close..]
    );
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/mi.md is stale: run `UPDATE_DOCS=1 cargo test --test mi_docs`"
    );
}
