//! Client transactions (RFC 3261 §17.1, with RFC 6026's Accepted state),
//! as a sans-I/O state machine: events in, actions out. The proxy core
//! owns the sockets and the timer wheel and carries the actions out.

use std::time::Duration;

use super::timer::{Timer, Timers};

/// Which of the two client machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Invite,
    NonInvite,
}

/// Client transaction states (Calling and Trying are the first state of
/// the INVITE and non-INVITE machines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

/// What the owner must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the request again (same bytes).
    Retransmit,
    /// Send the hop-by-hop ACK for a non-2xx final response (§17.1.1.3).
    SendAck,
    /// Arm a timer (replacing one of the same name).
    Start(Timer, Duration),
    /// Disarm a timer.
    Stop(Timer),
    /// Pass the response up to the transaction user (the proxy core).
    Deliver,
    /// No final response in time: the TU builds a 408 (and a CANCEL when 1xx was seen).
    Timeout,
    /// The transaction is over; free it.
    Terminate,
}

/// Up to 6 actions per event, without allocating.
pub type Actions = super::actions::ActionList<Action, 6>;

/// One client transaction.
#[derive(Debug, Clone)]
pub struct ClientTxn {
    pub kind: Kind,
    pub state: State,
    reliable: bool,
    timers: Timers,
    /// Current retransmission interval (A or E).
    interval: Duration,
    /// Highest status code seen (0 before any).
    pub last_code: u16,
}

impl ClientTxn {
    /// Starts a transaction whose request was just sent.
    pub fn start(kind: Kind, reliable: bool, timers: Timers) -> (ClientTxn, Actions) {
        let mut acts = Actions::default();
        let (state, retrans, giveup) = match kind {
            Kind::Invite => (State::Calling, Timer::A, Timer::B),
            Kind::NonInvite => (State::Trying, Timer::E, Timer::F),
        };
        let first = timers.initial(retrans, reliable);
        if !first.is_zero() {
            acts.push(Action::Start(retrans, first));
        }
        acts.push(Action::Start(giveup, timers.initial(giveup, reliable)));
        (
            ClientTxn {
                kind,
                state,
                reliable,
                timers,
                interval: first,
                last_code: 0,
            },
            acts,
        )
    }

    /// A response arrived for this transaction.
    pub fn on_response(&mut self, code: u16) -> Actions {
        let mut a = Actions::default();
        let prev = self.last_code;
        if code > self.last_code || self.state == State::Accepted {
            self.last_code = self.last_code.max(code);
        }
        match (self.kind, self.state) {
            (Kind::Invite, State::Calling | State::Proceeding) => {
                if code < 200 {
                    if self.state == State::Calling {
                        a.push(Action::Stop(Timer::A));
                        a.push(Action::Stop(Timer::B));
                        a.push(Action::Start(
                            Timer::C,
                            self.timers.initial(Timer::C, self.reliable),
                        ));
                        self.state = State::Proceeding;
                    } else if self.timers.restart_fr || (code > prev && (code >= 180 || prev == 0))
                    {
                        // OpenSIPS t_reply.c: fr_inv starts again.
                        a.push(Action::Start(
                            Timer::C,
                            self.timers.initial(Timer::C, self.reliable),
                        ));
                    }
                    a.push(Action::Deliver);
                } else if code < 300 {
                    self.stop_all_invite(&mut a);
                    self.state = State::Accepted;
                    a.push(Action::Start(
                        Timer::M,
                        self.timers.initial(Timer::M, self.reliable),
                    ));
                    a.push(Action::Deliver);
                } else {
                    self.stop_all_invite(&mut a);
                    a.push(Action::SendAck);
                    a.push(Action::Deliver);
                    self.state = State::Completed;
                    let d = self.timers.initial(Timer::D, self.reliable);
                    if d.is_zero() {
                        self.state = State::Terminated;
                        a.push(Action::Terminate);
                    } else {
                        a.push(Action::Start(Timer::D, d));
                    }
                }
            }
            // RFC 6026: a proxy forwards every 2xx retransmission.
            (Kind::Invite, State::Accepted) if (200..300).contains(&code) => {
                a.push(Action::Deliver)
            }
            // A retransmitted non-2xx final: ACK it again, tell nobody.
            (Kind::Invite, State::Completed) if code >= 300 => a.push(Action::SendAck),
            (Kind::NonInvite, State::Trying | State::Proceeding) => {
                if code < 200 {
                    self.state = State::Proceeding;
                    a.push(Action::Deliver);
                } else {
                    a.push(Action::Stop(Timer::E));
                    a.push(Action::Stop(Timer::F));
                    a.push(Action::Deliver);
                    let k = self.timers.initial(Timer::K, self.reliable);
                    if k.is_zero() {
                        self.state = State::Terminated;
                        a.push(Action::Terminate);
                    } else {
                        self.state = State::Completed;
                        a.push(Action::Start(Timer::K, k));
                    }
                }
            }
            _ => {}
        }
        a
    }

    fn stop_all_invite(&self, a: &mut Actions) {
        match self.state {
            State::Calling => {
                a.push(Action::Stop(Timer::A));
                a.push(Action::Stop(Timer::B));
            }
            _ => a.push(Action::Stop(Timer::C)),
        }
    }

    /// A timer of this transaction fired.
    pub fn on_timer(&mut self, t: Timer) -> Actions {
        let mut a = Actions::default();
        match (t, self.state) {
            (Timer::A, State::Calling) => {
                a.push(Action::Retransmit);
                self.interval = self.timers.next_a(self.interval);
                a.push(Action::Start(Timer::A, self.interval));
            }
            (Timer::E, State::Trying | State::Proceeding) => {
                a.push(Action::Retransmit);
                self.interval = self
                    .timers
                    .next_e(self.interval, self.state == State::Proceeding);
                a.push(Action::Start(Timer::E, self.interval));
            }
            (Timer::B, State::Calling)
            | (Timer::C, State::Proceeding)
            | (Timer::F, State::Trying | State::Proceeding) => {
                a.push(Action::Stop(Timer::A));
                a.push(Action::Stop(Timer::E));
                a.push(Action::Timeout);
                a.push(Action::Terminate);
                self.state = State::Terminated;
            }
            (Timer::D, State::Completed)
            | (Timer::K, State::Completed)
            | (Timer::M, State::Accepted) => {
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

    fn t() -> Timers {
        Timers::default()
    }

    #[test]
    fn invite_over_udp_retransmits_then_proceeds_and_completes() {
        let (mut c, a) = ClientTxn::start(Kind::Invite, false, t());
        assert!(a.contains(Action::Start(Timer::A, Duration::from_millis(500))));
        assert!(a.contains(Action::Start(Timer::B, Duration::from_secs(5))));
        let a = c.on_timer(Timer::A);
        assert!(
            a.contains(Action::Retransmit)
                && a.contains(Action::Start(Timer::A, Duration::from_secs(1)))
        );
        let a = c.on_response(100);
        assert_eq!(c.state, State::Proceeding);
        assert!(a.contains(Action::Stop(Timer::A)) && a.contains(Action::Deliver));
        assert!(a.contains(Action::Start(Timer::C, Duration::from_secs(120))));
        // Timer A after a provisional does nothing.
        assert_eq!(c.on_timer(Timer::A), Actions::default());
        let a = c.on_response(486);
        assert_eq!(c.state, State::Completed);
        assert!(a.contains(Action::SendAck) && a.contains(Action::Deliver));
        // The 486 again: ACK again, not delivered twice.
        let a = c.on_response(486);
        assert!(a.contains(Action::SendAck) && !a.contains(Action::Deliver));
        assert!(c.on_timer(Timer::D).contains(Action::Terminate));
    }

    #[test]
    fn invite_2xx_is_accepted_and_its_retransmissions_delivered() {
        let (mut c, _) = ClientTxn::start(Kind::Invite, true, t());
        let a = c.on_response(200);
        assert_eq!(c.state, State::Accepted);
        assert!(a.contains(Action::Deliver) && !a.contains(Action::SendAck));
        assert!(c.on_response(200).contains(Action::Deliver));
        assert!(c.on_timer(Timer::M).contains(Action::Terminate));
    }

    #[test]
    fn invite_without_answer_times_out() {
        let (mut c, _) = ClientTxn::start(Kind::Invite, false, t());
        let a = c.on_timer(Timer::B);
        assert!(a.contains(Action::Timeout) && a.contains(Action::Terminate));
        assert_eq!(c.state, State::Terminated);
        // After a 1xx the proxy waits fr_inv (Timer C).
        let (mut c, _) = ClientTxn::start(Kind::Invite, false, t());
        c.on_response(180);
        assert_eq!(c.on_timer(Timer::B), Actions::default());
        assert!(c.on_timer(Timer::C).contains(Action::Timeout));
    }

    /// OpenSIPS tm `restart_fr_on_each_reply`: on, each 1xx restarts
    /// Timer C; off, a repeated 180 does not, a 183 after a 100 does.
    #[test]
    fn provisional_replies_restart_timer_c() {
        let (mut c, _) = ClientTxn::start(Kind::Invite, false, t());
        c.on_response(180);
        assert!(c
            .on_response(180)
            .contains(Action::Start(Timer::C, Duration::from_secs(120))));
        let off = Timers {
            restart_fr: false,
            ..t()
        };
        let (mut c, _) = ClientTxn::start(Kind::Invite, false, off);
        c.on_response(100);
        let again = c.on_response(180);
        assert!(again.contains(Action::Start(Timer::C, Duration::from_secs(120))));
        assert!(!c
            .on_response(180)
            .contains(Action::Start(Timer::C, Duration::from_secs(120))));
    }

    #[test]
    fn non_invite_caps_retransmissions_at_t2_and_absorbs_finals() {
        let (mut c, a) = ClientTxn::start(Kind::NonInvite, false, t());
        assert!(a.contains(Action::Start(Timer::E, Duration::from_millis(500))));
        c.on_timer(Timer::E);
        c.on_timer(Timer::E);
        c.on_timer(Timer::E);
        assert!(c
            .on_timer(Timer::E)
            .contains(Action::Start(Timer::E, Duration::from_secs(4))));
        let a = c.on_response(200);
        assert_eq!(c.state, State::Completed);
        assert!(
            a.contains(Action::Deliver)
                && a.contains(Action::Start(Timer::K, Duration::from_secs(5)))
        );
        assert_eq!(c.on_response(200), Actions::default());
        assert!(c.on_timer(Timer::K).contains(Action::Terminate));
    }

    #[test]
    fn reliable_transports_skip_retransmission_and_wait_states() {
        let (mut c, a) = ClientTxn::start(Kind::NonInvite, true, t());
        assert!(!a.iter().any(|x| matches!(x, Action::Start(Timer::E, _))));
        let a = c.on_response(404);
        assert!(a.contains(Action::Terminate));
        let (mut c, _) = ClientTxn::start(Kind::Invite, true, t());
        assert!(c.on_response(500).contains(Action::Terminate));
    }
}
