//! cfgutils as a caller sees it (OpenSIPS 3.4 `modules/cfgutils/cfgutils.c`,
//! `script_locks.c`): results written into reply headers, and script
//! locks that make routes wait for each other without stopping the
//! worker.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn proxy(routes: &str) -> Proxy {
    Proxy::start(&format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{ mi_http = false, mi_fifo = false, cfgutils = {{ initial_probability = 30 }} }},
}}
{routes}
"#
    ))
}

fn request(user: &str, local: &str) -> String {
    format!(
        "OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{user}\r\n\
         From: <sip:alice@127.0.0.1>;tag={user}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: {user}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends one request per user at once from one socket; the replies with
/// when each arrived after the sending, in arrival order.
fn burst(port: u16, users: &[&str], wait: Duration) -> Vec<(Duration, String)> {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = s.local_addr().expect("addr").to_string();
    let start = Instant::now();
    for u in users {
        s.send_to(request(u, &local).as_bytes(), ("127.0.0.1", port))
            .expect("send");
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while got.len() < users.len() {
        let Some(left) = (start + wait).checked_duration_since(Instant::now()) else {
            break;
        };
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match s.recv_from(&mut buf) {
            Ok((n, _)) => got.push((
                start.elapsed(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            )),
            Err(_) => break,
        }
    }
    got
}

fn header<'a>(reply: &'a str, name: &str) -> &'a str {
    reply
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(": ")))
        .unwrap_or("")
}

/// cfgutils.c `set_prob`/`rand_event`/`pv_set_count`/`pv_sel_weight`/
/// `ts_usec_delta`/`get_accurate_time`, answered in headers.
#[test]
fn utilities_answer_in_headers() {
    let p = proxy(
        r#"function route.main()
  local c = sip.cfgutils
  local r = {}
  r[#r + 1] = c.rand_get_prob()
  c.rand_set_prob(0)
  local any = false
  for _ = 1, 50 do any = any or c.rand_event() end
  r[#r + 1] = tostring(any)
  local all = true
  for _ = 1, 50 do all = all and c.rand_event(100) end
  r[#r + 1] = tostring(all)
  r[#r + 1] = c.rand_get_prob()
  c.rand_reset_prob()
  r[#r + 1] = c.rand_get_prob()
  sip.avp.w = 0
  sip.avp.w = 7
  sip.avp.w = 0
  r[#r + 1] = c.set_count("$avp(w)", "$var(n)")
  r[#r + 1] = sip.var.n
  local picks = {}
  for _ = 1, 20 do picks[c.set_select_weight("$avp(w)")] = true end
  local k = {}
  for i in pairs(picks) do k[#k + 1] = i end
  r[#r + 1] = table.concat(k, "/")
  local none, code = c.set_select_weight("$avp(nothing)")
  r[#r + 1] = tostring(none) .. "/" .. code
  r[#r + 1] = c.ts_usec_delta(10, 500000, 8, 750000, "$var(d)")
  r[#r + 1] = sip.var.d
  local sec, usec, text = c.get_accurate_time("$var(s)", "$var(u)")
  r[#r + 1] = tostring(math.abs(sec - os.time()) <= 2 and usec < 1000000 and sip.var.s == sec and sip.var.u == usec and text == string.format("%d.%06d", sec, usec))
  r[#r + 1] = tostring(c.strings_share_lock("abc", "abc"))
  r[#r + 1] = tostring(c.pkg_status() and c.shm_status())
  sip.append_to_reply("X-Cfg: " .. table.concat(r, ",") .. "\r\n")
  sip.sl.sl_send_reply(200, "OK")
end"#,
    );
    let got = burst(p.port, &["u"], Duration::from_secs(3));
    let log = p.stop();
    let r = &got.first().unwrap_or_else(|| panic!("no reply\n{log}")).1;
    // 30 from initial_probability; the AVP's values are read oldest last
    // ($avp(w)[0] is the newest), so weight 7 is index 1.
    assert_eq!(
        header(r, "X-Cfg"),
        "30,false,true,0,30,3,3,1,nil/-1,1750000,1750000,true,true,true",
        "{r}\n{log}"
    );
    assert!(log.contains("pkg_status: worker 0 Lua state uses"), "{log}");
    assert!(log.contains("shm_status: process rss"), "{log}");
}

/// script_locks.c, without blocking: with one worker, B waits for the
/// lock A holds across its 500 ms suspension (so B ends ~1 s after it
/// came), while C, which takes no lock, is answered at once: the worker
/// was never blocked. D ends holding the lock; E gets it right after
/// (released with D's call).
#[test]
fn locks_make_routes_wait_not_workers() {
    let p = proxy(
        r#"function route.main()
  local u = sip.pv.rU
  if u == "c" then sip.sl.sl_send_reply(200, "free") return end
  if u == "d" then
    sip.cfgutils.get_dynamic_lock("room-1")
    sip.sl.sl_send_reply(200, "kept")
    return
  end
  if u == "e" then
    local got = sip.cfgutils.get_dynamic_lock("room-1")
    local again = sip.cfgutils.get_dynamic_lock("room-1")
    local rel = sip.cfgutils.release_dynamic_lock("room-1")
    local rel2 = sip.cfgutils.release_dynamic_lock("room-1")
    sip.sl.sl_send_reply(200, tostring(got) .. "/" .. tostring(again) .. "/" .. tostring(rel) .. "/" .. tostring(rel2))
    return
  end
  sip.cfgutils.get_static_lock("x")
  sip.cfgutils.usleep(500000)
  sip.cfgutils.release_static_lock("x")
  sip.sl.sl_send_reply(200, "locked " .. u)
end"#,
    );
    let got = burst(p.port, &["a", "b", "c"], Duration::from_secs(4));
    let after = burst(p.port, &["d"], Duration::from_secs(2));
    let e = burst(p.port, &["e"], Duration::from_secs(2));
    let log = p.stop();
    let when = |reason: &str| {
        got.iter()
            .find(|(_, r)| r.starts_with(&format!("SIP/2.0 200 {reason}\r\n")))
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no {reason}: {got:?}\n{log}"))
    };
    let (a, b, c) = (when("locked a"), when("locked b"), when("free"));
    assert!(c < Duration::from_millis(300), "C waited {c:?}\n{log}");
    assert!(a >= Duration::from_millis(450), "A {a:?}\n{log}");
    assert!(
        b >= a + Duration::from_millis(450),
        "B {b:?} did not wait for A {a:?}\n{log}"
    );
    assert!(
        after
            .first()
            .is_some_and(|(_, r)| r.starts_with("SIP/2.0 200 kept")),
        "{after:?}"
    );
    let (t, r) = e.first().unwrap_or_else(|| panic!("no reply for E\n{log}"));
    assert!(
        r.starts_with("SIP/2.0 200 true/true/true/false\r\n"),
        "{r}\n{log}"
    );
    assert!(*t < Duration::from_millis(300), "E waited {t:?}\n{log}");
    assert!(log.contains("ended holding 1 script lock"), "{log}");
}

/// time_rec.c via `check_time_rec`: fixed timestamps against intervals,
/// recurrences, time zones and expressions; a bad string answers -2.
#[test]
fn check_time_rec_answers_in_headers() {
    let p = proxy(
        r#"function route.main()
  local c = sip.cfgutils
  local t = 1710498600 -- Fri 2024-03-15 10:30:00 UTC
  local r = {}
  local function add(ok, rc) r[#r + 1] = tostring(ok) .. ":" .. rc end
  add(c.check_time_rec("UTC|20240315T100000|20240315T110000", t))
  add(c.check_time_rec("UTC|20240101T090000|20240101T170000||weekly|||MO,TU,WE,TH,FR", t))
  add(c.check_time_rec("UTC|20240101T090000|20240101T170000||weekly|||SA,SU", t))
  add(c.check_time_rec("Europe/Paris|20240101T113000|20240101T120000||daily & !UTC|20240101T000000||p1d|monthly|||-1FR", t))
  add(c.check_time_rec("UTC|2024", t))
  add(c.check_time_rec("20000101T000000"))
  sip.append_to_reply("X-Tr: " .. table.concat(r, ",") .. "\r\n")
  sip.sl.sl_send_reply(200, "OK")
end"#,
    );
    let got = burst(p.port, &["t"], Duration::from_secs(3));
    let log = p.stop();
    let r = &got.first().unwrap_or_else(|| panic!("no reply\n{log}")).1;
    assert_eq!(
        header(r, "X-Tr"),
        "true:1,true:1,false:-1,true:1,false:-2,true:1",
        "{r}\n{log}"
    );
    assert!(
        log.contains("sip.cfgutils.check_time_rec: bad date-time"),
        "{log}"
    );
}
