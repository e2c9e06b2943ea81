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

/// Two environments in one process (two daemons' registries) keep their
/// own settings for the same module, committed through the same path as
/// the daemon's (`Prepared::commit`).
#[test]
fn two_registries_keep_their_own_module_settings() {
    let commit = |max_contacts: u32| {
        let lua = mlua::Lua::new();
        let modules: mlua::Table = lua
            .load(format!(
                "return {{ registrar = {{ max_contacts = {max_contacts} }} }}"
            ))
            .eval()
            .unwrap();
        let reg = crate::state::Registry::new();
        super::prepare(&modules).unwrap().commit(&[], &reg).unwrap();
        reg
    };
    let (a, b) = (commit(3), commit(5));
    let env = |modules| crate::proxy::context::Env {
        worker: 0,
        sockets: std::sync::Arc::new(crate::transport::Sockets::new(&[], &[])),
        config: std::sync::Arc::new(crate::config::Config::default()),
        tm: std::sync::Arc::new(crate::proxy::tm::Tm::new(Default::default())),
        modules,
        tcp: Default::default(),
        load: Default::default(),
    };
    let (env_a, env_b) = (env(a.clone()), env(b.clone()));
    assert_eq!(env_a.module::<super::registrar::RegConf>().max_contacts, 3);
    assert_eq!(env_b.module::<super::registrar::RegConf>().max_contacts, 5);
    // A module's own accessor reads the registry its thread serves.
    let _in = crate::state::enter(a.clone());
    assert_eq!(super::registrar::conf().max_contacts, 3);
    let other = std::thread::spawn(move || {
        let _in = crate::state::enter(b);
        super::registrar::conf().max_contacts
    });
    assert_eq!(other.join().unwrap(), 5);
    assert_eq!(super::registrar::conf().max_contacts, 3);
}

/// A refused commit (a module that cannot load what its settings name)
/// leaves every module's settings in the registry as they were.
#[test]
fn refused_commit_changes_no_module_setting() {
    let lua = mlua::Lua::new();
    let reg = crate::state::Registry::new();
    let good: mlua::Table = lua
        .load("return { registrar = { max_contacts = 2 } }")
        .eval()
        .unwrap();
    super::prepare(&good).unwrap().commit(&[], &reg).unwrap();
    // registrar comes before domain in ALL: its new value is staged but
    // must not be installed when domain cannot load its table.
    let bad: mlua::Table = lua
        .load(
            "return { registrar = { max_contacts = 9 },
                      domain = { db_url = 'mysql://nobody@127.0.0.1:1/none', db_mode = 1 } }",
        )
        .eval()
        .unwrap();
    let refused = super::prepare(&bad).unwrap().commit(&[], &reg);
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(reg.module::<super::registrar::RegConf>().max_contacts, 2);
}
