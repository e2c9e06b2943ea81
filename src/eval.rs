//! `lunasip eval`: evaluate pseudo-variable specs and xlog-style strings
//! against a SIP message read from a file, without traffic. Route authors
//! try transformations with it; the tests use it too.

use bytes::Bytes;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use lunasip::config::{parse_listen, Config};
use lunasip::proxy::context::{Call, Source};
use lunasip::pv::{self, Value};
use lunasip::script::route::RouteType;
use lunasip::sip::Message;
use lunasip::transport::{Proto, Sockets};

/// Reads a message file; a file written with bare LF line ends (as an
/// editor saves it) gets CRLF, and a trailing newline after the headers
/// only is kept as the blank line.
fn read_message(path: &Path) -> Result<Message, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let raw = if raw.windows(2).any(|w| w == b"\r\n") {
        raw
    } else {
        let mut out = Vec::with_capacity(raw.len() + 64);
        for &b in &raw {
            if b == b'\n' {
                out.push(b'\r');
            }
            out.push(b);
        }
        out
    };
    Message::parse(Bytes::from(raw)).map_err(|e| format!("{}: {e}", path.display()))
}

/// A `--set` value: an integer when it reads as one, else text.
fn value_of(s: &str) -> Value {
    match s.parse::<i64>() {
        Ok(i) => Value::Int(i),
        Err(_) => Value::Str(s.to_string()),
    }
}

/// Evaluates one argument: a whole spec (`$(ru{uri.user})`) or an xlog
/// string (`"$rm from $si"`). Errors name the spec and the position.
fn eval_one(call: &Call, text: &str) -> Result<String, String> {
    let whole = text.trim_start().starts_with('$');
    if whole {
        if let Ok(spec) = pv::parse_spec_at(text) {
            return pv::eval(call, &spec).map(|v| v.to_string());
        }
    }
    let parts = pv::parse_format_at(text).map_err(|e| format!("'{text}': {e}"))?;
    let mut out = String::new();
    pv::try_format(call, &parts, &mut out)?;
    Ok(out)
}

/// Runs the subcommand: prints one line per spec.
pub fn run(
    message: &Path,
    source: Option<&str>,
    proto: Option<&str>,
    sets: &[String],
    specs: &[String],
) -> Result<(), String> {
    // `$stat(group:name)` and `$T_*` know the modules.
    lunasip::modules::register();
    let msg = read_message(message)?;
    let addr: SocketAddr = source
        .unwrap_or("127.0.0.1:5060")
        .parse()
        .map_err(|_| format!("--source: '{}' is not IP:PORT", source.unwrap_or("")))?;
    let proto = match proto {
        Some(p) => Proto::parse(p).ok_or_else(|| format!("--proto: unknown transport '{p}'"))?,
        None => Proto::Udp,
    };
    let cfg = Config {
        listen: vec![parse_listen(&format!("{}:127.0.0.1:5060", proto.as_str()))?],
        ..Config::default()
    };
    let mut call = Call::new();
    call.sockets = Some(Arc::new(
        Sockets::new(&cfg.listen, &cfg.aliases).with_mhomed(cfg.mhomed),
    ));
    let route = if msg.is_request() {
        RouteType::Request
    } else {
        RouteType::OnReply
    };
    call.reset(
        msg,
        Source {
            addr,
            proto,
            socket: 0,
        },
        route,
    );
    for s in sets {
        let (spec, v) = s
            .split_once('=')
            .ok_or_else(|| format!("--set '{s}': expected SPEC=VALUE"))?;
        let spec = pv::parse_spec(spec.trim()).map_err(|e| format!("--set: {e}"))?;
        pv::set(&mut call, &spec, value_of(v)).map_err(|e| format!("--set: {e}"))?;
    }
    let mut out = String::new();
    for s in specs {
        out.push_str(&eval_one(&call, s)?);
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
