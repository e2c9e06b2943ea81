//! The message layer's hot path: parse a typical INVITE with SDP (~1 KB),
//! read the five headers a proxy always reads, prepend a Via, serialize
//! into a reused buffer. Target: under 2 µs per message.
//!
//! `request_validate_getters_x2` is what the proxy core does per request
//! (validate, then each transaction/dialog getter more than once);
//! `reply_validate_vias_pop_write` is the stateless reply path.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use lunasip::sip::{HeaderKind, Message};

const INVITE: &[u8] = include_bytes!("../tests/fixtures/sip/invite.sip");

/// A 200 OK on its way back through this proxy: our Via on top, the
/// client's below it.
const REPLY: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK.lunasip.1a2b3c4d;received=203.0.113.1\r\n\
Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1;rport=5060\r\n\
To: Bob <sip:bob@example.com>;tag=a6c85cf\r\n\
From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@192.0.2.4>\r\n\
Record-Route: <sip:rr2.example.com;lr>, <sip:rr1.example.com;lr>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 5\r\n\
\r\n\
v=0\r\n";

/// Every getter the proxy core calls on a request, once.
fn read_request(m: &Message) {
    black_box(m.from_tag());
    black_box(m.to_tag());
    black_box(m.call_id());
    black_box(m.cseq());
    if let Some(v) = m.top_via() {
        black_box((v.branch(), v.rport(), v.host));
    }
    black_box(m.vias().len());
    black_box(m.original_ruri());
    black_box(m.max_forwards());
    black_box(
        m.headers()
            .find(|h| h.kind == HeaderKind::MaxForwards)
            .map(|h| h.index),
    );
    black_box(m.header("User-Agent"));
}

fn hot_path(c: &mut Criterion) {
    let input = Bytes::from_static(INVITE);
    let reply = Bytes::from_static(REPLY);
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
    g.bench_function("parse_validate_request", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(input.clone())).expect("valid fixture");
            black_box(m.validate_request()).expect("valid request");
            m
        })
    });
    g.bench_function("request_validate_getters_x2", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(input.clone())).expect("valid fixture");
            black_box(m.validate_request()).expect("valid request");
            read_request(&m);
            read_request(&m);
            m
        })
    });
    g.bench_function("reply_validate_vias_pop_write", |b| {
        b.iter(|| {
            let mut m = Message::parse(black_box(reply.clone())).expect("valid reply");
            black_box(m.validate_response()).expect("valid reply");
            black_box(m.vias().len());
            black_box(m.remove_first_value("Via"));
            out.clear();
            m.write_to(&mut out);
            black_box(out.len());
        })
    });
    g.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
