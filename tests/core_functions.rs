//! OpenSIPS core functions (3.4 `core_cmds.c`) as routes use them: what
//! the next hop and the caller receive.

mod common;

use common::worker::{run, worker, OutKind, Proto, INVITE};

/// The requests a route relayed, in order.
fn relayed(out: &[(OutKind, common::worker::Dest, String)]) -> Vec<String> {
    out.iter()
        .filter(|o| o.0 == OutKind::Request)
        .map(|o| o.2.clone())
        .collect()
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

/// A final reply of the callee to `request` as relayed.
fn reply_to(request: &str, status: &str) -> String {
    let mut reply = format!("SIP/2.0 {status}\r\n");
    for l in request.split("\r\n") {
        let lower = l.to_ascii_lowercase();
        if ["via:", "from:", "call-id:", "cseq:"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            reply.push_str(l);
            reply.push_str("\r\n");
        } else if lower.starts_with("to:") {
            reply.push_str(l);
            reply.push_str(";tag=callee\r\n");
        }
    }
    reply.push_str("Content-Length: 0\r\n\r\n");
    reply
}

/// OpenSIPS `dset.c`/tm `t_fwd.c`: branch 0 is the R-URI's; an appended
/// branch starts with the flags in force and keeps its own; each branch
/// route sees the flags of its branch.
#[test]
fn branch_flags_belong_to_their_branch() {
    let w = worker(
        r#"function route.main()
  sip.setbflag(3)
  sip.setbflag("NAT")
  sip.append_branch("sip:b@127.0.0.3:5060")
  sip.resetbflag("NAT", 1)
  sip.setbflag(5, 1)
  if sip.setbflag(6, 2) then sip.setbflag(60) end
  sip.pv.ru = "sip:a@127.0.0.2:5060"
  sip.tm.t_on_branch("mark")
  sip.tm.t_relay()
end
function branch_route.mark()
  sip.append_hf("X-BF: $bf nat=" .. tostring(sip.isbflagset("NAT")) .. " five=" .. tostring(sip.isbflagset(5)) .. "\r\n")
end"#,
    );
    let out = relayed(&run(&w, INVITE, Proto::Udp));
    assert_eq!(out.len(), 2, "{out:?}");
    let nat = |m: &str| header(m, "X-BF").unwrap_or_default().to_string();
    let a = out.iter().find(|m| m.starts_with("INVITE sip:a@")).unwrap();
    let b = out.iter().find(|m| m.starts_with("INVITE sip:b@")).unwrap();
    // Branch 0: flag 3 and NAT; the failed setbflag(6, 2) (no branch 2) set nothing.
    let (bf_a, rest_a) = nat(a)
        .split_once(' ')
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .unwrap();
    assert_eq!(rest_a, "nat=true five=false", "{a}");
    // Named flags take bits from 63 down: $bf may read negative.
    let bf_a = bf_a.parse::<i64>().unwrap() as u64;
    assert_eq!(bf_a & 0xff, 1 << 3);
    assert_eq!(bf_a & (1 << 60), 0, "setbflag on a missing branch is false");
    // Branch 1: took flag 3 when appended, lost NAT, got 5.
    assert_eq!(
        nat(b),
        format!("{} nat=false five=true", (1u64 << 3) | (1 << 5)),
        "{b}"
    );
}

/// tm `t_reply.c`: a reply route works on its branch's flags, and the
/// failure route sees those of the winning branch. The failure route
/// answers with `signaling.send_reply`, statefully (its transaction).
#[test]
fn reply_and_failure_routes_see_the_branch_flags() {
    let w = worker(
        r#"function route.main()
  sip.pv.ru = "sip:a@127.0.0.2:5060"
  sip.tm.t_on_branch("mark")
  sip.tm.t_on_reply("rep")
  sip.tm.t_on_failure("busy")
  sip.tm.t_relay()
end
function branch_route.mark()
  sip.setbflag(7)
end
function onreply_route.rep()
  if sip.isbflagset(7) then sip.setbflag(9) end
end
function failure_route.busy()
  sip.signaling.send_reply(480, "bf=$bf in $route.type")
end"#,
    );
    let out = relayed(&run(&w, INVITE, Proto::Udp));
    assert_eq!(out.len(), 1, "{out:?}");
    let back = run(&w, &reply_to(&out[0], "486 Busy Here"), Proto::Udp);
    let answer = back
        .iter()
        .find(|o| o.2.starts_with("SIP/2.0 480 "))
        .map(|o| o.2.clone())
        .unwrap_or_else(|| panic!("no 480 to the caller: {back:?}"));
    let want = (1u64 << 7) | (1 << 9);
    assert!(
        answer.starts_with(&format!("SIP/2.0 480 bf={want} in failure_route\r\n")),
        "{answer}"
    );
}

/// OpenSIPS `check_self`: listening addresses and aliases, any port when
/// none is given; a URI is taken apart.
#[test]
fn is_myself_names_the_listening_addresses() {
    let w = worker(
        r#"function route.main()
  local r = {}
  for _, t in ipairs({ {"$rd"}, {"127.0.0.1"}, {"127.0.0.1", 5060}, {"127.0.0.1", 5070},
                       {"192.0.2.1"}, {"sip:x@127.0.0.1:5060"}, {"sip:x@127.0.0.1:5999"},
                       {"sip:127.0.0.1"}, {"$fd"} }) do
    r[#r + 1] = tostring(sip.is_myself(t[1], t[2]))
  end
  sip.sl.sl_send_reply(200, table.concat(r, " "))
end"#,
    );
    let msg = INVITE.replace("INVITE sip:bob@example.com", "INVITE sip:bob@127.0.0.1");
    let out = run(&w, &msg, Proto::Udp);
    let reply = &out.first().expect("a reply").2;
    assert!(
        reply.starts_with("SIP/2.0 200 true true true false false true false true false\r\n"),
        "{reply}"
    );
}

/// One request from a new UDP socket (the kernel spreads sockets over
/// the workers), answered with the reason the route chose.
fn ask(port: u16, user: &str) -> String {
    let msg = format!(
        "OPTIONS sip:{user}@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-{user}-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: cache-{user}-{n}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let reply = common::udp_exchange(
        &format!("127.0.0.1:{port}"),
        &msg,
        std::time::Duration::from_secs(3),
    )
    .unwrap_or_else(|| panic!("no reply to {user}"));
    reply
        .split("\r\n")
        .next()
        .unwrap_or("")
        .trim_start_matches("SIP/2.0 200 ")
        .to_string()
}

/// OpenSIPS core `cache_*` with cachedb_local: one store for every
/// worker, entries that expire, counters (cachedb_local `hash.c`).
#[test]
fn local_cache_is_shared_by_workers_and_expires() {
    let proxy = common::Proxy::start(
        r#"
config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 2 }
function route.main()
  local op, v, rc = sip.pv.rU, nil, nil
  if op == "store" then
    v, rc = sip.cache_store("local", "k_$fU", "from $fU", 1)
  elseif op == "fetch" then
    v, rc = sip.cache_fetch("local", "k_$fU", "$avp(got)")
    v = tostring(v) .. "/" .. tostring(sip.avp.got)
  elseif op == "count" then
    v, rc = sip.cache_add("local:calls", "n", 1, 0)
  elseif op == "text" then
    v, rc = sip.cache_counter_fetch("local", "k_$fU")
  elseif op == "remove" then
    v, rc = sip.cache_remove("local", "k_$fU")
  elseif op == "raw" then
    -- OpenSIPS cachedb.c: cachedb_local has no raw queries (-1).
    v, rc = sip.cache_raw_query("local", "KEYS *", "$avp(k)")
  end
  sip.sl.sl_send_reply(200, tostring(v) .. " " .. tostring(rc))
end
"#,
    );
    let p = proxy.port;
    assert_eq!(ask(p, "fetch"), "nil/nil -2");
    assert_eq!(ask(p, "store"), "true nil");
    assert_eq!(ask(p, "fetch"), "from alice/from alice nil");
    assert_eq!(ask(p, "text"), "nil -3", "not a counter");
    let counts: Vec<String> = (0..6).map(|_| ask(p, "count")).collect();
    assert_eq!(
        counts,
        ["1 nil", "2 nil", "3 nil", "4 nil", "5 nil", "6 nil"]
    );
    // Stored for 1 s.
    std::thread::sleep(std::time::Duration::from_millis(1300));
    assert_eq!(ask(p, "fetch"), "nil/nil -2", "expired");
    assert_eq!(ask(p, "store"), "true nil");
    assert_eq!(ask(p, "remove"), "true nil");
    assert_eq!(ask(p, "fetch"), "nil/nil -2", "removed");
    assert_eq!(
        ask(p, "raw"),
        "false -1",
        "no raw queries on the local engine"
    );
}

/// The R-URI functions (OpenSIPS `rewrite_ruri`): what the next hop gets
/// as request line, and where it goes.
#[test]
fn ruri_rewrites_reach_the_next_hop() {
    let w = worker(
        r#"function route.main()
  sip.setuser("0049301234")
  sip.strip(2)
  sip.prefix("+")
  sip.strip_tail(2)
  sip.sethostport("gw.example.net:5080")
  sip.setport("5090")
  local u = sip.construct_uri("sip", "$rU", "127.0.0.9", "5062", "transport=udp", "$var(next)")
  sip.setdsturi(sip.var.next)
  sip.pv_printf("$avp(seen)", "$ru via $du")
  sip.append_hf("X-Seen: " .. sip.avp.seen .. " " .. tostring(sip.isdsturiset()) .. "\r\n")
  sip.forward()
end"#,
    );
    let out = relayed(&run(&w, INVITE, Proto::Udp));
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].starts_with("INVITE sip:+493012@gw.example.net:5090 SIP/2.0\r\n"),
        "{}",
        out[0]
    );
    assert_eq!(
        header(&out[0], "X-Seen"),
        Some("sip:+493012@gw.example.net:5090 via sip:+493012@127.0.0.9:5062;transport=udp true")
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out[0].1, common::worker::addr("127.0.0.9:5062"));
}

/// `revert_uri` puts back the R-URI as received; `resetdsturi` the R-URI
/// as next hop.
#[test]
fn revert_uri_and_resetdsturi() {
    let w = worker(
        r#"function route.main()
  sip.seturi("sip:other@127.0.0.8:5060")
  sip.setdsturi("sip:127.0.0.7:5060")
  sip.resetdsturi()
  if sip.pv.rU == "other" then sip.forward() else sip.sl.sl_send_reply(500, "no") end
  sip.revert_uri()
  sip.append_hf("X-Back: $ru\r\n")
  sip.forward("sip:127.0.0.6:5060")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].1, common::worker::addr("127.0.0.8:5060"));
    assert!(out[0]
        .2
        .starts_with("INVITE sip:other@127.0.0.8:5060 SIP/2.0\r\n"));
    assert!(
        out[1]
            .2
            .starts_with("INVITE sip:bob@example.com SIP/2.0\r\n"),
        "{}",
        out[1].2
    );
    assert_eq!(header(&out[1].2, "X-Back"), Some("sip:bob@example.com"));
}

/// `set_advertised_address/port` on the wire: the next hop sees the
/// advertised name in our Via and Record-Route; `script_trace` logs its
/// line; `force_tcp_alias` is accepted.
#[test]
fn advertised_address_reaches_the_next_hop() {
    let callee = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    callee
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let cport = callee.local_addr().unwrap().port();
    let proxy = common::Proxy::start(&format!(
        r#"
config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }}, children = 1 }}
function route.main()
  sip.script_trace(3, "call $ci to $rU", "trace-tag")
  sip.force_tcp_alias()
  sip.var.host = "edge.example.com"
  sip.set_advertised_address("$var(host)")
  sip.set_advertised_port("5999")
  sip.rr.record_route()
  sip.forward("sip:127.0.0.1:{cport}")
end
"#
    ));
    let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = caller.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:bob@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-adv1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\n\
         Call-ID: adv-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        p = proxy.port
    );
    caller
        .send_to(invite.as_bytes(), ("127.0.0.1", proxy.port))
        .unwrap();
    let mut buf = [0u8; 65536];
    let (n, _) = callee.recv_from(&mut buf).expect("the relayed INVITE");
    let got = String::from_utf8_lossy(&buf[..n]).into_owned();
    let via = header(&got, "Via").unwrap_or_default();
    assert!(
        via.starts_with("SIP/2.0/UDP edge.example.com:5999;branch=z9hG4bK"),
        "{got}"
    );
    assert_eq!(
        header(&got, "Record-Route"),
        Some("<sip:edge.example.com:5999;lr;ftag=a1>"),
        "{got}"
    );
    let log = proxy.log_text();
    assert!(
        log.contains("script_trace: trace-tag call adv-1 to bob"),
        "{log}"
    );
}

/// Serial forking (OpenSIPS `serialize.c`): highest q first, equal q in
/// parallel, the next group from the failure route.
#[test]
fn serialize_and_next_branches_fork_by_q_value() {
    let w = worker(
        r#"function route.main()
  sip.pv.ru = "sip:a@127.0.0.2:5060"
  sip.append_branch("sip:b@127.0.0.3:5060", "0.5")
  sip.append_branch("sip:gone@127.0.0.9:5060", "0.7")
  sip.append_branch("sip:c@127.0.0.4:5060", "0.5")
  sip.append_branch("sip:d@127.0.0.5:5060", "0.1")
  if not sip.remove_branch(1) or sip.remove_branch(3) then sip.exit() end
  sip.serialize_branches(1)
  local ok, rc = sip.next_branches()
  sip.var.rc = rc
  sip.tm.t_on_branch("mark")
  sip.tm.t_on_failure("next")
  sip.tm.t_relay()
end
function branch_route.mark()
  sip.append_hf("X-Next: $var(rc)\r\n")
end
function failure_route.next()
  local ok, rc = sip.next_branches()
  if not ok then sip.tm.t_reply(404, "Nobody " .. rc) ; return end
  sip.var.rc = rc
  sip.tm.t_on_failure("next")
  sip.tm.t_relay()
end"#,
    );
    let users = |out: &[String]| -> Vec<String> {
        let mut u: Vec<String> = out
            .iter()
            .filter(|m| m.starts_with("INVITE "))
            .map(|m| {
                let line = m.split("\r\n").next().unwrap_or("").to_string();
                format!("{line} {}", header(m, "X-Next").unwrap_or("-"))
            })
            .collect();
        u.sort();
        u
    };
    let invites = |out: Vec<String>| -> Vec<String> {
        out.into_iter()
            .filter(|m| m.starts_with("INVITE "))
            .collect()
    };
    let first = invites(relayed(&run(&w, INVITE, Proto::Udp)));
    assert_eq!(users(&first), ["INVITE sip:a@127.0.0.2:5060 SIP/2.0 1"]);
    let second = invites(relayed(&run(
        &w,
        &reply_to(&first[0], "486 Busy Here"),
        Proto::Udp,
    )));
    assert_eq!(
        users(&second),
        [
            "INVITE sip:b@127.0.0.3:5060 SIP/2.0 1",
            "INVITE sip:c@127.0.0.4:5060 SIP/2.0 1"
        ]
    );
    run(&w, &reply_to(&second[0], "480 Unavailable"), Proto::Udp);
    let third = invites(relayed(&run(
        &w,
        &reply_to(&second[1], "486 Busy Here"),
        Proto::Udp,
    )));
    assert_eq!(users(&third), ["INVITE sip:d@127.0.0.5:5060 SIP/2.0 2"]);
    let last = run(&w, &reply_to(&third[0], "486 Busy Here"), Proto::Udp);
    assert!(
        last.iter()
            .any(|o| o.2.starts_with("SIP/2.0 404 Nobody -1\r\n")),
        "{last:?}"
    );
}

/// OpenSIPS core `send`: the message as received, headers after the first
/// line, no Via of ours, to the given address; `get_timestamp`.
#[test]
fn send_copies_the_message_as_received() {
    let w = worker(
        r#"function route.main()
  local s, us = sip.get_timestamp("$avp(s)", "$avp(us)")
  sip.append_hf("X-Not-In-Copy: 1\r\n")
  if not sip.send("udp:127.0.0.7:5070", "X-Copy: $ci\r\nX-Time: " .. (s == sip.avp.s and us == sip.avp.us and s > 1700000000 and "ok" or "bad")) then
    sip.exit()
  end
  sip.sl.sl_send_reply(200, "sent")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].1, common::worker::addr("127.0.0.7:5070"));
    let want = INVITE.replacen(
        "SIP/2.0\r\n",
        "SIP/2.0\r\nX-Copy: call-1@10.0.0.1\r\nX-Time: ok\r\n",
        1,
    );
    assert_eq!(out[0].2, want);
    assert!(out[1].2.starts_with("SIP/2.0 200 sent\r\n"));
    // A header block that is not header lines is refused: 500, nothing sent.
    let w = worker(
        r#"function route.main()
  sip.send("127.0.0.7:5070", "not a header")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].2.starts_with("SIP/2.0 500 "), "{}", out[0].2);
}

/// cachedb_local `cache_remove_chunk`: keys matching a glob go, in the
/// default collection or a named one.
#[test]
fn cache_remove_chunk_removes_by_glob() {
    let w = worker(
        r#"function route.main()
  for _, k in ipairs({ "chunk_blk_1", "chunk_blk_22", "chunk_keep" }) do
    sip.cache_store("local", k, "v")
    sip.cache_store("local:other", k, "v")
  end
  sip.cachedb_local.cache_remove_chunk("chunk_blk_*")
  sip.cachedb_local.cache_remove_chunk("other", "chunk_[kx]eep")
  local r = {}
  for _, id in ipairs({ "local", "local:other" }) do
    for _, k in ipairs({ "chunk_blk_1", "chunk_blk_22", "chunk_keep" }) do
      r[#r + 1] = tostring(sip.cache_fetch(id, k))
    end
  end
  sip.sl.sl_send_reply(200, table.concat(r, " "))
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert!(
        out[0].2.starts_with("SIP/2.0 200 nil nil v v v nil\r\n"),
        "{}",
        out[0].2
    );
}

/// `lunasip check` refuses a literal cache engine lunasip does not have
/// (only `local`), naming the script line.
#[test]
fn check_refuses_an_unknown_cache_engine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.lua");
    std::fs::write(
        &path,
        "config = { listen = { \"udp:127.0.0.1:5999\" } }\nfunction route.main()\n  sip.cache_store(\"local\", \"a\", \"b\")\n  sip.cache_fetch(\"redis:1\", \"$ci\")\nend\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["check", "-c", p])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "{p}:4: cache_fetch(\"redis:1\", …): no cachedb engine 'redis' (lunasip has \"local\")"
        )),
        "{err}"
    );
}
