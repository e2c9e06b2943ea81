//! textops on a ~1 KB INVITE (tests/fixtures/sip/invite.sip): parse, a
//! route that runs one function, and the serialized message. The
//! `baseline` route does nothing, so `subst_to_header - baseline` is what
//! a `subst` costs (its pattern is parsed and compiled once per worker and
//! kept; each call matches, checks that the change keeps the message
//! valid, and records one edit).

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use lunasip::script::route::RouteType;
use lunasip::script::Outcome;
use lunasip::sip::Message;

mod common;

use common::{host, src, INVITE};

const SCRIPT: &str = r#"
config = { listen = { "udp:127.0.0.1:5060" } }
function route.main() end
function route.subst()
  if not sip.textops.subst("/^(To:.*)@biloxi\\.example\\.com(.*)$/\\1@example.net\\2/") then
    error("no match")
  end
end
function route.search()
  if not sip.textops.search("^Subject:[ ]*lunch") then error("no match") end
end
function route.replace_body()
  if not sip.textops.replace_body_all("192\\.0\\.2\\.101", "203.0.113.9") then error("no match") end
end
"#;

fn textops(c: &mut Criterion) {
    let h = host(SCRIPT);
    let src = src();
    let input = Bytes::from_static(INVITE);
    let mut g = c.benchmark_group("textops");
    g.throughput(Throughput::Elements(1));
    for name in ["main", "subst", "search", "replace_body"] {
        let f = h.route(RouteType::Request, name).expect("route");
        let label = match name {
            "main" => "baseline",
            "subst" => "subst_to_header",
            other => other,
        };
        g.bench_function(label, |b| {
            b.iter(|| {
                let m = Message::parse(black_box(input.clone())).expect("valid");
                h.state.call.borrow_mut().reset(m, src, RouteType::Request);
                let out = h.invoke(&f);
                assert!(matches!(out, Outcome::Done), "{out:?}");
                let call = h.state.call.borrow();
                let mut bytes = Vec::with_capacity(1200);
                call.msg.as_ref().expect("message").write_to(&mut bytes);
                black_box(bytes.len());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, textops);
criterion_main!(benches);
