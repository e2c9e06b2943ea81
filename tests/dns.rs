//! Server location (RFC 3263) end to end: lunasip asks a real Knot DNS
//! server for NAPTR, SRV and A records while SIPp calls go through it.

mod common;

use common::dns::{Knot, ZONE};
use common::*;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// A stateful script relaying every new call to `target`, with the DNS
/// server `dns` and tm timers short enough for failover tests.
fn script(dns: &str, target: &str, extra_config: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  dns_servers = {{ "{dns}" }},
  {extra_config}
  modules = {{ tm = {{ fr_timeout = 1, fr_inv_timeout = 3 }} }},
}}

function route.main()
  if sip.has_totag() then
    sip.rr.loose_route()
    sip.tm.t_relay()
    sip.exit()
  end
  if sip.is_method("INVITE") then sip.rr.record_route() end
  sip.pv.du = "{target}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
"#
    )
}

#[test]
fn naptr_srv_and_a_records_lead_to_the_callee() {
    let callee = uas("uas.xml", "u1");
    let knot = Knot::start(&format!(
        "chain IN NAPTR 10 10 \"s\" \"SIP+D2U\" \"\" _sip._udp.chain\n\
         chain IN NAPTR 20 10 \"s\" \"SIPS+D2T\" \"\" _sips._tcp.chain\n\
         _sip._udp.chain IN SRV 10 10 {} box1\n\
         box1 IN A 127.0.0.1\n",
        callee.port
    ));
    let proxy = Proxy::start(&script(&knot.server(), &format!("sip:chain.{ZONE}"), ""));
    let run = uac("uac.xml", proxy.port, "u1", 5, 5, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (5, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    assert_eq!(callee.counts(5), (5, 0), "{}", callee.errors());
}

#[test]
fn etc_hosts_names_resolve_without_dns() {
    // `localhost` comes from /etc/hosts; the DNS server has no such name.
    let callee = uas("uas.xml", "u1");
    let knot = Knot::start("");
    let proxy = Proxy::start(&script(
        &knot.server(),
        &format!("sip:localhost:{}", callee.port),
        "",
    ));
    let run = uac("uac.xml", proxy.port, "u1", 2, 2, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (2, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
}

#[test]
fn a_dead_first_srv_target_fails_over_to_the_second() {
    let dead = free_port();
    let alive = uas("uas.xml", "u1");
    let knot = Knot::start(&format!(
        "_sip._udp.pair IN SRV 10 10 {dead} first\n\
         _sip._udp.pair IN SRV 20 10 {} second\n\
         first IN A 127.0.0.1\nsecond IN A 127.0.0.1\n",
        alive.port
    ));
    let proxy = Proxy::start(&script(&knot.server(), &format!("sip:pair.{ZONE}"), ""));
    let run = uac("uac.xml", proxy.port, "u1", 2, 1, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (2, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    assert_eq!(alive.counts(2), (2, 0), "{}", alive.errors());
    let log = proxy.stop();
    assert!(
        log.contains(&format!("goes on to 127.0.0.1:{}", alive.port)),
        "{log}"
    );
}

#[test]
fn a_503_from_the_first_srv_target_fails_over_and_disable_dns_failover_stops_it() {
    let overloaded = uas("uas_503.xml", "u1");
    let good = uas("uas.xml", "u1");
    let records = format!(
        "_sip._udp.busy IN SRV 10 10 {} one\n\
         _sip._udp.busy IN SRV 20 10 {} two\n\
         one IN A 127.0.0.1\ntwo IN A 127.0.0.1\n",
        overloaded.port, good.port
    );
    let knot = Knot::start(&records);
    let target = format!("sip:busy.{ZONE}");
    let proxy = Proxy::start(&script(&knot.server(), &target, ""));
    let run = uac("uac.xml", proxy.port, "u1", 2, 2, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (2, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    assert_eq!(good.counts(2), (2, 0), "{}", good.errors());
    drop(proxy);
    // OpenSIPS's disable_dns_failover: the 503 ends the call.
    let proxy = Proxy::start(&script(
        &knot.server(),
        &target,
        "disable_dns_failover = 1,",
    ));
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(run.successful, 0, "{}", proxy.log_text());
    assert!(
        run.messages.contains("SIP/2.0 500") || run.messages.contains("SIP/2.0 503"),
        "{}",
        run.messages
    );
}

fn options(call_id: &str, user: &str) -> String {
    format!(
        "OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK{call_id}\r\n\
         From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A script that relays requests for user `dns` to `target` and answers
/// the others itself.
fn split_script(dns: &str, target: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  dns_servers = {{ "{dns}" }},
  dns_retr_time = 2,
  dns_retr_no = 1,
}}
function route.main()
  if sip.pv.rU == "dns" then
    sip.pv.du = "{target}"
    if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
    sip.exit()
  end
  sip.sl.sl_send_reply(200, "Local")
end
"#
    )
}

#[test]
fn a_name_that_does_not_resolve_gets_476_as_in_opensips() {
    let knot = Knot::start("");
    let proxy = Proxy::start(&split_script(
        &knot.server(),
        &format!("sip:nowhere.{ZONE}"),
    ));
    let r = udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        &options("nx-1", "dns"),
        Duration::from_secs(5),
    )
    .unwrap_or_default();
    assert!(
        r.starts_with("SIP/2.0 476 Unresolvable destination\r\n"),
        "{r}\n{}",
        proxy.log_text()
    );
}

#[test]
fn a_dns_server_that_never_answers_stalls_no_other_call() {
    // A UDP socket that reads queries and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let proxy = Proxy::start(&split_script(&server, "sip:slow.example.com"));
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = c.local_addr().unwrap().to_string();
    let to = format!("127.0.0.1:{}", proxy.port);
    let send = |m: String| {
        c.send_to(m.replace("{LOCAL}", &local).as_bytes(), &to)
            .unwrap()
    };
    send(options("stuck-1", "dns"));
    std::thread::sleep(Duration::from_millis(100));
    // One worker: these are answered while the lookup above hangs.
    let started = Instant::now();
    for i in 0..20 {
        send(options(&format!("other-{i}"), "local"));
    }
    let mut buf = [0u8; 4096];
    let mut local_answers = 0;
    c.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    while local_answers < 20 {
        let Ok((n, _)) = c.recv_from(&mut buf) else {
            break;
        };
        let r = String::from_utf8_lossy(&buf[..n]);
        local_answers += usize::from(r.starts_with("SIP/2.0 200 Local"));
    }
    assert_eq!(local_answers, 20, "{}", proxy.log_text());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The stuck call ends when the lookup gives up (2 s, one attempt).
    c.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let (n, _) = c
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no answer to the stuck call ({e}): {}", proxy.log_text()));
    let r = String::from_utf8_lossy(&buf[..n]);
    assert!(r.starts_with("SIP/2.0 476 "), "{r}");
    drop(silent);
}

#[test]
fn dispatcher_probes_reach_a_destination_given_by_srv_name() {
    // Only the SRV record knows the box's port: the system resolver could
    // not find it, so a probe arriving proves the RFC 3263 path.
    let probed = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = probed.local_addr().unwrap().port();
    let knot = Knot::start(&format!(
        "_sip._udp.probed IN SRV 10 10 {port} box\nbox IN A 127.0.0.1\n"
    ));
    let proxy = Proxy::start(&format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  dns_servers = {{ "{}" }},
  modules = {{
    mi_http = false, mi_fifo = false,
    dispatcher = {{ sets = {{ [1] = {{ "sip:probed.{ZONE}" }} }}, ds_ping_interval = 1, ds_probing_mode = 1 }},
  }},
}}
function route.main() sip.sl.sl_send_reply(404, "No") end
"#,
        knot.server()
    ));
    probed
        .set_read_timeout(Some(Duration::from_secs(4)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = probed
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no probe ({e}): {}", proxy.log_text()));
    let probe = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        probe.starts_with(&format!("OPTIONS sip:probed.{ZONE} SIP/2.0\r\n")),
        "{probe}"
    );
}

#[test]
fn a_failure_route_relays_to_a_name_only_dns_knows() {
    // The failure route suspends for the lookup (the system resolver
    // does not know the zone: resolving there would end in 476).
    let busy = uas("uas_busy.xml", "u1");
    let good = uas("uas.xml", "u1");
    let knot = Knot::start(&format!(
        "_sip._udp.backup IN SRV 10 10 {} box\nbox IN A 127.0.0.1\n",
        good.port
    ));
    let s = script(&knot.server(), &format!("sip:127.0.0.1:{}", busy.port), "").replace(
        "  sip.pv.du = ",
        "  if sip.is_method(\"INVITE\") then sip.tm.t_on_failure(\"backup\") end\n  sip.pv.du = ",
    ) + &format!(
        "function failure_route.backup()\n  sip.pv.du = \"sip:backup.{ZONE}\"\n  \
             if not sip.tm.t_relay() then sip.xlog(\"L_ERR\", \"no relay\\n\") end\nend\n"
    );
    let proxy = Proxy::start(&s);
    let run = uac("uac.xml", proxy.port, "u1", 3, 3, &[]);
    let log = proxy.stop();
    assert_eq!(
        (run.successful, run.failed),
        (3, 0),
        "{}\n{log}",
        run.errors
    );
    assert_eq!(good.counts(3), (3, 0), "{}", good.errors());
    assert!(!log.contains("no relay"), "{log}");
}

#[test]
fn ip_resolve_waits_for_dns_in_reads_and_answers_from_the_cache_in_formats() {
    let knot = Knot::start("box IN A 127.0.0.7\nother IN A 127.0.0.8\nthird IN A 127.0.0.9\n");
    let proxy = Proxy::start(&format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  dns_servers = {{ "{}" }},
}}
function route.main()
  if sip.pv.rU == "read" then
    sip.var.h = "box.{ZONE}"
    local a = sip.pv.get("$(var(h){{ip.resolve}})")
    local b = sip.tr("other.{ZONE}", "{{ip.resolve}}")
    local c = sip.pv.get("$(var(h){{ip.resolve}})")
    sip.sl.sl_send_reply(200, "A " .. tostring(a) .. " " .. tostring(b) .. " " .. tostring(c))
  else
    -- a format cannot wait: null the first time, the cache after
    sip.var.h = "third.{ZONE}"
    sip.sl.sl_send_reply(200, "F [$(var(h){{ip.resolve}})]")
  end
end
"#,
        knot.server()
    ));
    let to = format!("127.0.0.1:{}", proxy.port);
    let ask = |id: &str, user: &str| {
        udp_exchange(&to, &options(id, user), Duration::from_secs(5)).unwrap_or_default()
    };
    let r = ask("rd-1", "read");
    assert!(
        r.starts_with("SIP/2.0 200 A 127.0.0.7 127.0.0.8 127.0.0.7\r\n"),
        "{r}\n{}",
        proxy.log_text()
    );
    let first = ask("fmt-1", "fmt");
    std::thread::sleep(Duration::from_millis(500));
    let second = ask("fmt-2", "fmt");
    let log = proxy.stop();
    assert!(
        first.starts_with("SIP/2.0 200 F [<null>]\r\n"),
        "{first}\n{log}"
    );
    assert!(
        second.starts_with("SIP/2.0 200 F [127.0.0.9]\r\n"),
        "{second}\n{log}"
    );
    assert!(
        log.contains(&format!(
            "script.lua:16: {{ip.resolve}}: third.{ZONE} not cached"
        )),
        "{log}"
    );
}
