//! statistics' iterators as a caller sees them (OpenSIPS 3.4
//! `modules/statistics/statistics.c` `stat_iter_init`/`stat_iter_next`):
//! a route walks a group and writes what it found into a reply header.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn a_route_walks_a_group() {
    let p = Proxy::start(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1,
  modules = { mi_http = false, mi_fifo = false } }
function route.main()
  sip.update_stat("walk:a", 3)
  sip.update_stat("walk:b", 5)
  sip.update_stat("walk:b", 1)
  local seen = {}
  assert(sip.stat_iter_init("walk", "it"))
  while true do
    local ok, name, value = sip.stat_iter_next("$var(k)", "$var(v)", "it")
    if not ok then break end
    seen[#seen + 1] = name .. "=" .. value .. "/" .. sip.var.k .. "=" .. sip.var.v
  end
  seen[#seen + 1] = tostring(sip.stat_iter_next(nil, nil, "it"))
  seen[#seen + 1] = tostring(sip.stat_iter_init("no_such_group", "it2"))
  seen[#seen + 1] = tostring(sip.stat_iter_next(nil, nil, "never_started"))
  sip.append_to_reply("X-Stats: " .. table.concat(seen, ",") .. "\r\n")
  sip.sl.sl_send_reply(200, "OK")
end
"#,
    );
    let r = udp_exchange(
        &format!("127.0.0.1:{}", p.port),
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKit1\r\n\
         From: <sip:a@127.0.0.1>;tag=it\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: it1\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(2),
    );
    let log = p.stop();
    let r = r.unwrap_or_else(|| panic!("no reply\n{log}"));
    assert!(
        r.contains("\r\nX-Stats: a=3/a=3,b=6/b=6,false,false,false\r\n"),
        "{r}\n{log}"
    );
}
