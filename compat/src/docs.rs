//! docs/migration.md, generated from the mapping table so the two never
//! drift (compat/tests/docs.rs compares them).

use crate::mapping;

/// The whole of docs/migration.md.
pub fn migration_markdown() -> String {
    let mut s = String::from(include_str!("migration_intro.md"));
    s.push_str("\n## The function table\n\n");
    s.push_str(
        "Every OpenSIPS function lunasip implements, and the Lua it becomes. Arguments keep \
         OpenSIPS's order; a number written as a string (`\"404\"`) becomes a number, a route \
         name becomes the key of its Lua route (`\"1\"` → `\"r1\"`), an unquoted \
         pseudo-variable where the function writes one becomes its spec as a string. \
         Functions not in this table are reported and left as `unsupported(...)`.\n\n",
    );
    s.push_str("| OpenSIPS | module | lunasip Lua | note |\n|---|---|---|---|\n");
    let mut rows = mapping::all();
    rows.sort_by(|a, b| a.opensips.cmp(b.opensips));
    for m in rows {
        s.push_str(&format!(
            "| `{}` | {} | `{}` | {} |\n",
            m.opensips,
            m.function.module,
            m.lua_signature(),
            m.note.unwrap_or("")
        ));
    }
    s.push_str("\n## Statements\n\n| OpenSIPS | lunasip Lua |\n|---|---|\n");
    for (os, lua) in mapping::CONTROL {
        let os = os.replace('|', "\\|");
        s.push_str(&format!("| `{os}` | {lua} |\n"));
    }
    s.push_str("\n## Modules with nothing to translate\n\n| module | why |\n|---|---|\n");
    for (m, why) in mapping::BUILT_IN {
        s.push_str(&format!("| `{m}` | {why} |\n"));
    }
    s
}
