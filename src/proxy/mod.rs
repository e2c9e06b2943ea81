//! The receive → route → send pipeline: the worker that owns a Lua state
//! and its sockets, stateless forwarding (RFC 3261 §16.11), reply routing
//! by Via, and locally generated replies.

pub mod context;
pub mod dest;
pub mod detached;
pub mod error;
pub mod maxfwd;
pub mod overload;
pub mod phases;
pub mod reply;
pub mod rr;
pub mod stateless;
pub mod tm;
pub mod udp;
pub mod worker;

pub use crate::transaction::hash;
pub use error::ProxyError;

#[cfg(test)]
mod tests;
