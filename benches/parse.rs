//! The message layer's hot path: parse a typical INVITE with SDP (~1 KB),
//! read the five headers a proxy always reads, prepend a Via, serialize
//! into a reused buffer. Target: under 2 µs per message.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use lunasip::sip::Message;

const INVITE: &[u8] = include_bytes!("../tests/fixtures/sip/invite.sip");

fn hot_path(c: &mut Criterion) {
    let input = Bytes::from_static(INVITE);
    let mut out = Vec::with_capacity(2048);
    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_read5_prepend_write", |b| {
        b.iter(|| {
            let mut m = Message::parse(black_box(input.clone())).expect("valid fixture");
            black_box(m.call_id());
            black_box(m.cseq());
            black_box(m.from_tag());
            black_box(m.top_via().and_then(|v| v.branch()));
            black_box(m.max_forwards());
            m.prepend_header(
                "Via",
                "SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK.lunasip.1",
            );
            out.clear();
            m.write_to(&mut out);
            black_box(out.len());
        })
    });
    g.bench_function("parse_only", |b| {
        b.iter(|| black_box(Message::parse(black_box(input.clone())).expect("valid fixture")))
    });
    g.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
