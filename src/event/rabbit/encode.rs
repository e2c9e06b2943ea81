//! basic.publish, its content header and body frames encoded by hand for
//! the publisher (AMQP 0-9-1 §2.3.5, §4.2.6): no frame values built per
//! message; byte-identical to amq-protocol's encoder (tested below).

use super::amqp::{AmqpError, CH, FRAME_OVERHEAD};
use super::{Broker, HeaderValue, Message};

/// Encodes one publish into `w` (see [`super::amqp::Conn::publish`]).
pub(super) fn publish(
    w: &mut Vec<u8>,
    frame_max: u32,
    b: &Broker,
    m: &Message,
) -> Result<(), AmqpError> {
    let ct = m.content_type.as_deref();
    let short = [
        ("exchange", b.exchange.as_str()),
        ("routing key", &*m.routing_key),
        ("content type", ct.unwrap_or("")),
    ];
    for (what, v) in short
        .iter()
        .copied()
        .chain(m.headers.iter().map(|(k, _)| ("header name", k.as_str())))
    {
        if v.len() > 255 {
            return Err(AmqpError::Encode(format!(
                "the {what} is {} bytes, over 255",
                v.len()
            )));
        }
    }

    // Method frame: class 60 (basic), method 40 (publish), reserved
    // ticket, exchange, routing key, mandatory/immediate bits.
    let at = frame_start(w, 1);
    w.extend_from_slice(&[0, 60, 0, 40, 0, 0]);
    short_str(w, &b.exchange);
    short_str(w, &m.routing_key);
    w.push(u8::from(b.mandatory) | (u8::from(b.immediate) << 1));
    frame_end(w, at);
    // Content header: class 60, weight 0, body size, property flags.
    let body: &[u8] = &m.body;
    let at = frame_start(w, 2);
    w.extend_from_slice(&[0, 60, 0, 0]);
    w.extend_from_slice(&(body.len() as u64).to_be_bytes());
    let mut flags: u16 = 0;
    if ct.is_some() {
        flags |= 1 << 15;
    }
    if !m.headers.is_empty() {
        flags |= 1 << 13;
    }
    if b.persistent {
        flags |= 1 << 12;
    }
    w.extend_from_slice(&flags.to_be_bytes());
    if let Some(ct) = ct {
        short_str(w, ct);
    }
    if !m.headers.is_empty() {
        field_table(w, &m.headers);
    }
    if b.persistent {
        w.push(2);
    }
    frame_end(w, at);
    let chunk = match frame_max as usize {
        0 => body.len().max(1),
        n => n.saturating_sub(FRAME_OVERHEAD).max(1),
    };
    // Body frames: type 3, channel, size, payload, frame-end 0xCE
    // (spec §4.2.6.2).
    for part in body.chunks(chunk) {
        w.push(3);
        w.extend_from_slice(&CH.to_be_bytes());
        w.extend_from_slice(&(part.len() as u32).to_be_bytes());
        w.extend_from_slice(part);
        w.push(0xCE);
    }
    Ok(())
}

/// Starts a frame of `kind` on channel [`CH`]; the size is filled in by
/// [`frame_end`].
fn frame_start(w: &mut Vec<u8>, kind: u8) -> usize {
    w.push(kind);
    w.extend_from_slice(&CH.to_be_bytes());
    w.extend_from_slice(&[0; 4]);
    w.len()
}

fn frame_end(w: &mut Vec<u8>, at: usize) {
    let size = (w.len() - at) as u32;
    w[at - 4..at].copy_from_slice(&size.to_be_bytes());
    w.push(0xCE);
}

/// A short string (length octet; the caller checked it fits).
fn short_str(w: &mut Vec<u8>, s: &str) {
    w.push(s.len() as u8);
    w.extend_from_slice(s.as_bytes());
}

/// The `headers` field table as OpenSIPS rabbitmq sends them: strings as
/// long strings (`S`), integers as 32-bit (`I`); names sorted, a name
/// given twice keeps its last value (a table is a map).
fn field_table(w: &mut Vec<u8>, headers: &[(String, HeaderValue)]) {
    let mut sorted: Vec<&(String, HeaderValue)> = Vec::with_capacity(headers.len());
    for h in headers {
        match sorted.binary_search_by(|x| x.0.as_str().cmp(&h.0)) {
            Ok(i) => sorted[i] = h,
            Err(i) => sorted.insert(i, h),
        }
    }
    let at = w.len();
    w.extend_from_slice(&[0; 4]);
    for (k, v) in sorted {
        short_str(w, k);
        match v {
            HeaderValue::Str(s) => {
                w.push(b'S');
                w.extend_from_slice(&(s.len() as u32).to_be_bytes());
                w.extend_from_slice(s.as_bytes());
            }
            HeaderValue::Int(i) => {
                w.push(b'I');
                w.extend_from_slice(&i.to_be_bytes());
            }
        }
    }
    let size = (w.len() - at - 4) as u32;
    w[at..at + 4].copy_from_slice(&size.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::amqp::method;
    use super::*;
    use amq_protocol::frame::{gen_frame, AMQPContentHeader, AMQPFrame, WriteContext};
    use amq_protocol::protocol::{basic, AMQPClass};
    use amq_protocol::types::{AMQPValue, FieldTable, ShortString};
    use std::borrow::Cow;
    use std::time::Duration;

    /// The frames as amq-protocol's encoder writes them (what the
    /// publisher sent before they were encoded by hand).
    fn reference(frame_max: u32, b: &Broker, m: &Message) -> Vec<u8> {
        let mut p = basic::AMQPProperties::default();
        if let Some(ct) = &m.content_type {
            p = p.with_content_type(ct.as_ref().into());
        }
        if b.persistent {
            p = p.with_delivery_mode(2);
        }
        if !m.headers.is_empty() {
            let mut t = FieldTable::default();
            for (k, v) in &m.headers {
                let v = match v {
                    HeaderValue::Str(s) => AMQPValue::LongString(s.as_str().into()),
                    HeaderValue::Int(i) => AMQPValue::LongInt(*i),
                };
                t.insert(k.as_str().into(), v);
            }
            p = p.with_headers(t);
        }
        let frames = [
            method(
                CH,
                AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                    exchange: b.exchange.as_str().into(),
                    routing_key: ShortString::from(&*m.routing_key),
                    mandatory: b.mandatory,
                    immediate: b.immediate,
                })),
            ),
            AMQPFrame::Header(
                CH,
                60,
                Box::new(AMQPContentHeader {
                    class_id: 60,
                    body_size: m.body.len() as u64,
                    properties: p,
                }),
            ),
        ];
        let mut out = Vec::new();
        for f in &frames {
            out = gen_frame(f)(WriteContext::from(out))
                .expect("gen")
                .into_inner()
                .0;
        }
        let chunk = match frame_max as usize {
            0 => m.body.len().max(1),
            n => n - FRAME_OVERHEAD,
        };
        for part in m.body.chunks(chunk) {
            let f = AMQPFrame::Body(CH, part.to_vec());
            out = gen_frame(&f)(WriteContext::from(out))
                .expect("gen")
                .into_inner()
                .0;
        }
        out
    }

    /// AMQP 0-9-1 §4.2.6: the hand-written basic.publish, content header
    /// and body frames are amq-protocol's, byte for byte, for every
    /// property lunasip sets (content type, headers with a repeated name
    /// and integers, persistence, mandatory/immediate, split bodies).
    #[test]
    fn publish_frames_are_amq_protocols() {
        let broker = |persistent, mandatory, immediate| Broker {
            uri: String::new(),
            exchange: "amq.direct".into(),
            persistent,
            mandatory,
            immediate,
            retries: 0,
            connect_timeout: Duration::from_secs(1),
        };
        let msg =
            |ct: Option<&'static str>, headers: Vec<(String, HeaderValue)>, body: &str| Message {
                routing_key: "lunasip.bench".into(),
                body: bytes::Bytes::copy_from_slice(body.as_bytes()),
                content_type: ct.map(Cow::Borrowed),
                headers,
            };
        let hs = vec![
            ("zeta".to_string(), HeaderValue::Str("ü".into())),
            ("alpha".to_string(), HeaderValue::Int(-5)),
            ("zeta".to_string(), HeaderValue::Str("last".into())),
            ("mid".to_string(), HeaderValue::Int(i32::MAX)),
        ];
        let long = "x".repeat(10_000);
        let cases = [
            (
                0,
                broker(false, false, false),
                msg(Some("application/json"), vec![], r#"{"a":1}"#),
            ),
            (0, broker(true, true, false), msg(None, hs.clone(), "body")),
            (
                4096,
                broker(true, false, true),
                msg(Some("text/plain"), hs, &long),
            ),
            (4096, broker(false, true, true), msg(Some(""), vec![], "")),
        ];
        for (i, (fm, b, m)) in cases.iter().enumerate() {
            let mut ours = Vec::new();
            publish(&mut ours, *fm, b, m).expect("encode");
            assert_eq!(ours, reference(*fm, b, m), "case {i}");
        }
        let mut w = Vec::new();
        let mut m = msg(None, vec![], "x");
        m.routing_key = "k".repeat(256).into();
        let e = publish(&mut w, 0, &broker(false, false, false), &m).expect_err("long key");
        assert!(e.to_string().contains("routing key is 256 bytes"), "{e}");
        assert!(w.is_empty());
    }
}
