//! The management interface end to end: the built daemon, its HTTP and
//! FIFO transports, and the `lunasip mi` client.

mod client;
#[path = "../common/mod.rs"]
mod common;
mod http;
mod runtime;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DEFAULT: &str = include_str!("../../lua/default.lua");

/// A daemon with the MI on a port and a FIFO of its own.
struct Mi {
    proxy: Proxy,
    port: u16,
    fifo: PathBuf,
    _dir: tempfile::TempDir,
}

/// `config.modules` text turning on the MI for this test.
fn modules(port: u16, fifo: &Path, extra: &str) -> String {
    format!(
        "modules = {{ mi_http = {{ ip = \"127.0.0.1\", port = {port}{extra} }}, mi_fifo = {{ fifo_name = \"{}\" }} }},",
        fifo.display()
    )
}

/// Starts `script` (its `config = {` gets the MI settings). Without a
/// `token` in `extra` the MI is opened (`token = false`) so the tests of
/// commands need no token.
fn start_with(script: &str, extra: &str) -> Mi {
    let open = if extra.contains("token") {
        extra.to_string()
    } else {
        format!("{extra}, token = false")
    };
    let extra = open.as_str();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("lunasip_fifo");
    let port = free_port();
    assert!(script.contains("config = {"));
    let script = script.replacen(
        "config = {",
        &format!("config = {{\n  {}", modules(port, &fifo, extra)),
        1,
    );
    let proxy = Proxy::start(&script);
    Mi {
        proxy,
        port,
        fifo,
        _dir: dir,
    }
}

/// A script answering every request with `200 <reason>`, logging at debug
/// and info level on the way; without `udp_pack`, so that requests from
/// many source ports reach both workers (tests/mi/runtime.rs sets one
/// worker's log level).
fn answering(reason: &str) -> String {
    format!(
        "config = {{ listen = {{ \"udp:127.0.0.1:{{PORT}}\", \"tcp:127.0.0.1:{{PORT}}\" }}, children = 2, udp_pack = false }}\n\
         function route.main()\n\
         \x20 sip.xlog(\"L_DBG\", \"dbg-marker $ci\")\n\
         \x20 sip.xlog(\"L_INFO\", \"info-marker $ci\")\n\
         \x20 sip.update_stat(\"script:seen\", 1)\n\
         \x20 sip.sl.sl_send_reply(200, \"{reason}\")\n\
         end\n"
    )
}

/// One raw HTTP exchange: (status, body).
fn http(port: u16, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the MI");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (h, b) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = h
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, b.to_string())
}

/// A JSON-RPC call over raw HTTP; the whole response object.
fn rpc(port: u16, method: &str, params: Value) -> Value {
    let req = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 42});
    let (status, body) = http(port, "POST", "/mi", "", req.to_string().as_bytes());
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["id"], 42);
    v
}

fn result(port: u16, method: &str, params: Value) -> Value {
    let v = rpc(port, method, params);
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

/// Runs `lunasip mi ARGS`: (success, stdout, stderr).
fn cli(args: &[&str]) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lunasip"));
    cli_run(c.arg("mi").args(args))
}

fn cli_run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_http(m: &Mi, args: &[&str]) -> (bool, Value, String) {
    let url = format!("http://127.0.0.1:{}/mi", m.port);
    let mut all = vec!["--url", &url];
    all.extend_from_slice(args);
    let (ok, out, err) = cli(&all);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} / {err}"));
    (ok, v, err)
}

fn cli_fifo(m: &Mi, args: &[&str]) -> (bool, Value, String) {
    // The reply FIFO goes beside the server's by default.
    let fifo = m.fifo.display().to_string();
    let mut all = vec!["--fifo", &fifo];
    all.extend_from_slice(args);
    let (ok, out, err) = cli(&all);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} / {err}"));
    (ok, v, err)
}

fn options(port: u16, call_id: &str) -> String {
    let msg = format!("OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKmi{{LPORT}}\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    udp_exchange(&format!("127.0.0.1:{port}"), &msg, Duration::from_secs(3)).unwrap_or_default()
}

#[test]
fn core_commands_answer_with_opensips_shapes() {
    let m = start_with(&answering("OK"), "");
    let p = m.port;
    let up = result(p, "uptime", json!([]));
    assert!(up["Up time"].as_str().unwrap().ends_with(" [sec]"), "{up}");
    assert!(up["Now"].is_string() && up["Up since"].is_string());
    assert_eq!(
        result(p, "version", json!([]))["Server"],
        format!("lunasip {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(result(p, "pwd", json!([]))["WD"].is_string());
    let args = result(p, "arg", json!([]));
    assert_eq!(args[1], "run", "{args}");
    let which = result(p, "which", json!([]));
    for c in [
        "arg",
        "which",
        "help",
        "ps",
        "uptime",
        "version",
        "pwd",
        "log_level",
        "get_statistics",
        "list_statistics",
        "reset_statistics",
        "list_tcp_conns",
        "kill",
        "reload_routes",
    ] {
        assert!(
            which.as_array().unwrap().contains(&json!(c)),
            "{c}: {which}"
        );
    }
    // The daemon lists what every module declares: its commands in
    // `which`, its statistics in `get_statistics all`.
    let all = result(p, "get_statistics", json!([["all"]]));
    for m in lunasip::modules::ALL {
        for c in m.mi {
            assert!(
                which.as_array().unwrap().contains(&json!(c.name)),
                "{}",
                c.name
            );
        }
        for s in m.stats {
            let full = format!("{}:{}", m.name, s.name);
            assert!(all[&full].is_u64(), "{full}: {all}");
        }
    }
    assert_eq!(
        result(p, "which", json!({"command": "log_level"})),
        json!([[], ["level"], ["level", "pid"]])
    );
    assert_eq!(
        result(p, "help", json!([])),
        "Usage: help mi_cmd - returns information about 'mi_cmd'"
    );
    let h = result(p, "help", json!({"mi_cmd": "get_statistics"}));
    assert_eq!(h["Exported by"], "statistics");
    assert!(h["Help"].is_string());
    let ps = result(p, "ps", json!([]));
    let procs = ps["Processes"].as_array().unwrap();
    let types: Vec<&str> = procs.iter().map(|p| p["Type"].as_str().unwrap()).collect();
    assert!(
        types.contains(&"main")
            && types.contains(&"SIP worker 0")
            && types.contains(&"SIP worker 1")
            && types.contains(&"MI HTTP"),
        "{ps}"
    );
    assert!(procs
        .iter()
        .all(|p| p["PID"].as_i64().unwrap() > 0 && p["ID"].is_u64()));
    let lv = result(p, "log_level", json!([]));
    assert!(lv["Processes"][0]["Log level"].is_i64(), "{lv}");
    assert!(lv["Processes"][0]["PID"].is_i64());
    // list_tcp_conns: one connection sending a request over TCP.
    let mut c = TcpStream::connect(("127.0.0.1", m.proxy.port)).unwrap();
    c.write_all(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKtcp1\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: tcp1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut buf = [0u8; 2048];
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let n = c.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200"));
    let conns = result(p, "list_tcp_conns", json!([]));
    let list = conns["Connections"].as_array().unwrap();
    let local = c.local_addr().unwrap().to_string();
    let me = list.iter().find(|x| x["Remote"] == local.as_str());
    let me = me.unwrap_or_else(|| panic!("{local} not in {conns}"));
    assert_eq!(me["Type"], "tcp");
    assert_eq!(me["Local"], format!("127.0.0.1:{}", m.proxy.port));
    assert!(me["ID"].is_u64());
}

/// `lunasip mi` with the daemon's runtime directory, as an operator's
/// shell has /run/lunasip: (success, stdout, stderr).
fn cli_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lunasip"));
    cli_run(c.arg("mi").args(args).env("LUNASIP_RUNTIME_DIR", dir))
}

/// A small Prometheus text-format parser: every sample line must be
/// `name value`, every metric must have a `# TYPE` line before it.
fn parse_prometheus(text: &str) -> std::collections::HashMap<String, (f64, String)> {
    let mut types = std::collections::HashMap::new();
    let mut out = std::collections::HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {line}");
        let (name, value) = line.split_once(' ').expect("sample line");
        assert!(
            name.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {name}"
        );
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let kind = types
            .get(name)
            .unwrap_or_else(|| panic!("no TYPE for {name}"));
        assert!(
            out.insert(name.to_string(), (v, kind.clone())).is_none(),
            "{name} twice"
        );
    }
    assert!(!out.is_empty());
    out
}

/// A 2.x-style FIFO exchange: `:command:reply_fifo`, argument lines, an
/// empty line; the reply text read back from the reply FIFO.
fn fifo_text(m: &Mi, name: &str, request: &str) -> String {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = m.fifo.parent().expect("fifo dir");
    let reply = dir.join(name);
    let made = Command::new("mkfifo").arg(&reply).status().expect("mkfifo");
    assert!(made.success());
    let mut r = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&reply)
        .expect("open reply fifo");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&m.fifo)
        .and_then(|mut f| f.write_all(request.as_bytes()))
        .expect("write the request");
    let end = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end && !out.ends_with(b"\n\n") {
        match r.read(&mut buf) {
            Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let _ = std::fs::remove_file(&reply);
    String::from_utf8_lossy(&out).into_owned()
}
