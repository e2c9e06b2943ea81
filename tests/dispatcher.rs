//! Dispatcher end to end: the built binary balancing SIPp calls over two
//! SIPp callees, taking one out by `ds_set_state` (MI) and by
//! `ds_mark_dst`, and failing over with `ds_next_dst`.

mod common;

use common::ds::{self, mi};
use common::*;

/// A stateful load balancer over set 1 (`dests` is the Lua list of
/// destinations); `mi_port` gets the MI over HTTP.
fn script(dests: &str, mi_port: u16, alg: u32) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    tm = {{ fr_timeout = 2, fr_inv_timeout = 3 }},
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    dispatcher = {{ sets = {{ [1] = {{ {dests} }} }} }},
  }},
}}

function route.main()
  if sip.has_totag() then
    if not sip.rr.loose_route() then sip.xlog("L_INFO", "no loose_route for $rm\n") end
    sip.tm.t_relay()
    sip.exit()
  end
  if sip.is_method("CANCEL") then
    if sip.tm.t_check_trans() then sip.tm.t_relay() end
    sip.exit()
  end
  sip.tm.t_check_trans()
  sip.rr.record_route()
  if not sip.dispatcher.ds_select_dst(1, {alg}, "f") then
    sip.sl.sl_send_reply(503, "No Destination")
    sip.exit()
  end
  sip.tm.t_on_failure("next")
  sip.tm.t_relay()
end

function failure_route.next()
  if sip.tm.t_was_cancelled() then return end
  sip.xlog("L_INFO", "failover from $du after $T_reply_code\n")
  sip.dispatcher.ds_mark_dst("i")
  if sip.dispatcher.ds_next_dst() then
    sip.xlog("L_INFO", "next is $du\n")
    sip.tm.t_relay()
  end
end
"#
    )
}

#[test]
fn round_robin_balances_then_all_calls_go_to_the_survivor() {
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    let mi_port = free_port();
    let dests = format!("\"sip:127.0.0.1:{}\", \"sip:127.0.0.1:{}\"", a.port, b.port);
    let proxy = Proxy::start(&script(&dests, mi_port, 4));

    let run = uac("uac.xml", proxy.port, "u1", 20, 20, &[]);
    assert_eq!(run.successful, 20, "{}\n{}", run.errors, proxy.log_text());
    assert_eq!(a.counts(10).0, 10, "{}", a.errors());
    assert_eq!(b.counts(10).0, 10, "{}", b.errors());

    let (ok, out) = mi(mi_port, &["ds_list"]);
    assert!(
        ok && out.contains("Active") && out.contains(&a.port.to_string()),
        "{out}"
    );
    let target = format!("sip:127.0.0.1:{}", a.port);
    let (ok, out) = mi(mi_port, &["ds_set_state", "i", "1", &target]);
    assert!(ok, "{out}");
    let (_, out) = mi(mi_port, &["ds_list"]);
    assert!(out.contains("Inactive"), "{out}");

    let run = uac("uac.xml", proxy.port, "u1", 10, 10, &[]);
    assert_eq!(run.successful, 10, "{}", run.errors);
    assert_eq!(b.counts(20).0, 20, "{}", b.errors());
    assert_eq!(a.counts(10).0, 10, "no new call for the inactive one");

    // Back to active: it takes calls again.
    let (ok, out) = mi(mi_port, &["ds_set_state", "a", "1", &target]);
    assert!(ok, "{out}");
    let run = uac("uac.xml", proxy.port, "u1", 10, 10, &[]);
    assert_eq!(run.successful, 10, "{}", run.errors);
    assert_eq!(a.counts(15).0, 15, "{}", a.errors());
    assert_eq!(b.counts(25).0, 25, "{}", b.errors());
}

#[test]
fn failover_with_ds_next_dst_and_ds_mark_dst() {
    let busy = uas("uas_busy.xml", "u1");
    let good = uas("uas.xml", "u1");
    let mi_port = free_port();
    // Priority puts the busy one first in the set; algorithm 8 takes it.
    let dests = format!(
        "{{ uri = \"sip:127.0.0.1:{}\", priority = 0 }}, {{ uri = \"sip:127.0.0.1:{}\", priority = 1 }}",
        busy.port, good.port
    );
    let proxy = Proxy::start(&script(&dests, mi_port, 8));
    let run = uac("uac.xml", proxy.port, "u1", 4, 4, &[]);
    assert_eq!(run.successful, 4, "{}\n{}", run.errors, proxy.log_text());
    assert_eq!(good.counts(4).0, 4, "{}", good.errors());
    let log = proxy.log_text();
    // The first call failed over and marked the busy one inactive; the
    // others went straight to the good one.
    assert_eq!(log.matches("failover from").count(), 1, "{log}");
    let (_, out) = mi(mi_port, &["ds_list", "full"]);
    assert!(
        out.contains("Inactive") && out.contains("priority"),
        "{out}"
    );
}

#[test]
fn unknown_set_returns_false_and_list_file_loads() {
    let dir = tempfile::tempdir().expect("tmp");
    let list = dir.path().join("dispatcher.list");
    std::fs::write(&list, "# set 2\n2 sip:127.0.0.1:5999 0 0 weight=1 box\n").expect("write");
    let mi_port = free_port();
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  modules = {{ mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }}, mi_fifo = false, dispatcher = {{ list_file = "{list}" }} }},
}}
function route.main()
  local r = sip.dispatcher.ds_select_dst(7, 0)
  local n = sip.dispatcher.ds_count(2, "a", "$var(n)")
  local inl = sip.dispatcher.ds_is_in_list("127.0.0.1", 5999, 2)
  sip.dispatcher.ds_select_domain(2, 8)
  sip.sl.sl_send_reply(200, "r=" .. tostring(r) .. " n=$var(n) in=" .. tostring(inl) .. " ru=$ru")
end
"#,
        list = list.display()
    );
    let proxy = Proxy::start(&script);
    let msg = format!(
        "OPTIONS sip:x@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5998;rport;branch=z9hG4bK-ds1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: ds-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        p = proxy.port
    );
    let reply = udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        &msg,
        std::time::Duration::from_secs(3),
    )
    .unwrap_or_else(|| panic!("no reply: {}", proxy.log_text()));
    assert!(
        reply.contains("r=false n=1 in=true ru=sip:x@127.0.0.1:5999"),
        "{reply}"
    );

    // ds_reload re-reads the file: the new destination is there, the
    // surviving one keeps the state it was given.
    let (ok, out) = mi(mi_port, &["ds_set_state", "i", "2", "127.0.0.1:5999"]);
    assert!(ok, "{out}");
    std::fs::write(
        &list,
        "2 sip:127.0.0.1:5999\n2 sip:127.0.0.1:5997 0 1\n3 sip:127.0.0.1:5996\n",
    )
    .expect("write");
    let (ok, out) = mi(mi_port, &["ds_reload"]);
    assert!(ok, "{out}");
    let (_, out) = mi(mi_port, &["ds_list"]);
    assert!(
        out.contains("5997") && out.contains("5996") && out.contains("Inactive"),
        "{out}"
    );
    let reply = udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        &msg.replace("ds-1", "ds-2"),
        std::time::Duration::from_secs(3),
    )
    .unwrap_or_else(|| panic!("no reply: {}", proxy.log_text()));
    assert!(
        reply.contains("n=1 in=true ru=sip:x@127.0.0.1:5997"),
        "{reply}"
    );
}

#[test]
fn probing_takes_a_dead_box_out_and_brings_it_back_with_its_keys() {
    ds::probing_round_trip(&|a, b| {
        format!("sets = {{ [1] = {{ \"sip:127.0.0.1:{a}\", \"sip:127.0.0.1:{b}\" }} }}")
    });
}

/// The shipped FreeSWITCH example, pointed at SIPp boxes: one of the three
/// is down from the start. Its calls fail over to the live boxes, and
/// `ds_mark_dst("p")` takes it out after `ds_probing_threshold` failures.
#[test]
fn the_freeswitch_example_balances_and_fails_over() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/lua/examples/freeswitch-lb.lua"
    ))
    .expect("example");
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    let dead = free_port();
    let script = text
        .replace(
            r#"listen = { "udp:0.0.0.0:5060", "tcp:0.0.0.0:5060" }"#,
            r#"listen = { "udp:127.0.0.1:{PORT}" }, children = 2"#,
        )
        .replace(
            "fr_timeout = 5, fr_inv_timeout = 30",
            "fr_timeout = 2, fr_inv_timeout = 2",
        )
        .replace("sip:10.0.0.11:5060", &format!("sip:127.0.0.1:{}", a.port))
        .replace("sip:10.0.0.12:5060", &format!("sip:127.0.0.1:{}", b.port))
        .replace("sip:10.0.0.13:5060", &format!("sip:127.0.0.1:{dead}"));
    assert!(
        script.contains(&format!("127.0.0.1:{dead}")),
        "example changed shape"
    );
    let proxy = Proxy::start(&script);
    let run = uac("uac.xml", proxy.port, "u1", 24, 6, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (24, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    let (mut ok_a, mut ok_b) = (0, 0);
    while ok_a + ok_b < 24 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        (ok_a, ok_b) = (a.counts(0).0, b.counts(0).0);
    }
    assert_eq!(ok_a + ok_b, 24, "every call landed on a live box");
    assert!(
        ok_a >= 6 && ok_b >= 6,
        "both live boxes used: {ok_a} {ok_b}"
    );
    let log = proxy.stop();
    // Two failures (ds_probing_threshold) took the dead box out; no more tries after.
    assert!(
        log.contains(&format!("sip:127.0.0.1:{dead} is now Probing")),
        "{log}"
    );
    // Once out, it gets no new call.
    let after = &log[log.find("is now Probing").unwrap_or(0)..];
    let later_picks = after
        .lines()
        .filter(|l| l.contains(" to box sip:127.0.0.1:"))
        .count();
    assert!(
        later_picks >= 6,
        "calls kept coming after the marking: {log}"
    );
    // A worker choosing at the very moment another marks it may still
    // send one; after that, none.
    assert!(
        after
            .matches(&format!(" to box sip:127.0.0.1:{dead} "))
            .count()
            <= 1,
        "{log}"
    );
    assert!(log.matches("trying the next").count() >= 2, "{log}");
    // The failure route sees the $du the call was relayed to.
    assert!(
        log.contains(&format!("box sip:127.0.0.1:{dead} failed INVITE")),
        "{log}"
    );
    assert!(log.contains("User-Agent") || !log.contains("local_route.main failed"));
}

/// Probes as a box sees them: from `ds_ping_from`, with `ds_ping_maxfwd`,
/// with what `local_route` added; a probe `local_route` drops never leaves.
#[test]
fn probes_pass_local_route_and_answers_keep_the_box_active() {
    let box1 = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let box2 = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let (p1, p2) = (
        box1.local_addr().expect("addr").port(),
        box2.local_addr().expect("addr").port(),
    );
    let mi_port = free_port();
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    dispatcher = {{
      sets = {{ [1] = {{ "sip:127.0.0.1:{p1}", "sip:127.0.0.1:{p2};quiet=1" }} }},
      ds_ping_interval = 1, ds_probing_mode = 1, ds_ping_maxfwd = 3,
      ds_ping_from = "sip:prober@lb.test", options_reply_codes = "404",
    }},
  }},
}}
function route.main() sip.sl.sl_send_reply(404, "No") end
function local_route.main()
  if sip.re_match(sip.pv.ru, "quiet") then sip.drop() end
  sip.append_hf("X-Probe: lunasip\r\n")
end
"#
    );
    let proxy = Proxy::start(&script);
    box1.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    // Answer three probes with 404 (listed in options_reply_codes).
    for _ in 0..3 {
        let (n, from) = box1.recv_from(&mut buf).expect("a probe");
        let probe = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            probe.starts_with(&format!("OPTIONS sip:127.0.0.1:{p1} SIP/2.0\r\n")),
            "{probe}"
        );
        assert!(
            probe.contains("\r\nFrom: <sip:prober@lb.test>;tag="),
            "{probe}"
        );
        assert!(probe.contains("\r\nMax-Forwards: 3\r\n"), "{probe}");
        assert!(probe.contains("\r\nX-Probe: lunasip\r\n"), "{probe}");
        let keep: String = probe
            .split("\r\n")
            .filter(|l| {
                ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(|l| format!("{l}\r\n"))
            .collect();
        let reply = format!("SIP/2.0 404 Not Here\r\n{keep}Content-Length: 0\r\n\r\n");
        box1.send_to(reply.as_bytes(), from).expect("reply");
    }
    // The dropped one never got a probe.
    box2.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .expect("timeout");
    assert!(box2.recv_from(&mut buf).is_err(), "local_route dropped it");
    let (_, out) = mi(mi_port, &["ds_list"]);
    assert!(!out.contains("Probing") && out.contains("Active"), "{out}");
    let (_, stats) = mi(mi_port, &["get_statistics", "dispatcher:"]);
    assert!(stats.contains("probes_sent"), "{stats}");
    drop(proxy);
}

/// A script reload applies `config.modules.dispatcher` only once the whole
/// script passed: a script refused after its modules were read (a failure
/// route that does not exist) leaves the sets as they were; a good one
/// installs its new set.
#[test]
fn a_refused_reload_leaves_the_sets_alone() {
    let mi_port = free_port();
    let proxy = Proxy::start(&script("\"sip:127.0.0.1:5901\"", mi_port, 4));
    let (ok, before) = mi(mi_port, &["ds_list"]);
    assert!(ok && before.contains("127.0.0.1:5901"), "{before}");
    let port = proxy.port.to_string();
    let write = |dests: &str, failure: &str| {
        let text = script(dests, mi_port, 4).replace("{PORT}", &port).replace(
            "t_on_failure(\"next\")",
            &format!("t_on_failure(\"{failure}\")"),
        );
        std::fs::write(&proxy.script, text).expect("write script");
    };

    // New set, bad script: refused, the old set stays.
    write("\"sip:127.0.0.1:5902\", \"sip:127.0.0.1:5903\"", "nowhere");
    let (ok, out) = mi(mi_port, &["reload_routes"]);
    assert!(!ok, "{out}");
    let log = proxy.log_text();
    assert!(
        log.contains("reload refused") && log.contains("failure_route.nowhere"),
        "{log}"
    );
    let (ok, after) = mi(mi_port, &["ds_list"]);
    assert!(ok, "{after}");
    assert_eq!(after, before, "a refused reload changed the sets");

    // The same set in a good script: installed.
    write("\"sip:127.0.0.1:5902\", \"sip:127.0.0.1:5903\"", "next");
    let (ok, out) = mi(mi_port, &["reload_routes"]);
    assert!(ok, "{out}\n{}", proxy.log_text());
    let (_, now) = mi(mi_port, &["ds_list"]);
    assert!(
        now.contains("127.0.0.1:5902") && now.contains("127.0.0.1:5903") && !now.contains("5901"),
        "{now}"
    );
}

/// A relative `list_file` is read from the script's directory (as
/// Kamailio's ds_list_file, where the format comes from), not from the
/// working directory lunasip was started in (an empty one here).
#[test]
fn relative_list_file_is_found_beside_the_script() {
    let script = r#"config = {
  listen = { "udp:127.0.0.1:{PORT}" },
  modules = { dispatcher = { list_file = "dispatcher.list" } },
}
function route.main()
  local inl = sip.dispatcher.ds_is_in_list("127.0.0.1", 5999, 2)
  sip.sl.sl_send_reply(200, "in=" .. tostring(inl))
end
"#;
    let port = free_port();
    let proxy = Proxy::try_start_beside(
        "script.lua",
        script,
        port,
        &[("dispatcher.list", "2 sip:127.0.0.1:5999\n")],
    )
    .unwrap_or_else(|log| panic!("lunasip did not start:\n{log}"));
    let msg = "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5998;rport;branch=z9hG4bK-ds9\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: ds-9\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let reply = udp_exchange(
        &format!("127.0.0.1:{port}"),
        msg,
        std::time::Duration::from_secs(3),
    )
    .unwrap_or_else(|| panic!("no reply: {}", proxy.log_text()));
    assert!(reply.contains("in=true"), "{reply}");
}
