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

/// A one-worker script asking the DNS server `dns`, with `extra` config
/// lines and the Lua `routes`.
fn one_worker(dns: &str, extra: &str, routes: &str) -> String {
    format!(
        "config = {{\n  listen = {{ \"udp:127.0.0.1:{{PORT}}\" }},\n  children = 1,\n  \
         dns_servers = {{ \"{dns}\" }},\n{extra}}}\n{routes}"
    )
}

/// A DNS server in front of `upstream` that answers every query `delay`
/// late: slow, not dead. Its address.
fn slow_dns(upstream: String, delay: Duration) -> String {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let (q, up) = (buf[..n].to_vec(), upstream.clone());
            let Ok(back) = s.try_clone() else { return };
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let Ok(u) = UdpSocket::bind("127.0.0.1:0") else {
                    return;
                };
                let _ = u.set_read_timeout(Some(Duration::from_secs(2)));
                let mut b = [0u8; 4096];
                if u.send_to(&q, &up).is_ok() {
                    if let Ok((m, _)) = u.recv_from(&mut b) {
                        let _ = back.send_to(&b[..m], from);
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn a_failure_route_waiting_for_a_slow_dns_server_leaves_the_worker_answering() {
    // One worker. The first callee is busy; the failure route relays to a
    // name only Knot knows, through a server that answers each query
    // 400 ms late (NAPTR, SRV, A: over a second). Other requests are
    // answered meanwhile; a worker blocked on DNS could answer none.
    let busy = uas("uas_busy.xml", "u1");
    let good = uas("uas.xml", "u1");
    let knot = Knot::start(&format!(
        "_sip._udp.later IN SRV 10 10 {} box\nbox IN A 127.0.0.1\n",
        good.port
    ));
    let dns = slow_dns(knot.server(), Duration::from_millis(400));
    let routes = format!(
        r#"function route.main()
  if sip.pv.rU == "local" then
    sip.sl.sl_send_reply(200, "Local")
    sip.exit()
  end
{IN_DIALOG}  if sip.is_method("INVITE") then
    sip.rr.record_route()
    sip.tm.t_on_failure("later")
  end
  sip.pv.du = "sip:127.0.0.1:{busy}"
  sip.tm.t_relay()
end
function failure_route.later()
  sip.xlog("L_INFO", "failure route looks up later\n")
  sip.pv.du = "sip:later.{ZONE}"
  if not sip.tm.t_relay() then sip.xlog("L_ERR", "no relay\n") end
end
"#,
        busy = busy.port
    );
    let proxy = Proxy::start(&one_worker(
        &dns,
        "  dns_retr_time = 3,\n  dns_retr_no = 1,\n",
        &routes,
    ));
    let to = format!("127.0.0.1:{}", proxy.port);
    // Requests every 100 ms for 4 s, over the whole call below.
    let others_from = Instant::now();
    let others = std::thread::spawn(move || {
        (0..40)
            .map(|i| {
                let asked = Instant::now();
                let r = udp_exchange(
                    &to,
                    &options(&format!("busy-dns-{i}"), "local"),
                    Duration::from_secs(3),
                )
                .unwrap_or_default();
                let answered = asked.elapsed();
                std::thread::sleep(Duration::from_millis(100));
                (r.starts_with("SIP/2.0 200 Local\r\n"), answered)
            })
            .collect::<Vec<_>>()
    });
    let started = Instant::now();
    let run = uac("uac.xml", proxy.port, "u1", 1, 1, &[]);
    let took = started.elapsed();
    let call_ended = others_from.elapsed();
    let answers = others.join().unwrap();
    let log = proxy.stop();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{log}",
        run.errors
    );
    assert_eq!(good.counts(1), (1, 0), "{}", good.errors());
    assert!(!log.contains("no relay"), "{log}");
    // The lookups really were slow: the answers came while they ran.
    assert!(took > Duration::from_millis(1100), "{took:?}");
    assert!(call_ended < Duration::from_millis(3800), "{call_ended:?}");
    for (ok, t) in &answers {
        assert!(*ok && *t < Duration::from_millis(300), "{answers:?}\n{log}");
    }
}

#[test]
fn a_branch_route_naming_an_uncached_host_gets_476_at_once_and_the_next_call_goes_through() {
    // A branch route cannot wait: its new $du is not looked up there (the
    // worker would block), the branch fails with 476 and a log line naming
    // the host, and the name is looked up for the next call.
    let (callee, port) = udp_listener();
    let knot = Knot::start("late IN A 127.0.0.1\n");
    let proxy = Proxy::start(&one_worker(
        &knot.server(),
        "",
        &format!(
            r#"function route.main()
  sip.tm.t_on_branch("late")
  sip.pv.du = "sip:127.0.0.1:{port}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
function branch_route.late()
  sip.pv.du = "sip:late.{ZONE}:{port}"
end
"#
        ),
    ));
    let to = format!("127.0.0.1:{}", proxy.port);
    let asked = Instant::now();
    let r = udp_exchange(&to, &options("late-1", "x"), Duration::from_secs(3)).unwrap_or_default();
    let took = asked.elapsed();
    assert!(
        r.starts_with("SIP/2.0 476 Unresolvable destination\r\n"),
        "{r}\n{}",
        proxy.log_text()
    );
    assert!(took < Duration::from_millis(500), "{took:?}");
    std::thread::sleep(Duration::from_millis(500));
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = c.local_addr().unwrap().to_string();
    c.send_to(
        options("late-2", "x").replace("{LOCAL}", &local).as_bytes(),
        &to,
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let got = callee
        .recv_from(&mut buf)
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
        .unwrap_or_default();
    let log = proxy.stop();
    assert!(got.contains("Call-ID: late-2\r\n"), "{got}\n{log}");
    assert!(
        log.contains(&format!(
            "dns: late.{ZONE} is not cached and this route cannot wait"
        )),
        "{log}"
    );
}

#[test]
fn ip_resolve_of_a_name_only_dns_knows_fills_a_reply_header() {
    // OpenSIPS's {ip.resolve} answers the address; here the route waits
    // for the lookup (sip.pv.fmt) and the first call already gets it.
    let knot = Knot::start("hdr IN A 127.0.0.5\n");
    let proxy = Proxy::start(&one_worker(
        &knot.server(),
        "",
        &format!(
            r#"function route.main()
  sip.var.h = "hdr.{ZONE}"
  sip.append_to_reply(sip.pv.fmt("X-Addr: $(var(h){{ip.resolve}})\r\n"))
  sip.sl.sl_send_reply(200, "OK")
end
"#
        ),
    ));
    let r = udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        &options("hdr-1", "x"),
        Duration::from_secs(5),
    )
    .unwrap_or_default();
    assert!(
        r.starts_with("SIP/2.0 200 OK\r\n"),
        "{r}\n{}",
        proxy.log_text()
    );
    assert!(
        r.contains("\r\nX-Addr: 127.0.0.5\r\n"),
        "{r}\n{}",
        proxy.log_text()
    );
}
