//! `config.modules` checked against what the modules declare: every key
//! names a module (or a section the core reads), every key inside it a
//! declared parameter of that module, with the value type it declares. A
//! typo is an error naming the key and the nearest declared name, before
//! anything runs (OpenSIPS refuses an unknown `modparam` the same way).

use mlua::{Table, Value};

use super::{Module, ParamKind, ALL};

/// Checks `config.modules`; `core` names the sections the core reads
/// itself (`mi_http`, `mi_fifo`).
pub fn check(modules: &Table, core: &[&str]) -> Result<(), String> {
    for pair in modules.clone().pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        let Value::String(name) = k else {
            return Err("config.modules: keys are module names".into());
        };
        let name = name.to_str().map_err(|e| e.to_string())?.to_string();
        if core.contains(&name.as_str()) {
            continue;
        }
        let Some(m) = ALL.iter().find(|m| m.name == name) else {
            let known: Vec<&str> = ALL
                .iter()
                .filter(|m| !m.params.is_empty())
                .map(|m| m.name)
                .chain(core.iter().copied())
                .collect();
            return Err(format!(
                "config.modules.{name}: no such module{} (modules with settings: {})",
                hint(&name, known.iter().copied()),
                known.join(", ")
            ));
        };
        let Value::Table(t) = v else {
            return Err(format!(
                "config.modules.{name} must be a table, not {}",
                v.type_name()
            ));
        };
        check_module(m, &t)?;
    }
    Ok(())
}

fn check_module(m: &Module, t: &Table) -> Result<(), String> {
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        let Value::String(key) = k else {
            return Err(format!(
                "config.modules.{}: keys are parameter names",
                m.name
            ));
        };
        let key = key.to_str().map_err(|e| e.to_string())?.to_string();
        let Some(p) = m
            .params
            .iter()
            .find(|p| p.name == key || p.also.contains(&&*key))
        else {
            let names = m.params.iter().map(|p| p.name);
            return Err(format!(
                "config.modules.{}.{key}: unknown parameter{} (declared: {})",
                m.name,
                hint(&key, names.clone()),
                names.collect::<Vec<_>>().join(", ")
            ));
        };
        if !fits(p.kind, &v) {
            return Err(format!(
                "config.modules.{}.{key} must be {}, not {}",
                m.name,
                p.kind.name(),
                v.type_name()
            ));
        }
    }
    Ok(())
}

/// Whether a value suits a declared kind. Strings also take numbers and
/// tables (lists such as `ds_probing_list = { 1, 3 }`); modules check the
/// finer shape when they read it.
fn fits(kind: ParamKind, v: &Value) -> bool {
    match kind {
        // The modules' readers take a numeric string too ("5").
        ParamKind::Int => match v {
            Value::Integer(_) | Value::Number(_) => true,
            Value::String(s) => s.to_str().is_ok_and(|s| s.trim().parse::<f64>().is_ok()),
            _ => false,
        },
        ParamKind::Bool => matches!(v, Value::Boolean(_) | Value::Integer(0 | 1)),
        ParamKind::Str => matches!(
            v,
            Value::String(_) | Value::Integer(_) | Value::Number(_) | Value::Table(_)
        ),
        ParamKind::Table => matches!(v, Value::Table(_)),
    }
}

/// `" (did you mean X?)"` for the nearest name within two edits.
fn hint<'a>(wrong: &str, names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| {
            (
                distance(&wrong.to_ascii_lowercase(), &n.to_ascii_lowercase()),
                n,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min()
        .map_or(String::new(), |(_, n)| format!(" (did you mean {n}?)"))
}

/// Levenshtein distance (names are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: &str) -> Result<(), String> {
        let lua = mlua::Lua::new();
        let t: Table = lua.load(code).eval().expect("table");
        check(&t, &["mi_http"])
    }

    #[test]
    fn declared_parameters_pass_and_typos_name_the_nearest() {
        assert_eq!(
            run("return { tm = { fr_timeout = 2, T1_timer = 300 }, mi_http = { port = 1 } }"),
            Ok(())
        );
        let e = run("return { tm = { fr_timout = 2 } }").unwrap_err();
        assert!(
            e.starts_with(
                "config.modules.tm.fr_timout: unknown parameter (did you mean fr_timeout?)"
            ),
            "{e}"
        );
        let e = run("return { dispacher = {} }").unwrap_err();
        assert!(
            e.contains("no such module (did you mean dispatcher?)"),
            "{e}"
        );
        assert_eq!(run("return { tm = { fr_timeout = '5' } }"), Ok(()));
        let e = run("return { tm = { fr_timeout = 'x' } }").unwrap_err();
        assert_eq!(e, "config.modules.tm.fr_timeout must be int, not string");
        let e = run("return { tm = 5 }").unwrap_err();
        assert_eq!(e, "config.modules.tm must be a table, not integer");
    }

    #[test]
    fn edit_distance() {
        assert_eq!(distance("fr_timout", "fr_timeout"), 1);
        assert_eq!(distance("abc", "abc"), 0);
        assert_eq!(distance("", "ab"), 2);
    }
}
