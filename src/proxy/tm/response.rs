//! Responses and timers of proxied transactions (RFC 3261 §16.7): reply
//! routes, forwarding provisionals and 2xx at once, collecting negative
//! finals until every branch has answered, the failure route, and the
//! best response to the caller.

use bytes::Bytes;

use super::relay::{
    apply_client, apply_server, build_ack, build_cancel, cancel_pending, local_response,
};
use super::uac;
use super::wheel::TimerEvent;
use super::{lock, BranchRole, TxnRef};
use crate::proxy::context::route_name;
use crate::proxy::context::{Dest, OutKind, Outgoing, Source, Unwind};
use crate::proxy::phases::{Outcome, Phases, Resume, Started};
use crate::sip::Message;
use crate::stats::TM;
use crate::transaction::client::Kind;
use crate::transaction::key::our_client_key;
use crate::transaction::select;
use vocab::route::RouteType;

/// The response of branch `i` of `t` with our Via removed, as the
/// observers left it, ready for the caller.
fn upstream_bytes(tm: &super::Tm, t: &super::Txn, i: usize, m: &mut Message) -> Bytes {
    m.remove_first_value("Via");
    for o in tm.observers() {
        o.reply_out(t, i, m);
    }
    let mut out = Vec::new();
    m.write_to(&mut out);
    out.into()
}

/// Runs a reply route; false when the script dropped the reply.
fn run_reply_route(host: &dyn Phases, name: Option<&str>) -> bool {
    host.current().call.borrow_mut().route_name = route_name(name.unwrap_or("main"));
    match host.reply(name) {
        Outcome::Unwound(Unwind::Drop) => false,
        Outcome::Failed(e) => {
            tracing::error!("onreply_route.{} failed: {e}", name.unwrap_or("main"));
            true
        }
        _ => true,
    }
}

/// A response matched branch `role` of `txn`.
pub fn on_reply(
    host: &dyn Phases,
    txn: TxnRef,
    role: BranchRole,
    msg: Message,
    src: Source,
) -> Option<Resume> {
    let tm = &host.current().env.tm;
    let i = match role {
        // The 200 (or 481) to our CANCEL ends there.
        BranchRole::Cancel(_) => return None,
        BranchRole::Request(i) => i,
    };
    let code = msg.status()?;
    let st = host.current();
    {
        let mut call = st.call.borrow_mut();
        let mut t = lock(&txn);
        let b = t.branches.get(i)?;
        let ack = (t.server.kind == Kind::Invite && code >= 300)
            .then(|| build_ack(&b.request, &msg))
            .flatten();
        let acts = match t.branches.get_mut(i) {
            Some(b) => b.client.on_response(code),
            None => return None,
        };
        tm.notify(|o| o.reply_in(&t, i, &msg));
        let (deliver, _, ended) = apply_client(tm, &txn, &mut t, i, acts, ack, &mut call.outbox);
        if ended {
            if let Some(b) = t.branches.get(i) {
                tm.client.remove(&our_client_key(&b.branch_id, b.method()));
            }
        }
        if !deliver {
            return None;
        }
        if code < 200 {
            if let Some(b) = t.branches.get_mut(i) {
                b.got_provisional = true;
            }
        }
        // A request we originated: its final reply ends it here, and the
        // callback runs with no lock or borrow held.
        if t.local.is_some() {
            if code >= 200 {
                if let Some(b) = t.branches.get_mut(i) {
                    b.final_code = Some(code);
                }
                uac::keep_final(&t, &msg);
                let done = uac::complete(&mut t, code);
                drop(t);
                drop(call);
                if let Some((done, code)) = done {
                    done(code);
                }
            }
            return None;
        }
    }
    // Reply routes see the reply as the current message.
    let (armed_reply, avps, bavps, bflags) = {
        let mut t = lock(&txn);
        let (bavps, bflags) = t
            .branches
            .get_mut(i)
            .map(|b| (std::mem::take(&mut b.avps), b.bflags))
            .unwrap_or_default();
        // tm `onreply_avp_mode` off: the route's AVPs are its own.
        let avps = if tm.timers.onreply_avp_mode {
            t.avps.clone()
        } else {
            Default::default()
        };
        (t.armed.on_reply.clone(), avps, bavps, bflags)
    };
    {
        let mut call = st.call.borrow_mut();
        call.reset(msg, src, RouteType::OnReply);
        call.avps = avps;
        call.tm.bavps = bavps;
        // OpenSIPS t_reply.c: a reply route sees its branch's flags and
        // what it changes stays with the branch.
        call.bflags = bflags;
        call.tm.txn = Some(txn.clone());
        call.tm.branch = Some(i);
        call.tm.reply_code = Some(code);
    }
    let keep = run_reply_route(host, None)
        && (armed_reply.is_none() || run_reply_route(host, armed_reply.as_deref()));
    let all_answered = {
        let mut call = st.call.borrow_mut();
        let call = &mut *call;
        let mut msg = call.msg.take()?;
        let mut t = lock(&txn);
        let avps = std::mem::take(&mut call.avps);
        if tm.timers.onreply_avp_mode {
            t.avps = avps;
        }
        if let Some(b) = t.branches.get_mut(i) {
            b.avps = std::mem::take(&mut call.tm.bavps);
            b.bflags = call.bflags;
        }
        let mut all_answered = false;
        match code {
            100 => {}
            101..=199 if keep => {
                let bytes = upstream_bytes(tm, &t, i, &mut msg);
                let acts = t.server.on_send(code);
                let up = (!t.relay_flags.replicate).then_some(&bytes);
                apply_server(tm, &txn, &mut t, acts, up, &mut call.outbox);
            }
            200..=299 => {
                t.last_branch = Some(i);
                t.last_local = false;
                if let Some(b) = t.branches.get_mut(i) {
                    b.final_code = Some(code);
                }
                let first = t.server.last_code < 200;
                let bytes = upstream_bytes(tm, &t, i, &mut msg);
                let acts = t.server.on_send(code);
                // t_replicate: the replica's answer is not the caller's.
                let up = (!t.relay_flags.replicate).then_some(&bytes);
                if apply_server(tm, &txn, &mut t, acts, up, &mut call.outbox) {
                    tm.forget(&t);
                }
                if first {
                    TM.completed(code);
                    tm.notify(|o| o.completed(&t, code));
                    // `allow-no-cancel` (OpenSIPS T_MULTI_200OK_FLAG): the
                    // other branches may answer 200 too.
                    if !t.relay_flags.no_cancel_on_2xx {
                        cancel_pending(tm, &txn, &mut t, Some(i), &mut call.outbox);
                    }
                }
            }
            300.. => {
                t.last_branch = Some(i);
                if let Some(b) = t.branches.get_mut(i) {
                    b.final_code = Some(code);
                    b.response = Some(Box::new(msg));
                }
                if code >= 600 {
                    cancel_pending(tm, &txn, &mut t, Some(i), &mut call.outbox);
                }
                if code == 503 {
                    super::locate::failover(tm, &txn, &mut t, i, &mut call.outbox);
                }
                all_answered = t.all_answered();
            }
            _ => {}
        }
        all_answered
    };
    if all_answered {
        return finalize(host, &txn);
    }
    None
}

/// The end of a `t_wait_for_new_branches` wait (OpenSIPS
/// `t_wait_no_more_branches`, or the phony branch's final response
/// timeout): the branches' answers decide as usual; with no branch at
/// all the caller gets 408, the phony branch's answer.
pub fn end_wait(host: &dyn Phases, txn: &TxnRef) -> Option<Resume> {
    {
        let mut t = lock(txn);
        if !t.wait_branches {
            return None;
        }
        t.wait_branches = false;
        if t.server.last_code >= 200 || !t.all_answered() {
            return None;
        }
        if t.branches.is_empty() {
            drop(t);
            let st = host.current();
            if let Err(e) = super::uas::reply_on(st, txn, 408, "Request Timeout", "") {
                tracing::warn!("t_wait_for_new_branches: {e}");
            }
            return None;
        }
    }
    finalize(host, txn)
}

/// Every branch answered negatively (or timed out): run the failure route
/// once, or send the best response (RFC 3261 §16.7 steps 6–7). A failure
/// route that suspends holds the transaction: the [`Resume`] goes on
/// from here once it ended.
fn finalize(host: &dyn Phases, txn: &TxnRef) -> Option<Resume> {
    let st = host.current();
    let (best, failure) = {
        let mut t = lock(txn);
        if t.server.last_code >= 200 || t.failure_waiting {
            return None;
        }
        let codes: Vec<u16> = t
            .branches
            .iter()
            .map(|b| b.final_code.unwrap_or(408))
            .collect();
        let best = select::best_response(&codes)?;
        t.reply_code = codes[best];
        let failure = if t.in_failure {
            None
        } else {
            t.armed.on_failure.take()
        };
        if failure.is_some() {
            t.in_failure = true;
        }
        (best, failure)
    };
    let Some(name) = failure else {
        forward_best(host, txn, best);
        return None;
    };
    // The failure route works on the request, with its flags back.
    let before = {
        let t = lock(txn);
        t.restore(&mut st.call.borrow_mut(), txn, &name, best);
        t.branches.len()
    };
    match host.failure(&name) {
        Some(Started::Waiting(run)) => {
            lock(txn).failure_waiting = true;
            let txn = txn.clone();
            Some(Resume {
                run,
                then: Box::new(move |host, outcome| {
                    lock(&txn).failure_waiting = false;
                    after_failure(host, &txn, best, &name, Some(outcome), Some(before))
                }),
            })
        }
        Some(Started::Ended(o)) => after_failure(host, txn, best, &name, Some(o), None),
        None => after_failure(host, txn, best, &name, None, None),
    }
}

/// After the failure route (`outcome` None: the script has no such route):
/// done if it replied or relayed again; else the best response goes up.
/// `resumed`: the route had suspended, with this many branches before it;
/// new branches that all failed meanwhile are judged again (a failure
/// route they armed runs).
fn after_failure(
    host: &dyn Phases,
    txn: &TxnRef,
    best: usize,
    name: &str,
    outcome: Option<Outcome>,
    resumed: Option<usize>,
) -> Option<Resume> {
    let st = host.current();
    let avps = std::mem::take(&mut st.call.borrow_mut().avps);
    let mut t = lock(txn);
    t.avps = avps;
    t.in_failure = false;
    if let Some(Outcome::Failed(e)) = &outcome {
        tracing::error!("failure_route.{name} failed: {e}");
    }
    if outcome.is_some() {
        if t.replied_locally || t.server.last_code >= 200 || !t.all_answered() {
            return None;
        }
        if resumed.is_some_and(|before| t.branches.len() > before) {
            drop(t);
            return finalize(host, txn);
        }
    }
    drop(t);
    forward_best(host, txn, best);
    None
}

/// Sends the best final response of the branches upstream (RFC 3261
/// §16.7 step 6), or a local 408/500 when it has none to forward.
fn forward_best(host: &dyn Phases, txn: &TxnRef, best: usize) {
    let tm = &host.current().env.tm;
    let mut call = host.current().call.borrow_mut();
    let mut t = lock(txn);
    if t.server.last_code >= 200 {
        return;
    }
    let code = select::forwarded_code(t.reply_code);
    // RFC 3261 §16.7 step 7: every challenge of every 401/407 goes up in
    // the one response forwarded.
    let challenges = if code == 401 || code == 407 {
        collect_challenges(&t, best)
    } else {
        String::new()
    };
    let bytes = match t.branches.get_mut(best).and_then(|b| b.response.take()) {
        Some(mut m) if code == m.status().unwrap_or(0) => {
            if !challenges.is_empty() {
                m.append_header_raw(&challenges);
            }
            t.last_local = false;
            upstream_bytes(tm, &t, best, &mut m)
        }
        _ => {
            let reason = if code == 408 {
                "Request Timeout"
            } else {
                "Server Internal Error"
            };
            t.last_local = true;
            local_response(&t, code, reason)
        }
    };
    let acts = t.server.on_send(code);
    let up = (!t.relay_flags.replicate).then_some(&bytes);
    if apply_server(tm, txn, &mut t, acts, up, &mut call.outbox) {
        tm.forget(&t);
    }
    TM.completed(code);
    tm.notify(|o| o.completed(&t, code));
}

/// The WWW-/Proxy-Authenticate lines of the 401/407 responses of every
/// branch but `best` (whose own stay in place).
fn collect_challenges(t: &super::Txn, best: usize) -> String {
    let mut out = String::new();
    for (i, b) in t.branches.iter().enumerate() {
        let Some(m) = b.response.as_ref().filter(|_| i != best) else {
            continue;
        };
        if !matches!(m.status(), Some(401 | 407)) {
            continue;
        }
        for h in m.headers() {
            if crate::sip::header::same_name(h.name, "WWW-Authenticate")
                || crate::sip::header::same_name(h.name, "Proxy-Authenticate")
            {
                out.push_str(h.name);
                out.push_str(": ");
                out.push_str(h.value);
                out.push_str("\r\n");
            }
        }
    }
    out
}

/// A transaction timer fired; this worker carries out what it means.
pub fn on_timer(host: &dyn Phases, ev: TimerEvent) -> Option<Resume> {
    let txn = ev.txn.upgrade()?;
    let tm = &host.current().env.tm;
    let st = host.current();
    let mut call = st.call.borrow_mut();
    let mut t = lock(&txn);
    match ev.branch {
        None => {
            if t.server_gens.current(ev.timer) != ev.gen {
                return None;
            }
            let mut acts = t.server.on_timer(ev.timer);
            if st.env.load.behind() {
                // Behind on our sockets: the ACK is most likely waiting in
                // our own queue; resending would only add to it.
                acts.remove(crate::transaction::server::Action::Resend);
            }
            if apply_server(tm, &txn, &mut t, acts, None, &mut call.outbox) {
                tm.forget(&t);
            }
        }
        Some(i) => {
            let b = t.branches.get_mut(i)?;
            if b.gens.current(ev.timer) != ev.gen {
                return None;
            }
            let mut acts = b.client.on_timer(ev.timer);
            if st.env.load.behind() {
                // Behind on our sockets: the answer is most likely waiting
                // in our own queue. The timer keeps its schedule; only
                // this copy is not sent (proxy::overload).
                acts.remove(crate::transaction::client::Action::Retransmit);
            }
            let (_, timed_out, ended) =
                apply_client(tm, &txn, &mut t, i, acts, None, &mut call.outbox);
            if timed_out {
                t.last_branch = Some(i);
                // OpenSIPS timer.c: a CANCEL on timeout says 480 NO_ANSWER.
                let extra = format!(
                    "{}{}",
                    super::hop::REASON_480,
                    t.extra_hdrs.as_deref().unwrap_or("")
                );
                if let Some(b) = t.branches.get_mut(i) {
                    b.final_code = Some(408);
                    b.local_final = true;
                    // RFC 3261 §16.8: a branch that rang gets a CANCEL.
                    if b.got_provisional && !b.cancel_sent {
                        if let Some(c) = build_cancel(&b.request, &extra) {
                            call.outbox.push(Outgoing {
                                bytes: c,
                                proto: b.proto,
                                dest: Dest::Addr(b.dest),
                                socket: b.socket,
                                kind: OutKind::Request,
                            });
                            tm.client.insert(
                                our_client_key(&b.branch_id, "CANCEL"),
                                (txn.clone(), BranchRole::Cancel(i)),
                            );
                            b.cancel_sent = true;
                        }
                    }
                }
            }
            if ended {
                if let Some(b) = t.branches.get(i) {
                    tm.client.remove(&our_client_key(&b.branch_id, b.method()));
                }
            }
            if timed_out && t.local.is_none() {
                super::locate::failover(tm, &txn, &mut t, i, &mut call.outbox);
            }
            if timed_out && t.local.is_some() {
                let done = uac::complete(&mut t, 408);
                drop(t);
                drop(call);
                if let Some((done, code)) = done {
                    done(code);
                }
                return None;
            }
            if timed_out && t.all_answered() {
                drop(t);
                drop(call);
                return finalize(host, &txn);
            }
        }
    }
    None
}
