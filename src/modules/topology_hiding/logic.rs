//! What topology hiding does to each message (OpenSIPS 3.4
//! topo_hiding_logic.c): a request copy leaves with our Via alone, no
//! Record-Route and our Contact (`copy_out`); a reply going back gets
//! the request's Vias again, loses the other side's Record-Route (the
//! caller's own come back on replies to the initial request) and gets
//! our Contact too (`reply_out`).

use std::sync::{Arc, OnceLock};

use super::{callid, conf, encode};
use crate::proxy::context::Call;
use crate::proxy::tm::hooks::Observer;
use crate::proxy::tm::Txn;
use crate::sip::{Contacts, HeaderKind, Message, Uri};
use crate::transport::myself::SocketInfo;
use crate::transport::Proto;

/// topology_hiding's flag letters (OpenSIPS topology_hiding.c).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `U`: the Contact we put keeps the user part of the one it replaces.
    pub keep_user: bool,
    /// `D`: the dialog id goes into the Contact's user part.
    pub did_in_user: bool,
    /// `C`: the callee sees another Call-ID (with a dialog only).
    pub hide_callid: bool,
    /// `a`: the caller sees, all through the dialog, the Contact it got
    /// in the 2xx of the initial INVITE (with a dialog only).
    pub keep_adv_caller: bool,
    /// `A`: the callee sees the Contact it got in the initial INVITE.
    pub keep_adv_callee: bool,
}

/// OpenSIPS's bits of a hidden dialog (dialog `mod_flags`, the
/// `module_flags` column; dlg_hash.h `TOPOH_*`), also the number the
/// dialog-less Contact carries.
pub const ONGOING: u32 = 1 << 1;
const KEEP_USER: u32 = 1 << 2;
const HIDE_CALLID: u32 = 1 << 3;
const DID_IN_USER: u32 = 1 << 4;
const KEEP_ADV_A: u32 = 1 << 5;
const KEEP_ADV_B: u32 = 1 << 6;

impl Flags {
    /// The flags as OpenSIPS's `TOPOH_*` bits (without `ONGOING`).
    pub fn bits(self) -> u32 {
        [
            (self.keep_user, KEEP_USER),
            (self.hide_callid, HIDE_CALLID),
            (self.did_in_user, DID_IN_USER),
            (self.keep_adv_caller, KEEP_ADV_A),
            (self.keep_adv_callee, KEEP_ADV_B),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |acc, (_, b)| acc | b)
    }

    /// The flags of OpenSIPS's `TOPOH_*` bits (others are ignored).
    pub fn from_bits(b: u32) -> Flags {
        Flags {
            keep_user: b & KEEP_USER != 0,
            did_in_user: b & DID_IN_USER != 0,
            hide_callid: b & HIDE_CALLID != 0,
            keep_adv_caller: b & KEEP_ADV_A != 0,
            keep_adv_callee: b & KEEP_ADV_B != 0,
        }
    }

    /// Unknown letters are skipped, as OpenSIPS does.
    pub fn parse(s: &str) -> Flags {
        Flags {
            keep_user: s.contains('U'),
            did_in_user: s.contains('D'),
            hide_callid: s.contains('C'),
            keep_adv_caller: s.contains('a'),
            keep_adv_callee: s.contains('A'),
        }
    }

}

/// How our Contact finds the call again.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The dialog's id (`did`) in our Contact.
    Dialog { did: String },
    /// No dialog: the side's Contact, route set and socket, encoded.
    /// `reply_routes`: the route set towards the side that answers an
    /// in-dialog request (None: the reply's own Record-Route); `bits`:
    /// the flags as given (`TOPOH_*`), written in request Contacts.
    NoDialog {
        reply_routes: Option<String>,
        bits: u32,
    },
}

/// Topology hiding of one request and its replies.
#[derive(Debug)]
pub struct Th {
    pub flags: Flags,
    pub mode: Mode,
    /// The request goes to the callee (replies to the caller).
    pub towards_callee: bool,
    /// The initial request's Record-Route, given back in its replies.
    pub rr_back: Option<String>,
    /// Our side facing upstream: (`host:port[;transport=x]`, socket spec).
    pub up: (String, String),
    /// Our side facing downstream, known once a copy went out.
    pub down: OnceLock<(String, String)>,
}

/// A request's topology hiding, in its transaction's data: its copies
/// (those of a failure route too, which gets the data back) and its
/// replies find it there.
pub struct ThTxn(pub Arc<Th>);

/// Attaches `th` to the current request and its transaction.
pub fn engage(call: &mut Call, th: Th) {
    call.tm.data.set(ThTxn(Arc::new(th)));
}

/// Our address in a Contact for a message leaving from `sock`.
pub fn side_of(sock: &SocketInfo) -> (String, String) {
    let mut host = format!("{}:{}", sock.adv_host, sock.adv_port);
    if sock.proto != Proto::Udp {
        host.push_str(";transport=");
        host.push_str(sock.proto.as_str());
    }
    (host, sock.spec())
}

/// A message's Record-Route set as a route set towards its sender,
/// nearest hop first: a request's as it is, a reply's reversed; entries
/// joined by `,` (OpenSIPS parse_rr.c `print_rr_body`).
pub fn rr_set(m: &Message, reply: bool) -> String {
    let mut v: Vec<String> = m
        .record_routes()
        .iter()
        .map(|r| format!("<{}>{}", r.uri, r.params))
        .collect();
    if reply {
        v.reverse();
    }
    v.join(",")
}

fn param_name(p: &str) -> &str {
    p.split('=').next().unwrap_or_default().trim()
}

/// Our Contact for `m` (None when it has no single Contact to replace):
/// `host` is our side towards where `m` goes; in the dialog-less mode
/// `routes` and `socket` are encoded with `m`'s own Contact.
fn new_contact(m: &Message, th: &Th, host: &str, routes: &str, socket: &str, reply: bool) -> Option<String> {
    let c = match m.contacts() {
        Ok(Contacts::List(l)) if l.len() == 1 => l.into_iter().next()?,
        _ => return None,
    };
    let uri = Uri::parse(c.uri).ok();
    let user = uri
        .as_ref()
        .and_then(|u| u.user)
        .filter(|u| th.flags.keep_user && !u.is_empty());
    let cf = conf();
    let mut s = String::from("<sip:");
    match &th.mode {
        Mode::Dialog { did } => {
            let rr_param = crate::modules::dialog::conf().rr_param.clone();
            if let Some(u) = user {
                s.push_str(u);
            }
            if th.flags.did_in_user {
                if user.is_none() {
                    s.push('X');
                }
                s.push_str(&format!(".{rr_param}.{did}"));
            }
            if s.len() > 5 {
                s.push('@');
            }
            s.push_str(host);
            if !th.flags.did_in_user {
                s.push_str(&format!(";{rr_param}={did}"));
            }
        }
        Mode::NoDialog { bits, .. } => {
            if let Some(u) = user {
                s.push_str(u);
                s.push('@');
            }
            s.push_str(host);
            // OpenSIPS: a request's Contact carries the flags as given, a
            // reply's only `U` (topo_hiding_logic.c `_th_no_dlg_onreply`).
            let flags = if reply { bits & KEEP_USER } else { *bits };
            let info = encode::Info {
                routes: routes.to_string(),
                contact: c.uri.to_string(),
                flags,
                socket: socket.to_string(),
            };
            match encode::encode(&info, &cf.encode_passwd, cf.encode_base32) {
                Some(e) => s.push_str(&format!(";{}={e}", cf.encode_param)),
                // Hidden all the same; its in-dialog requests will not match.
                None => tracing::warn!("topology_hiding: a Contact or route set too long to encode"),
            }
        }
    }
    // th_passed_contact_uri_params / th_passed_contact_params.
    let passed = |list: &[String], p: &str| list.iter().any(|n| n.eq_ignore_ascii_case(param_name(p)));
    for p in uri.as_ref().map_or("", |u| u.params).split(';') {
        if !p.is_empty() && passed(&cf.uri_params, p) {
            s.push(';');
            s.push_str(p);
        }
    }
    s.push('>');
    for p in c.params.split(';').map(str::trim) {
        if !p.is_empty() && passed(&cf.hdr_params, p) {
            s.push(';');
            s.push_str(p);
        }
    }
    Some(s)
}

/// Flag `C`: the Call-ID for the callee's side, or back for the
/// caller's (`hide`: towards the callee).
fn swap_callid(m: &mut Message, hide: bool) {
    let Some(ci) = m.call_id() else { return };
    let new = if hide {
        (!ci.starts_with(conf().callid_prefix.as_str())).then(|| callid::encode(ci))
    } else {
        callid::decode(ci)
    };
    if let Some(new) = new {
        set_first(m, HeaderKind::CallId, &new);
    }
}

fn set_first(m: &mut Message, kind: HeaderKind, value: &str) {
    let i = m.headers().find(|h| h.kind == kind).map(|h| h.index);
    if let Some(i) = i {
        m.set_header_value(i, value);
    }
}

/// Flags `a` / `A` (OpenSIPS topo_hiding_logic.c `topo_dlg_replace_contact`
/// with an `adv_leg`): the initial INVITE's Contact towards the callee
/// and its 2xx's towards the caller are kept in the dialog (`initial`);
/// later, what goes to a side whose flag is set carries that Contact
/// again instead of `ct`.
fn advertised(th: &Th, to_leg: usize, initial: bool, ct: String) -> String {
    use crate::modules::dialog::store::{self, lock, CALLER};
    let Mode::Dialog { did } = &th.mode else {
        return ct;
    };
    let Some(d) = store::table().by_did(did) else {
        return ct;
    };
    let mut d = lock(&d);
    let leg = &mut d.legs[to_leg];
    if initial {
        leg.adv_contact = ct.clone();
        return ct;
    }
    let keep = match to_leg {
        CALLER => th.flags.keep_adv_caller,
        _ => th.flags.keep_adv_callee,
    };
    if keep && !leg.adv_contact.is_empty() {
        leg.adv_contact.clone()
    } else {
        ct
    }
}

fn leg_towards(callee: bool) -> usize {
    use crate::modules::dialog::store::{CALLEE, CALLER};
    if callee {
        CALLEE
    } else {
        CALLER
    }
}

/// tm's observer: rewrites the hidden calls' copies and replies.
pub struct ThObserver;

impl Observer for ThObserver {
    fn copy_out(&self, call: &mut Call, sock: &SocketInfo) {
        let Some(ThTxn(th)) = call.tm.data.get::<ThTxn>() else {
            return;
        };
        let th = th.clone();
        let side = side_of(sock);
        let _ = th.down.set(side.clone());
        // Our own Record-Route goes with the others: in-dialog requests
        // come back to our Contact.
        call.rr = None;
        let Some(m) = call.msg.as_mut() else { return };
        m.remove_headers("Via");
        m.remove_headers("Record-Route");
        if th.flags.hide_callid {
            swap_callid(m, th.towards_callee);
        }
        let routes = rr_set(m, false);
        let initial = m.to_tag().is_none_or(str::is_empty);
        if let Some(ct) = new_contact(m, &th, &side.0, &routes, &th.up.1, false) {
            let ct = advertised(&th, leg_towards(th.towards_callee), initial, ct);
            set_first(m, HeaderKind::Contact, &ct);
        }
    }

    fn reply_out(&self, t: &Txn, _branch: usize, reply: &mut Message) {
        let Some(ThTxn(th)) = t.data.get::<ThTxn>() else {
            return;
        };
        let code = reply.status().unwrap_or(0);
        // A redirect's Contacts are for the caller to try (OpenSIPS keeps
        // them too).
        if !(300..400).contains(&code) {
            let routes = match &th.mode {
                Mode::NoDialog {
                    reply_routes: Some(r),
                    ..
                } => r.clone(),
                _ => rr_set(reply, true),
            };
            let socket = th.down.get().map(|d| d.1.clone()).unwrap_or_default();
            if let Some(ct) = new_contact(reply, th, &th.up.0, &routes, &socket, true) {
                // The 2xx of the initial INVITE sets what `a` keeps.
                let initial = t.request.to_tag().is_none_or(str::is_empty) && (200..300).contains(&code);
                let ct = advertised(th, leg_towards(!th.towards_callee), initial, ct);
                set_first(reply, HeaderKind::Contact, &ct);
            }
        }
        if th.flags.hide_callid {
            swap_callid(reply, !th.towards_callee);
        }
        reply.remove_headers("Via");
        reply.remove_headers("Record-Route");
        let mut head = t.request.via_lines();
        if let Some(rr) = &th.rr_back {
            head.push_str("Record-Route: ");
            head.push_str(rr);
            head.push_str("\r\n");
        }
        reply.prepend_raw(&head);
    }
}

pub fn observer() -> Arc<dyn Observer> {
    Arc::new(ThObserver)
}
