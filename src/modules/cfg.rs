//! Reading `config.modules.<name>` keys with errors that name them
//! (shared by the modules).

use mlua::{Table, Value};

/// `config.modules.<name>` (None when absent).
pub fn table(modules: &Table, name: &str) -> Result<Option<Table>, String> {
    match modules.get::<Value>(name).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        Value::Table(t) => Ok(Some(t)),
        other => Err(format!(
            "config.modules.{name} must be a table, not {}",
            other.type_name()
        )),
    }
}

pub fn str(t: &Table, m: &str, key: &str) -> Result<Option<String>, String> {
    match t.get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_str().map_err(|e| e.to_string())?.to_string())),
        Value::Integer(i) => Ok(Some(i.to_string())),
        other => Err(format!(
            "config.modules.{m}.{key} must be a string, not {}",
            other.type_name()
        )),
    }
}

pub fn int(t: &Table, m: &str, key: &str) -> Result<Option<i64>, String> {
    match t.get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        Value::Integer(i) => Ok(Some(i)),
        Value::Number(n) if n.fract() == 0.0 => Ok(Some(n as i64)),
        Value::String(s) => s
            .to_str()
            .map_err(|e| e.to_string())?
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("config.modules.{m}.{key} must be a number")),
        other => Err(format!(
            "config.modules.{m}.{key} must be a number, not {}",
            other.type_name()
        )),
    }
}

/// A boolean (OpenSIPS's 0/1 accepted).
pub fn bool(t: &Table, m: &str, key: &str) -> Result<Option<bool>, String> {
    match t.get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        Value::Boolean(b) => Ok(Some(b)),
        Value::Integer(i) => Ok(Some(i != 0)),
        other => Err(format!(
            "config.modules.{m}.{key} must be true/false or 0/1, not {}",
            other.type_name()
        )),
    }
}
