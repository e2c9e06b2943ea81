//! `config.blacklists`: the script's destination blacklists (OpenSIPS's
//! core `dst_blacklist` parameter), checked when the script loads.
//!
//! ```lua
//! config.blacklists = {
//!   gw = { "udp,127.0.0.2,5060", "!10.0.0.0/8" },            -- read-only
//!   learned = { flags = { "expire", "default" } },           -- filled at run time
//! }
//! ```

use mlua::{Table, Value};

use crate::transport::blacklist::{check_defs, Def, Flags, Rule};

/// Reads `config.blacklists` (absent: none). A list without `flags` is
/// read-only, as OpenSIPS makes a `dst_blacklist` given no flags.
pub(super) fn read_blacklists(t: &Table) -> Result<Vec<Def>, String> {
    let lists = match t.get::<Value>("blacklists").map_err(|e| e.to_string())? {
        Value::Nil => return Ok(Vec::new()),
        Value::Table(l) => l,
        other => {
            return Err(format!(
                "config.blacklists must be a table of named lists, not {}",
                other.type_name()
            ))
        }
    };
    let mut defs = Vec::new();
    for pair in lists.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        let Value::String(name) = k else {
            return Err("config.blacklists: lists are named (name = { rules… })".into());
        };
        let name = name.to_str().map_err(|e| e.to_string())?.to_string();
        let what = format!("config.blacklists.{name}");
        if name.is_empty() || name.eq_ignore_ascii_case("all") {
            return Err(format!("{what}: {name:?} cannot name a blacklist"));
        }
        let Value::Table(list) = v else {
            return Err(format!("{what} must be a table of rule strings"));
        };
        let flags = match list.get::<Value>("flags").map_err(|e| e.to_string())? {
            Value::Nil => Flags {
                readonly: true,
                ..Flags::default()
            },
            Value::String(s) => {
                let words: Vec<String> =
                    s.to_string_lossy().split(',').map(str::to_string).collect();
                Flags::parse(&words).map_err(|e| format!("{what}.flags: {e}"))?
            }
            Value::Table(f) => {
                let words = f
                    .sequence_values::<String>()
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("{what}.flags: a list of flag names"))?;
                Flags::parse(&words).map_err(|e| format!("{what}.flags: {e}"))?
            }
            other => {
                return Err(format!(
                    "{what}.flags must be a list of names, not {}",
                    other.type_name()
                ))
            }
        };
        let mut rules = Vec::new();
        for (i, r) in list.sequence_values::<Value>().enumerate() {
            let Ok(Value::String(r)) = r else {
                return Err(format!("{what}[{}] must be a rule string", i + 1));
            };
            let r =
                Rule::parse(&r.to_string_lossy()).map_err(|e| format!("{what}[{}]: {e}", i + 1))?;
            if !rules.contains(&r) {
                rules.push(r);
            }
        }
        defs.push(Def { name, flags, rules });
    }
    // Lua tables have no order: lists are numbered by name.
    defs.sort_by(|a, b| a.name.cmp(&b.name));
    check_defs(&defs).map_err(|e| format!("config.blacklists: {e}"))?;
    Ok(defs)
}
