//! The SIP message layer: parser, typed header views, URIs, edits and the
//! serializer. Sans-I/O: no sockets, no Lua, no logging, no tokio.
//!
//! A received message stays one byte buffer ([`Message`]); parsing builds an
//! index of spans (start line, header name/value/line, body). Typed values
//! (Via, CSeq, From/To, URIs) are parsed from those spans when asked for.
//! Changes are recorded as [`Edit`]s against the buffer and applied in one
//! pass by [`Message::write_to`]; bytes nobody touched go out as they came.
//!
//! Files: `parse.rs` builds the index, `message.rs` reads it (getters;
//! `message/typed.rs` the typed header views), `cache.rs` keeps what the
//! getters parsed (and where each header kind is), `validate.rs` holds
//! the RFC 3261 §16.3 checks, `edit.rs` records edits and serializes,
//! `reply.rs` builds stateless replies, `framing.rs` cuts stream frames,
//! `limits.rs` holds the size caps on what a peer sends, `rewrite.rs`
//! holds edits by position (the script's text functions) and the
//! Content-Length they imply, `sdp.rs` indexes an SDP body; `lex.rs`,
//! `params.rs` and `split.rs` are the shared grammar pieces under
//! `uri.rs`, `via.rs` and `nameaddr.rs`.

pub mod args;
mod cache;
mod edit;
pub mod error;
pub mod framing;
pub mod glob;
pub mod header;
mod lex;
pub mod limits;
pub mod message;
pub mod nameaddr;
mod params;
mod parse;
pub mod reply;
mod rewrite;
pub mod sdp;
pub mod split;
pub mod uri;
mod validate;
pub mod via;

#[cfg(test)]
mod torture;

pub use error::ParseError;
pub use framing::Frame;
pub use header::HeaderKind;
pub use limits::Limits;
pub use message::{CSeq, Edit, HeaderRef, Message, Method};
pub use nameaddr::{Contacts, NameAddr};
pub use rewrite::EditError;
pub use uri::{Scheme, Uri};
pub use via::Via;

/// Largest message the parser accepts, datagram or stream frame.
pub const MAX_MESSAGE_SIZE: usize = 65_535;
/// Most header lines one message may carry.
pub const MAX_HEADERS: usize = 256;

/// Lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    // Bytes, not chars: `String::push` encodes each char as UTF-8.
    let mut v = Vec::with_capacity(b.len() * 2);
    for x in b {
        v.extend_from_slice(&[D[(x >> 4) as usize], D[(x & 15) as usize]]);
    }
    String::from_utf8(v).unwrap_or_default()
}
