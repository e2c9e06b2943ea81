use super::*;

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
