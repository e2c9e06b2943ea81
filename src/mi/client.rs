//! `lunasip mi CMD [ARGS…]`: sends one JSON-RPC request over HTTP (by
//! default to http://127.0.0.1:8888/mi) or a FIFO, prints the result as
//! pretty JSON, and fails on an error reply.
//!
//! Arguments are positional (`log_level 4`) or named (`log_level level=4`);
//! values go as strings, which the server converts to the declared types,
//! and a value that is a JSON array (`statistics=["core:","sl:"]`) goes as one.

use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Default endpoint of the HTTP transport.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8888/mi";
/// How long the client waits for a reply.
pub const TIMEOUT: Duration = Duration::from_secs(30);

fn value_of(s: &str) -> Value {
    if s.starts_with('[') {
        if let Ok(v @ Value::Array(_)) = serde_json::from_str::<Value>(s) {
            return v;
        }
    }
    Value::String(s.to_string())
}

/// Builds the request object for `cmd` and its command-line arguments.
pub fn request(cmd: &str, args: &[String], id: u64) -> Result<Value, String> {
    let named = args.iter().filter(|a| is_named(a)).count();
    let params = if args.is_empty() {
        None
    } else if named == args.len() {
        let mut m = Map::new();
        for a in args {
            if let Some((k, v)) = a.split_once('=') {
                m.insert(k.to_string(), value_of(v));
            }
        }
        Some(Value::Object(m))
    } else if named == 0 {
        Some(Value::Array(args.iter().map(|a| value_of(a)).collect()))
    } else {
        return Err("use either positional arguments or name=value ones, not both".into());
    };
    let mut req = json!({ "jsonrpc": "2.0", "method": cmd, "id": id });
    if let Some(p) = params {
        req["params"] = p;
    }
    Ok(req)
}

/// `name=value` where name looks like a parameter name.
fn is_named(a: &str) -> bool {
    a.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Splits `http://host:port/path`.
fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/mi"),
    };
    if hostport.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let hostport = if hostport.ends_with(']') || !hostport.contains(':') {
        format!("{hostport}:80")
    } else {
        hostport.to_string()
    };
    Ok((hostport, path.to_string()))
}

/// POSTs `body` and returns the reply body.
pub fn http_call(url: &str, token: Option<&str>, body: &str) -> Result<String, String> {
    let (hostport, path) = parse_url(url)?;
    // A blocking lookup: this is the `lunasip mi` command-line client,
    // never a worker thread.
    let addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .map_err(|e| format!("{hostport}: {e}"))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| format!("{hostport}: no address"))?;
    let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: not an HTTP reply"))?;
    let status = head.split(' ').nth(1).unwrap_or("");
    match status {
        "200" => Ok(body.to_string()),
        "204" => Ok(String::new()),
        _ => Err(format!(
            "{url}: HTTP {}",
            head.lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("HTTP/1.1 ")
        )),
    }
}

/// Sends `body` to the server FIFO and reads the reply from a FIFO of
/// our own in `reply_dir`.
pub fn fifo_call(fifo: &Path, reply_dir: &Path, body: &str) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = format!(
        "lunasip_fifo_reply_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    let reply = reply_dir.join(&name);
    super::fifo::mkfifo(&reply, 0o600).map_err(|e| format!("{}: {e}", reply.display()))?;
    struct Remove<'a>(&'a Path);
    impl Drop for Remove<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _cleanup = Remove(&reply);
    // Open our end first (non-blocking), so the server finds a reader.
    let mut rd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&reply)
        .map_err(|e| format!("{}: {e}", reply.display()))?;
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .map_err(|e| format!("{}: {e} (is lunasip running with mi_fifo?)", fifo.display()))?;
    w.write_all(format!(":{name}:{body}\n").as_bytes())
        .map_err(|e| format!("{}: {e}", fifo.display()))?;
    drop(w);
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let mut seen_writer = false;
    loop {
        match rd.read(&mut buf) {
            Ok(0) if seen_writer => break,
            Ok(0) => {}
            Ok(n) => {
                seen_writer = true;
                out.extend_from_slice(&buf[..n]);
                if serde_json::from_slice::<Value>(&out).is_ok() {
                    break;
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => seen_writer = true,
            Err(e) => return Err(format!("{}: {e}", reply.display())),
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no reply on {} within {TIMEOUT:?}",
                reply.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Where the client sends its request.
pub enum Transport<'a> {
    Http {
        url: &'a str,
        token: Option<&'a str>,
    },
    Fifo {
        path: &'a Path,
        reply_dir: &'a Path,
    },
}

/// Prints a line on stdout. A reader that went away (`lunasip mi … | head`)
/// ends the output quietly: `println!` would panic on the broken pipe.
fn print_line(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
        _ => Ok(()),
    }
}

/// Runs one command; prints the result (or the error object) as pretty
/// JSON; Err on a transport failure or an error reply.
pub fn run(t: Transport<'_>, cmd: &str, args: &[String]) -> Result<(), String> {
    let req = request(cmd, args, u64::from(std::process::id()))?;
    let body = req.to_string();
    let text = match t {
        Transport::Http { url, token } => http_call(url, token, &body)?,
        Transport::Fifo { path, reply_dir } => fifo_call(path, reply_dir, &body)?,
    };
    let v: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("the reply is not JSON ({e}): {}", text.trim()))?;
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    if let Some(err) = v.get("error") {
        print_line(&pretty(err))?;
        let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
        let msg = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error");
        let data = err
            .get("data")
            .and_then(Value::as_str)
            .map_or(String::new(), |d| format!(": {d}"));
        return Err(format!("{cmd}: error {code}: {msg}{data}"));
    }
    print_line(&pretty(v.get("result").unwrap_or(&Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let r = request("uptime", &[], 1).unwrap();
        assert!(r.get("params").is_none());
        let r = request("log_level", &["4".into(), "123".into()], 1).unwrap();
        assert_eq!(r["params"], json!(["4", "123"]));
        let r = request("log_level", &["level=4".into()], 1).unwrap();
        assert_eq!(r["params"], json!({"level": "4"}));
        let r = request(
            "get_statistics",
            &["statistics=[\"core:\",\"sl:\"]".into()],
            1,
        )
        .unwrap();
        assert_eq!(r["params"], json!({"statistics": ["core:", "sl:"]}));
        assert!(request("x", &["a=1".into(), "b".into()], 1).is_err());
        // A value with '=' that is not name=value stays positional.
        let r = request("x", &["=b".into()], 1).unwrap();
        assert_eq!(r["params"], json!(["=b"]));
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:9000/mi").unwrap(),
            ("127.0.0.1:9000".into(), "/mi".into())
        );
        assert_eq!(
            parse_url("http://localhost").unwrap(),
            ("localhost:80".into(), "/mi".into())
        );
        assert!(parse_url("https://x/mi").is_err());
    }
}
