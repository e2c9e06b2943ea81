//! Transports: UDP and TCP listeners and connections, and the answer to
//! "is this address myself". No SIP parsing happens here beyond stream
//! framing; received bytes go to the proxy as [`Incoming`].

pub mod blacklist;
pub mod dns;
pub mod listen;
pub mod myself;
pub mod out;
pub mod tcp;
pub mod udp;

use bytes::Bytes;
use std::net::SocketAddr;

pub use myself::Sockets;
pub use out::{Dest, OutKind, Outgoing, Source};

/// Transport protocol of a socket or a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    /// From a listen prefix, a URI `transport=` value or a Via transport.
    pub fn parse(s: &str) -> Option<Proto> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Proto::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Proto::Tcp)
        } else {
            None
        }
    }

    /// Lower-case name, as `$pr` and listen specs write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }

    /// Upper-case name, as a Via writes it.
    pub fn via_name(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
        }
    }

    pub fn is_stream(self) -> bool {
        matches!(self, Proto::Tcp)
    }
}

/// A message's bytes as they arrived, with where from and on which socket.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub buf: Bytes,
    pub src: SocketAddr,
    pub proto: Proto,
    /// Index of the local socket in [`Sockets::list`].
    pub socket: usize,
}
