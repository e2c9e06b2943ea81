//! Status reports as the MI and a route see them (OpenSIPS 3.4
//! `status_report.c`, core `sr_check_status`): the core's group `core`,
//! identifier `main`, reads "running" (1) once the proxy serves traffic.

mod common;

use common::rpc::{mi_script, rpc};
use common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn core_readiness_over_mi_and_in_routes() {
    let mi = free_port();
    let routes = r#"function route.main()
  local ok, st = sip.sr_check_status("core")
  local all_ok, all_st = sip.sr_check_status("core", "all")
  local _, missing = sip.sr_check_status("core", "nope")
  sip.append_to_reply("X-Sr: " .. tostring(ok) .. "/" .. st .. "/" .. tostring(all_ok) .. "/" .. all_st .. "/" .. missing .. "\r\n")
  if sip.pv.rU == "bad" then sip.sr_check_status("no_such_group") end
  sip.sl.sl_send_reply(200, "OK")
end"#;
    let p = Proxy::start(&mi_script(mi, "", routes));
    let status = rpc(mi, "sr_get_status", json!({"group": "core"}));
    let all = rpc(
        mi,
        "sr_get_status",
        json!({"group": "core", "identifier": "all"}),
    );
    let no_group = rpc(mi, "sr_get_status", json!({"group": "nope"}));
    let no_id = rpc(
        mi,
        "sr_get_status",
        json!({"group": "core", "identifier": "nope"}),
    );
    let list = rpc(mi, "sr_list_status", json!({}));
    let ids = rpc(mi, "sr_list_identifiers", json!({"group": "core"}));
    let reports = rpc(
        mi,
        "sr_list_reports",
        json!({"group": "core", "identifier": "main"}),
    );
    let msg = |user: &str| {
        format!(
            "OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKsr{user}\r\n\
             From: <sip:a@127.0.0.1>;tag=sr\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: sr-{user}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let to = format!("127.0.0.1:{}", p.port);
    let good = udp_exchange(&to, &msg("good"), Duration::from_secs(2));
    let bad = udp_exchange(&to, &msg("bad"), Duration::from_secs(2));
    let log = p.stop();
    assert_eq!(
        status["result"],
        json!({"Readiness": true, "Status": 1, "Details": "running"}),
        "{status}"
    );
    assert_eq!(all["result"]["Status"], json!(1), "{all}");
    assert_eq!(no_group["error"]["code"], json!(404), "{no_group}");
    assert_eq!(no_id["error"]["code"], json!(404), "{no_id}");
    let core = list["result"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["Name"] == "core"))
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(core["Identifiers"][0]["Name"], json!("main"), "{list}");
    assert_eq!(
        ids["result"],
        json!({"Group": "core", "Identifiers": ["main"]}),
        "{ids}"
    );
    let logs: Vec<&str> = reports["result"]
        .as_array()
        .map(|r| r.iter().filter_map(|e| e["Log"].as_str()).collect())
        .unwrap_or_default();
    assert!(logs.iter().any(|l| l.contains("initializing")), "{reports}");
    assert!(
        logs.last().is_some_and(|l| l.contains("running")),
        "{reports}"
    );
    let good = good.unwrap_or_else(|| panic!("no reply\n{log}"));
    assert!(good.contains("\r\nX-Sr: true/1/true/1/-1\r\n"), "{good}");
    let bad = bad.unwrap_or_else(|| panic!("no reply\n{log}"));
    assert!(bad.starts_with("SIP/2.0 500"), "{bad}");
    assert!(
        log.contains("status report group \"no_such_group\" is not registered"),
        "{log}"
    );
}
