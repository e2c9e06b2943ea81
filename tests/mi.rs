//! The management interface end to end: the built daemon, its HTTP and
//! FIFO transports, and the `lunasip mi` client.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DEFAULT: &str = include_str!("../lua/default.lua");

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
/// and info level on the way.
fn answering(reason: &str) -> String {
    format!(
        "config = {{ listen = {{ \"udp:127.0.0.1:{{PORT}}\", \"tcp:127.0.0.1:{{PORT}}\" }}, children = 2 }}\n\
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

#[test]
fn every_json_rpc_error_has_its_code() {
    let m = start_with(&answering("OK"), "");
    let p = m.port;
    let post = |body: &str| -> Value {
        let (status, text) = http(p, "POST", "/mi", "", body.as_bytes());
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    };
    let code = |v: &Value| v["error"]["code"].as_i64().unwrap_or(0);
    let v = post("{\"jsonrpc\": \"2.0\", \"method\": ");
    assert_eq!(
        (code(&v), v["error"]["message"].as_str()),
        (-32700, Some("Parse error"))
    );
    assert_eq!(v["id"], Value::Null);
    let v = post("\u{0}\u{1}garbage");
    assert_eq!(code(&v), -32700);
    let v = post(r#"{"method":"uptime","id":1}"#);
    assert_eq!(
        (code(&v), v["error"]["message"].as_str()),
        (-32600, Some("Invalid Request"))
    );
    assert_eq!(
        code(&post(r#"[{"jsonrpc":"2.0","method":"uptime","id":1}]"#)),
        -32600
    );
    assert_eq!(
        code(&post(r#"{"jsonrpc":"2.0","method":5,"id":1}"#)),
        -32600
    );
    assert_eq!(
        code(&post(
            r#"{"jsonrpc":"2.0","method":"uptime","params":"x","id":1}"#
        )),
        -32600
    );
    let v = post(r#"{"jsonrpc":"2.0","method":"no_such_cmd","id":"a"}"#);
    assert_eq!(
        (code(&v), v["error"]["message"].as_str()),
        (-32601, Some("Method not found"))
    );
    assert_eq!(v["id"], "a");
    let v = post(r#"{"jsonrpc":"2.0","method":"help","params":["a","b","c"],"id":1}"#);
    assert_eq!(
        (code(&v), v["error"]["message"].as_str()),
        (-32602, Some("Invalid params"))
    );
    assert_eq!(
        code(&post(
            r#"{"jsonrpc":"2.0","method":"get_statistics","id":1}"#
        )),
        -32602
    );
    assert_eq!(
        code(&post(
            r#"{"jsonrpc":"2.0","method":"log_level","params":{"level":"3","pid":"abc"},"id":1}"#
        )),
        -32602
    );
    assert_eq!(
        code(&post(
            r#"{"jsonrpc":"2.0","method":"log_level","params":{"lvl":3},"id":1}"#
        )),
        -32602
    );
    let v = post(r#"{"jsonrpc":"2.0","method":"log_level","params":[3, 1],"id":1}"#);
    assert_eq!(
        (code(&v), v["error"]["data"].as_str()),
        (-32602, Some("Bad PID"))
    );
    // A command's own errors.
    let v = post(r#"{"jsonrpc":"2.0","method":"get_statistics","params":[["nope:"]],"id":1}"#);
    assert_eq!(
        (code(&v), v["error"]["message"].as_str()),
        (404, Some("Statistics Not Found"))
    );
    assert_eq!(
        code(&post(
            r#"{"jsonrpc":"2.0","method":"help","params":["nope"],"id":1}"#
        )),
        404
    );
    // A notification gets no body; the transport still answers.
    let (status, text) = http(
        p,
        "POST",
        "/mi",
        "",
        br#"{"jsonrpc":"2.0","method":"uptime"}"#,
    );
    assert_eq!((status, text.as_str()), (204, ""));
    // HTTP-level refusals.
    assert_eq!(http(p, "GET", "/mi", "", b"").0, 405);
    assert_eq!(http(p, "POST", "/nope", "", b"{}").0, 404);
    let big = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(http(p, "POST", "/mi", "", &big).0, 413);
    // The client exits non-zero on an error reply and prints the error.
    let (ok, v, err) = cli_http(&m, &["no_such_cmd"]);
    assert!(!ok);
    assert_eq!(v["code"], -32601);
    assert!(err.contains("Method not found"), "{err}");
    let (ok, _, err) = cli(&["--url", "http://127.0.0.1:1/mi", "uptime"]);
    assert!(!ok && err.contains("cannot connect"), "{err}");
}

#[test]
fn bearer_token_is_required_when_configured() {
    let m = start_with(&answering("OK"), ", token = \"s3cret\"");
    let body = br#"{"jsonrpc":"2.0","method":"uptime","id":1}"#;
    assert_eq!(http(m.port, "POST", "/mi", "", body).0, 401);
    assert_eq!(
        http(
            m.port,
            "POST",
            "/mi",
            "Authorization: Bearer nope\r\n",
            body
        )
        .0,
        401
    );
    assert_eq!(http(m.port, "GET", "/metrics", "", b"").0, 401);
    let (status, text) = http(
        m.port,
        "POST",
        "/mi",
        "Authorization: Bearer s3cret\r\n",
        body,
    );
    assert_eq!(status, 200, "{text}");
    let url = format!("http://127.0.0.1:{}/mi", m.port);
    let (ok, out, _) = cli(&["--url", &url, "--token", "s3cret", "uptime"]);
    assert!(ok, "{out}");
    let (ok, _, err) = cli(&["--url", &url, "uptime"]);
    assert!(!ok && err.contains("401"), "{err}");
}

/// `lunasip mi` with the daemon's runtime directory, as an operator's
/// shell has /run/lunasip: (success, stdout, stderr).
fn cli_in(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lunasip"));
    cli_run(c.arg("mi").args(args).env("LUNASIP_RUNTIME_DIR", dir))
}

#[test]
fn mi_is_closed_by_default_and_lunasip_mi_reads_the_token_file() {
    // No token setting: a random token, written for the client.
    let m = start_with(&answering("OK"), ", token = true");
    let body = br#"{"jsonrpc":"2.0","method":"kill","id":1}"#;
    let (status, _) = http(m.port, "POST", "/mi", "", body);
    assert_eq!(status, 401);
    assert_eq!(http(m.port, "GET", "/metrics", "", b"").0, 401);
    let run_dir = m.proxy.dir.path().to_path_buf();
    let file = run_dir.join("mi.token");
    let token = std::fs::read_to_string(&file).expect("mi.token written");
    let token = token.trim();
    assert_eq!(token.len(), 64, "{token}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (status, text) = http(m.port, "GET", "/metrics", &auth, b"");
    assert_eq!(status, 200, "{text}");
    let url = format!("http://127.0.0.1:{}/mi", m.port);
    // The operator types nothing extra: the client reads the file.
    let (ok, out, err) = cli_in(&run_dir, &["--url", &url, "uptime"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Up time"), "{out}");
    let elsewhere = tempfile::tempdir().unwrap();
    let (ok, _, err) = cli_in(elsewhere.path(), &["--url", &url, "uptime"]);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = cli_in(
        elsewhere.path(),
        &[
            "--url",
            &url,
            "--token-file",
            file.to_str().unwrap(),
            "uptime",
        ],
    );
    assert!(ok, "{err}");
    // Still serving: the 401 ran nothing.
    assert!(options(m.proxy.port, "closed-mi").starts_with("SIP/2.0 200"));
}

#[test]
fn http_framing_is_strict() {
    let m = start_with(&answering("OK"), "");
    let body = br#"{"jsonrpc":"2.0","method":"uptime","id":1}"#;
    // Two different Content-Length values: the request-smuggling shape.
    let (status, _) = http(m.port, "POST", "/mi", "Content-Length: 5\r\n", body);
    assert_eq!(status, 400);
    // A 20 KB header line (the head may be 16 KB).
    let long = format!("X-Long: {}\r\n", "a".repeat(20 * 1024));
    let (status, _) = http(m.port, "POST", "/mi", &long, body);
    assert_eq!(status, 431);
    // A chunked body is read.
    let mut s = TcpStream::connect(("127.0.0.1", m.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let half = body.len() / 2;
    let req = format!(
        "POST /mi HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        half,
        std::str::from_utf8(&body[..half]).unwrap(),
        body.len() - half,
        std::str::from_utf8(&body[half..]).unwrap()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("Up time"), "{out}");
}

#[test]
fn client_over_http_and_fifo() {
    let m = start_with(&answering("OK"), "");
    type Cli = fn(&Mi, &[&str]) -> (bool, Value, String);
    for cli_call in [cli_http as Cli, cli_fifo] {
        let (ok, v, err) = cli_call(&m, &["uptime"]);
        assert!(ok, "{err}");
        assert!(v["Up time"].is_string(), "{v}");
        let (ok, v, _) = cli_call(&m, &["which", "help"]);
        assert!(ok);
        assert_eq!(v, json!([[], ["mi_cmd"]]));
        let (ok, v, _) = cli_call(&m, &["help", "mi_cmd=ps"]);
        assert!(ok);
        assert_eq!(v["Exported by"], "core");
        // Positional values after the first fill the array parameter.
        let (ok, v, _) = cli_call(&m, &["get_statistics", "core:", "sl:"]);
        assert!(ok);
        assert!(
            v["core:rcv_requests"].is_u64() && v["sl:2xx_replies"].is_u64(),
            "{v}"
        );
        let (ok, v, _) = cli_call(&m, &["get_statistics", "statistics=[\"all\"]"]);
        assert!(ok);
        assert!(v["memory:rss_size"].as_u64().unwrap() > 0, "{v}");
        let (ok, v, _) = cli_call(&m, &["reset_statistics", "nope"]);
        assert!(!ok);
        assert_eq!(v["code"], 404);
        let (ok, v, _) = cli_call(&m, &["log_level", "-1"]);
        assert!(ok);
        assert_eq!(v, json!({"New global log level": -1}));
    }
    // A raw FIFO request without a reply FIFO runs and answers nobody;
    // garbage is ignored; the FIFO keeps serving.
    {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&m.fifo)
            .unwrap();
        w.write_all(b"::{\"jsonrpc\":\"2.0\",\"method\":\"log_level\",\"params\":[4],\"id\":1}\nnot a request\n:x:{broken\n").unwrap();
    }
    eventually("the FIFO request without reply to run", || {
        result(m.port, "log_level", json!([]))["Processes"][0]["Log level"] == 4
    });
    let (ok, v, _) = cli_fifo(&m, &["version"]);
    assert!(ok && v["Server"].is_string());
    let meta = std::fs::metadata(&m.fifo).unwrap();
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let fifo = m.fifo.clone();
    drop(m);
    eventually("the FIFO to be removed at exit", || !fifo.exists());
}

/// `lunasip mi … | head`: the reader goes away before the client prints;
/// the client ends quietly (no "failed printing to stdout" panic) and
/// still says whether the command itself succeeded.
#[test]
fn client_output_into_a_closed_pipe_ends_quietly() {
    let m = start_with(&answering("OK"), "");
    let url = format!("http://127.0.0.1:{}/mi", m.port);
    for args in [&["get_statistics", "all"][..], &["nope"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lunasip"))
            .args(["mi", "--url", &url])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the client has anything to print.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{err}"
        );
        assert_eq!(out.status.success(), args[0] != "nope", "{args:?}: {err}");
    }
}

/// OpenSIPS core MI `cache_store`/`cache_fetch`/`cache_remove`
/// (`mi/mi_core.c`) on the `local` cache the routes use, over HTTP and
/// the FIFO.
#[test]
fn cache_commands_share_the_routes_cache() {
    let m = start_with(
        "config = { listen = { \"udp:127.0.0.1:{PORT}\" }, children = 2 }\n\
         function route.main()\n\
         \x20 if sip.pv.ci == \"put\" then sip.cache_store(\"local\", \"from-route\", \"r1\") end\n\
         \x20 local v, rc = sip.cache_fetch(\"local\", \"from-mi\")\n\
         \x20 sip.sl.sl_send_reply(200, tostring(v) .. \" \" .. tostring(rc))\n\
         end\n",
        "",
    );
    type Cli = fn(&Mi, &[&str]) -> (bool, Value, String);
    for (i, cli_call) in [cli_http as Cli, cli_fifo].into_iter().enumerate() {
        let value = format!("v{i}");
        let (ok, v, err) = cli_call(&m, &["cache_store", "local", "from-mi", &value]);
        assert!(ok, "{v} {err}");
        assert_eq!(v, json!("OK"));
        let reply = options(m.proxy.port, "get");
        assert!(
            reply.starts_with(&format!("SIP/2.0 200 {value} nil\r\n")),
            "{reply}"
        );
        let (ok, v, _) = cli_call(&m, &["cache_fetch", "system=local", "attr=from-mi"]);
        assert!(ok);
        assert_eq!(v, json!({"key": "from-mi", "value": value}));
        let (ok, _, _) = cli_call(&m, &["cache_remove", "local", "from-mi"]);
        assert!(ok);
        let (ok, v, _) = cli_call(&m, &["cache_fetch", "local", "from-mi"]);
        assert!(!ok);
        assert_eq!(
            (v["code"].clone(), v["message"].clone()),
            (json!(400), json!("Value not found"))
        );
        let reply = options(m.proxy.port, "get");
        assert!(reply.starts_with("SIP/2.0 200 nil -2\r\n"), "{reply}");
    }
    // What a route stored, the MI reads; expiry in seconds.
    options(m.proxy.port, "put");
    let v = result(
        m.port,
        "cache_fetch",
        json!({"system": "local", "attr": "from-route"}),
    );
    assert_eq!(v["value"], "r1");
    let v = result(m.port, "cache_store", json!(["local", "short", "x", 1]));
    assert_eq!(v, json!("OK"));
    std::thread::sleep(Duration::from_millis(1300));
    let v = rpc(m.port, "cache_fetch", json!(["local", "short"]));
    assert_eq!(v["error"]["code"], 400, "{v}");
    // OpenSIPS's parameter errors.
    let v = rpc(m.port, "cache_store", json!(["local", "", "x"]));
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let v = rpc(m.port, "cache_fetch", json!(["redis", "k"]));
    assert_eq!(v["error"]["code"], 500, "{v}");
}

#[test]
fn log_level_changes_what_is_logged() {
    let m = start_with(&answering("OK"), "");
    let count = |what: &str| m.proxy.log_text().matches(what).count();
    assert!(options(m.proxy.port, "lvl-1").starts_with("SIP/2.0 200"));
    eventually("info line", || count("info-marker lvl-1") == 1);
    assert_eq!(count("dbg-marker"), 0);
    assert_eq!(
        result(m.port, "log_level", json!([4])),
        json!({"New global log level": 4})
    );
    assert!(options(m.proxy.port, "lvl-2").starts_with("SIP/2.0 200"));
    eventually("debug line", || count("dbg-marker lvl-2") == 1);
    // Names work too; warn silences info.
    assert_eq!(
        result(m.port, "log_level", json!({"level": "warn"})),
        json!({"New global log level": 1})
    );
    for i in 0..4 {
        assert!(options(m.proxy.port, &format!("lvl-3-{i}")).starts_with("SIP/2.0 200"));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count("info-marker lvl-3"), 0, "{}", m.proxy.log_text());
    // One worker at debug, the other stays at warn.
    let ps = result(m.port, "ps", json!([]));
    let w0 = ps["Processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["Type"] == "SIP worker 0")
        .unwrap()["PID"]
        .as_i64()
        .unwrap();
    assert_eq!(
        result(m.port, "log_level", json!([4, w0])),
        json!({"Log level": 4})
    );
    let lv = result(m.port, "log_level", json!([]));
    let level_of = |kind: &str| {
        lv["Processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["Type"] == kind)
            .unwrap()["Log level"]
            .clone()
    };
    assert_eq!(
        (level_of("SIP worker 0"), level_of("SIP worker 1")),
        (json!(4), json!(1))
    );
    // Requests from many source ports reach both workers: only worker 0 logs.
    for i in 0..20 {
        assert!(options(m.proxy.port, &format!("lvl-4-{i}")).starts_with("SIP/2.0 200"));
    }
    eventually("worker 0's debug lines", || count("dbg-marker lvl-4") > 0);
    let n = count("dbg-marker lvl-4");
    assert!(n < 20, "worker 1 logged at debug too ({n} lines)");
}

#[test]
fn statistics_match_the_calls_sipp_made() {
    let callee = uas("uas.xml", "u1");
    let script = DEFAULT
        .replace(
            r#"listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060" },"#,
            r#"listen = { "udp:127.0.0.1:{PORT}" },"#,
        )
        .replace(
            "upstream = nil,",
            &format!("upstream = \"sip:127.0.0.1:{}\",", callee.port),
        );
    let m = start_with(&script, "");
    let before = result(m.port, "get_statistics", json!([["core:"]]));
    assert_eq!(before["core:rcv_requests"], 0, "{before}");
    let run = uac("uac.xml", m.proxy.port, "u1", 10, 10, &[]);
    assert_eq!((run.successful, run.failed), (10, 0), "{}", run.errors);
    std::thread::sleep(Duration::from_millis(300));
    let s = result(
        m.port,
        "get_statistics",
        json!({"statistics": ["core:", "sl:"]}),
    );
    let get = |n: &str| s[n].as_u64().unwrap_or_else(|| panic!("{n}: {s}"));
    // INVITE, ACK, BYE per call; 180/200 for INVITE and 200 for BYE.
    assert_eq!(get("core:rcv_requests"), 30, "{s}");
    assert_eq!(get("core:fwd_requests"), 30, "{s}");
    assert_eq!(get("core:rcv_replies"), get("core:fwd_replies"), "{s}");
    assert!(get("core:rcv_replies") >= 30, "{s}");
    assert_eq!(
        get("core:err_requests") + get("sl:sent_err_replies"),
        0,
        "{s}"
    );
    // One statistic by bare name comes back with its group.
    assert_eq!(
        result(m.port, "get_statistics", json!(["rcv_requests"])),
        json!({"core:rcv_requests": 30})
    );
    // reset_statistics zeroes it; list_statistics names the kinds.
    assert_eq!(
        result(m.port, "reset_statistics", json!([["core:rcv_requests"]])),
        "OK"
    );
    assert_eq!(
        result(m.port, "get_statistics", json!(["core:rcv_requests"]))["core:rcv_requests"],
        0
    );
    let l = result(m.port, "list_statistics", json!([]));
    assert_eq!(l["core:rcv_requests"], "incremental");
    assert_eq!(l["memory:rss_size"], "non-incremental");
    assert_eq!(
        result(m.port, "list_statistics", json!([["rcv_replies"]])),
        json!({"rcv_replies": "incremental"})
    );
}

#[test]
fn script_statistics_reach_the_mi_and_metrics() {
    let m = start_with(&answering("OK"), "");
    for i in 0..3 {
        assert!(options(m.proxy.port, &format!("st-{i}")).starts_with("SIP/2.0 200"));
    }
    assert_eq!(
        result(m.port, "get_statistics", json!(["script:"])),
        json!({"script:seen": 3})
    );
    let (status, text) = http(m.port, "GET", "/metrics", "", b"");
    assert_eq!(status, 200);
    let metrics = parse_prometheus(&text);
    assert_eq!(
        metrics.get("lunasip_script_seen"),
        Some(&(3.0, "counter".to_string()))
    );
    assert_eq!(metrics["lunasip_core_rcv_requests"].0, 3.0);
    assert_eq!(
        metrics["lunasip_sl_2xx_replies"],
        (3.0, "counter".to_string())
    );
    let (rss, kind) = &metrics["lunasip_memory_rss_size"];
    assert!(*rss > 1e6 && kind == "gauge", "{rss} {kind}");
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

#[test]
fn reload_routes_swaps_a_good_script_and_refuses_a_bad_one() {
    let m = start_with(&answering("One"), "");
    assert!(options(m.proxy.port, "rl-1").starts_with("SIP/2.0 200 One\r\n"));
    let with_mi = |s: String| {
        s.replacen(
            "config = {",
            &format!("config = {{\n  {}", modules(m.port, &m.fifo, "")),
            1,
        )
        .replace("{PORT}", &m.proxy.port.to_string())
    };
    std::fs::write(&m.proxy.script, with_mi(answering("Two"))).unwrap();
    let (ok, v, err) = cli_http(&m, &["reload_routes"]);
    assert!(ok, "{err}");
    assert_eq!(v, "OK");
    eventually("both workers on the new script", || {
        (0..6)
            .all(|i| options(m.proxy.port, &format!("rl-2-{i}")).starts_with("SIP/2.0 200 Two\r\n"))
    });
    std::fs::write(
        &m.proxy.script,
        "config = { listen = { \"udp:127.0.0.1:1\" } }\nfunction route.main()\n  if then\nend\n",
    )
    .unwrap();
    let v = rpc(m.port, "reload_routes", json!([]));
    assert_eq!(v["error"]["code"], 500, "{v}");
    assert_eq!(v["error"]["message"], "reload failed");
    assert!(
        v["error"]["data"]
            .as_str()
            .unwrap()
            .contains("script.lua:3:"),
        "{v}"
    );
    for i in 0..4 {
        assert!(options(m.proxy.port, &format!("rl-3-{i}")).starts_with("SIP/2.0 200 Two\r\n"));
    }
}

#[test]
fn idle_and_stuck_mi_clients_do_not_stall_anything() {
    let callee = uas("uas.xml", "u1");
    let script = DEFAULT
        .replace(
            r#"listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060" },"#,
            r#"listen = { "udp:127.0.0.1:{PORT}" },"#,
        )
        .replace(
            "upstream = nil,",
            &format!("upstream = \"sip:127.0.0.1:{}\",", callee.port),
        );
    let m = start_with(&script, "");
    // 100 idle connections, half of them with a request started and never finished.
    let mut idle = Vec::new();
    for i in 0..100 {
        let mut s = TcpStream::connect(("127.0.0.1", m.port)).unwrap();
        if i % 2 == 0 {
            s.write_all(b"POST /mi HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"jsonr")
                .unwrap();
        }
        idle.push(s);
    }
    // A FIFO client that asks and never reads its reply.
    let dir = m.fifo.parent().unwrap();
    let stuck = dir.join("stuck_reply");
    lunasip::mi::fifo::mkfifo(&stuck, 0o600).unwrap();
    use std::os::unix::fs::OpenOptionsExt;
    let _never_read = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&stuck)
        .unwrap();
    {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&m.fifo)
            .unwrap();
        for _ in 0..50 {
            w.write_all(
                b":stuck_reply:{\"jsonrpc\":\"2.0\",\"method\":\"list_statistics\",\"id\":1}\n",
            )
            .unwrap();
        }
    }
    let t = Instant::now();
    let v = result(m.port, "uptime", json!([]));
    assert!(v["Up time"].is_string());
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let (ok, _, err) = cli_fifo(&m, &["ps"]);
    assert!(ok, "{err}");
    let run = uac("uac.xml", m.proxy.port, "u1", 20, 20, &[]);
    assert_eq!((run.successful, run.failed), (20, 0), "{}", run.errors);
    assert_eq!(
        result(m.port, "get_statistics", json!(["core:rcv_requests"]))["core:rcv_requests"],
        60
    );
    drop(idle);
}

#[test]
fn kill_stops_the_daemon() {
    let mut m = start_with(&answering("OK"), "");
    assert_eq!(result(m.port, "kill", json!([])), "OK");
    let child = m.proxy.child.as_mut().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            assert!(st.success(), "{st:?}");
            break;
        }
        assert!(Instant::now() < deadline, "still running after kill");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(m.proxy.log_text().contains("statistics:"));
}

#[test]
fn transports_can_be_turned_off_and_a_taken_port_is_an_error() {
    let script = "config = { listen = { \"udp:127.0.0.1:{PORT}\" }, modules = { mi_http = false, mi_fifo = false } }\nfunction route.main() sip.sl.sl_send_reply(200, \"OK\") end\n";
    let p = Proxy::start(script);
    assert!(
        !p.log_text().contains("mi_http: listening"),
        "{}",
        p.log_text()
    );
    drop(p);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let script = format!("config = {{ listen = {{ \"udp:127.0.0.1:{{PORT}}\" }}, modules = {{ mi_http = {{ port = {port} }}, mi_fifo = false }} }}\nfunction route.main() end\n");
    let err = Proxy::try_start(&script).err().expect("must not start");
    assert!(err.contains("mi_http: cannot listen"), "{err}");
}

#[test]
fn expect_continue_and_keep_alive() {
    let m = start_with(&answering("OK"), "");
    let mut s = TcpStream::connect(("127.0.0.1", m.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = br#"{"jsonrpc":"2.0","method":"uptime","id":1}"#;
    let head = format!(
        "POST /mi HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(body).unwrap();
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.contains("Up time"),
        "{text}"
    );
    // Same connection, second request (keep-alive), then /metrics.
    let req = format!(
        "POST /mi HTTP/1.1\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        String::from_utf8_lossy(body)
    );
    s.write_all(req.as_bytes()).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("Up time"));
    s.write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.contains("lunasip_core_rcv_requests"),
        "{text}"
    );
}

/// OpenSIPS xlog.c / mi_core.c `xlog_level`: an xlog message above the
/// xlog level is not printed; the MI reads and sets the shared level,
/// `$xlog_level` a worker's own; statistics.c `reset_all_statistics`.
#[test]
fn xlog_level_and_reset_all_statistics() {
    let m = start_with(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1, xlog_level = "L_NOTICE" }
function route.main()
  sip.xlog("L_NOTICE", "notice-marker $ci")
  sip.xlog("L_INFO", "info-marker $ci")
  if sip.pv.ci == "xl-own" then
    sip.pv.set("$xlog_level", 3)
    sip.xlog("L_INFO", "own-marker $ci $xlog_level")
    sip.pv.set("$xlog_level", nil)
  end
  sip.update_stat("script:seen", 1)
  sip.sl.sl_send_reply(200, "xlog $xlog_level")
end
"#,
        "",
    );
    let count = |what: &str| m.proxy.log_text().matches(what).count();
    assert!(options(m.proxy.port, "xl-1").starts_with("SIP/2.0 200 xlog 2\r\n"));
    eventually("notice line", || count("notice-marker xl-1") == 1);
    assert_eq!(count("info-marker"), 0, "{}", m.proxy.log_text());
    assert!(options(m.proxy.port, "xl-own").starts_with("SIP/2.0 200 xlog 2\r\n"));
    eventually("own line", || count("own-marker xl-own 3") == 1);
    assert_eq!(count("info-marker"), 0);
    assert_eq!(
        result(m.port, "xlog_level", json!([])),
        json!({"xLog Level": 2})
    );
    let (ok, v, _) = cli_fifo(&m, &["xlog_level", "3"]);
    assert!(ok);
    assert_eq!(v, json!({"New xLog level": 3}));
    assert!(options(m.proxy.port, "xl-2").starts_with("SIP/2.0 200 xlog 3\r\n"));
    eventually("info line", || count("info-marker xl-2") == 1);
    assert!(rpc(m.port, "xlog_level", json!(["loud"]))["error"]["code"] == -32602);

    assert_eq!(
        result(m.port, "get_statistics", json!([["script:seen"]])),
        json!({"script:seen": 3})
    );
    assert_eq!(
        result(m.port, "reset_all_statistics", json!([])),
        json!("OK")
    );
    let after = result(
        m.port,
        "get_statistics",
        json!([["script:seen", "core:rcv_requests"]]),
    );
    assert_eq!(after, json!({"script:seen": 0, "core:rcv_requests": 0}));
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

/// OpenSIPS 2.x's FIFO text format beside the JSON one (2.4
/// `modules/mi_fifo/`): `:command:reply_fifo`, one argument per line, an
/// empty line; the reply `200 OK` and `name:: value` lines.
#[test]
fn fifo_accepts_the_2x_text_format() {
    let m = start_with(&answering("OK"), "");
    let up = fifo_text(&m, "r_uptime", ":uptime:r_uptime\n\n");
    assert!(up.starts_with("200 OK\n"), "{up}");
    assert!(up.contains("\nUp time:: "), "{up}");
    assert!(up.ends_with(" [sec]\n\n"), "{up}");
    let lvl = fifo_text(&m, "r_level", ":log_level:r_level\n4\n\n");
    assert_eq!(lvl, "200 OK\nNew global log level:: 4\n\n");
    assert_eq!(
        result(m.port, "log_level", json!([]))["Processes"][0]["Log level"],
        4
    );
    let ps = fifo_text(&m, "r_ps", ":ps:r_ps\n\n");
    assert!(
        ps.contains("Processes:: \n\tID:: ") || ps.contains("Processes:: \n\tPID:: "),
        "{ps}"
    );
    let none = fifo_text(&m, "r_none", ":no_such_command:r_none\n\n");
    assert!(none.starts_with("500 ") && none.ends_with("\n\n"), "{none}");
    let reset = fifo_text(
        &m,
        "r_reset",
        ":reset_statistics:r_reset\ncore:rcv_requests\n\n",
    );
    assert_eq!(reset, "200 OK\n\n");
    let missing = fifo_text(&m, "r_miss", ":reset_statistics:r_miss\nno:such\n\n");
    assert_eq!(missing, "404 Statistics Not Found\n\n");
    // The JSON form still works on the same FIFO.
    let (ok, v, _) = cli_fifo(&m, &["version"]);
    assert!(
        ok && v["Server"]
            .as_str()
            .is_some_and(|s| s.starts_with("lunasip"))
    );
}
