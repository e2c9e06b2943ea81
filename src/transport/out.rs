//! What the transports carry for the layers above: where a message came
//! from ([`Source`]) and what waits to leave ([`Outgoing`] to a [`Dest`]).

use bytes::Bytes;
use std::net::SocketAddr;

use super::Proto;

/// Where a message goes: a resolved address or a name still to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Addr(SocketAddr),
    /// A name to locate (RFC 3263) before sending.
    Name(super::dns::Hop),
}

/// Bytes ready to leave, with their destination and local socket.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub bytes: Bytes,
    pub proto: Proto,
    pub dest: Dest,
    /// Index into `Sockets::list`.
    pub socket: usize,
    /// Counted as a forwarded request/reply once sent.
    pub kind: OutKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutKind {
    Request,
    Reply,
    LocalReply,
}

/// Where the current message came from.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub addr: SocketAddr,
    pub proto: Proto,
    pub socket: usize,
}
