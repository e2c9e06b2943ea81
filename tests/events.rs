//! The event interface against real peers (OpenSIPS 3.4 evi/, modules
//! event_datagram and event_rabbitmq): a UDP listener and a RabbitMQ
//! consumer receive the JSON-RPC notifications; a dead broker never slows
//! a route.

mod common;

use common::rpc::{mi_script as script, rpc};
use common::*;
use serde_json::{json, Value};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn recv_json(s: &UdpSocket) -> Value {
    let mut buf = [0u8; 65536];
    let (n, _) = s.recv_from(&mut buf).expect("an event datagram");
    serde_json::from_slice(&buf[..n]).expect("JSON")
}

const OPTIONS: &str = "OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bK-ev{N}\r\n\
Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: ev-{N}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

/// OpenSIPS evi/event_interface.c: MI event_subscribe, subscribers_list,
/// raise_event; event_datagram sends the 3.x JSON-RPC notification.
#[test]
fn mi_raise_event_reaches_a_udp_subscriber() {
    let mi = free_port();
    let proxy = Proxy::start(&script(mi, "", "function route.main() end"));
    let (l, lport) = udp_listener();
    let sock = format!("udp:127.0.0.1:{lport}");

    let r = rpc(mi, "event_subscribe", json!(["E_UL_AOR_INSERT", sock, 60]));
    assert_eq!(r["result"], "OK", "{r}");
    let r = rpc(mi, "subscribers_list", json!([]));
    let subs = &r["result"]["Events"][0];
    assert_eq!(subs["name"], "E_UL_AOR_INSERT", "{r}");
    assert_eq!(subs["subscribers"][0]["socket"], sock.as_str(), "{r}");
    let left = subs["subscribers"][0]["expire"].as_u64().unwrap_or(0);
    assert!((58..=60).contains(&left), "{r}");
    let r = rpc(mi, "events_list", json!([]));
    let names: Vec<&str> = r["result"]["Events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        names.contains(&"E_DISPATCHER_STATUS") && names.contains(&"E_UL_CONTACT_DELETE"),
        "{r}"
    );

    let r = rpc(
        mi,
        "raise_event",
        json!({"event": "E_UL_AOR_INSERT", "params": {"aor": "alice", "domain": "location"}}),
    );
    assert_eq!(r["result"], "OK", "{r}");
    assert_eq!(
        recv_json(&l),
        json!({"jsonrpc": "2.0", "method": "E_UL_AOR_INSERT", "params": {"aor": "alice", "domain": "location"}})
    );

    // Bad input: the error names what is wrong.
    let r = rpc(mi, "event_subscribe", json!(["E_NOPE", sock]));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown event E_NOPE"),
        "{r}"
    );
    let r = rpc(
        mi,
        "event_subscribe",
        json!(["E_UL_AOR_INSERT", "udp:127.0.0.1"]),
    );
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no port"),
        "{r}"
    );
    let r = rpc(mi, "raise_event", json!(["E_NOPE"]));
    assert!(r["error"].is_object(), "{r}");
    let r = rpc(mi, "raise_event", json!(["E_UL_AOR_INSERT", "[1,2]"]));
    assert!(r["error"].is_object(), "{r}");

    // expire 0 unsubscribes: nothing more arrives.
    assert_eq!(
        rpc(mi, "event_subscribe", json!(["E_UL_AOR_INSERT", sock, 0]))["result"],
        "OK"
    );
    assert_eq!(
        rpc(mi, "raise_event", json!(["E_UL_AOR_INSERT"]))["result"],
        "OK"
    );
    l.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 1024];
    assert!(
        l.recv_from(&mut buf).is_err(),
        "no event after unsubscribing"
    );
    drop(proxy);
}

/// modules/dispatcher/dispatch.c raises E_DISPATCHER_STATUS (group,
/// address, status) when probing takes a dead box out; a subscriber from
/// startup_route gets it and event_route.E_DISPATCHER_STATUS runs with
/// the params as a table; `active` follows when the box answers again.
#[test]
fn dispatcher_status_when_a_box_dies_and_comes_back() {
    let mi = free_port();
    let dead = free_port();
    let (l, lport) = udp_listener();
    let ds = format!(
        "dispatcher = {{ sets = {{ [1] = {{ \"sip:127.0.0.1:{dead}\" }} }}, ds_ping_interval = 1, \
         ds_probing_threshold = 1, ds_probing_mode = 1 }}, tm = {{ fr_timeout = 1 }},"
    );
    let routes = format!(
        "function startup_route.main()\n  \
           sip.subscribe_event(\"E_DISPATCHER_STATUS\", \"udp:127.0.0.1:{lport}\")\n\
         end\n\
         function route.main() end\n\
         function event_route.E_DISPATCHER_STATUS(ev)\n  \
           sip.xlog(\"L_INFO\", \"evroute \" .. ev.group .. \" \" .. ev.address .. \" \" .. ev.status .. \"\\n\")\n\
         end\n"
    );
    let proxy = Proxy::start(&script(mi, &ds, &routes));
    let v = recv_json(&l);
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "method": "E_DISPATCHER_STATUS",
               "params": {"group": 1, "address": format!("sip:127.0.0.1:{dead}"), "status": "inactive"}}),
        "{}",
        proxy.log_text()
    );
    let want = format!("evroute 1 sip:127.0.0.1:{dead} inactive");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !proxy.log_text().contains(&want) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(proxy.log_text().contains(&want), "{}", proxy.log_text());

    // The box comes back: probing finds it and `active` goes out, to the
    // UDP subscriber and to a RabbitMQ one subscribed meanwhile.
    let key = format!("lunasip.ds.{}", std::process::id());
    let consumer = common::rabbit::Consumer::bind(&key);
    let sock = format!("rabbitmq:127.0.0.1:5672/exchange=amq.direct?{key}");
    let r = rpc(mi, "event_subscribe", json!(["E_DISPATCHER_STATUS", sock]));
    assert_eq!(r["result"], "OK", "{r}");
    let _uas = uas_on("options_uas.xml", "u1", dead);
    let active = json!({"jsonrpc": "2.0", "method": "E_DISPATCHER_STATUS",
        "params": {"group": 1, "address": format!("sip:127.0.0.1:{dead}"), "status": "active"}});
    assert_eq!(recv_json(&l), active, "{}", proxy.log_text());
    let m = consumer
        .next()
        .unwrap_or_else(|| panic!("no message\n{}", proxy.log_text()));
    let body: Value = serde_json::from_slice(&m.delivery.data).expect("JSON body");
    assert_eq!(body, active);
}

/// A subscriber whose broker is down costs drops, never time: every
/// request raising an event is answered at once, and `evi:dropped` counts.
#[test]
fn a_dead_broker_never_slows_a_route() {
    let mi = free_port();
    let dead = free_port();
    let routes = format!(
        "function startup_route.main()\n  \
           sip.raise_event(\"E_SCRIPT_CALL\")\n  \
           sip.subscribe_event(\"E_SCRIPT_CALL\", \"rabbitmq:127.0.0.1:{dead}/calls\")\n\
         end\n\
         function route.main()\n  \
           sip.raise_event(\"E_SCRIPT_CALL\", {{ callid = sip.pv.ci }})\n  \
           sip.sl.sl_send_reply(200, \"OK\")\n\
         end\n"
    );
    let proxy = Proxy::start(&script(mi, "", &routes));
    let to = format!("127.0.0.1:{}", proxy.port);
    let start = Instant::now();
    for i in 0..200 {
        let msg = OPTIONS.replace("{N}", &i.to_string());
        let r = udp_exchange(&to, &msg, Duration::from_secs(2)).expect("a reply");
        assert!(r.starts_with("SIP/2.0 200"), "{r}");
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "200 requests took {took:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let dropped = loop {
        let r = rpc(mi, "get_statistics", json!([["evi:dropped"]]));
        let n = r["result"]["evi:dropped"].as_u64().unwrap_or(0);
        if n >= 200 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(dropped >= 200, "dropped {dropped}\n{}", proxy.log_text());
    eprintln!(
        "200 requests, each raising an event for a dead broker: {took:?}, evi:dropped {dropped}"
    );
}

/// event_rabbitmq: a subscriber `rabbitmq:guest:guest@127.0.0.1:5672/
/// exchange=amq.direct?KEY` gets the notification; the test's consumer
/// reads it from a queue it bound to that exchange and key.
#[test]
fn rabbitmq_subscriber_gets_the_notification() {
    let key = format!("lunasip.test.{}", std::process::id());
    let consumer = common::rabbit::Consumer::bind(&key);

    let mi = free_port();
    let routes = "function route.main()\n  \
         sip.raise_event(\"E_SCRIPT_CALL\", { callid = sip.pv.ci, n = 7 })\n  \
         sip.sl.sl_send_reply(200, \"OK\")\nend\n";
    let proxy = Proxy::start(&script(mi, "", routes));
    // The script's event is declared once the script raised it.
    let to = format!("127.0.0.1:{}", proxy.port);
    let r = udp_exchange(&to, &OPTIONS.replace("{N}", "0"), Duration::from_secs(2)).expect("reply");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let sock = format!("rabbitmq:guest:guest@127.0.0.1:5672/exchange=amq.direct?{key}");
    let r = rpc(mi, "event_subscribe", json!(["E_SCRIPT_CALL", sock]));
    assert_eq!(r["result"], "OK", "{r}");
    let r = udp_exchange(&to, &OPTIONS.replace("{N}", "1"), Duration::from_secs(2)).expect("reply");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");

    let got = consumer.next();
    let m = got.unwrap_or_else(|| panic!("no message\n{}", proxy.log_text()));
    let body: Value = serde_json::from_slice(&m.delivery.data).expect("JSON body");
    assert_eq!(
        body,
        json!({"jsonrpc": "2.0", "method": "E_SCRIPT_CALL", "params": {"callid": "ev-1", "n": 7}})
    );
    assert_eq!(
        m.delivery
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str()),
        Some("application/json")
    );
    let r = rpc(mi, "get_statistics", json!([["evi:sent"]]));
    assert!(r["result"]["evi:sent"].as_u64().unwrap_or(0) >= 1, "{r}");
}
