//! Randomized robustness of the SIP message layer: valid messages are
//! mutated (byte flips, SIP-significant bytes, truncations, insertions,
//! duplicated and deleted ranges) and pushed through parse, validation,
//! every getter, edits, serialization and stream framing. Nothing may panic,
//! and the getters that keep what they parsed must answer the same on every
//! call, in any order, and agree with the typed views they stand for.
//!
//! The seed comes from the clock and is printed; rerun one case with
//! `SIP_FUZZ_SEED=<seed> cargo test --test sip_robustness -- --nocapture`.
//! `SIP_FUZZ_SECS=<n>` runs longer than the default 3 seconds.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use lunasip::sip::{
    framing, reply, split, Contacts, HeaderKind, Message, NameAddr, Uri, Via, MAX_MESSAGE_SIZE,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FIXTURES: [&str; 5] = [
    "invite.sip",
    "register.sip",
    "response.sip",
    "options.sip",
    "bye.sip",
];

/// Bytes that matter to the SIP grammar, so mutations hit the parser's
/// decisions more often than random bytes would.
const INTERESTING: &[u8] = b":;,=\"<>[]@%\\/ \t\r\n0123456789*?&+-.\x00\x7f\xff";

fn fixtures() -> Vec<Vec<u8>> {
    FIXTURES
        .iter()
        .map(|f| {
            let path = format!("{}/tests/fixtures/sip/{f}", env!("CARGO_MANIFEST_DIR"));
            std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .collect()
}

fn mutate(rng: &mut StdRng, msg: &mut Vec<u8>) {
    for _ in 0..rng.gen_range(1..=4) {
        let len = msg.len();
        match rng.gen_range(0..8) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                msg[i] = rng.gen();
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                msg[i] = INTERESTING[rng.gen_range(0..INTERESTING.len())];
            }
            2 => msg.truncate(rng.gen_range(0..=len)),
            3 => {
                let i = rng.gen_range(0..=len);
                let n = rng.gen_range(1..8);
                let ins: Vec<u8> = (0..n)
                    .map(|_| INTERESTING[rng.gen_range(0..INTERESTING.len())])
                    .collect();
                msg.splice(i..i, ins);
            }
            4 if len > 0 => {
                // Duplicate a range (a header line, a value, a CRLF …).
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 200));
                let chunk = msg[a..b].to_vec();
                let at = rng.gen_range(0..=len);
                msg.splice(at..at, chunk);
            }
            5 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 40));
                msg.drain(a..b);
            }
            6 => {
                let i = rng.gen_range(0..=len);
                let n = rng.gen_range(1..64);
                let ins: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                msg.splice(i..i, ins);
            }
            _ => {
                // Leading keep-alives or trailing garbage.
                if rng.gen() {
                    msg.splice(0..0, b"\r\n\r\n".iter().copied());
                } else {
                    msg.extend_from_slice(b"\r\nINVITE sip:x SIP/2.0\r\n");
                }
            }
        }
    }
}

/// Runs everything a worker might do with a message.
fn exercise(rng: &mut StdRng, bytes: &[u8]) {
    for limit in [64, 512, MAX_MESSAGE_SIZE] {
        let _ = framing::next_frame(bytes, limit);
    }
    let Ok(mut m) = Message::parse(Bytes::copy_from_slice(bytes)) else {
        return;
    };
    // Kept views: the first call may come before or after validation.
    let fresh = m.clone();
    let early = rng.gen::<bool>().then(|| kept_views(&m));
    let _ = m.validate_request();
    let _ = m.validate_response();
    let late = kept_views(&m);
    assert_eq!(late, kept_views(&m), "second call");
    assert_eq!(late, kept_views(&fresh), "fresh message");
    if let Some(early) = early {
        assert_eq!(early, late, "before validation");
    }
    let _ = (
        m.is_request(),
        m.method(),
        m.method_kind(),
        m.ruri(),
        m.original_ruri(),
    );
    let _ = (
        m.status(),
        m.reason(),
        m.call_id(),
        m.cseq(),
        m.max_forwards(),
    );
    let _ = (m.from_tag(), m.to_tag(), m.body().len(), m.as_bytes().len());
    if let Some(f) = m.from() {
        let _ = (
            f.display_name(),
            f.tag(),
            Uri::parse(f.uri).map(|u| u.user_unescaped()),
        );
    }
    if let Some(t) = m.to() {
        let _ = Uri::parse(t.uri).map(|u| (u.param("transport"), u.host_bare().len()));
    }
    let _ = Uri::parse(m.ruri()).map(|u| (u.param("lr"), u.user_unescaped(), u.host_bare().len()));
    if let Some(v) = m.top_via() {
        let _ = (
            v.branch(),
            v.received(),
            v.rport(),
            v.maddr(),
            v.ttl(),
            v.host_bare(),
        );
    }
    for v in m.vias() {
        let _ = v.branch();
    }
    for r in m.routes().iter().chain(m.record_routes().iter()) {
        let _ = (r.param("lr"), Uri::parse(r.uri).map(|u| u.port));
    }
    if let Ok(Contacts::List(list)) = m.contacts() {
        for c in list {
            let _ = (c.param("expires"), c.display_name());
        }
    }
    let headers: Vec<(usize, String, String)> = m
        .headers()
        .map(|h| (h.index, h.name.to_owned(), h.value.to_owned()))
        .collect();
    for (_, name, value) in &headers {
        let _ = (m.header(name), m.header_values(name), m.header_count(name));
        let _ = split::split_commas(value);
        let _ = (
            NameAddr::parse(value).map(|n| n.tag()),
            Via::parse(value).map(|v| v.branch()),
        );
    }
    for name in ["v", "Route", "k", "Contact", "X-Nope", "l", "Allow", "c"] {
        let _ = (m.header(name), m.header_values(name), m.header_count(name));
    }

    // Edits in a random mix, then serialize and parse the result.
    for _ in 0..rng.gen_range(0..6) {
        match rng.gen_range(0..8) {
            0 => m.prepend_header("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfuzz"),
            1 => m.append_header_raw("X-Fuzz: 1\r\n"),
            2 => {
                m.remove_headers(["Route", "v", "Max-Forwards", "X-Nope"][rng.gen_range(0..4)]);
            }
            3 => {
                m.remove_first_value(["Via", "Route", "Contact", "Allow"][rng.gen_range(0..4)]);
            }
            4 if !headers.is_empty() => {
                m.set_header_value(rng.gen_range(0..headers.len() + 2), "69")
            }
            5 => m.set_top_via_received(Some("192.0.2.99"), Some(rng.gen()), rng.gen()),
            6 => m.set_ruri("sip:new@example.net"),
            _ => {
                let mark = m.edit_count();
                m.prepend_header("Record-Route", "<sip:p;lr>");
                m.truncate_edits(mark.saturating_sub(rng.gen_range(0..2)));
            }
        }
    }
    // Edits leave the getters on the message as received.
    assert_eq!(late, kept_views(&m), "after edits");
    let mut out = Vec::new();
    m.write_to(&mut out);
    let _ = Message::parse(Bytes::from(out));
    let mut out = Vec::new();
    m.write_reply_headers(&mut out, Some("tag1"));
    let mut out = Vec::new();
    reply::write_reply(
        &m,
        rng.gen_range(100..700),
        "Reason",
        Some("t"),
        "",
        &mut out,
    );
    let _ = Message::parse(Bytes::from(out)).map(|r| r.validate_response());
}

/// What the kept getters answer, checked against the typed views they
/// stand for, as owned strings.
fn kept_views(m: &Message) -> Vec<String> {
    let top = m.top_via();
    assert_eq!(m.top_via_branch(), top.as_ref().and_then(|v| v.branch()));
    assert_eq!(
        m.top_via_received(),
        top.as_ref().and_then(|v| v.received())
    );
    assert_eq!(m.top_via_rport(), top.as_ref().and_then(|v| v.rport()));
    let vias = m.vias();
    assert_eq!(m.via_count(), vias.len());
    for (i, v) in vias.iter().enumerate() {
        assert_eq!(
            m.via(i).map(|w| (w.host, w.params)),
            Some((v.host, v.params))
        );
    }
    assert!(m.via(vias.len()).is_none());
    assert_eq!(m.from_tag(), m.from().and_then(|f| f.tag()));
    assert_eq!(m.to_tag(), m.to().and_then(|t| t.tag()));
    for kind in [HeaderKind::Via, HeaderKind::MaxForwards, HeaderKind::Other] {
        assert_eq!(
            m.header_index(kind),
            m.headers().find(|h| h.kind == kind).map(|h| h.index)
        );
    }
    vec![
        format!("{top:?}"),
        format!("{vias:?}"),
        format!("{:?}", m.from()),
        format!("{:?}", m.to()),
        format!("{:?}", m.cseq()),
        format!("{:?}", m.call_id()),
        format!("{:?}", m.max_forwards()),
        m.method().to_owned(),
    ]
}

#[test]
fn fixtures_are_valid_and_round_trip() {
    for (name, bytes) in FIXTURES.iter().zip(fixtures()) {
        let m =
            Message::parse(Bytes::from(bytes.clone())).unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = if m.is_request() {
            m.validate_request()
        } else {
            m.validate_response()
        };
        r.unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut out = Vec::new();
        m.write_to(&mut out);
        assert_eq!(out, bytes, "{name}");
        assert_eq!(
            framing::next_frame(&bytes, MAX_MESSAGE_SIZE),
            Ok(framing::Frame::Message {
                skip: 0,
                len: bytes.len()
            }),
            "{name}"
        );
    }
}

#[test]
fn random_mutations_never_panic() {
    let seed = std::env::var("SIP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
    println!("sip_robustness seed: {seed} (SIP_FUZZ_SEED={seed} to replay)");
    let mut rng = StdRng::seed_from_u64(seed);
    let corpus = fixtures();
    let budget = Duration::from_secs(
        std::env::var("SIP_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    let start = Instant::now();
    let mut cases = 0u64;
    while start.elapsed() < budget {
        let mut msg = corpus[rng.gen_range(0..corpus.len())].clone();
        mutate(&mut rng, &mut msg);
        exercise(&mut rng, &msg);
        cases += 1;
    }
    println!("sip_robustness: {cases} mutated messages, seed {seed}");
    assert!(cases > 100);
}
