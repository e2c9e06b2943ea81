//! A datagram or stream buffer: parse, validate, the size caps, every
//! getter a route may call, the serializer, and stream framing.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use lunasip::sip::{framing, Limits, Message, MAX_MESSAGE_SIZE};

fn exercise(m: &Message) {
    let _ = m.validate_request();
    let _ = m.validate_response();
    let _ = m.check_limits(&Limits::default());
    let _ = (m.method(), m.ruri(), m.status(), m.reason(), m.call_id());
    let _ = (m.cseq(), m.from(), m.to(), m.from_tag(), m.to_tag());
    let _ = (
        m.max_forwards(),
        m.top_via(),
        m.top_via_branch(),
        m.top_via_rport(),
    );
    let _ = (
        m.vias(),
        m.routes(),
        m.record_routes(),
        m.contacts(),
        m.body(),
    );
    for h in m.headers() {
        let _ = m.header_values(h.name);
    }
    let mut out = Vec::new();
    m.write_to(&mut out);
}

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    if let Ok(m) = Message::parse(buf.clone()) {
        exercise(&m);
    }
    if let Ok(m) = Message::parse_unframed(buf) {
        exercise(&m);
    }
    let _ = framing::next_frame(data, MAX_MESSAGE_SIZE);
    let _ = framing::next_frame(data, 512);
});
