//! A RabbitMQ outage under load (issue 15): calls through a script that
//! raises an event per INVITE for a `rabbitmq:` subscriber keep completing
//! while the broker is stopped and started again; events resume after the
//! restart, and what the consumer misses is exactly what `evi:dropped`
//! counts. The broker is a node of the test's own (`PrivateBroker`), so
//! stopping it disturbs no other test.

mod common;

use common::rabbit::{Consumer, PrivateBroker};
use common::rpc::rpc;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn script(mi: u16, callee: u16, broker: u16, key: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{ mi_http = {{ ip = "127.0.0.1", port = {mi}, token = false }}, mi_fifo = false }},
}}

function startup_route.main()
  sip.raise_event("E_CALL")
  sip.subscribe_event("E_CALL", "rabbitmq:127.0.0.1:{broker}/exchange=amq.direct;persistent?{key}")
end

function route.main()
  if sip.has_totag() then
    sip.rr.loose_route()
    sip.tm.t_relay()
    sip.exit()
  end
  sip.tm.t_check_trans()
  if sip.is_method("INVITE") then
    sip.raise_event("E_CALL", {{ callid = sip.pv.ci, from = sip.pv.fu }})
    sip.rr.record_route()
  end
  sip.pv.du = "sip:127.0.0.1:{callee}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
"#
    )
}

fn evi(mi: u16) -> (u64, u64) {
    let r = rpc(mi, "get_statistics", json!([["evi:"]]));
    (
        r["result"]["evi:sent"].as_u64().unwrap_or(0),
        r["result"]["evi:dropped"].as_u64().unwrap_or(0),
    )
}

#[test]
fn broker_restart_mid_load_loses_no_call_and_counts_every_event() {
    let broker = PrivateBroker::start();
    let key = format!("lunasip.outage.{}", std::process::id());
    // A durable queue bound before the load: it keeps what the broker
    // confirmed over the restart.
    drop(Consumer::bind_at(&broker.uri(), &key, true));
    let callee = uas("uas.xml", "u1");
    let mi = free_port();
    let proxy = Proxy::start(&script(mi, callee.port, broker.port, &key));

    // 2000 calls at 100/s (20 s); the broker goes down 4 s in and comes
    // back up 4 s later.
    let calls = 2000u32;
    let outage = std::thread::scope(|s| {
        let h = s.spawn(|| {
            std::thread::sleep(Duration::from_secs(4));
            broker.down();
            let down_at = Instant::now();
            std::thread::sleep(Duration::from_secs(4));
            broker.up();
            down_at.elapsed()
        });
        let run = uac("uac.xml", proxy.port, "u1", calls, 100, &[]);
        assert_eq!(
            (run.successful, run.failed),
            (u64::from(calls), 0),
            "{}\n{}",
            run.errors,
            proxy.log_text()
        );
        h.join().expect("broker thread")
    });

    // The broker is back: calls made now are published again (the
    // publisher reconnects with a backoff of at most 5 s).
    let mut total = u64::from(calls);
    let settled = |total: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, d) = evi(mi);
            if s + d >= total || Instant::now() > deadline {
                break (s, d);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let (before, _) = settled(total);
    let deadline = Instant::now() + Duration::from_secs(40);
    let (sent, dropped) = loop {
        let run = uac("uac.xml", proxy.port, "u1", 20, 20, &[]);
        assert_eq!((run.successful, run.failed), (20, 0), "{}", run.errors);
        total += 20;
        let (s, d) = settled(total);
        if s > before || Instant::now() > deadline {
            break (s, d);
        }
    };
    assert_eq!(sent + dropped, total, "sent {sent} dropped {dropped}");
    assert!(
        dropped > 0,
        "the outage cost events: sent {sent} dropped {dropped}"
    );
    assert!(
        sent > before,
        "events resumed after the restart: sent {sent} dropped {dropped}\n{}",
        proxy.log_text()
    );
    let got = Consumer::bind_at(&broker.uri(), &key, true).drain();
    // Every confirmed event is in the queue. A few more may be: a message
    // the broker had written when the connection dropped, before its ack
    // reached the proxy, is counted dropped (at-least-once delivery; the
    // proxy cannot know). At most one publisher window of them.
    assert!(
        got >= sent && got - sent <= dropped.min(1024),
        "the consumer holds what was confirmed: got {got}, sent {sent}, dropped {dropped}"
    );
    eprintln!(
        "{total} calls, broker down {outage:?}: 0 failed calls, events sent {sent}, dropped {dropped}, consumer got {got}"
    );
}
