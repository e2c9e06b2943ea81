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

/// A parameter OpenSIPS repeats on several `modparam` lines: one string
/// or a list of them (empty when absent).
pub fn str_list(t: &Table, m: &str, key: &str) -> Result<Vec<String>, String> {
    match t.get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Table(list) => list
            .sequence_values::<String>()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("config.modules.{m}.{key}: {e}")),
        _ => Ok(str(t, m, key)?.into_iter().collect()),
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

/// A branch flag: a number (0-63), or a name as OpenSIPS 3 configs write
/// it (`"NAT"`): the bit `setbflag("NAT")` uses.
pub fn bflag(t: &Table, m: &str, key: &str) -> Result<Option<u32>, String> {
    flag_of(t, m, key, crate::modules::core::branch_flag_bit)
}

/// A message flag, as [`bflag`]: the bit `setflag("NAME")` uses.
pub fn flag(t: &Table, m: &str, key: &str) -> Result<Option<u32>, String> {
    flag_of(t, m, key, crate::modules::core::msg_flag_bit)
}

fn flag_of(
    t: &Table,
    m: &str,
    key: &str,
    named: fn(&str) -> Option<u32>,
) -> Result<Option<u32>, String> {
    let bad = |n: i64| format!("config.modules.{m}.{key}: {n} is not a flag (0-63)");
    match t.get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        Value::Integer(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n < 64)
            .map(Some)
            .ok_or_else(|| bad(n)),
        Value::String(s) => {
            let name = s.to_str().map_err(|e| e.to_string())?.trim().to_string();
            match name.parse::<i64>() {
                Ok(n) if (0..64).contains(&n) => Ok(Some(n as u32)),
                Ok(n) => Err(bad(n)),
                Err(_) if name.is_empty() => Ok(None),
                Err(_) => named(&name).map(Some).ok_or_else(|| {
                    format!("config.modules.{m}.{key}: too many named flags (32 at most)")
                }),
            }
        }
        other => Err(format!(
            "config.modules.{m}.{key} must be a flag number or name, not {}",
            other.type_name()
        )),
    }
}
