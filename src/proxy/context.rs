//! The per-call context a route works on: the message, where it came
//! from, flags, destination URI, what the script already did, and what is
//! waiting to be sent when the route returns; and the worker's slot that
//! holds the running call with the environment every call can reach.
//! Nothing here knows Lua or a module's internals.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use std::cell::RefCell;
use std::rc::Rc;
use vocab::route::RouteType;

use crate::config::Config;
use crate::sip::Message;
use crate::transport::{Proto, Sockets};

/// A pseudo-variable value (OpenSIPS: null, integer or string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Str(String),
}

/// How a route invocation is being unwound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unwind {
    /// `sip.exit()`: stop the script, keep what was done.
    Exit,
    /// `sip.drop()`: stop the script and send nothing more for this message.
    Drop,
}

pub use crate::transport::out::{Dest, OutKind, Outgoing, Source};

/// A branch `append_branch` added (`$branch(...)` reads and writes it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PendingBranch {
    pub uri: String,
    /// Where it goes instead of the URI (`$du` when it was appended).
    pub duri: Option<String>,
    /// q-value × 1000, as `$ru_q`.
    pub q: Option<i64>,
    pub path: Option<String>,
    pub flags: u64,
    /// Outgoing socket (index into `Sockets::list`).
    pub socket: Option<usize>,
}

impl From<&str> for PendingBranch {
    fn from(uri: &str) -> PendingBranch {
        PendingBranch {
            uri: uri.to_string(),
            ..Default::default()
        }
    }
}

/// Per-message state. One per worker, reset for each message.
#[derive(Debug)]
pub struct Call {
    pub msg: Option<Message>,
    pub src: Source,
    pub route: RouteType,
    /// `$route.name`: the running route's key in its table (`main` for
    /// `route.main`, `x` for `failure_route.x`); interned, so setting it
    /// per message does not allocate.
    pub route_name: &'static str,
    /// Message flags (OpenSIPS setflag/isflagset), bits 0..63.
    pub flags: u64,
    /// Destination URI ($du), overrides the R-URI as next hop.
    pub du: Option<String>,
    /// A reply was already sent for this request.
    pub replied: bool,
    pub unwind: Option<Unwind>,
    /// Max-Forwards was already processed (mf_process_maxfwd_header).
    pub maxfwd_done: bool,
    /// force_rport(): reply to the source port.
    pub force_rport: bool,
    /// add_local_rport(): ask for rport in our own Via.
    pub add_local_rport: bool,
    pub outbox: Vec<Outgoing>,
    /// Last error code for sl_reply_error (code, reason).
    pub last_error: Option<(u16, &'static str)>,
    /// received/rport were already written into the top Via.
    pub via_fixed: bool,
    /// `$var(name)`: per worker, kept between messages (as in OpenSIPS).
    pub vars: HashMap<String, Value>,
    /// `$avp(name)`: per message (per transaction once tm lands); each a
    /// list, newest first.
    pub avps: HashMap<String, Vec<Value>>,
    /// `$mi`: a per-worker message counter.
    pub msg_id: u64,
    /// `$rc` / `$retcode`: the last return code a script operation set.
    pub rc: Option<i64>,
    /// `$ru_q`: q value of the R-URI branch (null = not set).
    pub ru_q: Option<i64>,
    /// The R-URI branch's Path (RFC 3327) set by `lookup`: sent as Route
    /// headers ahead of the others (OpenSIPS's path vector).
    pub path_vec: Option<String>,
    /// Branch flags of the R-URI branch (`$bf`, `$branch.flag(n)`).
    pub bflags: u64,
    /// `$socket_out` forced by the script (index into `Sockets::list`).
    pub socket_out: Option<usize>,
    /// `set_advertised_address`: the host our Via and Record-Route name
    /// instead of the sending socket's (OpenSIPS `set_global_address`).
    pub adv_address: Option<String>,
    /// `set_advertised_port`: the port they name instead.
    pub adv_port: Option<u16>,
    /// The worker's sockets, for `$socket_in`/`$socket_out`/`$Ri`; set
    /// once when the Lua API is registered.
    pub sockets: Option<Arc<Sockets>>,
    /// Transaction state of this message (tm).
    pub tm: CallTm,
    /// Record-Route to write into each copy sent (rr).
    pub rr: Option<crate::proxy::rr::PendingRr>,
    /// Why the message was refused, for error_route (`$err.*`).
    pub err: Option<MsgError>,
    /// Where the script is, for `$cfg_line`/`$cfg_file`; set by the
    /// script host, None outside one (`lunasip eval`).
    pub script_pos: Option<ScriptPos>,
    /// The sub-routes called from the running route, for `$route`; set
    /// by the script host (computed only when read).
    pub route_stack: Option<RouteStack>,
    /// In `event_route`: the event's parameters, in declared order
    /// (`$param(name)`, `$param(n)`).
    pub event_params: Option<std::sync::Arc<serde_json::Map<String, serde_json::Value>>>,
    /// The message came from another node of the cluster (OpenSIPS
    /// `FL_TM_REPLICATED`): tm's `t_anycast_replicate` does not send it on.
    pub replicated: bool,
    /// Modules' per-call state by type ([`Call::slot`]).
    slots: Vec<(std::any::TypeId, Box<dyn std::any::Any>)>,
}

/// Asks the script host for the position (file, line) of the script code
/// running now.
#[derive(Clone)]
pub struct ScriptPos(pub Rc<dyn Fn() -> Option<(String, i64)>>);

/// The names of the `route` functions the running route called and that
/// have not returned yet, outermost first (`route.main` → `route.a()` →
/// `route.b()` gives `["a", "b"]`).
#[derive(Clone)]
pub struct RouteStack(pub Rc<dyn Fn() -> Vec<String>>);

impl std::fmt::Debug for RouteStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteStack")
    }
}

impl std::fmt::Debug for ScriptPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScriptPos")
    }
}

/// A parse error as error_route sees it (OpenSIPS `$err.*`).
#[derive(Debug, Clone)]
pub struct MsgError {
    pub info: String,
    pub rcode: u16,
    pub rreason: String,
}

/// What tm functions leave on the call until the transaction exists, and
/// the transaction a failure or reply route runs in.
#[derive(Debug, Default)]
pub struct CallTm {
    pub armed: crate::proxy::tm::txn::Armed,
    /// `$bavp`s: set in the request route for every branch, then per branch.
    pub bavps: HashMap<String, Vec<Value>>,
    /// Extra destinations from `append_branch` (parallel forking).
    pub branches: Vec<PendingBranch>,
    pub txn: Option<crate::proxy::tm::TxnRef>,
    /// In an event_routing notification route: the transaction that
    /// subscribed (OpenSIPS's `remote_T`, its id only), which
    /// `t_inject_branches` adds branches to; gone when it ended.
    pub remote: Option<std::sync::Weak<std::sync::Mutex<Box<crate::proxy::tm::txn::Txn>>>>,
    /// In a reply route: the branch the reply came from.
    pub branch: Option<usize>,
    /// $T_reply_code: the reply being handled, or the winning one in a failure route.
    pub reply_code: Option<u16>,
    /// `$T_fr_timeout` / `$T_fr_inv_timeout` set by the script for the next t_relay.
    pub fr: Option<std::time::Duration>,
    pub fr_inv: Option<std::time::Duration>,
    /// `txn` was made because the route suspended (not by the script).
    pub held: bool,
    /// `t_add_cancel_reason`: the Reason line of the CANCELs this CANCEL causes.
    pub cancel_reason: Option<String>,
    /// `t_relay`'s flags for the transaction it makes or relays.
    pub relay_flags: crate::proxy::tm::txn::RelayFlags,
    /// What modules attach to the transaction `t_relay` makes
    /// (`tm::hooks::TxnData`): its observers find it there.
    pub data: crate::proxy::tm::hooks::TxnData,
}

impl CallTm {
    /// Branches of the call's transaction so far (`$T_branch_idx`).
    pub fn txn_branches(&self) -> Option<usize> {
        Some(crate::proxy::tm::lock(self.txn.as_ref()?).branches.len())
    }

    /// The R-URI of the transaction's request (`$T_ruri`).
    pub fn txn_ruri(&self) -> Option<String> {
        Some(
            crate::proxy::tm::lock(self.txn.as_ref()?)
                .request
                .ruri()
                .to_string(),
        )
    }

    /// The transaction's request and where it came from, or its winning
    /// reply (the best final answer of its branches so far, RFC 3261
    /// §16.7) and the branch's peer: what `$(<request>…)`/`$(<reply>…)`
    /// read (OpenSIPS tm.c `tm_pv_context_request`/`_reply`).
    pub fn txn_message(&self, reply: bool) -> Option<(Message, Source)> {
        let t = crate::proxy::tm::lock(self.txn.as_ref()?);
        if !reply {
            return Some((t.request.clone(), t.src));
        }
        // Branches with a final reply received (a 408 made here has none).
        let answered: Vec<_> = t
            .branches
            .iter()
            .filter(|b| b.response.is_some() && b.final_code.is_some())
            .collect();
        let codes: Vec<u16> = answered.iter().filter_map(|b| b.final_code).collect();
        let b = answered.get(crate::transaction::select::best_response(&codes)?)?;
        let msg = b.response.as_deref()?.clone();
        let src = Source {
            addr: b.dest,
            proto: b.proto,
            socket: b.socket,
        };
        Some((msg, src))
    }

    /// The transaction's id (`$T_id`).
    pub fn txn_id(&self) -> Option<u64> {
        Some(crate::proxy::tm::lock(self.txn.as_ref()?).id)
    }
}

impl Call {
    /// The transport of socket `i`, as a forced socket imposes it on a
    /// URI without `transport=` (OpenSIPS tm `uri2proxy`).
    pub fn socket_proto(&self, i: Option<usize>) -> Option<crate::transport::Proto> {
        let i = i?;
        Some(self.sockets.as_ref()?.list.get(i)?.proto)
    }

    /// A call on the message a `$(<request>…)`/`$(<reply>…)` spec names:
    /// the current message when it is of that kind and (for a request) no
    /// transaction holds the original, else the transaction's; None when
    /// there is none.
    pub fn context_call(&self, reply: bool) -> Option<Call> {
        let cur_is_reply = self.msg.as_ref().map(|m| !m.is_request());
        let (msg, src) = match cur_is_reply {
            Some(true) if reply => (self.msg.clone()?, self.src),
            Some(false) if !reply && self.tm.txn.is_none() => (self.msg.clone()?, self.src),
            _ => self.tm.txn_message(reply)?,
        };
        let mut c = Call::new();
        c.msg = Some(msg);
        c.src = src;
        c.route = self.route;
        c.sockets = self.sockets.clone();
        c.tm.txn = self.tm.txn.clone();
        Some(c)
    }

    /// The transport of `$socket_out` when the script forced one.
    pub fn forced_proto(&self) -> Option<crate::transport::Proto> {
        self.socket_proto(self.socket_out)
    }

    pub fn new() -> Call {
        Call {
            msg: None,
            src: Source {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                proto: Proto::Udp,
                socket: 0,
            },
            route: RouteType::Request,
            route_name: "main",
            flags: 0,
            du: None,
            replied: false,
            unwind: None,
            maxfwd_done: false,
            force_rport: false,
            add_local_rport: false,
            outbox: Vec::new(),
            last_error: None,
            via_fixed: false,
            vars: HashMap::new(),
            avps: HashMap::new(),
            msg_id: 0,
            rc: None,
            ru_q: None,
            path_vec: None,
            bflags: 0,
            socket_out: None,
            adv_address: None,
            adv_port: None,
            sockets: None,
            tm: CallTm::default(),
            rr: None,
            err: None,
            script_pos: None,
            route_stack: None,
            event_params: None,
            replicated: false,
            slots: Vec::new(),
        }
    }

    /// Starts a route that has no message (startup_route, timer_route).
    pub fn reset_empty(&mut self, route: RouteType) {
        self.clear();
        self.msg = None;
        self.route = route;
    }

    /// Starts a new message, keeping the outbox allocation.
    pub fn reset(&mut self, msg: Message, src: Source, route: RouteType) {
        self.clear();
        self.msg = Some(msg);
        self.src = src;
        self.route = route;
        self.msg_id = self.msg_id.wrapping_add(1);
    }

    /// Forgets everything of the previous call but what belongs to the
    /// worker (`$var`s, the message counter, sockets, the script hook) and
    /// the outbox's allocation. One place, so a field added to the call is
    /// cleared for routes with and without a message alike.
    fn clear(&mut self) {
        self.route_name = "main";
        self.flags = 0;
        self.du = None;
        self.replied = false;
        self.unwind = None;
        self.maxfwd_done = false;
        self.force_rport = false;
        self.add_local_rport = false;
        self.last_error = None;
        self.via_fixed = false;
        self.avps.clear();
        self.rc = None;
        self.ru_q = None;
        self.path_vec = None;
        self.bflags = 0;
        self.socket_out = None;
        self.adv_address = None;
        self.adv_port = None;
        self.tm = CallTm::default();
        self.rr = None;
        self.err = None;
        self.event_params = None;
        self.replicated = false;
        self.slots.clear();
    }

    /// The parameters (without the leading `;`) of this proxy's own entry
    /// in the Route set as received: the first Route URI without a user
    /// part that names one of our sockets. OpenSIPS rr keeps them when
    /// `loose_route` consumes that entry (`$rr_params`,
    /// `check_route_param`, `is_direction`). None without such an entry.
    pub fn rr_params(&self) -> Option<String> {
        let sockets = self.sockets.as_ref()?;
        self.msg.as_ref()?.routes().iter().find_map(|r| {
            crate::sip::Uri::parse(r.uri)
                .ok()
                .filter(|u| u.user.is_none() && sockets.is_myself(u.host, u.port))
                .map(|u| u.params.to_string())
        })
    }

    /// A module's per-call state of type `T` (made with `Default` on first
    /// use, dropped when the next call starts). Modules keep what they
    /// need per call here (dialog's handle, accounting's marks) without a
    /// field in [`Call`]; the proxy never looks inside.
    pub fn slot<T: Default + 'static>(&mut self) -> &mut T {
        let id = std::any::TypeId::of::<T>();
        let i = match self.slots.iter().position(|(t, _)| *t == id) {
            Some(i) => i,
            None => {
                self.slots.push((id, Box::<T>::default()));
                self.slots.len() - 1
            }
        };
        // The entry at `i` was stored under T's TypeId, so it is a T.
        match self.slots[i].1.downcast_mut::<T>() {
            Some(v) => v,
            None => unreachable!("slot stored under another type"),
        }
    }

    /// Takes the modules' per-call state out (the request route ended):
    /// what a module keeps only for the route's duration goes when the
    /// caller drops it, not when the worker's next message arrives.
    pub fn take_slots(&mut self) -> impl Drop {
        std::mem::take(&mut self.slots)
    }

    /// A module's per-call state if it made one.
    pub fn slot_ref<T: 'static>(&self) -> Option<&T> {
        let id = std::any::TypeId::of::<T>();
        self.slots
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref::<T>())
    }
}

/// What every call on a worker can reach besides its message: read-only
/// after start.
#[derive(Clone)]
pub struct Env {
    pub worker: usize,
    pub sockets: Arc<Sockets>,
    pub config: Arc<Config>,
    /// Transactions shared by every worker.
    pub tm: Arc<crate::proxy::tm::Tm>,
    /// The modules' settings and long-lived state (`crate::state`), the
    /// same for every worker of a daemon; the worker's thread serves it.
    pub modules: Arc<crate::state::Registry>,
    /// Every open TCP connection (shared by the workers): registrar's
    /// `tcp_persistent_flag` keeps one open.
    pub tcp: Arc<crate::transport::tcp::TcpTable>,
    /// Whether the process is behind on its sockets (shared by the
    /// workers): new calls are refused meanwhile (`proxy::overload`).
    pub load: Arc<crate::proxy::overload::Load>,
}

impl Env {
    /// A module's settings in force in this environment
    /// (`env.module::<DlgConf>()`).
    pub fn module<T: std::any::Any + Send + Sync + Default>(&self) -> Arc<T> {
        self.modules.module::<T>()
    }
}

/// A worker's slot for the call being handled, and its environment. A
/// suspended route's call is kept aside and put back here while it runs
/// ([`Current::exchange`]).
pub struct Current {
    pub env: Env,
    /// Boxed, so that [`Current::exchange`] swaps pointers, not the
    /// whole context.
    pub call: RefCell<Box<Call>>,
    /// Jobs a route launched (OpenSIPS `launch`) that wait on I/O: the
    /// worker parks each on its own call when it next sends.
    pub launched: RefCell<Vec<Launched>>,
}

/// A detached route (OpenSIPS 3.x `launch(f(...), report_route)`, async.c
/// `async_script_launch`): it runs on a call of its own with no message,
/// while the route that launched it goes on.
pub struct Launched {
    pub call: Box<Call>,
    pub run: super::phases::Waiting,
}

impl Current {
    pub fn new(env: Env) -> Current {
        Current {
            env,
            call: RefCell::new(Box::new(Call::new())),
            launched: RefCell::new(Vec::new()),
        }
    }

    /// Swaps the running call with `other`, except what belongs to the
    /// worker rather than the call (`$var`s, the message counter, the
    /// socket list, the script position hook).
    pub fn exchange(&self, other: &mut Box<Call>) {
        let mut cur = self.call.borrow_mut();
        std::mem::swap(&mut *cur, other);
        std::mem::swap(&mut cur.vars, &mut other.vars);
        std::mem::swap(&mut cur.msg_id, &mut other.msg_id);
        std::mem::swap(&mut cur.sockets, &mut other.sockets);
        std::mem::swap(&mut cur.script_pos, &mut other.script_pos);
        std::mem::swap(&mut cur.route_stack, &mut other.route_stack);
    }
}

/// A route's name as `$route.name` keeps it: `"main"` as is, any other
/// interned once per worker thread. Only names of route functions the
/// script defines get here, so the set stays as small as the script.
pub fn route_name(name: &str) -> &'static str {
    use std::cell::RefCell;
    use std::collections::HashSet;
    thread_local! {
        static NAMES: RefCell<HashSet<&'static str>> = RefCell::new(HashSet::new());
    }
    if name == "main" {
        return "main";
    }
    NAMES.with(|n| {
        let mut n = n.borrow_mut();
        if let Some(s) = n.get(name) {
            return *s;
        }
        let s: &'static str = Box::leak(name.into());
        n.insert(s);
        s
    })
}

impl Default for Call {
    fn default() -> Self {
        Call::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Dialog(u32);

    #[test]
    fn a_module_slot_lives_for_one_call() {
        let mut c = Call::new();
        assert_eq!(c.slot_ref::<Dialog>(), None);
        c.slot::<Dialog>().0 = 7;
        c.slot::<u64>();
        assert_eq!(c.slot_ref::<Dialog>(), Some(&Dialog(7)));
        c.slot::<Dialog>().0 += 1;
        assert_eq!(c.slot_ref::<Dialog>(), Some(&Dialog(8)));
        c.reset_empty(RouteType::Timer);
        assert_eq!(c.slot_ref::<Dialog>(), None);
    }

    #[test]
    fn a_route_without_a_message_starts_clean_too() {
        let mut c = Call::new();
        c.avps.insert("x".into(), vec![Value::Int(1)]);
        c.maxfwd_done = true;
        c.err = Some(MsgError {
            info: "i".into(),
            rcode: 400,
            rreason: "r".into(),
        });
        c.vars.insert("kept".into(), Value::Int(2));
        c.reset_empty(RouteType::Timer);
        assert!(c.avps.is_empty() && !c.maxfwd_done && c.err.is_none());
        assert_eq!(
            c.vars.get("kept"),
            Some(&Value::Int(2)),
            "$var is per worker"
        );
    }
}
