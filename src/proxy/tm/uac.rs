//! Requests lunasip originates itself (OpenSIPS's tm "local requests"):
//! dispatcher probes today, any module's request tomorrow. A local request
//! has one client transaction and no caller: its final response, or the
//! 408 its timer makes, goes to a completion callback instead of upstream.
//!
//! Before it leaves, `local_route.main` (if the script has one) sees the
//! request: it may add headers, set `$du`, or `sip.drop()` it. As in
//! OpenSIPS, the CANCELs and ACKs tm builds on its own do not go through
//! `local_route`.

use std::fmt::Write;
use std::sync::{Arc, Mutex};

use super::locate::resolve;
use super::relay::apply_client;
use super::txn::{Branch, Txn};
use super::{BranchRole, TxnRef};
use crate::proxy::context::{Dest, OutKind, Outgoing, Source, Unwind};
use crate::proxy::phases::{Outcome, Phases};
use crate::proxy::ProxyError;
use crate::sip::Message;
use crate::transaction::client::Kind;
use crate::transaction::key::our_client_key;
use crate::transaction::{ClientTxn, ServerTxn, TxnKey};
use vocab::route::RouteType;

/// Called once with the final code of a local request (408 when nothing
/// answered), on whichever worker handled that reply or timer.
pub type Done = Arc<dyn Fn(u16) + Send + Sync>;

/// Where a local transaction leaves its final reply (the received one;
/// none for a timeout), for whoever wants more than its code (MI
/// `t_uac_dlg` answers with the reply's status line and text).
pub type FinalSlot = Arc<Mutex<Option<Message>>>;

/// The completion callback of a local transaction, and where its final
/// reply goes.
#[derive(Clone)]
pub struct Local(pub Option<Done>, pub Option<FinalSlot>);

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Local")
    }
}

/// What to send.
#[derive(Debug, Clone, Default)]
pub struct LocalRequest {
    pub method: String,
    pub ruri: String,
    /// From URI (a tag is added).
    pub from: String,
    /// To URI; the R-URI when empty.
    pub to: String,
    /// Extra header lines, each ending in CRLF.
    pub headers: String,
    pub body: String,
    /// Next hop instead of the R-URI (`$du`).
    pub next_hop: Option<String>,
    /// Outgoing socket, as a `proto:host:port` spec of a listen socket.
    pub socket: Option<String>,
    pub max_forwards: Option<u32>,
    /// An in-dialog request (RFC 3261 §12.2.1.1): the dialog's Call-ID,
    /// local and remote tags and CSeq number instead of new ones.
    pub dialog: Option<InDialog>,
    /// Call-ID, CSeq number and From tag of a new request when the sender
    /// chose them (MI `t_uac_dlg` headers); generated when absent.
    pub call_id: Option<String>,
    pub cseq: Option<u32>,
    pub from_tag: Option<String>,
    /// `t_new_request`'s context: the AVP `uac_ctx` of the new
    /// transaction, seen by `local_route` (OpenSIPS 3.4 tm.c `uac_ctx_avp`).
    pub ctx: Option<String>,
}

/// The dialog identifiers of a request sent inside an existing dialog.
#[derive(Debug, Clone, Default)]
pub struct InDialog {
    pub call_id: String,
    /// The From tag (this side's tag in the dialog).
    pub from_tag: String,
    /// The To tag (the peer's).
    pub to_tag: String,
    pub cseq: u32,
}

/// The request text (without Via, which goes on per branch).
fn text(req: &LocalRequest, id: u64, host: &str) -> String {
    let to = if req.to.is_empty() {
        &req.ruri
    } else {
        &req.to
    };
    let mut s = String::with_capacity(400 + req.headers.len() + req.body.len());
    let (ftag, ttag, callid, cseq) = match &req.dialog {
        Some(d) => (
            d.from_tag.clone(),
            format!(";tag={}", d.to_tag),
            d.call_id.clone(),
            d.cseq,
        ),
        None => (
            req.from_tag.clone().unwrap_or_else(|| format!("{id:x}ls")),
            String::new(),
            req.call_id
                .clone()
                .unwrap_or_else(|| format!("{id:x}-{}@{host}", std::process::id())),
            req.cseq.unwrap_or(10),
        ),
    };
    let _ = write!(
        s,
        "{m} {ruri} SIP/2.0\r\nMax-Forwards: {mf}\r\nFrom: {from};tag={ftag}\r\nTo: {to}{ttag}\r\n\
         Call-ID: {callid}\r\nCSeq: {cseq} {m}\r\n{extra}Content-Length: {len}\r\n\r\n{body}",
        m = req.method,
        ruri = req.ruri,
        mf = req.max_forwards.unwrap_or(70),
        from = name_addr(&req.from),
        to = name_addr(to),
        extra = req.headers,
        len = req.body.len(),
        body = req.body,
    );
    s
}

/// [`send`] from a worker's task, for a request whose first hop may be a
/// host name not cached (a dialog's Contact after its TTL): the name is
/// looked up first in a task of the worker, which then sends it, so the
/// worker never waits for DNS. Ok(true) when it was sent or will be.
pub fn send_located(
    w: &std::rc::Rc<crate::proxy::worker::Worker>,
    req: LocalRequest,
    done: Option<Done>,
) -> Result<bool, ProxyError> {
    let first_hop = req.next_hop.as_deref().unwrap_or(&req.ruri).to_string();
    let hops = super::locate::uncached([first_hop]);
    if hops.is_empty() {
        return send(&*w.host(), &req, done);
    }
    let w = w.clone();
    tokio::task::spawn_local(async move {
        super::locate::lookup_all(hops).await;
        if let Err(e) = send(&*w.host(), &req, done) {
            tracing::warn!("cannot send {} to {}: {e}", req.method, req.ruri);
        }
        w.flush().await;
    });
    Ok(true)
}

/// A URI as a name-addr (`<sip:a@b>`); text that is one already
/// (`"Alice" <sip:a@b>`) stays as it is.
fn name_addr(s: &str) -> String {
    if s.contains('<') {
        s.to_string()
    } else {
        format!("<{s}>")
    }
}

/// Sends a local request through a new client transaction. Ok(false) when
/// `local_route` dropped it. Must run on a worker outside any route (a
/// timer task, not from inside a script call).
pub fn send(host: &dyn Phases, req: &LocalRequest, done: Option<Done>) -> Result<bool, ProxyError> {
    send_with(host, req, done, None)
}

/// [`send`], the final reply also left in `slot`.
pub fn send_with(
    host: &dyn Phases,
    req: &LocalRequest,
    done: Option<Done>,
    slot: Option<FinalSlot>,
) -> Result<bool, ProxyError> {
    let st = host.current();
    let tm = &st.env.tm;
    let sockets = &st.env.sockets;
    let first_hop = req.next_hop.as_deref().unwrap_or(&req.ruri);
    let (proto, addr) = resolve(first_hop, true)
        .or_else(|_| resolve(first_hop, false))
        .map(|l| (l.proto, l.addr))?;
    let prefer = match &req.socket {
        Some(spec) => Some(
            sockets
                .list
                .iter()
                .find(|s| s.spec().eq_ignore_ascii_case(spec))
                .map(|s| s.id)
                .ok_or_else(|| ProxyError::BadLocalRequest(format!("no listen socket {spec}")))?,
        ),
        None => None,
    };
    let sock = sockets
        .pick(proto, addr.ip(), prefer)
        .ok_or_else(|| ProxyError::NoSocket {
            proto: proto.as_str(),
            dest: addr.to_string(),
        })?;
    let id = tm.next_id();
    let msg = Message::parse(text(req, id, &sock.adv_host).into_bytes().into()).map_err(|e| {
        ProxyError::BadLocalRequest(format!("local {} request does not parse: {e}", req.method))
    })?;
    let src = Source {
        addr: sock.addr,
        proto,
        socket: sock.id,
    };
    {
        let mut call = st.call.borrow_mut();
        call.reset(msg, src, RouteType::Local);
        call.via_fixed = true;
        call.maxfwd_done = true;
        if let Some(ctx) = &req.ctx {
            call.avps.insert(
                "uac_ctx".into(),
                vec![crate::proxy::context::Value::Str(ctx.clone())],
            );
        }
    }
    match host.local() {
        Outcome::Unwound(Unwind::Drop) => return Ok(false),
        Outcome::Failed(e) => tracing::error!("local_route.main failed: {e}"),
        _ => {}
    }
    let mut call = st.call.borrow_mut();
    let call = &mut *call;
    // local_route may have pointed the request elsewhere.
    let (proto, addr) = match &call.du {
        Some(du) if du.as_str() != first_hop => {
            resolve(du, addr.is_ipv4()).map(|l| (l.proto, l.addr))?
        }
        _ => (proto, addr),
    };
    let Some(m) = call.msg.as_ref() else {
        return Err(ProxyError::NoRequest);
    };
    let method: Box<str> = m.method().into();
    let kind = if m.method_kind() == crate::sip::Method::Invite {
        Kind::Invite
    } else {
        Kind::NonInvite
    };
    let request = m.clone();
    let branch_id = tm.branch_id(id, 0, 0);
    let (bytes, socket) = crate::proxy::stateless::build_copy(
        call,
        sockets,
        proto,
        &Dest::Addr(addr),
        &branch_id,
        None,
        None,
    )?;
    // An ACK (of a 2xx to a local INVITE) is sent once, with no
    // transaction (OpenSIPS tm uac.c `t_uac`: released at once).
    if &*method == "ACK" {
        call.outbox.push(Outgoing {
            bytes,
            proto,
            dest: Dest::Addr(addr),
            socket,
            kind: OutKind::Request,
        });
        return Ok(true);
    }
    let timers = tm.timers;
    let (client, acts) = ClientTxn::start(kind, proto.is_stream(), timers);
    let mut t = Txn::new(
        id,
        TxnKey::Legacy(id),
        ServerTxn::new(kind, true, timers),
        request,
        src,
        src.addr,
        timers,
    );
    t.branches.push(Branch::sent(
        client,
        method.clone(),
        bytes.clone(),
        branch_id.clone(),
        req.ruri.clone(),
        addr,
        proto,
        socket,
    ));
    t.local = Some(Local(done, slot));
    // The transaction keeps the local route's AVPs (`uac_ctx`).
    t.avps = call.avps.clone();
    super::count_created(id);
    let txn: TxnRef = Arc::new(Mutex::new(Box::new(t)));
    tm.client.insert(
        our_client_key(&branch_id, &method),
        (txn.clone(), BranchRole::Request(0)),
    );
    call.outbox.push(Outgoing {
        bytes,
        proto,
        dest: Dest::Addr(addr),
        socket,
        kind: OutKind::Request,
    });
    let mut t = super::lock(&txn);
    apply_client(tm, &txn, &mut t, 0, acts, None, &mut call.outbox);
    crate::stats::TM.uac_transactions.inc();
    Ok(true)
}

/// Leaves the final reply of a local transaction where its sender asked.
pub fn keep_final(t: &Txn, msg: &Message) {
    if let Some(Local(_, Some(slot))) = &t.local {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg.clone());
    }
}

/// Ends a local transaction with `code`: the callback runs once.
pub fn complete(t: &mut Txn, code: u16) -> Option<(Done, u16)> {
    let done = t.local.as_mut()?.0.take()?;
    t.reply_code = code;
    Some((done, code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_request_text_parses_with_its_headers() {
        let req = LocalRequest {
            method: "OPTIONS".into(),
            ruri: "sip:10.0.0.1:5060".into(),
            from: "sip:dispatcher@localhost".into(),
            headers: "X-Probe: 1\r\n".into(),
            max_forwards: Some(2),
            ..Default::default()
        };
        let m = Message::parse(text(&req, 42, "127.0.0.1").into_bytes().into()).expect("parses");
        assert_eq!(m.method(), "OPTIONS");
        assert_eq!(m.ruri(), "sip:10.0.0.1:5060");
        assert_eq!(m.header("To"), Some("<sip:10.0.0.1:5060>"));
        assert_eq!(m.header("Max-Forwards"), Some("2"));
        assert_eq!(m.header("X-Probe"), Some("1"));
        assert_eq!(m.from_tag(), Some("2als"));
        assert_eq!(m.cseq().map(|c| c.num), Some(10));
    }
}
