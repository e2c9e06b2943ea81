//! Pseudo-variable reads from Lua, per call: the cached `$ru` through the
//! `sip.pv.ru` sugar and `sip.pv.get`, `$(ru{uri.user})`,
//! `$(hdr(Via)[0]{via.branch})`, and an xlog string with five specs
//! through `sip.pv.fmt`. Each Lua function does 1000 reads; criterion's
//! element throughput gives the time per read. Also the same specs
//! evaluated from Rust, without Lua, to show what the Lua boundary costs.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use lunasip::script::route::RouteType;
use lunasip::sip::Message;

mod common;

use common::{host, src, INVITE};

const N: u64 = 1000;

const SCRIPT: &str = r#"
config = { listen = { "udp:127.0.0.1:5060" } }
function route.main() end
local pv, get, fmt = sip.pv, sip.pv.get, sip.pv.fmt
function route.sugar() local x for i = 1, 1000 do x = pv.ru end return x end
function route.get() local x for i = 1, 1000 do x = get("$ru") end return x end
function route.user() local x for i = 1, 1000 do x = get("$(ru{uri.user})") end return x end
function route.branch() local x for i = 1, 1000 do x = get("$(hdr(Via)[0]{via.branch})") end return x end
function route.xlog()
  local x
  for i = 1, 1000 do x = fmt("$rm $ru from $fu ($si:$sp) call $ci") end
  return x
end
function route.empty() local x for i = 1, 1000 do x = i end return x end
local probe = sip.__unwinding
function route.floor() local x for i = 1, 1000 do x = probe() end return tostring(x) end
"#;

fn pv(c: &mut Criterion) {
    let h = host(SCRIPT);
    let src = src();
    let m = Message::parse(Bytes::from_static(INVITE)).expect("valid");
    h.state.call.borrow_mut().reset(m, src, RouteType::Request);
    let mut g = c.benchmark_group("pv_lua");
    g.throughput(Throughput::Elements(N));
    // `floor` calls a Rust function that does nothing: the cost of one
    // Lua → Rust call, the part of a read that is not the read.
    for name in ["empty", "floor", "sugar", "get", "user", "branch", "xlog"] {
        let f = h.route(RouteType::Request, name).expect("route");
        // One run outside the timing: fills the spec cache, checks it works.
        let v: String = f
            .call::<Option<String>>(())
            .expect("runs")
            .unwrap_or_default();
        assert!(name == "empty" || !v.is_empty(), "{name}");
        g.bench_function(name, |b| {
            b.iter(|| black_box(f.call::<mlua::Value>(()).expect("runs")))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("pv_rust");
    g.throughput(Throughput::Elements(1));
    let call = h.state.call.borrow();
    for spec in ["$ru", "$(ru{uri.user})", "$(hdr(Via)[0]{via.branch})"] {
        let s = lunasip::pv::parse_spec(spec).expect("spec");
        g.bench_function(spec, |b| b.iter(|| black_box(lunasip::pv::get(&call, &s))));
    }
    let parts = lunasip::pv::parse_format("$rm $ru from $fu ($si:$sp) call $ci").expect("fmt");
    g.bench_function("xlog5", |b| {
        b.iter(|| {
            let mut out = String::with_capacity(128);
            lunasip::pv::format(&call, &parts, &mut out);
            black_box(out)
        })
    });
    g.finish();
}

criterion_group!(benches, pv);
criterion_main!(benches);
