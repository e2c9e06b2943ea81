//! The receive → route → send pipeline: the worker that owns a Lua state
//! and its sockets, stateless forwarding (RFC 3261 §16.11), reply routing
//! by Via, and locally generated replies.

pub mod context;
pub mod dest;
pub mod maxfwd;
pub mod phases;
pub mod reply;
pub mod rr;
pub mod stateless;
pub mod tm;
pub mod worker;

/// FNV-1a over several parts (with a separator), for branch and tag hashes:
/// deterministic across workers and restarts, cheap on short input.
pub fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(std::iter::once(&0xffu8)) {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
