//! Creating transactions and their branches: `t_relay`, `t_newtran`,
//! `t_reply`, `t_check_trans`, CANCEL and hop-by-hop ACK handling
//! (RFC 3261 §16.6, §16.10, §17.2.3).

use bytes::Bytes;
use std::sync::{Arc, Mutex};

use super::txn::{Branch, Txn};
use super::{lock, BranchRole, Tm, TxnRef};
use crate::proxy::context::{route_name, Current, Unwind};
use crate::proxy::context::{Call, Dest, OutKind, Outgoing};
use crate::proxy::phases::{Outcome, Phases};
use crate::proxy::{reply, stateless, ProxyError};
use crate::sip::{Message, Method};
use crate::transaction::client::Kind;
use crate::transaction::key::{our_client_key, server_key};
use crate::transaction::{client, server, ClientTxn, ServerTxn, Timer};
use vocab::route::RouteType;

pub use super::hop::*;
pub use super::uas::*;

fn kind_of(m: &Message) -> Kind {
    if m.method_kind() == Method::Invite {
        Kind::Invite
    } else {
        Kind::NonInvite
    }
}

/// Applies server-transaction actions: sends `bytes` (or the last
/// response) and arms timers. Returns true when the transaction ended.
pub fn apply_server(
    tm: &Tm,
    txn: &TxnRef,
    t: &mut Txn,
    acts: server::Actions,
    bytes: Option<&Bytes>,
    outbox: &mut Vec<Outgoing>,
) -> bool {
    let mut ended = false;
    for a in acts.iter() {
        match a {
            server::Action::Send => {
                if let Some(b) = bytes {
                    t.last_response = Some(b.clone());
                    outbox.push(response_out(t, b.clone()));
                }
            }
            server::Action::Resend => {
                if let Some(b) = t.last_response.clone() {
                    outbox.push(response_out(t, b));
                }
            }
            server::Action::Start(timer, d) => tm.arm(txn, t, None, timer, d),
            server::Action::Stop(timer) => t.server_gens.stop(timer),
            server::Action::AckTimeout => {}
            server::Action::Terminate => ended = true,
        }
    }
    ended
}

/// A response towards the caller.
pub fn response_out(t: &Txn, bytes: Bytes) -> Outgoing {
    Outgoing {
        bytes,
        proto: t.src.proto,
        dest: Dest::Addr(t.reply_to),
        socket: t.src.socket,
        kind: OutKind::Reply,
    }
}

/// Applies client-transaction actions for branch `i` that need no Lua:
/// retransmissions, ACKs and timers. Returns (deliver, timed_out, ended).
pub fn apply_client(
    tm: &Tm,
    txn: &TxnRef,
    t: &mut Txn,
    i: usize,
    acts: client::Actions,
    ack: Option<Bytes>,
    outbox: &mut Vec<Outgoing>,
) -> (bool, bool, bool) {
    let (mut deliver, mut timeout, mut ended) = (false, false, false);
    for a in acts.iter() {
        let Some(b) = t.branches.get_mut(i) else {
            break;
        };
        match a {
            client::Action::Retransmit => outbox.push(Outgoing {
                bytes: b.request.clone(),
                proto: b.proto,
                dest: Dest::Addr(b.dest),
                socket: b.socket,
                kind: OutKind::Request,
            }),
            client::Action::SendAck => {
                if let Some(ack) = &ack {
                    outbox.push(Outgoing {
                        bytes: ack.clone(),
                        proto: b.proto,
                        dest: Dest::Addr(b.dest),
                        socket: b.socket,
                        kind: OutKind::Request,
                    });
                }
            }
            client::Action::Start(timer, d) => tm.arm(txn, t, Some(i), timer, d),
            client::Action::Stop(timer) => b.gens.stop(timer),
            client::Action::Deliver => deliver = true,
            client::Action::Timeout => timeout = true,
            client::Action::Terminate => ended = true,
        }
    }
    (deliver, timeout, ended)
}

/// A locally built response to the transaction's request.
pub fn local_response(t: &Txn, code: u16, reason: &str) -> Bytes {
    local_response_body(t, code, reason, "")
}

/// [`local_response`] with a body (`t_reply_with_body`).
pub fn local_response_body(t: &Txn, code: u16, reason: &str, body: &str) -> Bytes {
    local_response_tagged(t, code, reason, body, None)
}

/// [`local_response_body`] with the To tag given (MI `t_reply`'s
/// `to_tag`) instead of the transaction's own. The transaction's own tag
/// goes on 180 and above only; a given one on any code (OpenSIPS
/// t_reply.c `t_reply_with_body`).
pub fn local_response_tagged(
    t: &Txn,
    code: u16,
    reason: &str,
    body: &str,
    to_tag: Option<&str>,
) -> Bytes {
    let own = crate::sip::reply::adds_to_tag(code) && to_tag.is_none();
    let own = own.then(|| reply::to_tag(&t.request));
    let mut out = Vec::with_capacity(512 + body.len());
    crate::sip::reply::write_reply_body(
        &t.request,
        code,
        reason,
        to_tag.or(own.as_deref()),
        reply::SERVER,
        body.as_bytes(),
        &mut out,
    );
    out.into()
}

/// Creates the server transaction for the current request (once).
/// Err(Some(existing)) when one exists already: the request is a
/// retransmission; Err(None) when the message cannot have one.
pub(super) fn create(st: &Current, call: &mut Call) -> Result<TxnRef, Option<TxnRef>> {
    let tm = &st.env.tm;
    stateless::prepare_top_via(call);
    let Some(m) = call.msg.as_ref().filter(|m| m.is_request()) else {
        return Err(None);
    };
    let Some(key) = server_key(m, None) else {
        return Err(None);
    };
    let kind = kind_of(m);
    let reliable = call.src.proto.is_stream();
    let mut timers = tm.timers;
    if let Some(fr) = call.tm.fr {
        timers.fr = fr;
    }
    if let Some(fr) = call.tm.fr_inv {
        timers.fr_inv = fr;
    }
    let mut t = Txn::new(
        tm.next_id(),
        key.clone(),
        ServerTxn::new(kind, reliable, timers),
        m.clone(),
        call.src,
        reply::reply_dest(m, call.src, call.force_rport),
        timers,
    );
    t.capture(call);
    let txn = Arc::new(Mutex::new(Box::new(t)));
    match tm.server.entry(key) {
        dashmap::Entry::Occupied(o) => Err(Some(o.get().clone())),
        dashmap::Entry::Vacant(v) => {
            v.insert(txn.clone());
            super::count_created(lock(&txn).id);
            crate::stats::TM.uas_transactions.inc();
            crate::stats::TM.inuse_transactions.inc();
            Ok(txn)
        }
    }
}

/// The transaction of the current request: the one a failure/reply route
/// runs in, or one t_newtran made.
fn current(call: &Call) -> Option<TxnRef> {
    call.tm.txn.clone()
}

/// Resends the last response of a retransmitted request.
pub(super) fn absorb(st: &Current, txn: &TxnRef, outbox: &mut Vec<Outgoing>) {
    let tm = &st.env.tm;
    let mut t = lock(txn);
    let acts = t.server.on_retransmission();
    apply_server(tm, txn, &mut t, acts, None, outbox);
}

/// `t_relay()`: relays the request statefully to `$du`/R-URI and every
/// appended branch. Ok(false) when nothing could be sent.
pub fn t_relay(ph: &dyn Phases) -> Result<bool, ProxyError> {
    let st = ph.current();
    let method = {
        let call = st.call.borrow();
        call.msg
            .as_ref()
            .filter(|m| m.is_request())
            .ok_or(ProxyError::NoRequest)?
            .method_kind()
    };
    match method {
        Method::Ack => return relay_ack(st),
        Method::Cancel => return relay_cancel(st),
        _ => {}
    }
    let txn = {
        let mut call = st.call.borrow_mut();
        match current(&call) {
            Some(t) => {
                let mut tx = lock(&t);
                if tx.branches.is_empty() && call.route == RouteType::Request {
                    // Made before t_relay (t_newtran, a suspension): it
                    // takes what the route did since.
                    if let Some(m) = call.msg.as_ref() {
                        tx.request = m.clone();
                    }
                    tx.capture(&call);
                }
                drop(tx);
                t
            }
            None => match create(st, &mut call) {
                Ok(t) => {
                    call.tm.txn = Some(t.clone());
                    t
                }
                Err(Some(existing)) => {
                    let mut out = std::mem::take(&mut call.outbox);
                    absorb(st, &existing, &mut out);
                    call.outbox = out;
                    return Ok(true);
                }
                Err(None) => return Err(ProxyError::NoTransaction),
            },
        }
    };
    // 100 Trying for a new INVITE (RFC 3261 §16.2), before any branch;
    // not with t_relay's 0x01 (OpenSIPS 1.x "no 100 Trying").
    {
        let mut call = st.call.borrow_mut();
        {
            let mut t = lock(&txn);
            let flags = call.tm.relay_flags;
            t.relay_flags = t.relay_flags.or(flags);
        }
        if !call.tm.relay_flags.no_100 {
            send_trying(st, &txn, &mut call);
        }
    }
    add_branches(ph, &txn)
}

/// Answers 100 on a new INVITE server transaction that has sent nothing
/// yet (`t_relay`, and `t_newtran` as OpenSIPS's `auto_100trying`).
pub(super) fn send_trying(st: &Current, txn: &TxnRef, call: &mut Call) {
    let mut t = lock(txn);
    if t.server.kind == Kind::Invite && t.server.last_code == 0 {
        // OpenSIPS 3.4 sends every automatic 100 from `t_newtran`
        // (t_relay too) with this reason phrase (t_lookup.c
        // `relay_reason_100`); RFC 3261 §21.1.1 leaves the phrase free.
        let trying = local_response(&t, 100, "Giving it a try");
        let acts = t.server.on_send(100);
        apply_server(
            &st.env.tm,
            txn,
            &mut t,
            acts,
            Some(&trying),
            &mut call.outbox,
        );
    }
}

/// Runs `branch_route[name]` for one branch with the branch's R-URI in
/// place; false when the route dropped the branch.
fn run_branch_route(ph: &dyn Phases, name: &str) -> bool {
    let st = ph.current();
    let saved = {
        let mut call = st.call.borrow_mut();
        let name = route_name(name);
        (
            std::mem::replace(&mut call.route, RouteType::Branch),
            std::mem::replace(&mut call.route_name, name),
        )
    };
    let r = ph.branch(name);
    let mut call = st.call.borrow_mut();
    (call.route, call.route_name) = saved;
    call.unwind = None;
    match r {
        Outcome::Unwound(Unwind::Drop) => false,
        Outcome::Failed(e) => {
            tracing::error!("branch_route.{name} failed: {e}");
            true
        }
        _ => true,
    }
}

/// Sends the current request to its destinations as new branches of `txn`.
pub fn add_branches(ph: &dyn Phases, txn: &TxnRef) -> Result<bool, ProxyError> {
    let st = ph.current();
    let tm = &st.env.tm;
    let Some(lhash) = stateless::precheck(st)? else {
        return Ok(false);
    };
    let (targets, method, on_branch) = {
        let mut call = st.call.borrow_mut();
        let m = call.msg.as_ref().ok_or(ProxyError::NoRequest)?;
        let method: Box<str> = m.method().into();
        let first = call.du.clone().unwrap_or_else(|| m.ruri().to_string());
        // Each target: where it goes, its new R-URI, its Path (RFC 3327),
        // and its own branch flags (OpenSIPS t_fwd.c).
        // and the socket it leaves from (OpenSIPS t_forward_nonack sets
        // each branch's force_send_socket in turn).
        #[allow(clippy::type_complexity)]
        let mut targets: Vec<(String, Option<String>, Option<String>, u64, Option<usize>)> =
            vec![(
                first,
                None,
                call.path_vec.clone(),
                call.bflags,
                call.socket_out,
            )];
        for b in std::mem::take(&mut call.tm.branches) {
            targets.push((
                b.duri.unwrap_or_else(|| b.uri.clone()),
                Some(b.uri),
                b.path,
                b.flags,
                b.socket,
            ));
        }
        (
            targets,
            method,
            lock(txn)
                .armed
                .on_branch
                .clone()
                .or(call.tm.armed.on_branch.clone()),
        )
    };
    let mut sent = 0;
    let mut unresolvable: Option<ProxyError> = None;
    // Exactly the room these branches need: a Branch is large, and a Vec
    // grown one push at a time reserves four.
    lock(txn).branches.reserve_exact(targets.len());
    // Each branch starts from the request route's $bavps.
    let base_bavps = st.call.borrow().tm.bavps.clone();
    let base_bflags = st.call.borrow().bflags;
    let base_socket = st.call.borrow().socket_out;
    for (uri, new_ruri, path, bflags, socket) in targets {
        {
            let mut call = st.call.borrow_mut();
            call.tm.bavps = base_bavps.clone();
            call.bflags = bflags;
            call.socket_out = socket;
        }
        // What a branch route changes belongs to its branch only.
        let (mark, saved_ruri, saved_du) = {
            let mut call = st.call.borrow_mut();
            let saved_du = call.du.clone();
            let Some(m) = call.msg.as_mut() else { break };
            let mark = m.edit_count();
            let saved_ruri = m.ruri().to_string();
            if let Some(r) = &new_ruri {
                m.set_ruri(r);
            }
            // The branch's Path goes first in its route set (RFC 3327 §5).
            if let Some(p) = &path {
                m.prepend_header("Route", p);
            }
            (mark, saved_ruri, saved_du)
        };
        let keep = on_branch
            .as_deref()
            .is_none_or(|name| run_branch_route(ph, name));
        let mut call = st.call.borrow_mut();
        let call = &mut *call;
        let target = match (&on_branch, new_ruri.is_some()) {
            // The branch route may have set $du or rewritten the R-URI.
            (Some(_), _) => call
                .du
                .clone()
                .or_else(|| call.msg.as_ref().map(|m| m.ruri().to_string()))
                .unwrap_or(uri),
            (None, _) => uri,
        };
        let v4 = call.src.addr.is_ipv4();
        let built = if keep {
            let forced = call.forced_proto();
            let located = super::locate::resolve_forced(&target, v4, forced);
            located.and_then(|super::locate::Located { proto, addr, alts }| {
                let mut t = lock(txn);
                let idx = t.branches.len();
                let branch_id = tm.branch_id(t.id, idx, lhash);
                // OpenSIPS t_fwd.c: a blacklisted address is skipped for
                // the destination's next one; none left fails the branch.
                let marker = stateless::blacklists(call);
                // OpenSIPS t_fwd.c `tm_via_cid`: the Via names this node
                // of a cluster (`;cid=1` after the branch).
                let cid = super::cluster::via_param();
                let via_branch = format!("{branch_id}{}", cid.via_param);
                let mut cands = std::iter::once(addr).chain(alts);
                let (addr, bytes, socket) = loop {
                    let Some(a) = cands.next() else {
                        return Err(ProxyError::Blocked(target.clone()));
                    };
                    let (bytes, socket) = stateless::build_copy(
                        call,
                        &st.env.sockets,
                        proto,
                        &Dest::Addr(a),
                        &via_branch,
                        None,
                        Some(tm),
                    )?;
                    match crate::transport::blacklist::blocked(marker, proto, a, &bytes) {
                        None => break (a, bytes, socket),
                        Some(l) => tracing::info!("t_relay: {a} is on blacklist {l}"),
                    }
                };
                let alts: Vec<_> = cands.collect();
                // A failure route may change the timers for its new branches.
                if let Some(fr) = call.tm.fr {
                    t.timers.fr = fr;
                }
                if let Some(fr) = call.tm.fr_inv {
                    t.timers.fr_inv = fr;
                }
                let (client, acts) = ClientTxn::start(t.server.kind, proto.is_stream(), t.timers);
                let mut b = Branch::sent(
                    client,
                    method.clone(),
                    bytes.clone(),
                    branch_id.clone(),
                    target.clone(),
                    addr,
                    proto,
                    socket,
                );
                b.alts = alts;
                b.avps = std::mem::take(&mut call.tm.bavps);
                b.bflags = call.bflags;
                t.branches.push(b);
                tm.client.insert(
                    our_client_key(&branch_id, &method),
                    (txn.clone(), BranchRole::Request(idx)),
                );
                call.outbox.push(Outgoing {
                    bytes,
                    proto,
                    dest: Dest::Addr(addr),
                    socket,
                    kind: OutKind::Request,
                });
                apply_client(tm, txn, &mut t, idx, acts, None, &mut call.outbox);
                tm.notify(|o| o.request_out(&t, idx));
                Ok(true)
            })
        } else {
            Ok(false)
        };
        if let Some(m) = call.msg.as_mut() {
            m.truncate_edits(mark);
            m.set_ruri(&saved_ruri);
        }
        call.du = saved_du;
        match built {
            Ok(true) => {
                crate::stats::TM.uac_transactions.inc();
                sent += 1;
            }
            Ok(false) => tracing::info!("t_relay: branch_route dropped the branch to {target}"),
            Err(e) => {
                tracing::info!("t_relay: {e}");
                if matches!(e, ProxyError::Unresolvable(_) | ProxyError::Blocked(_)) {
                    unresolvable = Some(e);
                }
            }
        }
    }
    {
        let mut call = st.call.borrow_mut();
        call.tm.bavps = base_bavps;
        call.bflags = base_bflags;
        call.socket_out = base_socket;
    }
    if sent == 0 {
        // OpenSIPS's codes for sl_reply_error: a name that does not
        // resolve is E_BAD_ADDRESS, a blacklisted one E_IP_BLOCKED,
        // anything else 500.
        st.call.borrow_mut().last_error = Some(match unresolvable {
            Some(e) => e.reply(),
            None => (500, "No Destination"),
        });
    }
    Ok(sent > 0)
}

/// Which timer of a branch is armed now (for tests).
pub fn armed(t: &Txn, i: usize, timer: Timer) -> u64 {
    t.branches.get(i).map_or(0, |b| b.gens.current(timer))
}
