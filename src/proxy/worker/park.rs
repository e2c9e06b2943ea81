//! Routes that wait: a suspended request route's call set aside while
//! its transaction is held, resumed by a task of the worker (bounded by
//! `resume_timeout`), and what happens after a request route ended.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use tokio::task::JoinHandle;

use super::Worker;
use crate::proxy::context::{Call, Current, Unwind};
use crate::proxy::phases::{Outcome, Phases, Resume, Waiting};
use crate::proxy::reply;
use crate::stats::CORE;

impl Worker {
    /// A request route suspended on I/O: its transaction is held (a
    /// retransmission meanwhile is absorbed), its call is set aside, and a
    /// task resumes it when the answer comes, or ends it at
    /// `resume_timeout` with a 500.
    pub(super) fn park(self: &Rc<Self>, host: Rc<dyn Phases>, run: Waiting) {
        let st = host.current();
        if crate::proxy::tm::relay::hold(st) == crate::proxy::tm::relay::Held::Retransmission {
            // The route already runs for the first copy: this one ends here.
            return;
        }
        let then = Box::new(|host: &dyn Phases, outcome| {
            let st = host.current();
            after_request(st, outcome);
            crate::proxy::tm::relay::release_held(st);
            None
        });
        self.park_then(host, Resume { run, then });
    }

    /// Sets the current call aside while its route waits (what the route
    /// queued before it suspended leaves now); a task polls the route,
    /// ends it at `resume_timeout`, then runs `then` on the call and sends
    /// what that queued.
    pub fn park_then(self: &Rc<Self>, host: Rc<dyn Phases>, r: Resume) -> JoinHandle<()> {
        let st = host.current();
        let mut call = Box::new(Call::new());
        st.exchange(&mut call);
        std::mem::swap(&mut call.outbox, &mut st.call.borrow_mut().outbox);
        self.park_call(host, call, r)
    }

    fn park_call(
        self: &Rc<Self>,
        host: Rc<dyn Phases>,
        call: Box<Call>,
        r: Resume,
    ) -> JoinHandle<()> {
        self.suspended.set(self.suspended.get() + 1);
        CORE.suspended_routes.inc();
        let w = self.clone();
        // Boxed: the task would otherwise hold the whole future (the call
        // context and the timer, kilobytes) inline and copy it at each
        // stage of its life (spawn, bind, every state change).
        tokio::task::spawn_local(Box::pin(w.resume(host, call, r)))
    }

    async fn resume(self: Rc<Self>, host: Rc<dyn Phases>, call: Box<Call>, r: Resume) {
        let limit = host.current().env.config.resume_timeout;
        let mut parked = Parked {
            host: host.clone(),
            call,
            run: Some(r.run),
        };
        let outcome = tokio::select! {
            o = &mut parked => o,
            _ = tokio::time::sleep(limit) => {
                CORE.resume_timeouts.inc();
                parked.run = None; // abandons the route
                Outcome::Failed(format!(
                    "suspended longer than resume_timeout ({} ms)",
                    limit.as_millis()
                ))
            }
        };
        let st = host.current();
        let mut call = parked.call;
        st.exchange(&mut call);
        let next = (r.then)(&*host, outcome);
        let out = std::mem::take(&mut st.call.borrow_mut().outbox);
        st.exchange(&mut call);
        // Jobs the resumed route launched.
        self.park_launched(&host);
        self.suspended.set(self.suspended.get().saturating_sub(1));
        CORE.suspended_routes.sub(1);
        if let Some(next) = next {
            // What ran after the route started another that waits (a
            // failure route for branches that failed meanwhile).
            self.park_call(host, call, next);
        }
        for o in out {
            self.send(o).await;
        }
    }

    /// Parks the jobs routes launched and that wait on I/O, each on its
    /// own call: bounded by `resume_timeout` like a suspended route, what
    /// it queues leaves when it ends.
    pub(super) fn park_launched(self: &Rc<Self>, host: &Rc<dyn Phases>) {
        let jobs = std::mem::take(&mut *host.current().launched.borrow_mut());
        for job in jobs {
            let then = Box::new(|host: &dyn Phases, outcome| {
                if let Outcome::Failed(e) = &outcome {
                    tracing::error!("launched route failed: {e}");
                }
                // Dropped outside the borrow: a module's slot may act when dropped.
                let slots = host.current().call.borrow_mut().take_slots();
                drop(slots);
                None
            });
            self.park_call(host.clone(), job.call, Resume { run: job.run, then });
        }
    }
}

/// A suspended request route with its call: each poll puts the call in
/// the worker's slot, resumes the route, and takes the call out again.
struct Parked {
    host: Rc<dyn Phases>,
    call: Box<Call>,
    run: Option<Waiting>,
}

impl Future for Parked {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.get_mut();
        let Some(run) = this.run.as_mut() else {
            return Poll::Ready(Outcome::Done);
        };
        let cur = this.host.current();
        cur.exchange(&mut this.call);
        let r = run.as_mut().poll(cx);
        cur.exchange(&mut this.call);
        if r.is_ready() {
            this.run = None;
        }
        r
    }
}

/// What happens after a request route: a failed one is logged with the
/// call and answered 500 unless the script already replied; the modules'
/// per-call state ends with the route.
pub(super) fn after_request(st: &Current, outcome: Outcome) {
    after_route(st, outcome);
    // Dropped outside the borrow: a module's slot may act when dropped.
    let slots = st.call.borrow_mut().take_slots();
    drop(slots);
}

fn after_route(st: &Current, outcome: Outcome) {
    match outcome {
        Outcome::Done | Outcome::Unwound(Unwind::Exit) => {}
        Outcome::Unwound(Unwind::Drop) => CORE.drop_requests.inc(),
        Outcome::Failed(err) => {
            CORE.err_requests.inc();
            let (call_id, method) = st
                .call
                .borrow()
                .msg
                .as_ref()
                .map(|m| {
                    (
                        m.call_id().unwrap_or("").to_string(),
                        m.method().to_string(),
                    )
                })
                .unwrap_or_default();
            let worker = st.env.worker;
            tracing::error!(
                call_id,
                method,
                worker,
                "route.main failed: {err} (Call-ID {call_id})"
            );
            if !st.call.borrow().replied {
                reply::send_local_reply(st, 500, "Server Internal Error");
            }
        }
    }
}
