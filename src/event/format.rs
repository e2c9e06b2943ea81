//! The payloads an event goes out as: OpenSIPS 3.x's JSON-RPC
//! notification, OpenSIPS 2.x's text datagram (event_datagram before 3.0)
//! and one event_flatstore line.
//!
//! Each is written straight from the parameters as their owner holds them
//! ([`Params`]: a JSON map, or the script's Lua table) into one buffer:
//! this runs on the worker for every event raised, so no intermediate
//! map or value is built.

use serde_json::{Map, Value};

/// One parameter's value, borrowed from wherever the parameters live.
#[derive(Clone, Copy)]
pub enum Param<'a> {
    Int(i64),
    /// A Lua number: finite in decimal, NaN and infinities as null.
    Num(f64),
    Bool(bool),
    Str(&'a str),
    /// Any JSON value (MI `raise_event`, module events).
    Json(&'a Value),
}

impl Param<'_> {
    /// The value as a [`Value`], for `event_route`'s parameter table.
    pub fn to_value(self) -> Value {
        match self {
            Param::Int(n) => Value::from(n),
            Param::Num(n) => Value::from(n),
            Param::Bool(b) => Value::from(b),
            Param::Str(s) => Value::from(s),
            Param::Json(v) => v.clone(),
        }
    }
}

/// An event's parameters, visited in order.
pub trait Params {
    /// Calls `f` for each parameter in order; an error (a parameter that
    /// cannot be sent) stops the walk.
    fn visit(&self, f: &mut dyn FnMut(&str, Param<'_>)) -> Result<(), String>;

    /// The parameters as a map (for `event_route`, which runs later).
    fn to_map(&self) -> Result<Map<String, Value>, String> {
        let mut m = Map::new();
        self.visit(&mut |k, v| {
            m.insert(k.to_string(), v.to_value());
        })?;
        Ok(m)
    }
}

impl Params for Map<String, Value> {
    fn visit(&self, f: &mut dyn FnMut(&str, Param<'_>)) -> Result<(), String> {
        for (k, v) in self {
            f(k, Param::Json(v));
        }
        Ok(())
    }

    fn to_map(&self) -> Result<Map<String, Value>, String> {
        Ok(self.clone())
    }
}

/// Appends `s` as a JSON string (quoted, escaped as serde_json does).
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn json_value(out: &mut Vec<u8>, v: Param<'_>) {
    match v {
        Param::Int(n) => {
            let _ = serde_json::to_writer(&mut *out, &n);
        }
        // serde_json writes a non-finite f64 as null, as Value::from does.
        Param::Num(n) => {
            let _ = serde_json::to_writer(&mut *out, &n);
        }
        Param::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Param::Str(s) => json_str(out, s),
        Param::Json(v) => {
            let _ = serde_json::to_writer(&mut *out, v);
        }
    }
}

/// The OpenSIPS 3.x notification: `{"jsonrpc":"2.0","method":NAME,"params":{…}}`,
/// written straight into one buffer.
pub fn json(name: &str, params: &dyn Params) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(160 + name.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"#);
    json_str(&mut out, name);
    out.extend_from_slice(br#","params":{"#);
    let mut first = true;
    params.visit(&mut |k, v| {
        if !first {
            out.push(b',');
        }
        first = false;
        json_str(&mut out, k);
        out.push(b':');
        json_value(&mut out, v);
    })?;
    out.extend_from_slice(b"}}");
    Ok(out)
}

/// A parameter's value as text: strings as they are, numbers in decimal,
/// null (and a non-finite number) as nothing, booleans as 1/0.
fn push_text(out: &mut String, v: Param<'_>) {
    use std::fmt::Write;
    match v {
        Param::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Param::Num(n) => {
            if let Value::Number(n) = Value::from(n) {
                let _ = write!(out, "{n}");
            }
        }
        Param::Bool(b) => out.push(if b { '1' } else { '0' }),
        Param::Str(s) => out.push_str(s),
        Param::Json(Value::String(s)) => out.push_str(s),
        Param::Json(Value::Null) => {}
        Param::Json(Value::Bool(b)) => out.push(if *b { '1' } else { '0' }),
        Param::Json(other) => {
            let _ = write!(out, "{other}");
        }
    }
}

/// OpenSIPS 2.x event_datagram text: the name, then `name::value` per
/// parameter, each on its own line, and an empty line. A value holding a
/// newline is quoted, its `"` escaped with `\`.
pub fn text(name: &str, params: &dyn Params) -> Result<Vec<u8>, String> {
    let mut out = String::with_capacity(64);
    out.push_str(name);
    out.push('\n');
    let mut v = String::new();
    params.visit(&mut |k, p| {
        out.push_str(k);
        out.push_str("::");
        v.clear();
        push_text(&mut v, p);
        if v.contains('\n') {
            out.push('"');
            out.push_str(&v.replace('"', "\\\""));
            out.push('"');
        } else {
            out.push_str(&v);
        }
        out.push('\n');
    })?;
    out.push('\n');
    Ok(out.into_bytes())
}

/// One event_flatstore line: the name (unless suppressed) and the values
/// in declared order, separated by `delimiter`, then a newline.
pub fn flat_line(
    name: &str,
    params: &dyn Params,
    delimiter: &str,
    suppress_name: bool,
) -> Result<String, String> {
    let mut out = String::with_capacity(64);
    let mut first = true;
    if !suppress_name {
        out.push_str(name);
        first = false;
    }
    params.visit(&mut |_, v| {
        if !first {
            out.push_str(delimiter);
        }
        first = false;
        push_text(&mut out, v);
    })?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params() -> Map<String, Value> {
        match json!({"group": 1, "address": "sip:a@b", "status": "inactive", "note": "x\n\"y\""}) {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn json_keeps_the_declared_order() {
        assert_eq!(
            String::from_utf8(json("E_X", &params()).unwrap()).unwrap(),
            r#"{"jsonrpc":"2.0","method":"E_X","params":{"group":1,"address":"sip:a@b","status":"inactive","note":"x\n\"y\""}}"#
        );
    }

    /// The notification is serde_json's, byte for byte, for any values an
    /// MI `raise_event` or a module may give (nested, floats, escapes).
    #[test]
    fn json_is_serde_jsons_notification() {
        let m = match json!({"a": {"x": [1, 2.5, null]}, "b": -7, "c": 1e300, "d": "\u{1}\"é\\",
                             "e": true, "f": null, "g": u64::MAX})
        {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let want = serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": "E_\"Q", "params": m}))
            .expect("serde");
        assert_eq!(json("E_\"Q", &m).expect("json"), want);
    }

    #[test]
    fn text_is_the_2x_datagram() {
        assert_eq!(
            String::from_utf8(text("E_X", &params()).unwrap()).unwrap(),
            "E_X\ngroup::1\naddress::sip:a@b\nstatus::inactive\nnote::\"x\n\\\"y\\\"\"\n\n"
        );
    }

    #[test]
    fn flat_lines_list_values() {
        let mut p = params();
        p.shift_remove("note");
        assert_eq!(
            flat_line("E_X", &p, ",", false).unwrap(),
            "E_X,1,sip:a@b,inactive\n"
        );
        assert_eq!(
            flat_line("E_X", &p, ";", true).unwrap(),
            "1;sip:a@b;inactive\n"
        );
        assert_eq!(flat_line("E_X", &Map::new(), ",", false).unwrap(), "E_X\n");
    }
}
