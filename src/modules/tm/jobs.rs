//! tm's task on the first worker: what the MI (its own thread) and
//! `t_new_request` (from inside a route) ask of transactions is done
//! here, outside any route, with the worker's outbox: local requests
//! (`t_uac_dlg`, `t_new_request`), CANCELs of them (`t_uac_cancel`),
//! replies through a held transaction (MI `t_reply`) and the bucket
//! counts (`t_hash`).

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::proxy::phases::Phases;
use crate::proxy::tm::uac::{self, FinalSlot, LocalRequest};
use crate::proxy::tm::{lock, relay, Tm};
use crate::sip::Message;

/// The final answer of a local request: its code and the reply
/// received (none when it timed out), or why it could not be sent.
pub type UacAnswer = Result<(u16, Option<Message>), String>;

/// A reply MI `t_reply` sends through transaction `label` of bucket `hash`.
pub struct Reply {
    pub hash: usize,
    pub label: u64,
    pub code: u16,
    pub reason: String,
    /// Header lines, each ending in CRLF.
    pub headers: String,
    pub body: String,
    /// The To tag of the reply (the transaction's own when None).
    pub to_tag: Option<String>,
}

/// What the other threads ask.
pub enum Job {
    /// Send a local request; the final answer goes to the sender, if any.
    Uac(Box<LocalRequest>, Option<mpsc::Sender<UacAnswer>>),
    /// CANCEL the pending local INVITE with this Call-ID and CSeq number;
    /// answers whether it was found.
    Cancel(String, u32, mpsc::Sender<bool>),
    /// Reply through a transaction; answers None when it is not found,
    /// Some(false) when it takes no more replies.
    Reply(Box<Reply>, mpsc::Sender<Option<bool>>),
    /// The buckets' (current, total) counts.
    Hash(mpsc::Sender<Vec<(u32, u32)>>),
    /// End the `t_wait_for_new_branches` wait of transaction
    /// (hash, label).
    EndWait(usize, u64),
    /// A job to do after a delay (`t_write_*`'s 408 when nobody answered).
    Later(Duration, Box<Job>),
}

/// The first worker's job queue (long-lived state in the module
/// registry: the MI thread and the workers of one registry share it).
#[derive(Default)]
struct Queue(Mutex<Option<tokio::sync::mpsc::UnboundedSender<Job>>>);

/// Hands a job to the task; false when it is not running (no worker yet,
/// or shutting down).
pub fn push(job: Job) -> bool {
    crate::state::state::<Queue>()
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|q| q.send(job).is_ok())
}

/// Pushes a job made around a reply channel and waits for the answer
/// (MI thread only: it blocks).
pub fn ask<T>(make: impl FnOnce(mpsc::Sender<T>) -> Job, wait: Duration) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    if !push(make(tx)) {
        return Err("no worker to run it".into());
    }
    match rx.recv_timeout(wait) {
        Ok(v) => Ok(v),
        Err(RecvTimeoutError::Timeout) => Err("no answer in time".into()),
        Err(RecvTimeoutError::Disconnected) => Err("dropped unanswered".into()),
    }
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

fn send_uac(host: &dyn Phases, req: &LocalRequest, answer: Option<mpsc::Sender<UacAnswer>>) {
    let Some(answer) = answer else {
        if let Err(e) = uac::send(host, req, None) {
            tracing::warn!("t_new_request: {} to {}: {e}", req.method, req.ruri);
        }
        return;
    };
    let slot: FinalSlot = Arc::new(Mutex::new(None));
    let (done_slot, done_tx) = (slot.clone(), answer.clone());
    let done: uac::Done = Arc::new(move |code| {
        let msg = done_slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = done_tx.send(Ok((code, msg)));
    });
    match uac::send_with(host, req, Some(done), Some(slot)) {
        Ok(true) => {}
        Ok(false) => {
            let _ = answer.send(Err("dropped by local_route".into()));
        }
        Err(e) => {
            let _ = answer.send(Err(e.to_string()));
        }
    }
}

fn cancel(host: &dyn Phases, tm: &Tm, callid: &str, cseq: u32) -> bool {
    let Some(txn) = tm.find_local(callid, cseq) else {
        return false;
    };
    let st = host.current();
    let mut call = st.call.borrow_mut();
    let mut t = lock(&txn);
    t.cancelled = true;
    relay::cancel_pending(tm, &txn, &mut t, None, &mut call.outbox);
    true
}

fn reply(host: &dyn Phases, tm: &Tm, r: &Reply) -> Option<bool> {
    let txn = tm.find_ident(r.hash, r.label)?;
    {
        let mut t = lock(&txn);
        for line in r.headers.split_inclusive("\r\n") {
            t.request.add_reply_header(line);
        }
    }
    let tag = r.to_tag.as_deref();
    match relay::reply_tagged(host.current(), &txn, r.code, &r.reason, &r.body, tag) {
        Ok(sent) => Some(sent),
        Err(e) => {
            tracing::warn!("MI t_reply: {e}");
            Some(false)
        }
    }
}

/// Does one job (a delayed one waits in a task of its own).
fn handle(worker: &std::rc::Rc<crate::proxy::worker::Worker>, job: Job) {
    let host = worker.host();
    let tm = host.current().env.tm.clone();
    match job {
        Job::Uac(req, answer) => send_uac(&*host, &req, answer),
        Job::Cancel(callid, cseq, answer) => {
            let _ = answer.send(cancel(&*host, &tm, &callid, cseq));
        }
        Job::Reply(r, answer) => {
            let _ = answer.send(reply(&*host, &tm, &r));
        }
        Job::Hash(answer) => {
            let _ = answer.send(tm.buckets());
        }
        Job::EndWait(hash, label) => {
            if let Some(txn) = tm.find_ident(hash, label) {
                if let Some(resume) = crate::proxy::tm::response::end_wait(&*host, &txn) {
                    worker.park_then(host.clone(), resume);
                }
            }
        }
        Job::Later(after, job) => {
            let worker = worker.clone();
            tokio::task::spawn_local(async move {
                tokio::time::sleep(after).await;
                handle(&worker, *job);
                worker.flush().await;
            });
        }
    }
}

async fn run(
    worker: std::rc::Rc<crate::proxy::worker::Worker>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Job>,
) {
    while let Some(job) = rx.recv().await {
        handle(&worker, job);
        worker.flush().await;
    }
}
