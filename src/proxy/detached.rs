//! Routes with no message, run by the first worker: `startup_route`
//! (cannot wait: there is no traffic yet), `timer_route` and
//! `event_route` (both may suspend, as request and failure routes do),
//! and `route` run for a module's event (dialog's `dlg_on_*`).

use std::rc::Rc;

use super::phases::{Outcome, Phases, Resume, Started};
use super::worker::Worker;
use vocab::route::RouteType;

/// Sets the call up for a route that has no message.
fn reset_detached(host: &dyn Phases, rt: RouteType, name: &str) {
    let mut call = host.current().call.borrow_mut();
    call.reset_empty(rt);
    call.route_name = super::context::route_name(name);
}

fn log_detached(rt: RouteType, name: &str, o: &Outcome) {
    if let Outcome::Failed(e) = o {
        tracing::error!("{}.{name} failed: {e}", rt.table());
    }
}

/// Runs `startup_route.main`, which cannot wait (there is no traffic
/// yet), logging a failure; false when the script has none.
pub fn run_startup(host: &dyn Phases) -> bool {
    reset_detached(host, RouteType::Startup, "main");
    let outcome = host.startup();
    if let Some(o) = &outcome {
        log_detached(RouteType::Startup, "main", o);
    }
    outcome.is_some()
}

impl Worker {
    /// Runs `timer_route[name]`; one that suspends is awaited, so runs of
    /// one timer never overlap. Sends what it queued.
    pub async fn run_timer(self: &Rc<Self>, name: &str) {
        let host = self.host();
        reset_detached(&*host, RouteType::Timer, name);
        match host.timer(name) {
            None => return,
            Some(Started::Ended(o)) => log_detached(RouteType::Timer, name, &o),
            Some(Started::Waiting(run)) => {
                let name = name.to_string();
                let then = Box::new(move |_: &dyn Phases, o| {
                    log_detached(RouteType::Timer, &name, &o);
                    None
                });
                let _ = self.park_then(host, Resume { run, then }).await;
            }
        }
        self.flush().await;
    }

    /// Runs `route[name]` with no message for a module's event (dialog's
    /// `dlg_on_*` routes): `prepare` sets the call up (the dialog as its
    /// context), `after` runs once the route ended, also when it waited.
    /// False when the script has no such route (`after` does not run).
    pub fn run_detached_route(
        self: &Rc<Self>,
        name: &str,
        prepare: impl FnOnce(&mut super::context::Call),
        after: Box<dyn FnOnce()>,
    ) -> bool {
        let host = self.host();
        reset_detached(&*host, RouteType::Request, name);
        prepare(&mut host.current().call.borrow_mut());
        match host.detached_route(name) {
            None => false,
            Some(Started::Ended(o)) => {
                log_detached(RouteType::Request, name, &o);
                after();
                true
            }
            Some(Started::Waiting(run)) => {
                let name = name.to_string();
                let then = Box::new(move |_: &dyn Phases, o| {
                    log_detached(RouteType::Request, &name, &o);
                    after();
                    None
                });
                self.park_then(host, Resume { run, then });
                true
            }
        }
    }

    /// Runs `event_route[name]` with the event's parameters, logging a
    /// failure; false when the script has no such route. One that
    /// suspends is parked: the next event runs meanwhile, and what the
    /// route queued leaves when it ends.
    pub fn run_event(
        self: &Rc<Self>,
        name: &str,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        let host = self.host();
        reset_detached(&*host, RouteType::Event, name);
        if !params.is_empty() {
            host.current().call.borrow_mut().event_params =
                Some(std::sync::Arc::new(params.clone()));
        }
        match host.event(name, params) {
            None => false,
            Some(Started::Ended(o)) => {
                log_detached(RouteType::Event, name, &o);
                true
            }
            Some(Started::Waiting(run)) => {
                let name = name.to_string();
                let then = Box::new(move |_: &dyn Phases, o| {
                    log_detached(RouteType::Event, &name, &o);
                    None
                });
                self.park_then(host, Resume { run, then });
                true
            }
        }
    }
}
