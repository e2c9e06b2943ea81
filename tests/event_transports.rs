//! The event interface's other transports and the rabbitmq module against
//! real peers (OpenSIPS 3.4 event_datagram `unix:`, event_route `route:`,
//! event_flatstore, rabbitmq's `rabbitmq_publish`; 2.x text payload).

mod common;

use common::rpc::{mi_script as script, rpc};
use common::*;
use serde_json::{json, Value};
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn recv_text(s: &UdpSocket) -> String {
    let mut buf = [0u8; 65536];
    let (n, _) = s.recv_from(&mut buf).expect("an event datagram");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lunasip-ev-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Waits until `path` holds `want` lines.
fn lines(path: &std::path::Path, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if got.len() >= want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// event_datagram's `unix:` socket gets the 3.x JSON-RPC notification, a
/// `;format=text` UDP subscriber the 2.x text datagram, and a `route:`
/// subscriber runs `event_route.NAME` where `$param(n)` and
/// `$param(name)` read the event's parameters (event_route.c).
#[test]
fn unix_text_and_route_subscribers() {
    let dir = tempdir("unix");
    let upath = dir.join("ev.sock");
    let unix = UnixDatagram::bind(&upath).expect("bind unix");
    unix.set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    let (text_l, text_port) = udp_listener();
    let (seen_l, seen_port) = udp_listener();
    let mi = free_port();
    let routes = format!(
        "function startup_route.main()\n  \
           sip.raise_event(\"E_SEEN\")\n  \
           sip.subscribe_event(\"E_SEEN\", \"udp:127.0.0.1:{seen_port}\")\n\
         end\n\
         function route.main() end\n\
         function event_route.on_aor(ev)\n  \
           sip.raise_event(\"E_SEEN\", {{ first = sip.pv.get(\"$param(1)\"), dom = sip.pv.get(\"$param(domain)\"), none = sip.pv.get(\"$param(3)\") or \"null\", arg = ev.aor }})\n\
         end\n"
    );
    let proxy = Proxy::start(&script(mi, "", &routes));
    for sock in [
        format!("unix:{}", upath.display()),
        format!("udp:127.0.0.1:{text_port};format=text"),
        "route:on_aor".to_string(),
    ] {
        let r = rpc(mi, "event_subscribe", json!(["E_UL_AOR_INSERT", sock, 60]));
        assert_eq!(r["result"], "OK", "{sock}: {r}");
    }
    let r = rpc(
        mi,
        "raise_event",
        json!({"event": "E_UL_AOR_INSERT", "params": {"aor": "alice", "domain": "location"}}),
    );
    assert_eq!(r["result"], "OK", "{r}");

    let mut buf = [0u8; 65536];
    let n = unix.recv(&mut buf).expect("a unix datagram");
    let v: Value = serde_json::from_slice(&buf[..n]).expect("JSON");
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "method": "E_UL_AOR_INSERT", "params": {"aor": "alice", "domain": "location"}})
    );
    assert_eq!(
        recv_text(&text_l),
        "E_UL_AOR_INSERT\naor::alice\ndomain::location\n\n"
    );
    let seen: Value = serde_json::from_str(&recv_text(&seen_l))
        .unwrap_or_else(|e| panic!("{e}\n{}", proxy.log_text()));
    assert_eq!(
        seen["params"],
        json!({"first": "alice", "dom": "location", "none": "null", "arg": "alice"}),
        "{seen}"
    );

    // Bad sockets are JSON-RPC errors naming what is wrong.
    for (sock, says) in [
        ("unix:relative.sock", "absolute"),
        ("route:", "no route name"),
        ("udp:127.0.0.1:9;format=xml", "unknown format"),
        ("flatstore:/nonexistent-dir-x/ev.log", "does not exist"),
    ] {
        let r = rpc(mi, "event_subscribe", json!(["E_UL_AOR_INSERT", sock]));
        let msg = r["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(says), "{sock}: {r}");
    }
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}

/// event_flatstore: one line per event (name, then the values joined by
/// the delimiter), and `evi_flat_rotate` after logrotate moved the file
/// makes the next line go to a new file.
#[test]
fn flatstore_lines_and_rotation() {
    let dir = tempdir("flat");
    let file = dir.join("events.log");
    let mi = free_port();
    let proxy = Proxy::start(&script(
        mi,
        "event_flatstore = { delimiter = \";\" },",
        "function route.main() end",
    ));
    let sock = format!("flatstore:{}", file.display());
    let r = rpc(mi, "event_subscribe", json!(["E_UL_AOR_INSERT", sock, 60]));
    assert_eq!(r["result"], "OK", "{r}");
    let raise = |aor: &str| {
        let r = rpc(
            mi,
            "raise_event",
            json!({"event": "E_UL_AOR_INSERT", "params": {"aor": aor, "domain": "location"}}),
        );
        assert_eq!(r["result"], "OK", "{r}");
    };
    raise("alice");
    raise("bob");
    assert_eq!(
        lines(&file, 2),
        [
            "E_UL_AOR_INSERT;alice;location",
            "E_UL_AOR_INSERT;bob;location"
        ]
    );

    let moved = dir.join("events.log.1");
    std::fs::rename(&file, &moved).expect("rotate");
    let r = rpc(mi, "evi_flat_rotate", json!([file.display().to_string()]));
    assert_eq!(r["result"], "OK", "{r}");
    raise("carol");
    assert_eq!(lines(&file, 1), ["E_UL_AOR_INSERT;carol;location"]);
    assert_eq!(
        lines(&moved, 2).len(),
        2,
        "the rotated file keeps its lines"
    );

    let r = rpc(mi, "evi_flat_rotate", json!(["/tmp/not-a-subscriber.log"]));
    assert!(r["error"].is_object(), "{r}");
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}

const OPTIONS: &str = "OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bK-rq{N}\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: rq-{N}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

/// rabbitmq.c `rmq_publish`: the message, its content type and the AMQP
/// headers from two AVPs reach the broker, persistent unless
/// `non-persistent`; an unknown server id is false.
#[test]
fn rabbitmq_publish_reaches_the_broker() {
    use lapin::types::AMQPValue;

    let key = format!("lunasip.publish.{}", std::process::id());
    let consumer = common::rabbit::Consumer::bind(&key);

    let mi = free_port();
    let modules = "rabbitmq = { server_id = { \"[ID1] uri = amqp://guest:guest@127.0.0.1:5672; exchange = amq.direct\" } },";
    let routes = format!(
        "function route.main()\n  \
           sip.avp.hn = \"caller\"\n  sip.avp.hv = sip.pv.fU\n  \
           sip.avp.hn = \"n\"\n  sip.avp.hv = 7\n  \
           if not sip.rabbitmq.rabbitmq_publish(\"NOPE\", \"k\", \"x\") then\n    \
             local ok = sip.rabbitmq.rabbitmq_publish(\"ID1\", \"{key}\", \"$fU called $rU\", \"text/plain\", \"$avp(hn)\", \"$avp(hv)\")\n    \
             if ok then sip.sl.sl_send_reply(200, \"OK\") else sip.sl.sl_send_reply(503, \"Not Yet\") end\n  \
           end\n\
         end\n"
    );
    let proxy = Proxy::start(&script(mi, modules, &routes));
    // The publisher connects after start: until then the call is false.
    options_until_ok(&proxy, "bob", &mut 0);

    let got = consumer.next();
    let m = got.unwrap_or_else(|| panic!("no message\n{}", proxy.log_text()));
    assert_eq!(
        String::from_utf8_lossy(&m.delivery.data),
        "alice called bob"
    );
    let p = &m.delivery.properties;
    assert_eq!(
        p.content_type().as_ref().map(|c| c.as_str()),
        Some("text/plain")
    );
    assert_eq!(*p.delivery_mode(), Some(2));
    let h = p.headers().as_ref().expect("headers");
    let h = h.inner();
    // Both AVPs are walked newest first, as OpenSIPS pairs them.
    assert_eq!(h.get("n"), Some(&AMQPValue::LongInt(7)), "{h:?}");
    assert_eq!(
        h.get("caller"),
        Some(&AMQPValue::LongString("alice".into())),
        "{h:?}"
    );
    // The broker's confirm is counted when the publisher next reads (up
    // to its 5 ms linger after the write), maybe after the consumer got
    // the message.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let r = loop {
        let r = rpc(mi, "get_statistics", json!([["rabbitmq:published"]]));
        if r["result"]["rabbitmq:published"].as_u64().unwrap_or(0) >= 1
            || std::time::Instant::now() > deadline
        {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        r["result"]["rabbitmq:published"].as_u64().unwrap_or(0) >= 1,
        "{r}"
    );
}

/// A `server_id` that does not parse stops the script before it runs,
/// naming the key and the problem.
#[test]
fn a_bad_server_id_is_refused_at_load() {
    let err = Proxy::try_start(&script(
        free_port(),
        "rabbitmq = { server_id = { \"[A] uri = amqp://h; heartbeat = soon\" } },",
        "function route.main() end",
    ))
    .err()
    .expect("refused");
    assert!(
        err.contains("server_id") && err.contains("heartbeat"),
        "{err}"
    );
}

/// A `unix:` subscriber that never reads fills its buffer: the rest of
/// the events are dropped and counted, the route is not slowed and
/// nothing queues up in the proxy.
#[test]
fn a_unix_reader_that_never_reads_costs_drops() {
    let dir = tempdir("stuck");
    let upath = dir.join("stuck.sock");
    let _stuck = UnixDatagram::bind(&upath).expect("bind unix");
    let mi = free_port();
    let routes = format!(
        "function startup_route.main()\n  \
           sip.raise_event(\"E_BURST\")\n  \
           sip.subscribe_event(\"E_BURST\", \"unix:{}\")\n\
         end\n\
         function route.main()\n  \
           for i = 1, 2000 do sip.raise_event(\"E_BURST\", {{ i = i }}) end\n  \
           sip.sl.sl_send_reply(200, \"OK\")\n\
         end\n",
        upath.display()
    );
    let proxy = Proxy::start(&script(mi, "", &routes));
    let to = format!("127.0.0.1:{}", proxy.port);
    let r =
        udp_exchange(&to, &OPTIONS.replace("{N}", "0"), Duration::from_secs(5)).expect("a reply");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let (sent, dropped) = loop {
        let r = rpc(mi, "get_statistics", json!([["evi:"]]));
        let sent = r["result"]["evi:sent"].as_u64().unwrap_or(0);
        let dropped = r["result"]["evi:dropped"].as_u64().unwrap_or(0);
        if sent + dropped >= 2000 || Instant::now() > deadline {
            break (sent, dropped);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sent + dropped, 2000, "every event accounted for");
    assert!(dropped > 0 && sent > 0, "sent {sent}, dropped {dropped}");
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}

/// evi/event_interface.c: a subscription lives `expire` seconds; after
/// that nothing more is sent and `subscribers_list` no longer shows it.
#[test]
fn subscriptions_expire() {
    let (l, port) = udp_listener();
    let mi = free_port();
    let proxy = Proxy::start(&script(mi, "", "function route.main() end"));
    let sock = format!("udp:127.0.0.1:{port}");
    let r = rpc(mi, "event_subscribe", json!(["E_UL_AOR_INSERT", sock, 1]));
    assert_eq!(r["result"], "OK", "{r}");
    assert_eq!(
        rpc(mi, "raise_event", json!(["E_UL_AOR_INSERT"]))["result"],
        "OK"
    );
    assert!(recv_text(&l).contains("E_UL_AOR_INSERT"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        rpc(mi, "raise_event", json!(["E_UL_AOR_INSERT"]))["result"],
        "OK"
    );
    l.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 1024];
    assert!(l.recv_from(&mut buf).is_err(), "nothing after expiry");
    let r = rpc(mi, "subscribers_list", json!([]));
    assert_eq!(r["result"]["Events"], json!([]), "{r}");
    drop(proxy);
}

/// event_datagram takes a host name in `udp:host:port`
/// (event_datagram.c resolves it with resolvehost). Subscribing from a
/// request route only parses the socket: the delivery thread resolves
/// the name, so the route answers at once; an unresolvable name is
/// accepted, and its events are dropped with a log line naming it.
#[test]
fn a_udp_subscriber_given_by_name_gets_events_without_blocking_the_route() {
    let (l, port) = udp_listener();
    let mi = free_port();
    let routes = format!(
        "function startup_route.main()\n  sip.raise_event(\"E_NAMED\")\nend\n\
         function route.main()\n  \
           sip.subscribe_event(\"E_NAMED\", \"udp:localhost:{port}\")\n  \
           sip.subscribe_event(\"E_NAMED\", \"udp:nowhere.invalid:{port}\")\n  \
           sip.raise_event(\"E_NAMED\", {{ ci = sip.pv.ci }})\n  \
           sip.sl.sl_send_reply(200, \"Subscribed\")\n\
         end\n"
    );
    let proxy = Proxy::start(&script(mi, "", &routes));
    let msg =
        "OPTIONS sip:ev@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKnamed1\r\n\
               From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:ev@127.0.0.1>\r\nCall-ID: named-1\r\n\
               CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let asked = Instant::now();
    let r = udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        msg,
        Duration::from_secs(3),
    )
    .unwrap_or_default();
    let took = asked.elapsed();
    assert!(
        r.starts_with("SIP/2.0 200 Subscribed\r\n"),
        "{r}\n{}",
        proxy.log_text()
    );
    assert!(took < Duration::from_millis(500), "{took:?}");
    let ev = recv_text(&l);
    assert!(ev.contains("E_NAMED") && ev.contains("named-1"), "{ev}");
    std::thread::sleep(Duration::from_millis(300));
    let log = proxy.stop();
    assert!(
        log.contains("udp:nowhere.invalid:") && log.contains("cannot resolve nowhere.invalid"),
        "{log}"
    );
}

/// Sends OPTIONS to user `user` until the route answers 200 (a publisher
/// connects after start); the number of requests sent.
fn options_until_ok(proxy: &Proxy, user: &str, n: &mut u32) {
    let to = format!("127.0.0.1:{}", proxy.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        *n += 1;
        let msg = OPTIONS.replace("{N}", &n.to_string()).replace(
            "sip:bob@127.0.0.1 SIP",
            &format!("sip:{user}@127.0.0.1 SIP"),
        );
        let r = udp_exchange(&to, &msg, Duration::from_secs(2)).expect("a reply");
        if r.starts_with("SIP/2.0 200") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never published: {r}\n{}",
            proxy.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rabbitmq_stats(mi: u16) -> (u64, u64) {
    let r = rpc(mi, "get_statistics", json!([["rabbitmq:"]]));
    let get = |k: &str| r["result"][k].as_u64().unwrap_or(0);
    (get("rabbitmq:published"), get("rabbitmq:dropped"))
}

/// rabbitmq.c with `frames = 4096`: a 20,000-byte message goes out in
/// body frames no larger than the negotiated frame_max and arrives whole;
/// a `mandatory` message nobody's queue takes comes back (basic.return)
/// and counts as dropped, not published, although the broker acks it.
#[test]
fn rabbitmq_publish_splits_big_bodies_and_counts_returned_messages() {
    let key = format!("lunasip.frames.{}", std::process::id());
    let consumer = common::rabbit::Consumer::bind(&key);
    let mi = free_port();
    let modules = "rabbitmq = { server_id = {\n      \
        \"[SMALL] uri = amqp://guest:guest@127.0.0.1:5672; exchange = amq.direct; frames = 4096\",\n      \
        \"[MAND] uri = amqp://guest:guest@127.0.0.1:5672; exchange = amq.direct; mandatory\" } },";
    let routes = format!(
        "function route.main()\n  \
           local ok\n  \
           if sip.pv.rU == \"big\" then\n    \
             ok = sip.rabbitmq.rabbitmq_publish(\"SMALL\", \"{key}\", string.rep(\"0123456789\", 2000) .. \"end\")\n  \
           else\n    \
             ok = sip.rabbitmq.rabbitmq_publish(\"MAND\", \"lunasip.nobody.{key}\", \"lost\")\n  \
           end\n  \
           if ok then sip.sl.sl_send_reply(200, \"OK\") else sip.sl.sl_send_reply(503, \"Not Yet\") end\n\
         end\n"
    );
    let proxy = Proxy::start(&script(mi, modules, &routes));
    let mut n = 0;
    options_until_ok(&proxy, "big", &mut n);
    let m = consumer
        .next()
        .unwrap_or_else(|| panic!("no message\n{}", proxy.log_text()));
    assert_eq!(m.delivery.data.len(), 20_003);
    assert!(m.delivery.data.starts_with(b"0123456789") && m.delivery.data.ends_with(b"9end"));

    // Connected (drops before this are refusals while connecting).
    options_until_ok(&proxy, "lost", &mut n);
    std::thread::sleep(Duration::from_millis(500));
    let (p0, d0) = rabbitmq_stats(mi);
    assert!(p0 >= 1, "the big message is confirmed: {p0}");
    options_until_ok(&proxy, "lost", &mut n);
    let deadline = Instant::now() + Duration::from_secs(5);
    let (p1, d1) = loop {
        let s = rabbitmq_stats(mi);
        if s.1 > d0 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((p1, d1), (p0, d0 + 1), "returned: dropped, not published");
}
