//! The dialog timer, a task of the first worker: ends dialogs whose
//! timeout passed (BYE to both sides with flag `B`), sends in-dialog
//! OPTIONS pings (flags `P`/`p`) and the BYEs MI `dlg_end_dlg` asks for.
//! Requests go out as local requests of tm; their answers come back on
//! whichever worker receives them.

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::machine;
use super::store::{self, lock, Dlg, DlgRef, CALLEE, CALLER};
use super::{conf, DIALOG};
use crate::proxy::worker::Worker;
use crate::proxy::tm::uac::{self, InDialog, LocalRequest};

/// Work for the timer task from other threads (the MI).
pub enum Job {
    /// Send BYE to both sides of an ended dialog (a copy of it).
    Bye(Box<Dlg>),
    /// Run `route[name]` with the dialog as context (`dlg_on_answer`,
    /// `dlg_on_hangup`).
    Route(DlgRef, String),
    /// The ACK of a re-INVITE ping's 2xx, to leg `.1`.
    Ack(DlgRef, usize),
    /// An in-dialog request from the script (`dlg_send_sequential`).
    Send {
        dlg: DlgRef,
        leg: usize,
        method: String,
        headers: String,
        body: String,
    },
}

/// The timer task's queue (the registry's long-lived state).
#[derive(Default)]
struct Queue(Mutex<Option<tokio::sync::mpsc::UnboundedSender<Job>>>);

/// Hands a job to the timer task; false when it is not running.
pub fn push(job: Job) -> bool {
    crate::state::state::<Queue>()
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|q| q.send(job).is_ok())
}

pub fn child_init(rank: usize, worker: &std::rc::Rc<crate::proxy::worker::Worker>) {
    if rank != 0 {
        return;
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    *crate::state::state::<Queue>()
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(tx);
    tokio::task::spawn_local(run(worker.clone(), rx));
}

/// A copy of what an in-dialog request needs (the dialog is not kept
/// locked while sending).
pub fn snapshot(d: &Dlg) -> Box<Dlg> {
    let mut c = d.clone();
    c.profiles.clear();
    Box::new(c)
}

/// The in-dialog request `method` towards leg `dst` (RFC 3261 §12.2.1.1):
/// the other side's identity as From, the dialog's Call-ID and tags, the
/// next CSeq this proxy uses towards `dst` ([`Dlg::next_cseq`]; an ACK
/// repeats its INVITE's), the destination's Contact as R-URI and its
/// route set as Route.
pub(super) fn request(d: &mut Dlg, dst: usize, method: &str) -> LocalRequest {
    let cseq = d.next_cseq(dst, method != "ACK");
    let src = 1 - dst;
    let (from, to) = match dst {
        CALLEE => (&d.from_uri, &d.to_uri),
        _ => (&d.to_uri, &d.from_uri),
    };
    let leg = &d.legs[dst];
    let headers: String = leg.route_set.iter().map(|r| format!("Route: {r}\r\n")).collect();
    let next_hop = leg
        .route_set
        .first()
        .map(|r| r.trim_start_matches('<').trim_end_matches('>').to_string());
    LocalRequest {
        method: method.into(),
        ruri: leg.contact.clone(),
        from: from.clone(),
        to: to.clone(),
        headers,
        next_hop,
        socket: leg.bind.clone(),
        dialog: Some(InDialog {
            call_id: d.callid.clone(),
            from_tag: d.legs[src].tag.clone(),
            to_tag: d.legs[dst].tag.clone(),
            cseq,
        }),
        ..Default::default()
    }
}

/// Sends BYE to both sides of `d`.
fn send_byes(w: &Rc<Worker>, d: &mut Dlg) {
    for dst in [CALLER, CALLEE] {
        if d.legs[dst].contact.is_empty() {
            continue;
        }
        let req = request(d, dst, "BYE");
        if let Err(e) = uac::send_located(w, req, None) {
            tracing::warn!("dialog {}: cannot send BYE to {}: {e}", d.did(), d.legs[dst].contact);
        }
    }
}

/// `dlg_send_sequential`'s request towards `leg`: the sender's CSeq
/// moves on as for a ping.
fn send_sequential(w: &Rc<Worker>, r: &DlgRef, leg: usize, method: &str, headers: &str, body: String) {
    let req = {
        let mut d = lock(r);
        if d.state == store::DELETED || d.legs[leg].contact.is_empty() {
            tracing::warn!("dialog {}: no {method} sent, the dialog ended or has no such leg", d.did());
            return;
        }
        let mut req = request(&mut d, leg, method);
        req.headers.push_str(headers);
        req.body = body;
        req
    };
    let ruri = req.ruri.clone();
    if let Err(e) = uac::send_located(w, req, None) {
        tracing::warn!("dialog: cannot send {method} to {ruri}: {e}");
    }
}

/// Runs `route[name]` with `r` as the current dialog; `after` once it
/// ended. False when the script has no such route.
fn run_route(w: &Rc<Worker>, r: &DlgRef, name: &str, after: Box<dyn FnOnce()>) -> bool {
    let r = r.clone();
    w.run_detached_route(
        name,
        move |call| {
            let slot = call.slot::<machine::CallDlg>();
            slot.dlg = Some(r);
        },
        after,
    )
}

/// A dialog past its deadline: its `dlg_on_timeout` route first, which
/// may give it more time (`$DLG_timeout`); else it ends (OpenSIPS
/// dlg_handlers.c `dlg_ontimeout`).
fn expire(w: &Rc<Worker>, r: &DlgRef) {
    let (route, bye, backup, extended) = {
        let d = lock(r);
        (
            d.routes.timeout.clone(),
            d.flags & store::FLAG_BYE_ON_TIMEOUT != 0,
            is_backup(&d),
            d.flags & store::FLAG_SELF_EXTENDED != 0,
        )
    };
    if backup {
        // dlg_handlers.c `dlg_ontimeout`: the node holding the sharing
        // tag active decides; a backup with a timeout route waits ten
        // minutes more, once, else ends the dialog without BYEs or route.
        if route.is_some() && !extended {
            let mut d = lock(r);
            d.flags |= store::FLAG_SELF_EXTENDED;
            d.deadline = Some(Instant::now() + Duration::from_secs(600));
            return;
        }
        DIALOG.expired.inc();
        end_with_byes(w, r, "Lifetime Timeout", false);
        return;
    }
    let ended = move |w: &Rc<Worker>, r: &DlgRef| {
        DIALOG.expired.inc();
        end_with_byes(w, r, "Lifetime Timeout", bye);
    };
    let Some(route) = route else {
        return ended(w, r);
    };
    // Not expired again while its route runs (it may wait); setting
    // `$DLG_timeout` there gives it a deadline again.
    lock(r).deadline = None;
    let (w2, r2) = (w.clone(), r.clone());
    let after = Box::new(move || {
        let extended = lock(&r2).deadline.is_some();
        if !extended {
            ended(&w2, &r2);
        }
    });
    if !run_route(w, r, &route, after) {
        tracing::warn!("dialog: route.{route} (dlg_on_timeout) is not defined");
        ended(w, r);
    }
}

/// dlg_replication.c `get_shtag_state`: with `dialog_replication_cluster`,
/// a dialog whose sharing tag is backup here is another node's to end.
pub fn is_backup(d: &Dlg) -> bool {
    let cluster = conf().repl_cluster;
    match &d.shtag {
        Some(tag) if cluster != 0 => !crate::modules::clusterer::shtag::is_active(tag, cluster),
        _ => false,
    }
}

/// Ends `r` with `reason` and sends the BYEs when `bye`.
pub(super) fn end_with_byes(w: &Rc<Worker>, r: &DlgRef, reason: &'static str, bye: bool) {
    if !machine::end(r, Some(reason)) {
        return;
    }
    if bye {
        let mut snap = snapshot(&lock(r));
        send_byes(w, &mut snap);
    }
}

/// One pass: timeouts, then pings that are due.
fn tick(w: &Rc<Worker>, last_ping: &mut Instant) {
    let now = Instant::now();
    let t = store::table();
    let ping_due = last_ping.elapsed() >= Duration::from_secs(u64::from(conf().ping_interval));
    if ping_due {
        *last_ping = now;
    }
    for r in t.all() {
        let (expired, flags, state, ping_lost) = {
            let d = lock(&r);
            let expired = d.deadline.is_some_and(|x| x <= now) && d.state < store::DELETED;
            (expired, d.flags, d.state, d.ping_pending)
        };
        if expired {
            expire(w, &r);
            continue;
        }
        super::ping::reinvite_due(w, &r, now);
        if !ping_due || state < store::CONFIRMED_NA || state == store::DELETED {
            continue;
        }
        // dlg_timer.c: a backup node of the dialog's sharing tag does not ping.
        if is_backup(&lock(&r)) {
            continue;
        }
        let wanted = [
            flags & store::FLAG_PING_CALLER != 0,
            flags & store::FLAG_PING_CALLEE != 0,
        ];
        if (0..2).any(|l| wanted[l] && ping_lost[l]) {
            // The last ping got no answer in a whole interval.
            end_with_byes(w, &r, "Ping Timeout", true);
            continue;
        }
        for leg in [CALLER, CALLEE].into_iter().filter(|l| wanted[*l]) {
            ping(w, &r, leg);
        }
    }
}

/// Sends an in-dialog OPTIONS to `leg`; 408 or 481 ends the dialog.
fn ping(w: &Rc<Worker>, r: &DlgRef, leg: usize) {
    let req = {
        let mut d = lock(r);
        let req = request(&mut d, leg, "OPTIONS");
        d.ping_pending[leg] = true;
        req
    };
    let weak = Arc::downgrade(r);
    let done: uac::Done = Arc::new(move |code| {
        let Some(r) = weak.upgrade() else { return };
        lock(&r).ping_pending[leg] = false;
        if code == 408 || code == 481 {
            // Sent from the timer task on its next pass: this runs on
            // whichever worker took the reply, outside any route.
            let reason = if leg == CALLER { "Caller Ping Timeout" } else { "Callee Ping Timeout" };
            if machine::end(&r, Some(reason)) {
                push(Job::Bye(snapshot(&lock(&r))));
            }
        }
    });
    let ruri = req.ruri.clone();
    if let Err(e) = uac::send_located(w, req, Some(done)) {
        tracing::warn!("dialog: cannot ping {ruri}: {e}");
    }
}

async fn run(
    worker: std::rc::Rc<crate::proxy::worker::Worker>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Job>,
) {
    let mut last_ping = Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = every.tick() => {
                tick(&worker, &mut last_ping);
            }
            job = rx.recv() => match job {
                Some(Job::Bye(mut d)) => send_byes(&worker, &mut d),
                Some(Job::Ack(r, leg)) => super::ping::send_ack(&worker, &r, leg),
                Some(Job::Route(r, name)) => {
                    if !run_route(&worker, &r, &name, Box::new(|| {})) {
                        tracing::warn!("dialog: route.{name} is not defined");
                    }
                }
                Some(Job::Send { dlg, leg, method, headers, body }) => {
                    send_sequential(&worker, &dlg, leg, &method, &headers, body);
                }
                None => return,
            },
        }
        worker.flush().await;
    }
}
