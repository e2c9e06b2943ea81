//! RFC 3261 §17 timer values and the per-transaction timer names.
//!
//! T1 (RTT estimate), T2 (max retransmit interval for non-INVITE requests
//! and INVITE responses) and T4 (max time a message stays in the network)
//! are configurable (`config.modules.tm`); every other timer derives from
//! them, as RFC 3261 Table 4 says. OpenSIPS's `fr_timeout` and
//! `fr_inv_timeout` replace Timer B/F (no reply at all) and bound the wait
//! for a final reply after a provisional one.

use std::time::Duration;

/// Timer base values (RFC 3261 Table 4) and OpenSIPS's final-response timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// OpenSIPS `fr_timeout`: no final reply (nor a provisional one) in this time → 408.
    pub fr: Duration,
    /// OpenSIPS `fr_inv_timeout`: no final reply to an INVITE after a 1xx → 408.
    pub fr_inv: Duration,
    /// OpenSIPS `wait_timer`: how long a finished transaction stays to
    /// absorb retransmissions. It bounds Timers J, L and M (RFC 3261 and
    /// RFC 6026 say 64·T1 = 32 s; OpenSIPS keeps 5 s, and so memory stays
    /// small at thousands of calls per second).
    pub wait: Duration,
    /// OpenSIPS tm `restart_fr_on_each_reply` (default on): every
    /// provisional reply restarts fr_inv (Timer C, RFC 3261 §16.8); off,
    /// only a first one or a higher 18x does.
    pub restart_fr: bool,
    /// OpenSIPS tm `onreply_avp_mode` (default off; not a timer, but tm's
    /// settings travel together): on, reply routes see the transaction's
    /// AVPs and what they change stays; off, a reply route starts with no
    /// AVPs and its own are dropped when it ends (t_reply.c).
    pub onreply_avp_mode: bool,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            fr: Duration::from_secs(5),
            fr_inv: Duration::from_secs(120),
            wait: Duration::from_secs(5),
            restart_fr: true,
            onreply_avp_mode: false,
        }
    }
}

/// The timers of RFC 3261 §17, by their letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE client: retransmit the request (unreliable transports).
    A,
    /// INVITE client: give up waiting for any response (64·T1; OpenSIPS fr_timeout).
    B,
    /// Proxy INVITE client: give up waiting for a final response after a 1xx
    /// (RFC 3261 §16.6 step 11; OpenSIPS fr_inv_timeout).
    C,
    /// INVITE client: absorb response retransmissions after a non-2xx final.
    D,
    /// Non-INVITE client: retransmit the request.
    E,
    /// Non-INVITE client: give up (64·T1; OpenSIPS fr_timeout).
    F,
    /// INVITE server: retransmit the final non-2xx response.
    G,
    /// INVITE server: give up waiting for the ACK.
    H,
    /// INVITE server: absorb ACK retransmissions.
    I,
    /// Non-INVITE server: absorb request retransmissions.
    J,
    /// Non-INVITE client: absorb response retransmissions.
    K,
    /// INVITE server, Accepted (RFC 6026): absorb INVITE retransmissions after a 2xx.
    L,
    /// INVITE client, Accepted (RFC 6026): forward 2xx retransmissions.
    M,
}

impl Timers {
    /// Initial interval of the retransmission timers A and E.
    pub fn retransmit_first(&self) -> Duration {
        self.t1
    }

    /// Next interval of Timer A (doubles without bound; B stops it).
    pub fn next_a(&self, prev: Duration) -> Duration {
        prev * 2
    }

    /// Next interval of Timer E (doubles, capped at T2; after a
    /// provisional response it is T2, RFC 3261 §17.1.2.2).
    pub fn next_e(&self, prev: Duration, proceeding: bool) -> Duration {
        if proceeding {
            self.t2
        } else {
            (prev * 2).min(self.t2)
        }
    }

    /// Next interval of Timer G (doubles, capped at T2).
    pub fn next_g(&self, prev: Duration) -> Duration {
        (prev * 2).min(self.t2)
    }

    /// How long a timer waits when it is first set; `reliable` transports
    /// skip retransmissions and absorption waits (zero means "do not set").
    pub fn initial(&self, t: Timer, reliable: bool) -> Duration {
        let unreliable = |d: Duration| if reliable { Duration::ZERO } else { d };
        match t {
            Timer::A | Timer::E | Timer::G => unreliable(self.t1),
            Timer::B => self.fr.min(self.t1 * 64),
            Timer::F => self.fr.min(self.t1 * 64),
            Timer::C => self.fr_inv,
            Timer::D => unreliable(Duration::from_secs(32).max(self.t1 * 64)),
            Timer::H => self.t1 * 64,
            Timer::I => unreliable(self.t4),
            Timer::J => unreliable((self.t1 * 64).min(self.wait)),
            Timer::K => unreliable(self.t4),
            Timer::L | Timer::M => (self.t1 * 64).min(self.wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3261_table_4_defaults() {
        let t = Timers {
            fr: Duration::from_secs(100),
            ..Timers::default()
        };
        assert_eq!(t.initial(Timer::A, false), Duration::from_millis(500));
        assert_eq!(t.initial(Timer::A, true), Duration::ZERO);
        assert_eq!(t.initial(Timer::B, false), Duration::from_secs(32));
        assert_eq!(t.initial(Timer::H, true), Duration::from_secs(32));
        assert_eq!(t.initial(Timer::I, false), Duration::from_secs(5));
        assert_eq!(t.initial(Timer::J, false), Duration::from_secs(5));
        assert_eq!(
            Timers {
                wait: Duration::from_secs(60),
                ..t
            }
            .initial(Timer::J, false),
            Duration::from_secs(32)
        );
        assert_eq!(t.initial(Timer::D, true), Duration::ZERO);
        // E doubles up to T2, then stays; after a 1xx it is T2 at once.
        let mut e = t.retransmit_first();
        let mut seen = vec![];
        for _ in 0..5 {
            seen.push(e.as_millis());
            e = t.next_e(e, false);
        }
        assert_eq!(seen, vec![500, 1000, 2000, 4000, 4000]);
        assert_eq!(
            t.next_e(Duration::from_millis(500), true),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn opensips_fr_timeout_shortens_b_and_f() {
        let t = Timers {
            fr: Duration::from_secs(2),
            ..Timers::default()
        };
        assert_eq!(t.initial(Timer::B, false), Duration::from_secs(2));
        assert_eq!(t.initial(Timer::F, true), Duration::from_secs(2));
    }
}
