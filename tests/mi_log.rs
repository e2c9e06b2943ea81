//! MI `log_level_filter` and `log_mute_state` (OpenSIPS 3.4 mi/mi_core.c,
//! dprint.c's log consumers) over HTTP and the FIFO, as an operator sees
//! them: what the log shows afterwards, and the documented errors.

mod common;

use common::rpc::rpc;
use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// `lunasip mi --fifo FIFO ARGS`: (success, the JSON printed).
fn fifo(path: &std::path::Path, args: &[&str]) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["mi", "--fifo"])
        .arg(path)
        .args(args)
        .output()
        .expect("lunasip mi");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    let v = serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(err.trim()))
        .unwrap_or(Value::String(format!("{text}{err}")));
    (out.status.success(), v)
}

fn options(port: u16, call_id: &str) -> String {
    let msg = format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK{call_id}\r\n\
         From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    udp_exchange(&format!("127.0.0.1:{port}"), &msg, Duration::from_secs(3)).unwrap_or_default()
}

#[test]
fn consumers_filter_and_mute_what_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let fifo_path = dir.path().join("lunasip_fifo");
    let mi = free_port();
    // One worker: lines come out in the order the requests were handled.
    let p = Proxy::start(&format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }}, children = 1,
  modules = {{ mi_http = {{ ip = "127.0.0.1", port = {mi}, token = false }},
              mi_fifo = {{ fifo_name = "{}" }} }} }}
function route.main()
  sip.xlog("L_INFO", "info-marker $ci")
  sip.xlog("L_ERR", "err-marker $ci")
  sip.sl.sl_send_reply(200, "OK")
end
"#,
        fifo_path.display()
    ));
    let count = |what: &str| p.log_text().matches(what).count();

    // Reading: stderr is in use, the journal and E_CORE_LOG are not.
    let read = |cmd: &str, c: &str| rpc(mi, cmd, json!({ "consumer": c }))["result"].clone();
    assert_eq!(read("log_mute_state", "stderror"), json!({"mute state": 0}));
    assert_eq!(read("log_mute_state", "syslog"), json!({"mute state": 1}));
    assert_eq!(read("log_mute_state", "event"), json!({"mute state": 1}));
    assert_eq!(
        read("log_level_filter", "stderror"),
        json!({"Log level filter": 0})
    );

    assert!(options(p.port, "lf-0").starts_with("SIP/2.0 200"));
    eventually("both lines", || count("err-marker lf-0") == 1);
    assert_eq!(count("info-marker lf-0"), 1);

    // Errors only on stderr, set over the FIFO.
    let (ok, v) = fifo(&fifo_path, &["log_level_filter", "stderror", "-1"]);
    assert!(ok, "{v}");
    assert_eq!(v, json!("OK"));
    let (ok, v) = fifo(&fifo_path, &["log_level_filter", "stderror"]);
    assert!(ok);
    assert_eq!(v, json!({"Log level filter": -1}));
    assert!(options(p.port, "lf-1").starts_with("SIP/2.0 200"));
    eventually("the error line", || count("err-marker lf-1") == 1);
    assert_eq!(count("info-marker lf-1"), 0, "{}", p.log_text());

    // Muted over HTTP: nothing; unmuted over the FIFO: lines again (the
    // request in between was handled first, by the only worker).
    assert_eq!(
        rpc(
            mi,
            "log_mute_state",
            json!({"consumer": "stderror", "mute_state": 1})
        )["result"],
        json!("OK")
    );
    assert!(options(p.port, "lf-2").starts_with("SIP/2.0 200"));
    let (ok, v) = fifo(&fifo_path, &["log_mute_state", "stderror", "0"]);
    assert!(ok && v == json!("OK"), "{v}");
    assert_eq!(
        rpc(
            mi,
            "log_level_filter",
            json!({"consumer": "stderror", "level_filter": 0})
        )["result"],
        json!("OK")
    );
    assert!(options(p.port, "lf-3").starts_with("SIP/2.0 200"));
    eventually("lines after unmuting", || count("info-marker lf-3") == 1);
    assert_eq!(count("marker lf-2"), 0, "{}", p.log_text());

    // Documented errors: an unknown consumer is 404, a missing consumer
    // or a level that is not a number is "Invalid params".
    for (cmd, params) in [
        ("log_level_filter", json!({"consumer": "kafka"})),
        (
            "log_mute_state",
            json!({"consumer": "kafka", "mute_state": 1}),
        ),
    ] {
        let e = rpc(mi, cmd, params);
        assert_eq!(
            (e["error"]["code"].clone(), e["error"]["message"].clone()),
            (json!(404), json!("Unknown log consumer")),
            "{cmd}: {e}"
        );
    }
    assert_eq!(
        rpc(mi, "log_mute_state", json!({}))["error"]["code"],
        json!(-32602)
    );
    assert_eq!(
        rpc(
            mi,
            "log_level_filter",
            json!({"consumer": "stderror", "level_filter": "loud"})
        )["error"]["code"],
        json!(-32602)
    );
    let (ok, v) = fifo(&fifo_path, &["log_mute_state", "kafka"]);
    assert!(!ok, "{v}");
    assert!(v.to_string().contains("Unknown log consumer"), "{v}");
    drop(p);
}
