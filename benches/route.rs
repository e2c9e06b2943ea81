//! One request through the whole per-message path a worker runs, minus
//! the socket calls: parse a ~1 KB INVITE, run a Lua `route.main` like the
//! default script's (max-forwards, has_totag, is_method, record_route, a
//! pseudo-variable read, forward), and serialize what it queued; and a
//! stateless `signaling.send_reply` the same way.
//! Build with `--no-default-features --features lua54` to compare Lua 5.4.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use lunasip::script::route::RouteType;
use lunasip::script::Outcome;
use lunasip::sip::Message;

mod common;

use common::{host_with, src, INVITE};

const SCRIPT: &str = r#"
config = { listen = { "udp:127.0.0.1:5060" } }
function route.main()
  if not sip.maxfwd.mf_process_maxfwd_header(10) then
    sip.sl.sl_send_reply(483, "Too Many Hops")
    sip.exit()
  end
  if sip.has_totag() then
    sip.rr.loose_route()
    route.relay()
    sip.exit()
  end
  if sip.is_method("INVITE|SUBSCRIBE") then
    sip.rr.record_route()
  end
  if sip.pv.rU == "nobody" then sip.drop() end
  route.relay()
end
function route.relay()
  if not sip.forward("sip:127.0.0.1:5080") then sip.sl.sl_reply_error() end
end
function route.busy()
  sip.signaling.send_reply(486, "Busy $rU")
end

-- Routing-style Lua work: normalise the dialled number, look up a
-- carrier by longest prefix, build a destination URI.
local carriers = {}
for i = 0, 199 do carriers[string.format("49%03d", i)] = "10.0.0." .. (i % 50 + 1) end
local function lookup(num)
  for len = #num, 2, -1 do
    local c = carriers[string.sub(num, 1, len)]
    if c then return c end
  end
  return nil
end
function route.logic()
  local user = sip.pv.rU or ""
  local num = user:gsub("^%+", ""):gsub("^00", ""):gsub("[^0-9]", "")
  local host = lookup(num) or "10.0.0.254"
  local uri = "sip:" .. num .. "@" .. host .. ":5060"
  if #uri > 200 then sip.drop() end
  return uri
end
"#;

fn route(c: &mut Criterion) {
    // With the watchdog (route_timeout: JIT off, a count hook) as shipped,
    // and without it (route_timeout = 0), to price it.
    for (label, budget) in [("", true), ("_no_watchdog", false)] {
        run(c, label, budget);
    }
}

fn run(c: &mut Criterion, label: &str, budget: bool) {
    let h = host_with(SCRIPT, |cfg| {
        if !budget {
            cfg.route_timeout = None;
        }
    });
    let f = h.routes.main.clone().expect("route.main");
    let src = src();
    let input = Bytes::from_static(INVITE);
    let flavour = if cfg!(feature = "luajit") {
        "luajit"
    } else {
        "lua54"
    };
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("invite_default_route_{flavour}{label}"), |b| {
        b.iter(|| {
            let m = Message::parse(black_box(input.clone())).expect("valid");
            h.state.call.borrow_mut().reset(m, src, RouteType::Request);
            let out = h.invoke(&f);
            assert!(matches!(out, Outcome::Done), "{out:?}");
            let mut call = h.state.call.borrow_mut();
            black_box(call.outbox.len());
            call.outbox.clear();
        })
    });
    // signaling's send_reply without a transaction (stateless): parse,
    // route, reply built and queued.
    let busy = h.route(RouteType::Request, "busy").expect("route.busy");
    g.bench_function(format!("send_reply_stateless_{flavour}"), |b| {
        b.iter(|| {
            let m = Message::parse(black_box(input.clone())).expect("valid");
            h.state.call.borrow_mut().reset(m, src, RouteType::Request);
            let out = h.invoke(&busy);
            assert!(matches!(out, Outcome::Done), "{out:?}");
            let mut call = h.state.call.borrow_mut();
            assert_eq!(call.outbox.len(), 1);
            call.outbox.clear();
        })
    });
    let logic = h.route(RouteType::Request, "logic").expect("route.logic");
    let dialled = Bytes::from(String::from_utf8_lossy(INVITE).replacen(
        "INVITE sip:bob@",
        "INVITE sip:+4901712345@",
        1,
    ));
    g.bench_function(format!("lua_routing_logic_{flavour}{label}"), |b| {
        let m = Message::parse(dialled.clone()).expect("valid");
        h.state.call.borrow_mut().reset(m, src, RouteType::Request);
        b.iter(|| black_box(logic.call::<String>(()).expect("logic runs")))
    });
    g.finish();
}

criterion_group!(benches, route);
criterion_main!(benches);
