//! RFC 3261 §17 transactions: client and server state machines (sans
//! I/O: events in, actions out), their timers, matching keys, and the
//! proxy's best-response choice (§16.7). The stateful proxy core that
//! drives them from the workers builds on these (the tm module).

pub mod actions;
pub mod client;
pub mod key;
pub mod select;
pub mod server;
pub mod timer;

pub use client::ClientTxn;
pub use key::TxnKey;
pub use server::ServerTxn;
pub use timer::{Timer, Timers};

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
