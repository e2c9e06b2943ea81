//! Dispatcher script attributes (OpenSIPS 3.4 modules/dispatcher/
//! dispatch.c `ds_push_script_attrs`/`ds_get_script_attrs`, dispatcher.c's
//! MI `ds_push_script_attrs`, `ds_print_mi_list`'s `script_attr`): pushed
//! from a route and over the MI, read back by a route, handed to
//! `script_attrs_avp` on selection, and shown by `ds_list`.

mod common;

use common::rpc::{mi_script, rpc};
use common::*;
use serde_json::json;
use std::time::Duration;

const DISPATCHER: &str = r#"dispatcher = {
      script_attrs_avp = "$avp(sa)",
      sets = {
        [1] = { "sip:127.0.0.1:5070", "sip:127.0.0.2" },
        [2] = { "sip:127.0.0.1:5071", "sip:127.0.0.1" },
      },
    },"#;

const ROUTES: &str = r#"function route.main()
  local u = sip.pv.rU
  local out = "-"
  if u == "push" then
    -- port 5070 of set 1 only
    local ok, rc = sip.dispatcher.ds_push_script_attrs("load=50", "127.0.0.1", 5070, 1)
    local bad_ok, bad_rc = sip.dispatcher.ds_push_script_attrs("x", "not-an-ip", 0)
    -- no destination matches: still true, as in OpenSIPS
    local none_ok = sip.dispatcher.ds_push_script_attrs("y", "127.0.0.9", 0)
    -- a destination without a port takes any port
    sip.dispatcher.ds_push_script_attrs("portless", "127.0.0.1", 9999, 2)
    out = tostring(ok) .. "/" .. rc .. "/" .. tostring(bad_ok) .. "/" .. bad_rc .. "/" .. tostring(none_ok)
  elseif u == "get" then
    local ok, rc, v = sip.dispatcher.ds_get_script_attrs("sip:127.0.0.1:5070", 1, nil, "$var(sa)")
    local _, _, v2 = sip.dispatcher.ds_get_script_attrs("sip:127.0.0.1", -1)
    local _, _, v3 = sip.dispatcher.ds_get_script_attrs("sip:127.0.0.2", 1)
    local miss_ok, miss_rc = sip.dispatcher.ds_get_script_attrs("sip:127.0.0.1:5070", 2)
    out = tostring(ok) .. "/" .. rc .. "/" .. v .. "/" .. sip.var.sa .. "/" .. v2 .. "/[" .. v3 .. "]/" .. tostring(miss_ok) .. "/" .. miss_rc
  elseif u == "select" then
    sip.dispatcher.ds_select_dst(1, 8)
    out = sip.pv.du .. "=" .. tostring(sip.avp.sa)
  end
  sip.append_to_reply("X-Sa: " .. out .. "\r\n")
  sip.sl.sl_send_reply(200, "OK")
end"#;

fn ask(port: u16, user: &str) -> String {
    let msg = format!(
        "OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKsa{user}\r\n\
         From: <sip:a@127.0.0.1>;tag=sa\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: sa-{user}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let r = udp_exchange(&format!("127.0.0.1:{port}"), &msg, Duration::from_secs(2))
        .unwrap_or_default();
    r.split("\r\n")
        .find_map(|l| l.strip_prefix("X-Sa: "))
        .unwrap_or("<no reply>")
        .to_string()
}

#[test]
fn pushed_by_route_and_mi_seen_by_route_avp_and_ds_list() {
    let mi = free_port();
    let p = Proxy::start(&mi_script(mi, DISPATCHER, ROUTES));
    let before = ask(p.port, "select");
    // Over the MI: port 5071 of 127.0.0.1 in set 2, which the port-less
    // destination matches too.
    let mi_push = rpc(
        mi,
        "ds_push_script_attrs",
        json!({"attrs": "{\"ping\":\"30000\"}", "ip": "127.0.0.1", "port": 5071, "set": 2}),
    );
    let pushed = ask(p.port, "push");
    let got = ask(p.port, "get");
    let selected = ask(p.port, "select");
    let list = rpc(mi, "ds_list", json!({}));
    let empty = rpc(
        mi,
        "ds_push_script_attrs",
        json!({"attrs": "", "ip": "127.0.0.1", "port": 0, "set": 2}),
    );
    let bad_ip = rpc(
        mi,
        "ds_push_script_attrs",
        json!({"attrs": "a", "ip": "nowhere", "port": 0, "set": 2}),
    );
    let bad_part = rpc(
        mi,
        "ds_push_script_attrs",
        json!({"attrs": "a", "ip": "127.0.0.1", "port": 0, "set": 2, "partition": "p9"}),
    );
    let missing = rpc(
        mi,
        "ds_push_script_attrs",
        json!({"attrs": "a", "ip": "127.0.0.1"}),
    );
    let log = p.stop();

    assert_eq!(before, "sip:127.0.0.1:5070=", "{log}");
    assert_eq!(pushed, "true/1/false/-1/true", "{log}");
    assert_eq!(mi_push["result"], json!("OK"), "{mi_push}");
    assert_eq!(got, "true/1/load=50/load=50/portless/[]/false/-1", "{log}");
    assert_eq!(selected, "sip:127.0.0.1:5070=load=50", "{log}");
    let sets = &list["result"]["PARTITIONS"][0]["SETS"];
    let attr = |set: usize, d: usize| sets[set]["Destinations"][d]["script_attr"].clone();
    assert_eq!(
        [attr(0, 0), attr(0, 1), attr(1, 0), attr(1, 1)],
        [
            json!("load=50"),
            json!(null),
            json!("{\"ping\":\"30000\"}"),
            json!("portless")
        ],
        "{list}"
    );
    assert!(log.contains("'not-an-ip' is not an IP address"), "{log}");
    let err = |v: &serde_json::Value| (v["error"]["code"].clone(), v["error"]["message"].clone());
    assert_eq!(err(&empty), (json!(500), json!("Bad attrs value")));
    assert_eq!(err(&bad_ip), (json!(404), json!("destination not found")));
    assert_eq!(err(&bad_part), (json!(404), json!("Partition not found")));
    assert_eq!(missing["error"]["code"], json!(-32602), "{missing}");
}

/// A destination named by host name matches by the addresses the name
/// resolved to when the sets were loaded (dispatch.c `add_dest2list`
/// fills `ips[]`; `ds_is_in_list` and `ds_push_script_attrs` compare them).
#[test]
fn host_names_match_by_their_resolved_addresses() {
    let mi = free_port();
    let sets = r#"dispatcher = {
      sets = { [3] = { "sip:localhost:5072", "sip:127.0.0.2:5072" } },
    },"#;
    let routes = r#"function route.main()
  local out
  if sip.pv.rU == "inlist" then
    out = tostring(sip.dispatcher.ds_is_in_list("127.0.0.1", 5072, 3)) .. "/"
      .. tostring(sip.dispatcher.ds_is_in_list("127.0.0.1", 5073, 3))
  else
    sip.dispatcher.ds_push_script_attrs("named", "127.0.0.1", 5072, 3)
    out = "pushed"
  end
  sip.append_to_reply("X-Sa: " .. out .. "\r\n")
  sip.sl.sl_send_reply(200, "OK")
end"#;
    let p = Proxy::start(&mi_script(mi, sets, routes));
    // The lookup runs on a thread of its own once the sets are installed.
    let mut inlist = String::new();
    for _ in 0..40 {
        inlist = ask(p.port, "inlist");
        if inlist.starts_with("true") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pushed = ask(p.port, "push");
    let list = rpc(mi, "ds_list", json!({}));
    let log = p.stop();
    assert_eq!(inlist, "true/false", "{log}");
    assert_eq!(pushed, "pushed", "{log}");
    let dests = &list["result"]["PARTITIONS"][0]["SETS"][0]["Destinations"];
    assert_eq!(dests[0]["URI"], json!("sip:localhost:5072"), "{list}");
    assert_eq!(dests[0]["script_attr"], json!("named"), "{list}");
    assert_eq!(dests[1]["script_attr"], json!(null), "{list}");
}
