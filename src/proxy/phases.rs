//! The route phases: one method per OpenSIPS route type, the only way the
//! proxy and tm run script code (pingora's phases are the model). The
//! Lua host implements it (`script::Host`); tests implement it in plain
//! Rust to drive the proxy without Lua.
//!
//! Every phase works on the worker's current call ([`Phases::current`]):
//! the proxy sets the call up (message, route type and name, transaction)
//! before it calls a phase and reads what the phase left (replies queued
//! in the outbox, `$du`, flags, unwinding) after.

use std::future::Future;
use std::pin::Pin;

use super::context::{Current, Unwind};

/// How a route invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The route returned (or the script has no such route).
    Done,
    /// `exit()` (keep what was done) or `drop()` (send nothing more).
    Unwound(Unwind),
    /// A script error, already located (`file:line: message`).
    Failed(String),
}

/// A request route that started: it ended, or it waits on I/O.
pub enum Started {
    Ended(Outcome),
    /// Suspended. Each poll resumes the route on the call in the worker's
    /// slot, so the caller puts the call back before polling
    /// ([`Current::exchange`]); ready when the route ended.
    Waiting(Waiting),
}

/// A suspended route: ready when it ended.
pub type Waiting = Pin<Box<dyn Future<Output = Outcome>>>;

/// A route that suspended in the middle of tm's work (a failure route),
/// and what tm does once it ended: the worker parks the call, polls
/// `run`, then calls `then` with the call back in the slot and sends
/// what it queued. `then` may start another such route.
pub struct Resume {
    pub run: Waiting,
    pub then: Then,
}

/// What runs once a [`Resume`]'s route ended, with its outcome.
pub type Then = Box<dyn FnOnce(&dyn Phases, Outcome) -> Option<Resume>>;

/// What error_route.main is told about a request that failed parsing or
/// validation (OpenSIPS `$err.*`).
#[derive(Debug, Clone)]
pub struct ParseFailure {
    pub class: &'static str,
    pub reason: String,
    pub code: u16,
    pub reply: String,
}

/// The script's routes, as the proxy calls them.
pub trait Phases {
    /// The worker's call slot and environment the routes work on.
    fn current(&self) -> &Current;

    /// `route.main` for the request in the current call. It may suspend
    /// (DNS, a database, `cfgutils.sleep`): then the worker holds the
    /// call and polls [`Started::Waiting`] until it ends.
    fn request(&self) -> Started;

    /// `error_route.main` for a request that cannot be processed; `None`
    /// when the script has none (the proxy then answers 400/505 itself).
    fn error(&self, why: &ParseFailure) -> Option<Outcome>;

    /// `onreply_route.main` (`name` None) or the `onreply_route[name]` armed
    /// by `t_on_reply`, for the reply in the current call. `Unwound(Drop)`
    /// drops the reply; a missing route is `Done`.
    fn reply(&self, name: Option<&str>) -> Outcome;

    /// `failure_route[name]` once every branch failed: it may relay again
    /// (serial forking) or reply. `None` when the script has no such route.
    /// It may suspend (a DNS lookup for a new branch, a database): tm then
    /// holds the transaction and the worker polls [`Started::Waiting`].
    fn failure(&self, name: &str) -> Option<Started>;

    /// `branch_route[name]` for each branch before it is sent, with the
    /// branch's R-URI in the call: `Unwound(Drop)` drops the branch.
    fn branch(&self, name: &str) -> Outcome;

    /// `local_route.main` for a request lunasip originates (probes):
    /// `Unwound(Drop)` stops it. A missing route is `Done`.
    fn local(&self) -> Outcome;

    /// `startup_route.main`, once before traffic; `None` when absent.
    fn startup(&self) -> Option<Outcome>;

    /// `timer_route[name]`, every interval the script gave; no message.
    /// It may suspend: the timer's next run waits until this one ended.
    fn timer(&self, name: &str) -> Option<Started>;

    /// The timer routes and their intervals.
    fn timers(&self) -> Vec<(String, std::time::Duration)>;

    /// `route[name]` run with no message, for a module's own events
    /// (dialog's `dlg_on_answer` routes). `None` when the script has no
    /// such route. It may suspend as a request route does.
    fn detached_route(&self, _name: &str) -> Option<Started> {
        None
    }

    /// `event_route[name]` for a raised event, with its parameters; no
    /// message. `None` when the script has no such route. It may suspend:
    /// the worker parks it and takes the next event meanwhile.
    fn event(
        &self,
        name: &str,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Started>;
}
