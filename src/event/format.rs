//! The payloads an event goes out as: OpenSIPS 3.x's JSON-RPC
//! notification, OpenSIPS 2.x's text datagram (event_datagram before 3.0)
//! and one event_flatstore line.

use serde_json::{Map, Value};

/// The OpenSIPS 3.x notification: `{"jsonrpc":"2.0","method":NAME,"params":{…}}`,
/// written straight into one buffer (no copy of `params`; this runs on
/// the worker for every event raised).
pub fn json(name: &str, params: &Map<String, Value>) -> String {
    let mut out = Vec::with_capacity(48 + name.len() + 48 * params.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","method":"#);
    // Writing strings and a map of values into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, name);
    out.extend_from_slice(br#","params":"#);
    let _ = serde_json::to_writer(&mut out, params);
    out.push(b'}');
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A parameter's value as text: strings as they are, numbers in decimal,
/// null as nothing.
fn text_of(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => s.as_str().into(),
        Value::Null => "".into(),
        Value::Bool(b) => if *b { "1" } else { "0" }.into(),
        other => other.to_string().into(),
    }
}

/// OpenSIPS 2.x event_datagram text: the name, then `name::value` per
/// parameter, each on its own line, and an empty line. A value holding a
/// newline is quoted, its `"` escaped with `\`.
pub fn text(name: &str, params: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(64);
    out.push_str(name);
    out.push('\n');
    for (k, v) in params {
        out.push_str(k);
        out.push_str("::");
        let v = text_of(v);
        if v.contains('\n') {
            out.push('"');
            out.push_str(&v.replace('"', "\\\""));
            out.push('"');
        } else {
            out.push_str(&v);
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

/// One event_flatstore line: the name (unless suppressed) and the values
/// in declared order, separated by `delimiter`, then a newline.
pub fn flat_line(
    name: &str,
    params: &Map<String, Value>,
    delimiter: &str,
    suppress_name: bool,
) -> String {
    let mut out = String::with_capacity(64);
    let mut first = true;
    if !suppress_name {
        out.push_str(name);
        first = false;
    }
    for v in params.values() {
        if !first {
            out.push_str(delimiter);
        }
        first = false;
        out.push_str(&text_of(v));
    }
    out.push('\n');
    out
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
            json("E_X", &params()),
            r#"{"jsonrpc":"2.0","method":"E_X","params":{"group":1,"address":"sip:a@b","status":"inactive","note":"x\n\"y\""}}"#
        );
    }

    #[test]
    fn text_is_the_2x_datagram() {
        assert_eq!(
            text("E_X", &params()),
            "E_X\ngroup::1\naddress::sip:a@b\nstatus::inactive\nnote::\"x\n\\\"y\\\"\"\n\n"
        );
    }

    #[test]
    fn flat_lines_list_values() {
        let mut p = params();
        p.shift_remove("note");
        assert_eq!(flat_line("E_X", &p, ",", false), "E_X,1,sip:a@b,inactive\n");
        assert_eq!(flat_line("E_X", &p, ";", true), "1;sip:a@b;inactive\n");
        assert_eq!(flat_line("E_X", &Map::new(), ",", false), "E_X\n");
    }
}
