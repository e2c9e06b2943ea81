//! What every module declares holds together: MI names are unique, each
//! declared statistic is listed by the MI, and `ALL` has no duplicates.

use super::ALL;
use crate::mi::{self, jsonrpc, Ctx};

fn call(method: &str, params: &str) -> serde_json::Value {
    let body = format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":1}}"#);
    jsonrpc::handle(&Ctx::detached(), body.as_bytes()).expect("a reply")
}

#[test]
fn mi_command_names_are_unique() {
    super::register();
    let mut seen = Vec::new();
    for c in mi::commands() {
        assert!(!seen.contains(&c.name), "MI command {} twice", c.name);
        seen.push(c.name);
    }
    for m in ALL {
        for c in m.mi {
            // A module split into tables ("core (cache)") exports as itself.
            let owner = m.name.split(" (").next().unwrap_or(m.name);
            assert_eq!(c.module, owner, "{} is exported by {}", c.name, m.name);
            assert!(std::ptr::eq(mi::lookup(c.name).expect(c.name), c));
        }
    }
    // Core commands first, then the modules' (`which` order).
    let core = mi::core::COMMANDS.len();
    assert!(seen[..core].contains(&"which") && seen[core..].contains(&"ds_list"));
}

#[test]
fn declared_statistics_are_in_get_statistics_all() {
    super::register();
    let all = call("get_statistics", r#"[["all"]]"#);
    let all = all["result"].as_object().expect("result");
    let kinds = call("list_statistics", "[]");
    let kinds = kinds["result"].as_object().expect("result");
    let mut n = 0;
    for m in ALL {
        for s in m.stats {
            let full = format!("{}:{}", m.name, s.name);
            assert!(
                all.contains_key(&full),
                "{full} missing from get_statistics all"
            );
            assert_eq!(kinds[&full], s.kind().opensips_name(), "{full}");
            n += 1;
        }
    }
    assert!(n >= 18, "sl, tm and dispatcher declare their statistics");
    let text = crate::mi::metrics::render();
    assert!(text.contains("lunasip_dispatcher_bad_rows "), "{text}");
}

#[test]
fn module_names_and_params_are_unique() {
    super::register();
    let mut names = Vec::new();
    for m in ALL {
        assert!(!names.contains(&m.name), "module {} twice", m.name);
        names.push(m.name);
        let mut keys = Vec::new();
        for p in m.params {
            assert!(
                !keys.contains(&p.name),
                "{}: param {} twice",
                m.name,
                p.name
            );
            keys.push(p.name);
        }
    }
}
