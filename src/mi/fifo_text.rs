//! OpenSIPS 2.x's FIFO text format, which 2.x-era scripts and
//! `opensipsctl` write (2.4 `modules/mi_fifo/fifo_fnc.c`, `mi_writer.c`):
//! a request is `:command:reply_fifo` on one line, then one argument per
//! line, then an empty line; the reply is `code reason`, then one
//! `name:: value` line per item (a tab more for each level down), then an
//! empty line. The command runs through the same JSON-RPC handler as the
//! 3.x format; its JSON result is written as that tree.

use serde_json::{json, Value};

/// A 2.x request: command, reply FIFO name, positional arguments.
#[derive(Debug, PartialEq)]
pub struct TextRequest {
    pub command: String,
    pub reply: String,
    pub args: Vec<String>,
}

/// Whether the bytes after `:name:` start a 2.x request: the rest of the
/// line is a reply FIFO name, not JSON (3.x puts the JSON right there or
/// on the next line).
pub fn is_text(after: &[u8]) -> bool {
    let line_end = after.iter().position(|b| *b == b'\n');
    let line = &after[..line_end.unwrap_or(after.len())];
    let first = line.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b) => *b != b'{',
        // An empty rest of line: JSON when the next text is an object.
        None => line_end.is_some_and(|e| {
            after[e..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b != b'{')
        }),
    }
}

/// Parses a 2.x request whose `:command:` is `command` and whose rest
/// starts at `after`; None when the empty line that ends it has not come
/// yet. Returns the request and the bytes it used from `after`.
pub fn parse(command: &str, after: &[u8]) -> Option<(TextRequest, usize)> {
    let text = std::str::from_utf8(after).ok()?;
    let mut used = 0;
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().filter(|l| l.ends_with('\n'))?;
    used += first.len();
    let reply = first.trim().to_string();
    let mut args = Vec::new();
    for line in lines {
        if !line.ends_with('\n') {
            return None;
        }
        used += line.len();
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            return Some((
                TextRequest {
                    command: command.to_string(),
                    reply,
                    args,
                },
                used,
            ));
        }
        // 2.x named arguments (`name::value`) are taken by position.
        let v = l.split_once("::").map_or(l, |(_, v)| v.trim_start());
        args.push(v.to_string());
    }
    None
}

/// The JSON-RPC request a 2.x request stands for.
pub fn to_jsonrpc(r: &TextRequest) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "method": r.command, "params": r.args, "id": 1})
        .to_string()
        .into_bytes()
}

/// A JSON-RPC response written as 2.x's reply text.
pub fn reply_text(resp: &Value) -> String {
    if let Some(e) = resp.get("error") {
        let code = e.get("code").and_then(Value::as_i64).unwrap_or(500);
        let code = if (100..700).contains(&code) {
            code
        } else {
            500
        };
        let msg = e.get("message").and_then(Value::as_str).unwrap_or("Error");
        return format!("{code} {}\n\n", one_line(msg));
    }
    let mut out = String::from("200 OK\n");
    match resp.get("result") {
        Some(Value::String(s)) if s == "OK" => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                node(&mut out, k, v, 0);
            }
        }
        Some(Value::Array(a)) => {
            for v in a {
                node(&mut out, "", v, 0);
            }
        }
        Some(Value::Null) | None => {}
        Some(other) => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => one_line(s),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `name:: value` at `level` tabs; an object's fields and an array's
/// items go one level down (an array of scalars repeats the name).
fn node(out: &mut String, name: &str, v: &Value, level: usize) {
    let line = |out: &mut String, value: &str| {
        out.push_str(&"\t".repeat(level));
        if !name.is_empty() {
            out.push_str(name);
            out.push_str(":: ");
        }
        out.push_str(value);
        out.push('\n');
    };
    match v {
        Value::Object(m) => {
            line(out, "");
            for (k, v) in m {
                node(out, k, v, level + 1);
            }
        }
        Value::Array(a) => {
            for item in a {
                match item {
                    Value::Object(_) | Value::Array(_) => node(out, name, item, level),
                    s => line(out, &scalar(s)),
                }
            }
        }
        s => line(out, &scalar(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert!(is_text(b"reply_fifo\n\n"));
        assert!(!is_text(b"{\"jsonrpc\":\"2.0\"}"));
        assert!(!is_text(b"\n{\"jsonrpc\":\"2.0\"}"));
        assert_eq!(parse("uptime", b"rf\n"), None);
        let (r, used) = parse("log_level", b"rf\n4\n\nnext").unwrap();
        assert_eq!(
            r,
            TextRequest {
                command: "log_level".into(),
                reply: "rf".into(),
                args: vec!["4".into()]
            }
        );
        assert_eq!(used, 6);
    }

    #[test]
    fn replies() {
        let ok = json!({"jsonrpc": "2.0", "result": "OK", "id": 1});
        assert_eq!(reply_text(&ok), "200 OK\n\n");
        let tree =
            json!({"result": {"Now": "x", "Processes": [{"PID": 1, "Type": "a"}], "L": [1, 2]}});
        assert_eq!(
            reply_text(&tree),
            "200 OK\nNow:: x\nProcesses:: \n\tPID:: 1\n\tType:: a\nL:: 1\nL:: 2\n\n"
        );
        let err = json!({"error": {"code": -32601, "message": "Method not found"}});
        assert_eq!(reply_text(&err), "500 Method not found\n\n");
        let e404 = json!({"error": {"code": 404, "message": "Statistics Not Found"}});
        assert_eq!(reply_text(&e404), "404 Statistics Not Found\n\n");
    }
}
