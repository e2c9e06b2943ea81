//! A worker: one thread, one single-threaded tokio runtime, one script
//! host (its [`Phases`]), its own SO_REUSEPORT sockets. It parses what
//! arrives, runs the route (here), parks routes that wait (`park.rs`),
//! and sends what the routes queued (`send.rs`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use super::context::{Outgoing, Source, Unwind};
use super::phases::{Outcome, ParseFailure, Phases, Started};
use super::reply;
use crate::sip::{Message, ParseError, MAX_MESSAGE_SIZE};
use crate::stats::CORE;
use crate::transport::tcp::{Handler, TcpCtx};
use crate::transport::udp::UdpSock;
use crate::transport::{Incoming, Sockets};
use vocab::route::RouteType;

mod park;
mod send;

use park::after_request;

/// Test hook of debug builds only: with `LUNASIP_DEBUG_HOOKS=1`, a message
/// with `Call-ID: lunasip-debug-stall` holds the worker thread for an hour,
/// outside Lua and out of the event loop: the stuck worker the supervisor
/// must notice (tests/watchdog.rs). Release builds have no such code.
#[cfg(debug_assertions)]
fn debug_stall(buf: &[u8]) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let on = *ON.get_or_init(|| std::env::var_os("LUNASIP_DEBUG_HOOKS").is_some_and(|v| v == "1"));
    if on && memchr::memmem::find(buf, b"Call-ID: lunasip-debug-stall").is_some() {
        tracing::warn!("debug hook: this worker stalls");
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// A message refused unanswered before routing: logged and counted.
fn dropped(src: Source, e: &ParseError) -> bool {
    CORE.bad_msg_hdr.inc();
    CORE.dropped_msgs.inc();
    tracing::info!(
        "dropped message from {} ({}): {e}",
        src.addr,
        src.proto.as_str()
    );
    false
}

/// Whether a 400 for this refusal stays small: it copies the top Via,
/// From, To, Call-ID and CSeq, so none of them may be what is too long.
fn answerable(e: &ParseError) -> bool {
    !matches!(
        e,
        ParseError::TooLong("via" | "from" | "to" | "call-id" | "cseq" | "headers")
            | ParseError::HostTooLong("via")
    )
}

/// One worker's state; shared by its tasks through `Rc`.
pub struct Worker {
    /// The script's routes; replaced whole by a reload, between messages.
    host: RefCell<Rc<dyn Phases>>,
    sockets: Arc<Sockets>,
    /// UDP socket per listen entry (None for TCP entries).
    pub udp: Vec<Option<Rc<UdpSock>>>,
    pub tcp: Rc<TcpCtx>,
    /// Spare outbox, swapped with the call's to keep both allocations.
    spare: RefCell<Vec<Outgoing>>,
    /// Routes of this worker suspended on I/O now.
    suspended: Cell<usize>,
    /// The message being handled came from another cluster node
    /// ([`Worker::handle_replicated`]).
    replicating: Cell<bool>,
}

impl Handler for Worker {
    async fn on_message(self: Rc<Self>, msg: Incoming) -> bool {
        let ok = self.handle(msg);
        self.flush().await;
        ok
    }
}

impl Worker {
    pub fn new(host: Rc<dyn Phases>, udp: Vec<Option<Rc<UdpSock>>>, tcp: Rc<TcpCtx>) -> Worker {
        Worker {
            sockets: host.current().env.sockets.clone(),
            host: RefCell::new(host),
            udp,
            tcp,
            spare: RefCell::new(Vec::new()),
            suspended: Cell::new(0),
            replicating: Cell::new(false),
        }
    }

    /// `config.overload_queue_delay` of the script running now.
    pub fn overload_queue_delay(&self) -> std::time::Duration {
        self.host().current().env.config.overload_queue_delay
    }

    /// The process's overload state (`proxy::overload`).
    pub fn load(&self) -> Arc<super::overload::Load> {
        self.host().current().env.load.clone()
    }

    /// The current script host (a reload swaps it; a message in progress
    /// keeps the one it started with).
    pub fn host(&self) -> Rc<dyn Phases> {
        self.host.borrow().clone()
    }

    /// Installs a freshly loaded script (RFC-free: OpenSIPS has no such
    /// thing; this is lunasip's reload).
    pub fn swap_host(&self, host: Rc<dyn Phases>) {
        *self.host.borrow_mut() = host;
    }

    /// Parses one message and runs the matching route. What the route
    /// queued is sent by [`Worker::flush`]. False when the message was
    /// refused before routing (unparsable, over a limit): a stream counts
    /// those in a row.
    pub fn handle(self: &Rc<Self>, inc: Incoming) -> bool {
        if inc.buf.len() > MAX_MESSAGE_SIZE {
            CORE.oversize_msgs.inc();
            CORE.dropped_msgs.inc();
            return false;
        }
        if inc.buf.iter().all(u8::is_ascii_whitespace) {
            return true; // keep-alive
        }
        #[cfg(debug_assertions)]
        debug_stall(&inc.buf);
        let src = Source {
            addr: inc.src,
            proto: inc.proto,
            socket: inc.socket,
        };
        // OpenSIPS receive.c `exec_msg_threshold`: the time to handle one
        // message (here: until it is done or its route suspended).
        let limit = self.host().current().env.config.exec_msg_threshold;
        let timed = limit.map(|l| (l, std::time::Instant::now(), inc.buf.clone()));
        let ok = self.dispatch(inc, src);
        if let Some((limit, start, raw)) = timed {
            let took = start.elapsed();
            if took > limit {
                CORE.slow_messages.inc();
                let text = String::from_utf8_lossy(&raw);
                crate::core_events::threshold("msg processing", took, limit, &text);
            }
        }
        ok
    }

    /// [`Worker::handle`] for a message another node of the cluster
    /// replicated here (OpenSIPS tm cluster.c `receive_msg` with
    /// `FL_TM_REPLICATED`): its route sees `Call::replicated`.
    pub fn handle_replicated(self: &Rc<Self>, inc: Incoming) -> bool {
        self.replicating.set(true);
        let ok = self.handle(inc);
        self.replicating.set(false);
        ok
    }

    /// Parses `inc` and routes it; false when it was refused before
    /// routing (unparsable, over a limit).
    fn dispatch(self: &Rc<Self>, inc: Incoming, src: Source) -> bool {
        let parsed = Message::parse(inc.buf.clone());
        let (msg, refused) = match parsed {
            Ok(m) => {
                let limits = self.host().current().env.config.limits;
                let over = m.check_limits(&limits).err();
                (m, over)
            }
            // RFC 4475 §3.1.2.x: a datagram whose Content-Length does not
            // frame it is answered 400 when the rest of it can be read.
            Err(e @ (ParseError::Truncated | ParseError::ContentLength))
                if !inc.proto.is_stream() =>
            {
                match Message::parse_unframed(inc.buf) {
                    Ok(m) => (m, Some(e)),
                    Err(_) => return dropped(src, &e),
                }
            }
            Err(e) => return dropped(src, &e),
        };
        match refused {
            None if msg.is_request() => self.on_request(msg, src, None),
            None => self.on_reply(msg, src),
            // A 400 copies Via, From, To, Call-ID and CSeq: one of those
            // over its cap is not echoed back but dropped.
            Some(e) if msg.is_request() && answerable(&e) => {
                self.on_request(msg, src, Some(e));
                return false;
            }
            Some(e) => return dropped(src, &e),
        }
        true
    }

    /// Routes a request, or answers it 400/505 (error_route first) when it
    /// is not well formed or was `refused` before routing.
    fn on_request(self: &Rc<Self>, msg: Message, src: Source, refused: Option<ParseError>) {
        CORE.rcv_requests.inc();
        let host = self.host();
        let st = host.current();
        let valid = match refused {
            Some(e) => Err(e),
            None => msg.validate_request(),
        };
        {
            let mut call = st.call.borrow_mut();
            call.reset(msg, src, RouteType::Request);
            call.replicated = self.replicating.get();
        }
        if let Err(e) = valid {
            // RFC 3261 §16.3 step 1: not well formed enough to proxy.
            if matches!(e, ParseError::Uri) {
                CORE.bad_uris_rcvd.inc();
            }
            CORE.bad_msg_hdr.inc();
            CORE.err_requests.inc();
            let (code, reason) = match &e {
                ParseError::Version => (505, "Version Not Supported".to_string()),
                e => (400, format!("Bad Request - {e}")),
            };
            tracing::info!("bad request from {}: {e}", src.addr);
            {
                let mut call = st.call.borrow_mut();
                call.route = RouteType::Error;
                call.err = Some(super::context::MsgError {
                    info: e.to_string(),
                    rcode: code,
                    rreason: reason.clone(),
                });
            }
            // error_route.main decides what to do; without it, 400/505.
            let why = ParseFailure {
                class: "parser",
                reason: e.to_string(),
                code,
                reply: reason.clone(),
            };
            match host.error(&why) {
                Some(Outcome::Failed(err)) => tracing::error!("error_route.main failed: {err}"),
                Some(_) => {}
                None => {
                    reply::send_local_reply(st, code, &reason);
                }
            }
            return;
        }
        let is_ack = st
            .call
            .borrow()
            .msg
            .as_ref()
            .is_some_and(|m| m.method_kind() == crate::sip::Method::Ack);
        if is_ack && reply::is_local_ack(st) {
            // OpenSIPS sl.c `sl_filter_ACK`: the ACK of a reply we sent
            // statelessly ends here, before the script.
            crate::stats::SL.received_acks.inc();
            return;
        }
        if super::overload::refuse(st) {
            return;
        }
        if !is_ack && self.suspended.get() >= st.env.config.max_suspended {
            // Bounded waiting: this worker cannot take one more call that
            // might suspend (an ACK has no reply and always runs).
            CORE.suspend_overflows.inc();
            reply::send_local_reply(st, 503, "Service Unavailable");
            return;
        }
        match host.request() {
            Started::Ended(outcome) => after_request(st, outcome),
            Started::Waiting(run) => self.park(host.clone(), run),
        }
    }

    fn on_reply(self: &Rc<Self>, msg: Message, src: Source) {
        CORE.rcv_replies.inc();
        if let Err(e) = msg.validate_response() {
            CORE.bad_msg_hdr.inc();
            CORE.err_replies.inc();
            tracing::debug!("dropped bad reply from {}: {e}", src.addr);
            return;
        }
        let host = self.host();
        let st = host.current();
        if super::tm::cluster::replicate_reply(st, &msg, &src) {
            return;
        }
        // A reply to a branch of a transaction goes to tm (RFC 3261 §17.1.3).
        if let Some(key) = crate::transaction::key::client_key(&msg) {
            let found = st.env.tm.client.get(&key).map(|e| e.clone());
            if let Some((txn, role)) = found {
                if let Some(r) = crate::proxy::tm::response::on_reply(&*host, txn, role, msg, src) {
                    self.park_then(host, r);
                }
                return;
            }
        }
        st.call.borrow_mut().reset(msg, src, RouteType::OnReply);
        match host.reply(None) {
            Outcome::Done | Outcome::Unwound(Unwind::Exit) => {}
            Outcome::Unwound(Unwind::Drop) => {
                CORE.drop_replies.inc();
                return;
            }
            Outcome::Failed(err) => {
                CORE.err_replies.inc();
                tracing::error!("onreply_route.main failed: {err}");
            }
        }
        if let Err(why) = reply::route_reply(st) {
            CORE.drop_replies.inc();
            tracing::debug!("reply from {} dropped: {why}", src.addr);
        }
    }
}
