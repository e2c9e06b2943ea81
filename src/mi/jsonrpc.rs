//! JSON-RPC 2.0 as OpenSIPS 3.x's MI speaks it: one request object in, one
//! response object out; `params` an object (named) or an array
//! (positional); errors -32700, -32600, -32601, -32602 with OpenSIPS's
//! messages and details, and a command's own errors with its code.
//! A request without `id` is a notification: it runs, and gets no reply
//! unless it could not be parsed.

use serde_json::{json, Map, Value};

use super::{Command, Ctx, Kind, MiError, Params};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// A handler that failed without saying why (OpenSIPS "Server error").
pub const SERVER_ERROR: i64 = -32000;

/// A checked request.
pub struct Request {
    pub id: Value,
    /// False for notifications (no `id` member).
    pub wants_reply: bool,
    pub method: String,
    pub params: Option<Value>,
}

/// Builds an error response.
pub fn error(id: Value, e: &MiError) -> Value {
    let mut err = json!({ "code": e.code, "message": e.message });
    if let Some(d) = &e.data {
        err["data"] = Value::String(d.clone());
    }
    json!({ "jsonrpc": "2.0", "error": err, "id": id })
}

/// Builds a success response.
pub fn result(id: Value, r: Value) -> Value {
    json!({ "jsonrpc": "2.0", "result": r, "id": id })
}

/// Parses and checks the envelope. Errors come back as a full response
/// (they are always answered, even for notifications, as in OpenSIPS).
pub fn parse(body: &[u8]) -> Result<Request, Value> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| error(Value::Null, &MiError::new(PARSE_ERROR, "Parse error")))?;
    check(v)
}

/// Checks an already parsed JSON value as a request.
pub fn check(v: Value) -> Result<Request, Value> {
    let invalid = |id: Value| error(id, &MiError::new(INVALID_REQUEST, "Invalid Request"));
    let Value::Object(mut o) = v else {
        return Err(invalid(Value::Null));
    };
    let (id, wants_reply) = match o.remove("id") {
        None => (Value::Null, false),
        Some(id @ (Value::Null | Value::Number(_) | Value::String(_))) => (id, true),
        Some(_) => return Err(invalid(Value::Null)),
    };
    if o.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(id));
    }
    let method = match o.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err(invalid(id)),
    };
    let params = match o.remove("params") {
        None | Some(Value::Null) => None,
        Some(p @ (Value::Array(_) | Value::Object(_))) => Some(p),
        Some(_) => return Err(invalid(id)),
    };
    Ok(Request {
        id,
        wants_reply,
        method,
        params,
    })
}

/// Runs one request body; None when no reply is due (a notification).
pub fn handle(ctx: &Ctx, body: &[u8]) -> Option<Value> {
    let req = match parse(body) {
        Ok(r) => r,
        Err(resp) => return Some(resp),
    };
    let wants = req.wants_reply;
    let resp = run(ctx, req);
    wants.then_some(resp)
}

/// Runs a checked request and builds its response.
pub fn run(ctx: &Ctx, req: Request) -> Value {
    let _in = crate::state::enter(ctx.modules.clone());
    let Some(cmd) = super::lookup(&req.method) else {
        return error(req.id, &MiError::new(METHOD_NOT_FOUND, "Method not found"));
    };
    let params = match bind(cmd, req.params) {
        Ok(p) => p,
        Err(e) => return error(req.id, &e),
    };
    // A panicking handler must not take the MI thread down with it.
    let out =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (cmd.handler)(ctx, &params)));
    match out {
        Ok(Ok(v)) => result(req.id, v),
        Ok(Err(e)) => error(req.id, &e),
        Err(_) => error(
            req.id,
            &MiError::new(SERVER_ERROR, "Server error").with_data("command failed"),
        ),
    }
}

/// Matches the request's params against the declaration: positional
/// values by order, named ones by name; then converts each to its type.
pub fn bind(cmd: &Command, params: Option<Value>) -> Result<Params, MiError> {
    let decl = cmd.params;
    let required = decl.iter().filter(|p| p.required).count();
    let mut named = Map::new();
    match params {
        None if required > 0 => {
            return Err(MiError::params("Too few or too many parameters"));
        }
        None => {}
        Some(Value::Array(mut vals)) => {
            // A trailing array parameter takes every remaining value.
            if decl.last().is_some_and(|p| p.kind == Kind::Array) {
                let at = decl.len() - 1;
                if vals.len() > decl.len() || (vals.len() == decl.len() && !vals[at].is_array()) {
                    let rest: Vec<Value> = vals.drain(at..).collect();
                    vals.push(Value::Array(rest));
                }
            }
            if vals.len() < required || vals.len() > decl.len() {
                return Err(MiError::params("Too few or too many parameters"));
            }
            for (p, v) in decl.iter().zip(vals) {
                named.insert(p.name.to_string(), v);
            }
        }
        Some(Value::Object(o)) => {
            for k in o.keys() {
                if !decl.iter().any(|p| p.name == k) {
                    return Err(MiError::params("Named parameters do not match")
                        .with_data(format!("Named parameters do not match: unknown '{k}'")));
                }
            }
            if let Some(p) = decl.iter().find(|p| p.required && !o.contains_key(p.name)) {
                return Err(MiError::params(format!(
                    "Named parameters do not match: '{}' is missing",
                    p.name
                )));
            }
            named = o;
        }
        Some(_) => return Err(MiError::params("params must be an array or an object")),
    }
    let mut out = Map::new();
    for p in decl {
        let Some(v) = named.remove(p.name) else {
            continue;
        };
        let bad = || {
            MiError::params(format!(
                "Bad type for parameter '{}' (want {})",
                p.name,
                p.kind.name()
            ))
        };
        let v = match (p.kind, v) {
            (Kind::Str, Value::String(s)) => Value::String(s),
            (Kind::Str, Value::Number(n)) => Value::String(n.to_string()),
            (Kind::Int, Value::Number(n)) => Value::from(n.as_i64().ok_or_else(bad)?),
            (Kind::Int, Value::String(s)) => {
                Value::from(s.trim().parse::<i64>().map_err(|_| bad())?)
            }
            (Kind::Array, Value::String(s)) => Value::Array(vec![Value::String(s)]),
            (Kind::Array, Value::Array(a)) => {
                if !a.iter().all(Value::is_string) {
                    return Err(bad());
                }
                Value::Array(a)
            }
            (Kind::Object, Value::Object(o)) => Value::Object(o),
            (Kind::Object, Value::String(s)) => match serde_json::from_str::<Value>(&s) {
                Ok(Value::Object(o)) => Value::Object(o),
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        };
        out.insert(p.name.to_string(), v);
    }
    Ok(Params(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(body: &str) -> Value {
        handle(&Ctx::detached(), body.as_bytes()).expect("a reply")
    }

    fn code(v: &Value) -> i64 {
        v["error"]["code"].as_i64().unwrap_or(0)
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(code(&call("{nope")), PARSE_ERROR);
        assert_eq!(call("{nope")["id"], Value::Null);
        assert_eq!(code(&call("[1,2]")), INVALID_REQUEST);
        assert_eq!(
            code(&call(r#"{"jsonrpc":"1.0","method":"uptime","id":1}"#)),
            INVALID_REQUEST
        );
        assert_eq!(code(&call(r#"{"jsonrpc":"2.0","id":1}"#)), INVALID_REQUEST);
        assert_eq!(
            code(&call(r#"{"jsonrpc":"2.0","method":"uptime","id":{}}"#)),
            INVALID_REQUEST
        );
        assert_eq!(
            code(&call(
                r#"{"jsonrpc":"2.0","method":"uptime","params":3,"id":1}"#
            )),
            INVALID_REQUEST
        );
        let v = call(r#"{"jsonrpc":"2.0","method":"nope","id":7}"#);
        assert_eq!(code(&v), METHOD_NOT_FOUND);
        assert_eq!(v["id"], 7);
        let v = call(r#"{"jsonrpc":"2.0","method":"help","params":["a","b"],"id":"x"}"#);
        assert_eq!(code(&v), INVALID_PARAMS);
        assert_eq!(v["id"], "x");
        let v = call(r#"{"jsonrpc":"2.0","method":"log_level","params":{"lvl":1},"id":1}"#);
        assert_eq!(code(&v), INVALID_PARAMS);
        let v = call(r#"{"jsonrpc":"2.0","method":"log_level","params":{"level":"loud"},"id":1}"#);
        assert_eq!(code(&v), INVALID_PARAMS);
    }

    #[test]
    fn notifications_get_no_reply() {
        assert!(handle(&Ctx::detached(), br#"{"jsonrpc":"2.0","method":"uptime"}"#).is_none());
        assert!(handle(&Ctx::detached(), br#"{"jsonrpc":"2.0","method":"nope"}"#).is_none());
    }

    #[test]
    fn trailing_array_takes_the_rest() {
        let cmd = super::super::lookup("get_statistics").unwrap();
        let p = bind(cmd, Some(json!(["core:", "sl:"]))).unwrap();
        assert_eq!(p.strings("statistics"), vec!["core:", "sl:"]);
        let p = bind(cmd, Some(json!([["core:"]]))).unwrap();
        assert_eq!(p.strings("statistics"), vec!["core:"]);
        let p = bind(cmd, Some(json!({"statistics": "all"}))).unwrap();
        assert_eq!(p.strings("statistics"), vec!["all"]);
        assert!(bind(cmd, None).is_err());
        assert!(bind(cmd, Some(json!({"statistics": [1]}))).is_err());
    }

    #[test]
    fn random_bodies_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let seeds: [&[u8]; 4] = [
            br#"{"jsonrpc":"2.0","method":"get_statistics","params":[["core:"]],"id":1}"#,
            br#"{"jsonrpc":"2.0","method":"help","params":{"mi_cmd":"ps"},"id":"x"}"#,
            br#"{"jsonrpc":"2.0","method":"which","params":["help"],"id":null}"#,
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
        ];
        let ctx = Ctx::detached();
        for i in 0..3000 {
            let mut b = seeds[i % seeds.len()].to_vec();
            for _ in 0..rng.gen_range(1..6) {
                let at = rng.gen_range(0..b.len());
                match rng.gen_range(0..3) {
                    0 => b[at] = rng.gen(),
                    1 => {
                        b.remove(at);
                    }
                    _ => b.insert(
                        at,
                        *b"{}[]\":,0-e".get(rng.gen_range(0..12)).unwrap_or(&b'x'),
                    ),
                }
            }
            let _ = handle(&ctx, &b);
        }
    }

    #[test]
    fn qualified_names() {
        assert!(super::super::lookup("core:uptime").is_some());
        assert!(super::super::lookup("sl:uptime").is_none());
    }
}
