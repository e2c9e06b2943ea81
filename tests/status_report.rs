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

/// The dispatcher's group (OpenSIPS 3.4 modules/dispatcher/dispatch.c
/// `ds_srg`): an identifier per partition with the state of its data, and
/// `NAME;events` logging destination state changes; a partition whose
/// database cannot be read has no data (-2).
#[test]
fn dispatcher_partitions_report_their_data() {
    let mi = free_port();
    let routes = r#"function route.main()
  local out = {}
  for _, id in ipairs({ "default", "gw", "all", "default;events" }) do
    local ok, st = sip.sr_check_status("dispatcher", id)
    out[#out + 1] = tostring(ok) .. "/" .. st
  end
  sip.append_to_reply("X-Sr: " .. table.concat(out, ",") .. "\r\n")
  sip.sl.sl_send_reply(200, "OK")
end"#;
    let p = Proxy::start(&mi_script(
        mi,
        r#"dispatcher = { partitions = {
      default = { sets = { [1] = { "sip:127.0.0.1:5071", "sip:127.0.0.1:5072" } } },
      gw = { db_url = "mysql://root@127.0.0.1:1/none", db_retry_interval = 3600 },
    } },"#,
        routes,
    ));
    let get = |id: &str| {
        rpc(
            mi,
            "sr_get_status",
            json!({"group": "dispatcher", "identifier": id}),
        )["result"]
            .clone()
    };
    let default = get("default");
    let gw = get("gw");
    let events = get("default;events");
    let ids = rpc(mi, "sr_list_identifiers", json!({"group": "dispatcher"}));
    let set = rpc(
        mi,
        "ds_set_state",
        json!({"state": "i", "group": "1", "address": "sip:127.0.0.1:5071"}),
    );
    let reload = rpc(mi, "ds_reload", json!({"partition": "default"}));
    let loads = rpc(
        mi,
        "sr_list_reports",
        json!({"group": "dispatcher", "identifier": "default"}),
    );
    let changes = rpc(
        mi,
        "sr_list_reports",
        json!({"group": "dispatcher", "identifier": "default;events"}),
    );
    let list = rpc(mi, "sr_list_status", json!({"group": "dispatcher"}));
    let r = udp_exchange(
        &format!("127.0.0.1:{}", p.port),
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKsrds\r\n\
         From: <sip:a@127.0.0.1>;tag=sr\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: sr-ds\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(2),
    );
    let log = p.stop();
    assert_eq!(
        default,
        json!({"Readiness": true, "Status": 1, "Details": "data available"}),
        "{log}"
    );
    assert_eq!(
        gw,
        json!({"Readiness": false, "Status": -2, "Details": "no data loaded"}),
        "{log}"
    );
    assert_eq!(events, json!({"Readiness": true, "Status": 1}));
    let mut names: Vec<String> = ids["result"]["Identifiers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    assert_eq!(
        names,
        ["default", "default;events", "gw", "gw;events"],
        "{ids}"
    );
    assert_eq!(
        (set["result"].clone(), reload["result"].clone()),
        (json!("OK"), json!("OK"))
    );
    let logs = |v: &serde_json::Value| -> Vec<String> {
        v["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|e| e["Log"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let loads = logs(&loads);
    assert_eq!(
        loads
            .iter()
            .filter(|l| *l == "2 destinations loaded (0 discarded)")
            .count(),
        2,
        "start and ds_reload: {loads:?}"
    );
    assert!(
        loads
            .iter()
            .any(|l| l.contains("status changed to 2 (data re-loading)")),
        "{loads:?}"
    );
    assert!(
        logs(&changes)
            .iter()
            .any(|l| l == "DESTINATION <sip:127.0.0.1:5071>, set 1 switched to [inactive]"),
        "{changes}"
    );
    assert_eq!(list["result"].as_array().map(Vec::len), Some(4), "{list}");
    let r = r.unwrap_or_else(|| panic!("no reply\n{log}"));
    assert!(
        r.contains("\r\nX-Sr: true/1,false/-2,false/-1,true/1\r\n"),
        "{r}"
    );
}
