use super::*;

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
