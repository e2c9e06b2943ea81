//! `t_inject_branches("event")` (OpenSIPS 3.4 t_fwd.c
//! `ul_contact_event_to_msg` and `t_inject_branch`): in an event_routing
//! notification route for a usrloc contact event, the event's AVPs
//! describe one contact, and it becomes a new branch of the transaction
//! that subscribed — a copy of that transaction's request with the
//! contact as R-URI, its Path's first hop (else its `received`) as `$du`
//! and the Path as route set, its q-value, branch flags and socket.

use crate::proxy::context::{Call, Current, Value};
use crate::proxy::phases::Phases;
use crate::proxy::tm::{lock, relay, TxnRef};
use crate::proxy::ProxyError;
use crate::script::host::State;
use vocab::route::RouteType;

/// The contact an `E_UL_CONTACT_*` event describes, read from the AVPs
/// named as usrloc's event parameters (ul_evi.h).
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub uri: String,
    pub received: String,
    pub path: String,
    /// q-value × 1000; -1 when the contact gave none.
    pub qval: i64,
    /// `proto:host:port` of the socket it registered through, or empty.
    pub socket: String,
    pub bflags: u64,
}

fn avp<'a>(call: &'a Call, name: &str) -> Result<&'a Value, String> {
    call.avps
        .get(name)
        .and_then(|l| l.first())
        .ok_or_else(|| format!("no $avp({name}) (not a usrloc contact event)"))
}

fn text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        Value::Null => String::new(),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::Str(s) => s.trim().parse().unwrap_or(0),
        Value::Null => 0,
    }
}

impl Contact {
    /// Each of `uri`, `received`, `path`, `qval`, `socket` and `bflags`
    /// must be there (OpenSIPS fails the injection otherwise); the newest
    /// value of each counts, so the route may change them first.
    pub fn from_avps(st: &State) -> Result<Contact, String> {
        let call = st.call.borrow();
        let c = Contact {
            uri: text(avp(&call, "uri")?),
            received: text(avp(&call, "received")?),
            path: text(avp(&call, "path")?),
            qval: int(avp(&call, "qval")?),
            socket: text(avp(&call, "socket")?),
            bflags: int(avp(&call, "bflags")?) as u64,
        };
        if c.uri.is_empty() {
            return Err("the contact URI is empty".into());
        }
        Ok(c)
    }
}

/// The first URI of a Path value (`<sip:lb;lr>,<sip:x>` → `sip:lb;lr`),
/// where the request goes first (OpenSIPS `get_path_dst_uri`).
fn first_hop(path: &str) -> Option<String> {
    let mut depth = 0i32;
    let end = path
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                _ => {}
            }
            c == ',' && depth == 0
        })
        .map_or(path.len(), |(i, _)| i);
    let na = crate::sip::NameAddr::parse(path[..end].trim()).ok()?;
    Some(na.uri.to_string())
}

/// The call a new branch of `txn` is built on: its request as the route
/// left it when the transaction was made (OpenSIPS `fake_req`), with the
/// contact's destination.
fn faked(st: &Current, txn: &TxnRef, c: &Contact) -> Result<Call, String> {
    let mut call = Call::new();
    {
        let t = lock(txn);
        call.reset(t.request.clone(), t.src, RouteType::Request);
        call.flags = t.flags;
        call.avps = t.avps.clone();
        call.rr = t.rr.clone();
        call.tm.data = t.data.clone();
        call.tm.relay_flags = t.relay_flags;
    }
    call.via_fixed = true;
    call.tm.txn = Some(txn.clone());
    let Some(m) = call.msg.as_mut() else {
        return Err("the transaction has no request".into());
    };
    m.set_ruri(&c.uri);
    if !c.path.is_empty() {
        call.du = Some(first_hop(&c.path).ok_or_else(|| format!("bad Path <{}>", c.path))?);
        call.path_vec = Some(c.path.clone());
    } else if !c.received.is_empty() {
        call.du = Some(c.received.clone());
    }
    call.ru_q = (c.qval >= 0).then_some(c.qval);
    call.bflags = c.bflags;
    if !c.socket.is_empty() {
        call.socket_out = st
            .env
            .sockets
            .list
            .iter()
            .find(|x| x.spec() == c.socket)
            .map(|x| x.id);
        if call.socket_out.is_none() {
            tracing::warn!("t_inject_branches: no socket {} here, choosing one", c.socket);
        }
    }
    Ok(call)
}

/// Sends `c` as a new branch of `txn`; what it queued goes out with the
/// notification route's messages. Ok(false) when no branch was sent.
pub fn add_branch(host: &dyn Phases, txn: &TxnRef, c: &Contact) -> Result<bool, ProxyError> {
    let st = host.current();
    let mut call = match faked(st, txn, c) {
        Ok(call) => Box::new(call),
        Err(e) => {
            tracing::error!("t_inject_branches: {e}");
            return Ok(false);
        }
    };
    // The branch is built on the faked request in the worker's slot; the
    // notification route's own call comes back after.
    st.exchange(&mut call);
    let r = relay::add_branches(host, txn);
    st.exchange(&mut call);
    let mut out = std::mem::take(&mut call.outbox);
    st.call.borrow_mut().outbox.append(&mut out);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_first_hop() {
        assert_eq!(
            first_hop("<sip:lb.example;lr>,<sip:edge;lr>").as_deref(),
            Some("sip:lb.example;lr")
        );
        assert_eq!(first_hop("<sip:one;lr>").as_deref(), Some("sip:one;lr"));
    }
}
