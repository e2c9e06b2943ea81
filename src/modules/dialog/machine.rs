//! What moves a dialog from state to state (OpenSIPS 3.4
//! `dlg_handlers.c`): the initial INVITE's replies, seen through tm's
//! observer hook; sequential requests (ACK, BYE, re-INVITE), matched
//! after `loose_route` by the `did` Route parameter or by Call-ID and
//! tags; and endings (BYE, timeout, MI, failed pings).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value as Json};

use super::store::{self, lock, Dlg, DlgRef, CALLEE, CALLER};
use super::{conf, profiles, DIALOG};
use crate::proxy::context::Call;
use crate::proxy::tm::hooks::Observer;
use crate::proxy::tm::Txn;
use crate::sip::{Message, Method};

/// The dialog a message belongs to, per call (OpenSIPS's current dialog).
#[derive(Default)]
pub struct CallDlg {
    pub dlg: Option<DlgRef>,
    /// 1 downstream (from the caller), 2 upstream; 0 unknown.
    pub dir: u8,
    /// The leg the request goes to.
    pub dst_leg: Option<usize>,
    /// The source leg's CSeq before this request (validate_dialog).
    pub prev_cseq: u32,
    /// `$DLG_timeout` set before `create_dialog`.
    pub timeout: Option<u32>,
    /// `create_dialog` ran for this request.
    pub created: bool,
    /// The context `load_dialog_ctx` replaced (dialog, `created`), put
    /// back by `unload_dialog_ctx`.
    pub loaded: Option<(Option<DlgRef>, bool)>,
}

impl Drop for CallDlg {
    /// A dialog created for a request that never went out (the script
    /// replied itself, or `t_relay` failed) ends with its request, as
    /// OpenSIPS drops it with the request's context: it must not stay in
    /// memory or in its profiles.
    fn drop(&mut self) {
        let Some(r) = self.dlg.as_ref().filter(|_| self.created) else {
            return;
        };
        let orphan = {
            let d = lock(r);
            d.state == store::UNCONFIRMED && !d.relayed
        };
        if orphan {
            end(r, None);
        }
    }
}

/// What create_dialog attaches to the INVITE's transaction.
pub struct DlgTxn(pub DlgRef);

pub fn now_unix() -> i64 {
    now_ms() / 1000
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// E_DLG_STATE_CHANGED with OpenSIPS 3.4's parameters.
fn raise_changed(d: &Dlg, old: u8, new: u8) {
    if !crate::event::wanted("E_DLG_STATE_CHANGED") {
        return;
    }
    let mut m = Map::new();
    m.insert("id".into(), Json::from(d.did()));
    m.insert("db_id".into(), Json::from(d.key().to_string()));
    m.insert("callid".into(), Json::from(d.callid.as_str()));
    m.insert("from_tag".into(), Json::from(d.legs[CALLER].tag.as_str()));
    m.insert("to_tag".into(), Json::from(d.legs[CALLEE].tag.as_str()));
    m.insert("old_state".into(), Json::from(old));
    m.insert("new_state".into(), Json::from(new));
    crate::event::raise_declared("E_DLG_STATE_CHANGED", m);
}

/// Moves `d` to `new` (not to DELETED: see [`end`]).
pub fn set_state(d: &mut Dlg, new: u8) {
    let old = d.state;
    if old == new || old == store::DELETED {
        return;
    }
    d.state = new;
    if new >= store::CONFIRMED_NA && old < store::CONFIRMED_NA {
        d.start_ms = now_ms();
        d.start_ts = d.start_ms / 1000;
        d.deadline = Some(Instant::now() + Duration::from_secs(u64::from(d.lifetime)));
    }
    raise_changed(d, old, new);
    super::db::save(d);
}

/// Callbacks run when a dialog ends (accounting's CDRs), set once.
pub type EndHook = fn(&Dlg);
/// The [`EndHook`]s of a registry (its long-lived state).
#[derive(Default)]
struct EndHooks(std::sync::Mutex<Vec<EndHook>>);

/// Asks for `f` to run with each dialog that ends after a 2xx (BYE,
/// timeout, MI), before it is forgotten.
pub fn on_end(f: EndHook) {
    let hooks = crate::state::state::<EndHooks>();
    let mut v = hooks.0.lock().unwrap_or_else(|e| e.into_inner());
    if !v.iter().any(|g| std::ptr::fn_addr_eq(*g, f)) {
        v.push(f);
    }
}

/// Ends a dialog: DELETED, `reason` kept for `$DLG_end_reason`, out of
/// its profiles and of the table. False when it had already ended.
pub fn end(r: &DlgRef, reason: Option<&'static str>) -> bool {
    let mut d = lock(r);
    if d.state == store::DELETED {
        return false;
    }
    let old = d.state;
    d.state = store::DELETED;
    if d.end_reason.is_none() {
        d.end_reason = reason;
    }
    if old < store::CONFIRMED_NA {
        DIALOG.failed.inc();
    }
    profiles::leave_all(&mut d);
    store::table().remove(&d);
    raise_changed(&d, old, store::DELETED);
    if old >= store::CONFIRMED_NA {
        super::db::remove(&d);
        let hooks = crate::state::state::<EndHooks>()
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for h in hooks {
            h(&d);
        }
    }
    true
}

/// The request's Contact URI, if any.
fn contact_of(m: &Message) -> String {
    match m.contacts() {
        Ok(crate::sip::nameaddr::Contacts::List(l)) => {
            l.first().map(|c| c.uri.to_string()).unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// The Record-Route entries below ours (`did=` marks it) in a request,
/// or above it in a reply: the route set towards that side, nearest hop
/// first (RFC 3261 §12.1.1, §12.1.2).
fn route_set(m: &Message, did: &str, towards_caller: bool) -> Vec<String> {
    let rrs: Vec<String> = m
        .record_routes()
        .iter()
        .map(|r| format!("<{}>", r.uri))
        .collect();
    let marker = format!("did={did}");
    let ours = rrs.iter().position(|r| r.contains(&marker));
    match (ours, towards_caller) {
        (Some(i), true) => rrs[i + 1..].to_vec(),
        (Some(i), false) => rrs[..i].iter().rev().cloned().collect(),
        // Not record-routed by us: the whole set as the side sees it.
        (None, true) => rrs,
        (None, false) => rrs.into_iter().rev().collect(),
    }
}

/// A new dialog for the initial INVITE in `call` (create_dialog).
pub fn create(call: &mut Call, flags: u32, bind: Option<String>) -> Option<DlgRef> {
    let c = conf();
    let m = call.msg.as_ref()?;
    if m.method_kind() != Method::Invite || m.to_tag().is_some() {
        return None;
    }
    let callid = m.call_id()?.to_string();
    let ftag = m.from_tag().unwrap_or_default().to_string();
    let cseq = m.cseq().map_or(0, |c| c.num);
    let t = store::table();
    let (h_entry, h_id) = t.new_id(&callid);
    let did = store::did_of(h_entry, h_id);
    let slot = call.slot::<CallDlg>();
    let lifetime = slot.timeout.unwrap_or(c.default_timeout);
    let m = call.msg.as_ref()?;
    let mut d = Dlg {
        h_entry,
        h_id,
        callid,
        from_uri: m.from().map(|f| f.uri.to_string()).unwrap_or_default(),
        to_uri: m.to().map(|f| f.uri.to_string()).unwrap_or_default(),
        legs: Default::default(),
        state: store::UNCONFIRMED,
        inv_cseq: cseq,
        created: now_unix(),
        start_ts: 0,
        start_ms: 0,
        lifetime,
        deadline: None,
        flags,
        user_flags: 0,
        vals: Vec::new(),
        profiles: Vec::new(),
        end_reason: None,
        ping_pending: [false; 2],
        relayed: false,
        routes: Default::default(),
        shtag: None,
    };
    d.legs[CALLER] = store::Leg {
        tag: ftag,
        contact: contact_of(m),
        cseq,
        route_set: route_set(m, &did, true),
        bind,
        adv_contact: String::new(),
    };
    let r = t.insert(d);
    DIALOG.processed.inc();
    let slot = call.slot::<CallDlg>();
    slot.dlg = Some(r.clone());
    slot.created = true;
    slot.dir = 1;
    slot.dst_leg = Some(CALLEE);
    call.tm.data.set(DlgTxn(r.clone()));
    // The did goes into our Record-Route (written only if the script
    // record-routes, as OpenSIPS's add_rr_param).
    let rr = call.rr.get_or_insert_with(Default::default);
    rr.params.push(';');
    rr.params.push_str(&c.rr_param);
    rr.params.push('=');
    rr.params.push_str(&did);
    Some(r)
}

/// Finds the dialog of a sequential request in `call` (OpenSIPS
/// `dlg_onroute` / `match_dialog`): by the `did` of our Route entry
/// (`route_params`), then, as `mode` allows, by Call-ID and tags; then
/// runs the request's event (ACK confirms, BYE ends, others update the
/// CSeq). Returns whether a dialog was found.
pub fn on_sequential(call: &mut Call, route_params: Option<&str>, mode: u8) -> bool {
    on_sequential_as(call, route_params, mode, None)
}

/// [`on_sequential`] for a request whose Call-ID is `callid` rather than
/// the one it carries (topology_hiding's hidden Call-ID, decoded).
pub fn on_sequential_as(
    call: &mut Call,
    route_params: Option<&str>,
    mode: u8,
    callid: Option<&str>,
) -> bool {
    if call.slot_ref::<CallDlg>().is_some_and(|c| c.dlg.is_some()) {
        return true;
    }
    let Some(m) = call.msg.as_ref() else {
        return false;
    };
    let (Some(callid), Some(ttag)) = (callid.or(m.call_id()), m.to_tag()) else {
        return false;
    };
    if ttag.is_empty() {
        return false;
    }
    let ftag = m.from_tag().unwrap_or_default();
    let c = conf();
    let t = store::table();
    let mut found = None;
    if mode != 2 {
        let did = route_params.and_then(|p| {
            p.split(';').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == c.rr_param).then(|| v.trim().to_string())
            })
        });
        match did {
            Some(did) => match t.by_did(&did) {
                Some(d) => {
                    let leg = lock(&d).source_leg(callid, ftag, ttag);
                    match leg {
                        Some(l) => found = Some((d, l)),
                        // A did naming another dialog (forged or stale):
                        // never that dialog.
                        None => tracing::warn!(
                            "dialog: did {did} does not match callid '{callid}' and its tags"
                        ),
                    }
                }
                None => tracing::debug!("dialog: no dialog for did {did}"),
            },
            None if mode == 0 => return false,
            None => {}
        }
        if found.is_none() && mode == 0 {
            return false;
        }
    }
    if found.is_none() {
        found = t.by_tags(callid, ftag, ttag);
    }
    let Some((r, src)) = found else {
        return false;
    };
    let method = m.method_kind();
    let cseq = m.cseq().map_or(0, |c| c.num);
    let dst = 1 - src;
    let (prev, ended) = {
        let mut d = lock(&r);
        let prev = d.legs[src].cseq;
        match method {
            Method::Ack => {
                if d.state == store::CONFIRMED_NA && cseq == d.inv_cseq {
                    set_state(&mut d, store::CONFIRMED);
                }
            }
            Method::Bye => {}
            _ => {
                if cseq > prev {
                    d.legs[src].cseq = cseq;
                }
            }
        }
        (prev, method == Method::Bye && d.state != store::DELETED)
    };
    if ended {
        let reason = match src {
            CALLER => "Downstream BYE",
            _ => "Upstream BYE",
        };
        if end(&r, Some(reason)) {
            let hangup = lock(&r).routes.hangup.clone();
            if let Some(name) = hangup {
                super::timer::push(super::timer::Job::Route(r.clone(), name));
            }
        }
    }
    let slot = call.slot::<CallDlg>();
    slot.dlg = Some(r);
    slot.dir = if src == CALLER { 1 } else { 2 };
    slot.dst_leg = Some(dst);
    slot.prev_cseq = prev;
    true
}

/// validate_dialog (OpenSIPS `dlg_validate_dialog`): 1 valid; -1 a CSeq
/// not above the last one of that side (an ACK: not the INVITE's); -2 a
/// target that is not the destination side's Contact; -4 no dialog.
pub fn validate(call: &Call) -> i64 {
    let Some(cd) = call.slot_ref::<CallDlg>() else {
        return -4;
    };
    let (Some(r), Some(dst)) = (&cd.dlg, cd.dst_leg) else {
        return -4;
    };
    let Some(m) = call.msg.as_ref() else {
        return -4;
    };
    let Some(cseq) = m.cseq().map(|c| c.num) else {
        return -4;
    };
    let d = lock(r);
    if m.method_kind() == Method::Ack {
        if cseq != d.inv_cseq {
            return -1;
        }
    } else if cseq <= cd.prev_cseq {
        return -1;
    }
    if d.state <= store::EARLY {
        return 1;
    }
    let contact = &d.legs[dst].contact;
    if !contact.is_empty() && !same_uri(m.ruri(), contact) {
        tracing::info!(
            "dialog: validate_dialog: target {} is not the contact {contact}",
            m.ruri()
        );
        return -2;
    }
    1
}

/// URI equality as far as routing goes: user, host and port.
fn same_uri(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (crate::sip::Uri::parse(a), crate::sip::Uri::parse(b)) {
        (Ok(x), Ok(y)) => {
            x.user == y.user && x.host.eq_ignore_ascii_case(y.host) && x.port == y.port
        }
        _ => false,
    }
}

/// fix_route_dialog: the R-URI becomes the destination side's Contact and
/// the next hop the first entry of its route set.
pub fn fix_route(call: &mut Call) -> bool {
    let Some(cd) = call.slot_ref::<CallDlg>() else {
        return false;
    };
    let (Some(r), Some(dst)) = (cd.dlg.clone(), cd.dst_leg) else {
        return false;
    };
    let (contact, first) = {
        let d = lock(&r);
        let l = &d.legs[dst];
        (l.contact.clone(), l.route_set.first().cloned())
    };
    if contact.is_empty() {
        return false;
    }
    let Some(m) = call.msg.as_mut() else {
        return false;
    };
    m.set_ruri(&contact);
    if let Some(f) = first {
        call.du = Some(f.trim_start_matches('<').trim_end_matches('>').to_string());
    }
    true
}

/// The callee's side of a 2xx or 1xx to the initial INVITE.
fn take_callee(d: &mut Dlg, reply: &Message) {
    if let Some(tag) = reply.to_tag() {
        d.legs[CALLEE].tag = tag.to_string();
    }
    let contact = contact_of(reply);
    if !contact.is_empty() {
        d.legs[CALLEE].contact = contact;
    }
    let did = d.did();
    d.legs[CALLEE].route_set = route_set(reply, &did, false);
}

/// tm's observer: the initial INVITE's replies drive its dialog.
pub struct TmObserver;

impl Observer for TmObserver {
    fn request_out(&self, t: &Txn, _branch: usize) {
        if let Some(DlgTxn(r)) = t.data.get::<DlgTxn>() {
            lock(r).relayed = true;
        }
    }

    fn reply_in(&self, t: &Txn, _branch: usize, reply: &Message) {
        let Some(DlgTxn(r)) = t.data.get::<DlgTxn>() else {
            return;
        };
        let Some(code) = reply.status() else { return };
        let mut d = lock(r);
        if d.state >= store::CONFIRMED_NA {
            return;
        }
        match code {
            101..=199 if reply.to_tag().is_some() => {
                take_callee(&mut d, reply);
                set_state(&mut d, store::EARLY);
            }
            200..=299 => {
                take_callee(&mut d, reply);
                set_state(&mut d, store::CONFIRMED_NA);
                if let Some(name) = d.routes.answer.clone() {
                    // Run by the timer task: here a reply is being handled.
                    super::timer::push(super::timer::Job::Route(r.clone(), name));
                }
            }
            _ => {}
        }
    }

    fn completed(&self, t: &Txn, code: u16) {
        let Some(DlgTxn(r)) = t.data.get::<DlgTxn>() else {
            return;
        };
        if code >= 300 && lock(r).state < store::CONFIRMED_NA {
            end(r, None);
        }
    }
}

pub fn observer() -> Arc<dyn Observer> {
    Arc::new(TmObserver)
}
