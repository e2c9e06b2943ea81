//! MI commands of the domain module (OpenSIPS 3.4 names and shapes):
//! `domain_reload` reads the table again, `domain_dump` lists the cache.
//! Both need db_mode 1 ("command not activated" otherwise).

use serde_json::{json, Value};

use super::{cache, conf, reload_wait};
use crate::mi::{Command, Ctx, MiError};

fn active() -> Result<(), MiError> {
    match conf().db_mode {
        1 => Ok(()),
        _ => Err(MiError::new(500, "command not activated")),
    }
}

fn domain_reload(_: &Ctx, _: &crate::mi::Params) -> Result<Value, MiError> {
    active()?;
    match reload_wait(&conf()) {
        Ok(_) => Ok(Value::String("OK".into())),
        Err(e) => {
            tracing::error!("domain_reload: {e}");
            Err(MiError::new(500, "Domain table reload failed"))
        }
    }
}

fn domain_dump(_: &Ctx, _: &crate::mi::Params) -> Result<Value, MiError> {
    active()?;
    let mut list: Vec<(String, Option<String>)> = cache()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    list.sort();
    let domains: Vec<Value> = list
        .into_iter()
        .map(|(name, attrs)| match attrs {
            Some(a) => json!({ "name": name, "attributes": a }),
            None => json!({ "name": name }),
        })
        .collect();
    Ok(json!({ "Domains": domains }))
}

pub static COMMANDS: &[Command] = &[
    Command {
        name: "domain_reload",
        help: "Reads the domain table into memory again (db_mode 1); the old contents serve until it is read.",
        module: "domain",
        params: &[],
        result: "`\"OK\"`; 500 \"command not activated\" in db_mode 0, 500 \"Domain table reload failed\"",
        handler: domain_reload,
    },
    Command {
        name: "domain_dump",
        help: "The domains in memory with their attributes (db_mode 1).",
        module: "domain",
        params: &[],
        result: "`{\"Domains\": [{\"name\", \"attributes\"}]}`; 500 \"command not activated\" in db_mode 0",
        handler: domain_dump,
    },
];
