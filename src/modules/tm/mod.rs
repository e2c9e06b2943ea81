//! Transaction functions (OpenSIPS tm): `sip.tm.t_relay`, `t_on_failure`,
//! `t_on_reply`, `t_on_branch`, `t_check_trans`, `t_newtran`, `t_reply`,
//! `t_was_cancelled`, `t_check_status`, `t_local_replied`, `t_cancel_branch`.

use mlua::{Lua, MultiValue};

use crate::proxy::context::Unwind;
use crate::proxy::tm::{locate, lock, relay};
use crate::script::exports::{none, ret, Args, Export, Func, Suspend};
use crate::modules::Module;

use crate::script::host::State;
use crate::script::route::{RouteMask, RouteType};
use std::rc::Rc;

mod branches;
mod inject_event;
pub mod cluster;
mod jobs;
mod mi;
mod more;
mod new_request;
mod pv;
mod settings;
pub mod tw_append;
mod write;

pub(super) fn relay_now(lua: &Lua, st: &State, fname: &str) -> mlua::Result<MultiValue> {
    let Some(host) = crate::script::phases::phases_of(st) else {
        return Err(mlua::Error::RuntimeError(format!(
            "{fname}: no script host"
        )));
    };
    match relay::t_relay(&*host) {
        Ok(ok) => ret(lua, ok),
        Err(e) => {
            tracing::warn!("{fname}: {e}");
            st.call.borrow_mut().last_error = Some(e.reply());
            ret(lua, false)
        }
    }
}

/// What `t_relay` waits for first: the names among its destinations with
/// no cached answer (RFC 3263), looked up while the route is suspended.
fn t_relay_lookups(_: &Lua, st: &Rc<State>) -> Option<Suspend> {
    let hops = locate::pending_lookups(&st.call.borrow());
    if hops.is_empty() {
        return None;
    }
    Some(Box::pin(async move {
        locate::lookup_all(hops).await;
        Ok(MultiValue::new())
    }))
}

/// `t_relay()`: relays with the names already looked up (request and
/// failure routes wait for them first); a name still not cached — one a
/// branch route set — makes its branch fail with 476 and a log line.
fn t_relay(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (flags, proxy) = more::relay_args(&a)?;
    let saved_du = {
        let mut call = st.call.borrow_mut();
        call.tm.relay_flags = flags;
        match proxy {
            Some(p) => Some(call.du.replace(p)),
            None => None,
        }
    };
    let r = relay_now(lua, st, a.fname);
    if let Some(du) = saved_du {
        st.call.borrow_mut().du = du;
    }
    r
}

/// Arms a named route; `check` already verified literal names at load.
fn arm(lua: &Lua, st: &State, a: &Args, rt: RouteType) -> mlua::Result<Option<String>> {
    let name = a.str(0)?;
    let exists = lua
        .globals()
        .get::<mlua::Table>(rt.table())
        .and_then(|t| t.get::<mlua::Function>(name.as_str()))
        .is_ok();
    if !exists {
        return Err(a.err(format!("{}.{name} is not defined", rt.table())));
    }
    let _ = st;
    Ok(Some(name))
}

fn t_on_failure(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = arm(lua, st, &a, RouteType::Failure)?;
    let mut call = st.call.borrow_mut();
    // In a failure route the new branches' failure route is armed on the txn.
    if let Some(txn) = call.tm.txn.clone() {
        lock(&txn).armed.on_failure = name.clone();
    }
    call.tm.armed.on_failure = name;
    none()
}

fn t_on_reply(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = arm(lua, st, &a, RouteType::OnReply)?;
    let mut call = st.call.borrow_mut();
    if let Some(txn) = call.tm.txn.clone() {
        lock(&txn).armed.on_reply = name.clone();
    }
    call.tm.armed.on_reply = name;
    none()
}

fn t_on_branch(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = arm(lua, st, &a, RouteType::Branch)?;
    st.call.borrow_mut().tm.armed.on_branch = name;
    none()
}

fn t_check_trans(lua: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    let (found, exit) = relay::t_check_trans(st);
    if found && exit {
        // OpenSIPS: a retransmission (or an absorbed ACK) ends the script.
        st.call.borrow_mut().unwind = Some(Unwind::Exit);
        return Err(mlua::Error::RuntimeError("t_check_trans: absorbed".into()));
    }
    ret(lua, found)
}

fn t_newtran(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    ret(lua, relay::t_newtran(st, true).map_err(|e| a.err(e))?)
}

fn t_reply(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let code = a.int(0)?;
    let reason = a.str(1)?;
    if !(100..=699).contains(&code) || reason.contains(['\r', '\n']) {
        return Err(a.err("needs a status code 100-699 and a one-line reason"));
    }
    ret(
        lua,
        relay::t_reply(st, code as u16, &reason).map_err(|e| a.err(e))?,
    )
}

fn t_was_cancelled(lua: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    let txn = st.call.borrow().tm.txn.clone();
    ret(lua, txn.is_some_and(|t| lock(&t).cancelled))
}

/// `t_local_replied("all"|"last")`: whether every final reply (all) or
/// the last one was made here (a timeout's 408, `t_reply`) rather than
/// received.
fn t_local_replied(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let which = a.str(0)?;
    let txn = st.call.borrow().tm.txn.clone();
    let Some(txn) = txn else {
        return ret(lua, false);
    };
    let t = lock(&txn);
    let answer = match which.to_ascii_lowercase().as_str() {
        "all" => {
            let finals: Vec<bool> = t
                .branches
                .iter()
                .filter(|b| b.final_code.is_some())
                .map(|b| b.local_final)
                .collect();
            if finals.is_empty() {
                t.last_local
            } else {
                finals.iter().all(|l| *l) && (t.server.last_code < 200 || t.last_local)
            }
        }
        "last" => {
            if t.server.last_code >= 200 {
                t.last_local
            } else {
                t.last_branch
                    .and_then(|i| t.branches.get(i))
                    .is_some_and(|b| b.local_final)
            }
        }
        other => return Err(a.err(format!("'{other}': expected \"all\" or \"last\""))),
    };
    ret(lua, answer)
}

/// `t_cancel_branch([flags])` from a reply route: CANCEL the branch the
/// reply came from (no flags), every pending branch (`a`), or every other
/// pending branch (`o`).
fn t_cancel_branch(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let flags = a.opt_str(0)?.unwrap_or_default();
    if let Some(c) = flags.chars().find(|c| !matches!(c, 'a' | 'o')) {
        return Err(a.err(format!("unknown flag '{c}' (a, o)")));
    }
    let mut call = st.call.borrow_mut();
    let call = &mut *call;
    let (Some(txn), Some(current)) = (call.tm.txn.clone(), call.tm.branch) else {
        return ret(lua, false);
    };
    let mut t = lock(&txn);
    let tm = &st.env.tm;
    if flags.contains('a') {
        relay::cancel_pending(tm, &txn, &mut t, None, &mut call.outbox);
    } else if flags.contains('o') {
        relay::cancel_pending(tm, &txn, &mut t, Some(current), &mut call.outbox);
    } else {
        relay::cancel_one(tm, &txn, &mut t, current, &mut call.outbox);
    }
    ret(lua, true)
}

/// `t_check_status(re)`: OpenSIPS compiles the argument as a POSIX
/// extended regex, case-insensitive, and searches (unanchored) the status
/// code: the reply being handled in a reply route, the winning one in a
/// failure route, the last one sent to the caller in a request route.
/// Without a transaction (or a status) it is false, as in OpenSIPS.
fn t_check_status(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let pat = a.str(0)?;
    let code = {
        let call = st.call.borrow();
        match (call.route, call.tm.reply_code, &call.tm.txn) {
            (_, Some(code), _) => Some(code),
            (RouteType::Request | RouteType::Branch, None, Some(txn)) => {
                let t = lock(txn);
                (t.reply_code != 0).then_some(t.reply_code)
            }
            _ => None,
        }
    };
    let Some(code) = code else {
        return ret(lua, false);
    };
    let hit = crate::pv::re::is_match(&code.to_string(), &pat, "i").map_err(|e| a.err(e))?;
    ret(lua, hit)
}

fn append_branch(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let uri = match a.opt_str(0)? {
        Some(u) => u,
        None => {
            let call = st.call.borrow();
            call.msg
                .as_ref()
                .map(|m| m.ruri().to_string())
                .ok_or_else(|| a.err("no request"))?
        }
    };
    if crate::sip::Uri::parse(&uri).is_err() {
        return Err(a.err(format!("'{uri}' is not a valid URI")));
    }
    let q = match a.opt_str(1)? {
        None => None,
        Some(q) => Some(parse_q(&q).ok_or_else(|| a.err(format!("'{q}' is not a q-value")))?),
    };
    let mut call = st.call.borrow_mut();
    // As OpenSIPS: the new branch takes the current $du, flags and socket.
    let b = crate::proxy::context::PendingBranch {
        uri,
        duri: call.du.clone(),
        q: q.or(call.ru_q),
        path: None,
        flags: call.bflags,
        socket: call.socket_out,
    };
    call.tm.branches.push(b);
    ret(lua, true)
}

/// A q-value ("0.5", "1") as thousandths, like `$ru_q`.
fn parse_q(s: &str) -> Option<i64> {
    let v: f64 = s.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&v)
        .then(|| (v * 1000.0).round() as i64)
}

const RELAY_ROUTES: RouteMask = RouteMask::REQUEST
    .or(RouteMask::FAILURE)
    .or(RouteMask::BRANCH);

pub static MODULE: Module = Module {
    name: "tm",
    table: Some("tm"),
    doc: "Transactions (OpenSIPS tm).",
    pvs: pv::PVS,
    exports: &[
        Export {
            name: "t_relay",
            args: "([flags] [, proxy])",
            returns: "true if at least one branch was sent",
            routes: RELAY_ROUTES,
            doc: "Relays the request statefully (RFC 3261 §16) to `$du` or the R-URI and every `append_branch` destination: a server transaction absorbs retransmissions, INVITEs get 100 Trying, branches retransmit on UDP and time out into 408, replies are chosen per §16.7, a CANCEL is answered 200 and sent on every pending branch (481 without its INVITE) with a Reason header (RFC 3326), a hop-by-hop ACK is absorbed and a 2xx ACK forwarded. `flags` as OpenSIPS 3.4 names them, `|`-separated: `no-dns-failover` (a 503 or timeout does not try the destination's next address), `pass-reason-hdr` (a CANCEL's Reason goes on to the branches), `allow-no-cancel` (a 2xx does not cancel the other branches), `no-auto-477` (accepted: lunasip never sends an error reply of its own when relaying fails; the script does, `sl_reply_error`); or OpenSIPS 2.x's number (`\"0x04\"`: 0x01 no 100 Trying, 0x02, 0x04, 0x08, 0x10 as those names in order). `proxy` (`\"udp:10.0.0.5:5060\"`, an IP address; either argument order) replaces `$du` for this relay.",
            func: Func::SyncAfter {
                wait: t_relay_lookups,
                func: t_relay,
            },
        },
        Export {
            name: "t_on_failure",
            args: "(name)",
            returns: "nothing",
            routes: RELAY_ROUTES,
            doc: "Runs `failure_route[name]` when every branch of the next `t_relay` ended negatively or timed out; it may relay again (serial forking).",
            func: Func::Sync(t_on_failure),
        },
        Export {
            name: "t_on_reply",
            args: "(name)",
            returns: "nothing",
            routes: RELAY_ROUTES,
            doc: "Runs `onreply_route[name]` for every reply of the transaction (after `onreply_route.main`).",
            func: Func::Sync(t_on_reply),
        },
        Export {
            name: "t_on_branch",
            args: "(name)",
            returns: "nothing",
            routes: RELAY_ROUTES,
            doc: "Arms `branch_route[name]` for the branches of the next `t_relay`.",
            func: Func::Sync(t_on_branch),
        },
        Export {
            name: "t_check_trans",
            args: "()",
            returns: "true if the request belongs to a transaction",
            routes: RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::ONREPLY),
            doc: "For a retransmission, sends the last reply again and ends the script; an ACK of a negative reply is absorbed and ends the script; a CANCEL returns whether its INVITE is known.",
            func: Func::Sync(t_check_trans),
        },
        Export {
            name: "t_newtran",
            args: "()",
            returns: "true if created (false for a retransmission)",
            routes: RouteMask::REQUEST,
            doc: "Creates the server transaction without relaying, e.g. before a slow operation or `t_reply`. A new INVITE transaction answers `100 Giving it a try` at once, as OpenSIPS's `auto_100trying` (the same 100 `t_relay` sends). False on a retransmission of a request whose transaction exists (its last reply is sent again).",
            func: Func::Sync(t_newtran),
        },
        Export {
            name: "t_reply",
            args: "(code, reason)",
            returns: "true if sent",
            routes: RouteMask::REQUEST.or(RouteMask::FAILURE),
            doc: "Replies through the transaction, so retransmissions get the reply again. In a request route without a transaction it creates one first as `t_newtran` does: a new INVITE is answered `100 Giving it a try` before this reply (OpenSIPS's `auto_100trying`). Replies from 180 on carry the transaction's To tag, 101–179 none (as OpenSIPS). An ACK is not replied.",
            func: Func::Sync(t_reply),
        },
        Export {
            name: "t_replicate",
            args: "(uri [, flags])",
            returns: "true if sent",
            routes: RouteMask::REQUEST.or(RouteMask::FAILURE),
            doc: "Sends the request as it is (a REGISTER to a peer registrar, typically) to `uri`, which becomes `$du`, in a transaction whose replies stay here: the route still answers the caller (`save`, `sl_send_reply`). `uri` names an IP address (`\"sip:10.0.0.2:5060\"`); `flags` as `t_relay`'s. No 100 Trying.",
            func: Func::Sync(more::t_replicate),
        },
        Export {
            name: "t_reply_with_body",
            args: "(code, reason, body)",
            returns: "true if sent",
            routes: RouteMask::REQUEST.or(RouteMask::FAILURE),
            doc: "`t_reply` with a body (pseudo-variables expanded in reason and body); give its type with `append_to_reply(\"Content-Type: …\\r\\n\")` first. Content-Length follows the body. An ACK is not replied.",
            func: Func::Sync(more::t_reply_with_body),
        },
        Export {
            name: "t_flush_flags",
            args: "()",
            returns: "true; false without a transaction",
            routes: RouteMask::REQUEST.or(RouteMask::BRANCH),
            doc: "Makes the message flags set since the transaction was created (`t_newtran`, a route that waited) the transaction's, so its failure route sees them.",
            func: Func::Sync(more::t_flush_flags),
        },
        Export {
            name: "t_add_hdrs",
            args: "(headers)",
            returns: "true; false without a transaction",
            routes: RouteMask::REQUEST,
            doc: "Header lines (`\"X-A: 1\\r\\n\"`, pseudo-variables expanded) that every CANCEL this transaction sends carries; a second call replaces them. Text that is not `Name: value` lines is an error naming the script line.",
            func: Func::Sync(more::t_add_hdrs),
        },
        Export {
            name: "t_add_cancel_reason",
            args: "(reason)",
            returns: "true",
            routes: RouteMask::REQUEST,
            doc: "In the route of a CANCEL, before `t_relay`: the Reason header line (`\"Reason: SIP;cause=200;text=\\\"Call completed elsewhere\\\"\\r\\n\"`) the CANCELs sent on the branches carry instead of `Reason: SIP;cause=487;text=\"ORIGINATOR_CANCEL\"` (RFC 3326).",
            func: Func::Sync(more::t_add_cancel_reason),
        },
        Export {
            name: "t_reply_by_callid",
            args: "(code, reason [, callid, cseq])",
            returns: "true, 1 when sent; false, -2 no Call-ID / -3 no CSeq / -4 no such INVITE transaction / -1 not sent",
            routes: RouteMask::REQUEST,
            doc: "Replies through the INVITE transaction with that Call-ID and CSeq number (those of the current request when absent), e.g. to answer a ringing INVITE from the route of another request.",
            func: Func::Sync(more::t_reply_by_callid),
        },
        Export {
            name: "t_was_cancelled",
            args: "()",
            returns: "boolean",
            routes: RouteMask::FAILURE.or(RouteMask::ONREPLY),
            doc: "Whether the caller cancelled the transaction.",
            func: Func::Sync(t_was_cancelled),
        },
        Export {
            name: "t_check_status",
            args: "(pattern)",
            returns: "boolean",
            routes: RouteMask::FAILURE.or(RouteMask::ONREPLY),
            doc: "Matches the reply code (the winning one in a failure route) against a pattern of digits, `.` and `|` alternatives, e.g. `\"486|408\"`, `\"5..\"`.",
            func: Func::Sync(t_check_status),
        },
        Export {
            name: "t_local_replied",
            args: "(\"all\"|\"last\")",
            returns: "boolean",
            routes: RouteMask::REQUEST
                .or(RouteMask::BRANCH)
                .or(RouteMask::FAILURE)
                .or(RouteMask::ONREPLY),
            doc: "Whether every final reply of the transaction (`all`) or the last one (`last`) was made by lunasip (a timeout's 408, `t_reply`) rather than received, e.g. to tell a dead gateway from a busy one in a failure route.",
            func: Func::Sync(t_local_replied),
        },
        Export {
            name: "t_cancel_branch",
            args: "([flags])",
            returns: "true if the reply belongs to a transaction",
            routes: RouteMask::ONREPLY,
            doc: "From a reply route: sends CANCEL on the branch the reply came from; flag `a` cancels every pending branch, `o` every pending branch but this one. The caller still gets the final answer of the cancelled branches (487).",
            func: Func::Sync(t_cancel_branch),
        },
        Export {
            name: "t_new_request",
            args: "(method, ruri, from, to [, body [, ctx]])",
            returns: "true if handed to tm (the request leaves after the route returns); false for a body without its type",
            routes: RouteMask::ANY,
            doc: "Sends a new request, unrelated to the current message, statefully (a new Call-ID, From tag, CSeq 10), as OpenSIPS's `t_new_request`: `from`/`to` are a URI with an optional display name before it (`\"Alice sip:alice@example.com\"`), `body` starts with its content type and a space (`\"text/plain hello\"`); pseudo-variables are expanded. It passes `local_route.main` like every local request; its replies end in tm. `ctx` becomes the new transaction's `$avp(uac_ctx)`, which `local_route.main` sees (replies of local requests run no reply route in lunasip).",
            func: Func::Sync(new_request::t_new_request),
        },
        Export {
            name: "t_write_unix",
            args: "(info, socket)",
            returns: "true if written; false without a transaction (`t_newtran` first) or when the socket took nothing",
            routes: RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::BRANCH),
            doc: "Writes the request's description (OpenSIPS t_fifo.c, version 0.3: 20 lines — `0.3`, `sip_request.<info>`, method, R-URI user, R-URI host, receiving address, its port (`.` for 5060), R-URI, the URI of later requests (Contact or From, or the first non-loose Record-Route), From, To, Call-ID, From tag, To tag, CSeq number, `hash:label`, route set, next hop, `P-MsgFlags: <flags in reversed hex>` and `.`, the body for an INVITE; `.` for an empty one) as one datagram to the unix socket `socket`, without waiting. The transaction then waits for the application's answer through MI `t_reply` with that `hash:label`; with none by the final response timeout the caller gets 408. `info` is the action name (`action/append` needs tm's `tw_append`, which lunasip does not have).",
            func: Func::Sync(write::t_write_unix),
        },
        Export {
            name: "t_write_req",
            args: "(info, fifo)",
            returns: "true if written; false without a transaction or when no one reads the FIFO",
            routes: RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::BRANCH),
            doc: "`t_write_unix` to a FIFO: opened without waiting (nobody reading it fails), the lines written at once.",
            func: Func::Sync(write::t_write_req),
        },
        Export {
            name: "t_wait_for_new_branches",
            args: "([n])",
            returns: "true; false without a transaction, for a request other than INVITE, or after its final response",
            routes: RouteMask::REQUEST,
            doc: "The INVITE's transaction waits for branches added later with `t_inject_branches` (OpenSIPS's phony branch): negative answers of its branches are kept, not sent, until the wait ends — `t_wait_no_more_branches`, `n` more branches added, or `fr_inv_timeout` (then the best answer goes up, 408 when no branch was ever sent).",
            func: Func::Sync(branches::t_wait_for_new_branches),
        },
        Export {
            name: "t_wait_no_more_branches",
            args: "()",
            returns: "true if the transaction was waiting",
            routes: RouteMask::REQUEST
                .or(RouteMask::ONREPLY)
                .or(RouteMask::BRANCH)
                .or(RouteMask::FAILURE),
            doc: "Ends the `t_wait_for_new_branches` wait once the route returned: when every branch already answered negatively, the best answer (or the failure route) follows.",
            func: Func::Sync(branches::t_wait_no_more_branches),
        },
        Export {
            name: "t_inject_branches",
            args: "(source [, flags])",
            returns: "ok, code (1 a branch was sent; -1 no transaction, local or of the notification route, or nothing to inject; -2 the transaction has its final response; -3 no branch could be sent)",
            routes: RouteMask::REQUEST.or(RouteMask::ONREPLY),
            doc: "Adds branches to a transaction that has no final response yet, typically one waiting in `t_wait_for_new_branches`: the current request's, or, in a route run by event_routing's `notify_on_event`, the transaction that subscribed (OpenSIPS tm.c `w_t_inject_branches`). `source` `\"msg\"` takes the current request's destinations (R-URI or `$du`, and `append_branch`es); `\"event\"` takes the contact a usrloc `E_UL_CONTACT_*` event describes in the route's AVPs (OpenSIPS t_fwd.c `ul_contact_event_to_msg`: `$avp(uri)` as R-URI, the first hop of `$avp(path)` (else `$avp(received)`) as `$du` with the Path as route set, `$avp(qval)`, `$avp(bflags)` as branch flags, `$avp(socket)` as sending socket; all six must be there) on a copy of the transaction's request. `flags`: `cancel`/`c` cancels the branches still ringing first, `l` ends the wait after this one.",
            func: Func::Sync(branches::t_inject_branches),
        },
        Export {
            name: "t_anycast_replicate",
            args: "()",
            returns: "ok, code (1 replicated; -1 not to replicate: not a CANCEL or ACK, not received on an `anycast` socket, or its transaction is here; -2 it was replicated to this node already; -3 not sent)",
            routes: RouteMask::REQUEST,
            doc: "A CANCEL or ACK that reached this node of an anycast address (a listen entry with `anycast`) but belongs to a transaction of another node is sent to every node of `tm_replication_cluster` (clusterer BIN packets, capability `tm-repl`); the node holding the transaction handles it: a CANCEL is answered 200 and cancels the INVITE's branches (without running that node's script with `cluster_auto_cancel`, else through its `route.main`, where `t_relay` does it), an ACK runs that node's `route.main` (where `t_check_trans`/`t_relay` absorb it). Name the anycast socket with the same `tag` on every node when their addresses differ. Returns 1 once the packet is queued to a node whose link is not down (OpenSIPS 3.4 returns -3 even then, fixed later upstream).",
            func: Func::Sync(cluster::t_anycast_replicate),
        },
    ],
    stats: settings::STATS,
    params: settings::PARAMS,
    setup: Some(|m| crate::modules::settings(settings::prepare(m))),
    mi: mi::COMMANDS,
    child_init: Some(jobs::child_init),
    ..Module::NONE
};

/// `append_branch` is an OpenSIPS core function, so it sits on `sip` itself.
pub static BRANCHES: Module = Module {
    name: "core (branches)",
    table: None,
    doc: "Branches for parallel forking (OpenSIPS core).",
    exports: &[
        Export {
            name: "append_branch",
            args: "([uri])",
            returns: "true",
            routes: RouteMask::REQUEST.or(RouteMask::FAILURE),
            doc: "Adds a destination (default: the current R-URI) that the next `t_relay` forks to in parallel.",
            func: Func::Sync(append_branch),
        },
    ],
    ..Module::NONE
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented defaults are the ones in force.
    #[test]
    fn param_defaults_match_the_timers() {
        let t = crate::transaction::Timers::default();
        let want = [
            ("T1", t.t1.as_millis()),
            ("T2", t.t2.as_millis()),
            ("T4", t.t4.as_millis()),
            ("fr_timeout", t.fr.as_secs() as u128),
            ("fr_inv_timeout", t.fr_inv.as_secs() as u128),
            ("wait_timer", t.wait.as_secs() as u128),
        ];
        for (name, v) in want {
            let p = settings::PARAMS.iter().find(|p| p.name == name).expect(name);
            assert_eq!(p.default, v.to_string(), "{name}");
        }
    }
}
