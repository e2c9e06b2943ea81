//! Server transactions (RFC 3261 §17.2, with RFC 6026's Accepted state),
//! as a sans-I/O state machine: the proxy core feeds it requests,
//! ACKs, the responses it sends and timer expiries, and carries out the
//! actions it returns.

use std::time::Duration;

use super::client::Kind;
use super::timer::{Timer, Timers};

/// Server transaction states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Non-INVITE, before any response.
    Trying,
    Proceeding,
    Completed,
    /// INVITE, after the ACK for a non-2xx final.
    Confirmed,
    /// INVITE, after a 2xx (RFC 6026).
    Accepted,
    Terminated,
}

/// What the owner must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the response just handed in.
    Send,
    /// Send the last response again (a request retransmission, Timer G).
    Resend,
    Start(Timer, Duration),
    Stop(Timer),
    /// No ACK came for a non-2xx final (Timer H): tell the TU.
    AckTimeout,
    Terminate,
}

/// Up to 3 actions per event, without allocating.
pub type Actions = super::actions::ActionList<Action, 3>;

/// One server transaction.
#[derive(Debug, Clone)]
pub struct ServerTxn {
    pub kind: Kind,
    pub state: State,
    reliable: bool,
    timers: Timers,
    interval: Duration,
    /// Status of the last response sent (0: none yet).
    pub last_code: u16,
}

impl ServerTxn {
    /// A new request created the transaction.
    pub fn new(kind: Kind, reliable: bool, timers: Timers) -> ServerTxn {
        let state = match kind {
            Kind::Invite => State::Proceeding,
            Kind::NonInvite => State::Trying,
        };
        ServerTxn {
            kind,
            state,
            reliable,
            timers,
            interval: timers.t1,
            last_code: 0,
        }
    }

    /// The same request arrived again.
    pub fn on_retransmission(&mut self) -> Actions {
        let mut a = Actions::default();
        match self.state {
            // Nothing sent yet: absorb silently.
            State::Trying => {}
            State::Proceeding | State::Completed if self.last_code != 0 => a.push(Action::Resend),
            _ => {}
        }
        a
    }

    /// The TU sends a response through this transaction. Returns no `Send`
    /// when the response must not go out (a late provisional, a second final).
    pub fn on_send(&mut self, code: u16) -> Actions {
        let mut a = Actions::default();
        let is_final = code >= 200;
        match (self.kind, self.state) {
            (_, State::Trying | State::Proceeding) if !is_final => {
                self.state = State::Proceeding;
                self.last_code = code;
                a.push(Action::Send);
            }
            (Kind::Invite, State::Proceeding) if code < 300 => {
                self.last_code = code;
                self.state = State::Accepted;
                a.push(Action::Send);
                a.push(Action::Start(
                    Timer::L,
                    self.timers.initial(Timer::L, self.reliable),
                ));
            }
            (Kind::Invite, State::Accepted) if (200..300).contains(&code) => {
                // RFC 6026: the TU passes 2xx retransmissions (other branches' 200s) straight on.
                a.push(Action::Send);
            }
            (Kind::Invite, State::Proceeding) => {
                self.last_code = code;
                self.state = State::Completed;
                a.push(Action::Send);
                let g = self.timers.initial(Timer::G, self.reliable);
                if !g.is_zero() {
                    self.interval = g;
                    a.push(Action::Start(Timer::G, g));
                }
                a.push(Action::Start(
                    Timer::H,
                    self.timers.initial(Timer::H, self.reliable),
                ));
            }
            (Kind::NonInvite, State::Trying | State::Proceeding) => {
                self.last_code = code;
                a.push(Action::Send);
                let j = self.timers.initial(Timer::J, self.reliable);
                if j.is_zero() {
                    self.state = State::Terminated;
                    a.push(Action::Terminate);
                } else {
                    self.state = State::Completed;
                    a.push(Action::Start(Timer::J, j));
                }
            }
            _ => {}
        }
        a
    }

    /// An ACK matched this INVITE transaction (hop-by-hop, for a non-2xx).
    pub fn on_ack(&mut self) -> Actions {
        let mut a = Actions::default();
        if self.kind == Kind::Invite && self.state == State::Completed {
            a.push(Action::Stop(Timer::G));
            a.push(Action::Stop(Timer::H));
            let i = self.timers.initial(Timer::I, self.reliable);
            if i.is_zero() {
                self.state = State::Terminated;
                a.push(Action::Terminate);
            } else {
                self.state = State::Confirmed;
                a.push(Action::Start(Timer::I, i));
            }
        }
        a
    }

    pub fn on_timer(&mut self, t: Timer) -> Actions {
        let mut a = Actions::default();
        match (t, self.state) {
            (Timer::G, State::Completed) => {
                a.push(Action::Resend);
                self.interval = self.timers.next_g(self.interval);
                a.push(Action::Start(Timer::G, self.interval));
            }
            (Timer::H, State::Completed) => {
                a.push(Action::Stop(Timer::G));
                a.push(Action::AckTimeout);
                a.push(Action::Terminate);
                self.state = State::Terminated;
            }
            (Timer::I, State::Confirmed)
            | (Timer::J, State::Completed)
            | (Timer::L, State::Accepted) => {
                a.push(Action::Terminate);
                self.state = State::Terminated;
            }
            _ => {}
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_non_2xx_waits_for_ack_and_retransmits() {
        let mut s = ServerTxn::new(Kind::Invite, false, Timers::default());
        assert!(s.on_send(100).contains(Action::Send));
        assert!(s.on_retransmission().contains(Action::Resend));
        let a = s.on_send(486);
        assert_eq!(s.state, State::Completed);
        assert!(a.contains(Action::Start(Timer::G, Duration::from_millis(500))));
        assert!(a.contains(Action::Start(Timer::H, Duration::from_secs(32))));
        let a = s.on_timer(Timer::G);
        assert!(
            a.contains(Action::Resend)
                && a.contains(Action::Start(Timer::G, Duration::from_secs(1)))
        );
        assert!(s.on_retransmission().contains(Action::Resend));
        // A second final is refused.
        assert_eq!(s.on_send(500), Actions::default());
        let a = s.on_ack();
        assert_eq!(s.state, State::Confirmed);
        assert!(a.contains(Action::Start(Timer::I, Duration::from_secs(5))));
        assert!(s.on_timer(Timer::I).contains(Action::Terminate));
    }

    #[test]
    fn invite_without_ack_gives_up_after_h() {
        let mut s = ServerTxn::new(Kind::Invite, true, Timers::default());
        let a = s.on_send(404);
        assert!(!a.iter().any(|x| matches!(x, Action::Start(Timer::G, _))));
        let a = s.on_timer(Timer::H);
        assert!(a.contains(Action::AckTimeout) && a.contains(Action::Terminate));
    }

    #[test]
    fn invite_2xx_is_accepted_and_later_2xx_pass() {
        let mut s = ServerTxn::new(Kind::Invite, false, Timers::default());
        s.on_send(180);
        let a = s.on_send(200);
        assert_eq!(s.state, State::Accepted);
        assert!(a.contains(Action::Send));
        assert!(s.on_send(200).contains(Action::Send));
        assert_eq!(s.on_send(486), Actions::default());
        // INVITE retransmissions in Accepted are absorbed (the TU forwards 2xx itself).
        assert_eq!(s.on_retransmission(), Actions::default());
        assert!(s.on_timer(Timer::L).contains(Action::Terminate));
    }

    #[test]
    fn non_invite_absorbs_then_answers_retransmissions() {
        let mut s = ServerTxn::new(Kind::NonInvite, false, Timers::default());
        assert_eq!(s.on_retransmission(), Actions::default());
        s.on_send(200);
        assert_eq!(s.state, State::Completed);
        assert!(s.on_retransmission().contains(Action::Resend));
        assert!(s.on_timer(Timer::J).contains(Action::Terminate));
        let mut s = ServerTxn::new(Kind::NonInvite, true, Timers::default());
        assert!(s.on_send(200).contains(Action::Terminate));
    }
}
