//! A small AMQP 0-9-1 publisher connection (frames encoded and decoded by
//! amq-protocol): the handshake (connection.start/tune/open,
//! channel.open, confirm.select), publishes written several per write,
//! and the frames the broker sends back (basic.ack/nack with `multiple`,
//! basic.return, heartbeats, channel/connection.close). It runs on the
//! delivery thread's runtime: no thread of its own, no hand-over per
//! message (AMQP 0-9-1 spec §4.2, RabbitMQ "Publisher Confirms").

use std::str::FromStr;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, channel, confirm, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use amq_protocol::uri::AMQPUri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Broker, Message};

/// The channel every publish goes on.
pub(super) const CH: u16 = 1;
/// Frame header (type, channel, size) and end octet (spec §4.2.3).
pub(super) const FRAME_OVERHEAD: usize = 8;
/// Frames larger than this from the broker are a protocol error when the
/// connection negotiated no limit.
const READ_LIMIT: usize = 16 << 20;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad broker URI: {0}")]
    Uri(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("broker closed: {0} {1}")]
    Closed(u16, String),
    #[error("cannot encode a frame: {0}")]
    Encode(String),
}

/// What the broker said about published messages.
pub enum Reply {
    /// basic.ack: `tag` (and every earlier one when `multiple`).
    Ack { tag: u64, multiple: bool },
    /// basic.nack: the broker lost the message(s).
    Nack { tag: u64, multiple: bool },
    /// basic.return: a mandatory/immediate message came back (its ack
    /// follows, RabbitMQ sends the return first).
    Return,
    /// Anything else (heartbeat, returned content, connection.blocked).
    Other,
}

/// One open connection with channel 1 in confirm mode.
pub struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    /// Negotiated frame_max (0: none).
    pub frame_max: u32,
    /// Negotiated heartbeat in seconds (0: off).
    pub heartbeat: u16,
    /// Encoded frames waiting for [`Conn::flush`].
    wbuf: Vec<u8>,
}

pub(super) fn method(ch: u16, m: AMQPClass) -> AMQPFrame {
    AMQPFrame::Method(ch, m)
}

/// `(frame_max, heartbeat)` from what the client asked (URI query) and
/// the broker's connection.tune: the smaller non-zero frame size; the
/// client's heartbeat when it names one (0 turns it off), else the
/// broker's.
fn negotiate(uri: &AMQPUri, tune: &connection::Tune) -> (u32, u16) {
    let frame_max = match (uri.query.frame_max.unwrap_or(0), tune.frame_max) {
        (0, s) => s,
        (c, 0) => c,
        (c, s) => c.min(s),
    };
    (frame_max, uri.query.heartbeat.unwrap_or(tune.heartbeat))
}

impl Conn {
    /// Connects, logs in (PLAIN), opens the vhost and channel 1 and puts
    /// it in confirm mode. The caller bounds the time it may take.
    pub async fn open(b: &Broker) -> Result<Conn, AmqpError> {
        let uri = AMQPUri::from_str(&b.uri).map_err(AmqpError::Uri)?;
        let stream = TcpStream::connect((uri.authority.host.as_str(), uri.authority.port)).await?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            rbuf: Vec::with_capacity(4096),
            frame_max: 0,
            heartbeat: 0,
            wbuf: Vec::with_capacity(4096),
        };
        c.stream.write_all(b"AMQP\x00\x00\x09\x01").await?;
        let start = match c.expect(0).await? {
            AMQPClass::Connection(connection::AMQPMethod::Start(s)) => s,
            other => return Err(unexpected("connection.start", &other)),
        };
        if !String::from_utf8_lossy(start.mechanisms.as_bytes())
            .split(' ')
            .any(|m| m == "PLAIN")
        {
            return Err(AmqpError::Protocol(
                "the broker offers no PLAIN login".into(),
            ));
        }
        let user = &uri.authority.userinfo;
        let mut caps = FieldTable::default();
        for cap in [
            "publisher_confirms",
            "basic.nack",
            "authentication_failure_close",
        ] {
            caps.insert(cap.into(), AMQPValue::Boolean(true));
        }
        let mut props = FieldTable::default();
        props.insert("product".into(), AMQPValue::LongString("lunasip".into()));
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        let login = format!("\0{}\0{}", user.username, user.password);
        c.push(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: LongString::from(login.as_str()),
                locale: "en_US".into(),
            })),
        ))?;
        c.flush().await?;
        let tune = match c.expect(0).await? {
            AMQPClass::Connection(connection::AMQPMethod::Tune(t)) => t,
            other => return Err(unexpected("connection.tune", &other)),
        };
        (c.frame_max, c.heartbeat) = negotiate(&uri, &tune);
        let tune_ok = connection::TuneOk {
            channel_max: tune.channel_max,
            frame_max: c.frame_max,
            heartbeat: c.heartbeat,
        };
        c.push(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok)),
        ))?;
        c.push(&method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: uri.vhost.as_str().into(),
            })),
        ))?;
        c.flush().await?;
        match c.expect(0).await? {
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => {}
            other => return Err(unexpected("connection.open-ok", &other)),
        }
        c.push(&method(
            CH,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        ))?;
        c.push(&method(
            CH,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                nowait: false,
            })),
        ))?;
        c.flush().await?;
        match c.expect(CH).await? {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => {}
            other => return Err(unexpected("channel.open-ok", &other)),
        }
        match c.expect(CH).await? {
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => {}
            other => return Err(unexpected("confirm.select-ok", &other)),
        }
        Ok(c)
    }

    /// Waits for the next method on `ch` during the handshake (heartbeats
    /// skipped; a close is an error).
    async fn expect(&mut self, ch: u16) -> Result<AMQPClass, AmqpError> {
        loop {
            match self.next_frame().await? {
                AMQPFrame::Method(c, m) if c == ch => return closed(m),
                AMQPFrame::Method(0, m) => return closed(m),
                AMQPFrame::Heartbeat(_) => {}
                f => return Err(AmqpError::Protocol(format!("unexpected frame {f}"))),
            }
        }
    }

    /// Reads until one frame is complete.
    async fn next_frame(&mut self) -> Result<AMQPFrame, AmqpError> {
        loop {
            if let Some(f) = self.parse()? {
                return Ok(f);
            }
            self.fill().await?;
        }
    }

    /// Reads what the socket has (at least one byte); EOF is an error.
    pub async fn fill(&mut self) -> Result<(), AmqpError> {
        if self.stream.read_buf(&mut self.rbuf).await? == 0 {
            return Err(AmqpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    /// Reads what the socket has without waiting: false when it has
    /// nothing; EOF is an error.
    pub fn try_fill(&mut self) -> Result<bool, AmqpError> {
        self.rbuf.reserve(4096);
        match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(0) => Err(AmqpError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The next complete frame in the read buffer, if any.
    fn parse(&mut self) -> Result<Option<AMQPFrame>, AmqpError> {
        // type (1), channel (2), size (4), payload, frame-end (1).
        let Some(size) = self.rbuf.get(3..7) else {
            return Ok(None);
        };
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
        let limit = match self.frame_max {
            0 => READ_LIMIT,
            n => n as usize,
        };
        if size + FRAME_OVERHEAD > limit.max(4096) {
            return Err(AmqpError::Protocol(format!("a {size}-byte frame")));
        }
        let len = size + FRAME_OVERHEAD;
        if self.rbuf.len() < len {
            return Ok(None);
        }
        let frame = match parse_frame(&self.rbuf[..len]) {
            Ok((_, f)) => f,
            Err(e) => return Err(AmqpError::Protocol(format!("bad frame: {e}"))),
        };
        self.rbuf.drain(..len);
        Ok(Some(frame))
    }

    /// Frames the broker sent that are already read, as replies; a
    /// connection.close or channel.close is answered and is an error.
    pub async fn replies(&mut self, out: &mut Vec<Reply>) -> Result<(), AmqpError> {
        while let Some(f) = self.parse()? {
            let r = match f {
                AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => Reply::Ack {
                    tag: a.delivery_tag,
                    multiple: a.multiple,
                },
                AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Nack(n))) => Reply::Nack {
                    tag: n.delivery_tag,
                    multiple: n.multiple,
                },
                AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Return(_))) => {
                    Reply::Return
                }
                AMQPFrame::Method(ch, m) => {
                    if let Err(e) = closed(m) {
                        self.answer_close(ch).await;
                        return Err(e);
                    }
                    Reply::Other
                }
                _ => Reply::Other,
            };
            out.push(r);
        }
        Ok(())
    }

    /// Answers the broker's close with close-ok (best effort: the
    /// connection is dropped next).
    async fn answer_close(&mut self, ch: u16) {
        let ok = if ch == 0 {
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))
        } else {
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
        };
        if self.push(&method(ch, ok)).is_ok() {
            let _ = self.flush().await;
        }
    }

    fn push(&mut self, f: &AMQPFrame) -> Result<(), AmqpError> {
        let buf = std::mem::take(&mut self.wbuf);
        let ctx =
            gen_frame(f)(WriteContext::from(buf)).map_err(|e| AmqpError::Encode(e.to_string()))?;
        self.wbuf = ctx.into_inner().0;
        Ok(())
    }

    /// Encodes one publish into the write buffer, by hand: the
    /// basic.publish method frame, the content header (basic properties:
    /// content-type, headers, delivery-mode) and the body frames split at
    /// frame_max (AMQP 0-9-1 §2.3.5, §4.2.6; byte-identical to
    /// amq-protocol's encoder, tested). A message that cannot be encoded
    /// (a short string over 255 bytes) leaves the buffer as it was.
    pub fn publish(&mut self, b: &Broker, m: &Message) -> Result<(), AmqpError> {
        super::encode::publish(&mut self.wbuf, self.frame_max, b, m)
    }

    /// Queues a heartbeat frame.
    pub fn heartbeat_frame(&mut self) {
        self.wbuf.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0xCE]);
    }

    /// Writes everything encoded so far in one go.
    pub async fn flush(&mut self) -> Result<(), AmqpError> {
        if !self.wbuf.is_empty() {
            let r = self.stream.write_all(&self.wbuf).await;
            self.wbuf.clear();
            r?;
        }
        Ok(())
    }

    /// Drops what is encoded and not written (a batch that failed).
    pub fn discard(&mut self) {
        self.wbuf.clear();
    }

    /// connection.close, best effort.
    pub async fn close(mut self) {
        let close = connection::Close {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        };
        if self
            .push(&method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Close(close)),
            ))
            .is_ok()
        {
            let _ = self.flush().await;
        }
    }
}

/// A close from the broker as an error; any other method passes.
fn closed(m: AMQPClass) -> Result<AMQPClass, AmqpError> {
    match m {
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
            Err(AmqpError::Closed(c.reply_code, c.reply_text.to_string()))
        }
        AMQPClass::Channel(channel::AMQPMethod::Close(c)) => {
            Err(AmqpError::Closed(c.reply_code, c.reply_text.to_string()))
        }
        m => Ok(m),
    }
}

fn unexpected(want: &str, got: &AMQPClass) -> AmqpError {
    AmqpError::Protocol(format!("expected {want}, got {got:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tune_takes_the_smaller_frame_and_the_clients_heartbeat() {
        let tune = connection::Tune {
            channel_max: 2047,
            frame_max: 131072,
            heartbeat: 60,
        };
        let uri = AMQPUri::from_str("amqp://h/%2f?frame_max=4096&heartbeat=0").unwrap();
        assert_eq!(negotiate(&uri, &tune), (4096, 0));
        let uri = AMQPUri::from_str("amqp://h/%2f").unwrap();
        assert_eq!(negotiate(&uri, &tune), (131072, 60));
    }
}
