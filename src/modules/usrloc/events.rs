//! The one place usrloc's events are raised (OpenSIPS's
//! `E_UL_AOR_INSERT`, `E_UL_AOR_DELETE`, `E_UL_CONTACT_INSERT`,
//! `E_UL_CONTACT_UPDATE`, `E_UL_CONTACT_DELETE`, `E_UL_LATENCY_UPDATE`).
//! Parameters as OpenSIPS 3.4's modules/usrloc/ul_evi.c names them.

use serde_json::{Map, Value};

use super::contact::Contact;
use crate::event::EventDecl;

const AOR: &[&str] = &["domain", "aor"];
const CT: &[&str] = &[
    "domain", "aor", "uri", "received", "path", "qval", "user_agent", "socket", "bflags",
    "expires", "callid", "cseq", "attr", "latency", "shtag",
];
/// `E_UL_CONTACT_REFRESH`'s own list (ul_evi.c's push-notification one).
const PN: &[&str] = &[
    "domain", "aor", "uri", "received", "user_agent", "socket", "bflags", "expires", "callid",
    "attr", "shtag", "reason", "req_callid",
];

/// The events usrloc declares (`Module::events`).
pub static EVENTS: &[EventDecl] = &[
    EventDecl { name: "E_UL_AOR_INSERT", params: AOR, doc: "An AoR got its first contact." },
    EventDecl { name: "E_UL_AOR_DELETE", params: AOR, doc: "An AoR lost its last contact." },
    EventDecl { name: "E_UL_CONTACT_INSERT", params: CT, doc: "A contact was added." },
    EventDecl { name: "E_UL_CONTACT_UPDATE", params: CT, doc: "A contact was updated: by every REGISTER that refreshes or changes it, as OpenSIPS's `update_ucontact`." },
    EventDecl { name: "E_UL_CONTACT_DELETE", params: CT, doc: "A contact was removed or expired." },
    EventDecl { name: "E_UL_CONTACT_REFRESH", params: PN, doc: "OpenSIPS raises it before an RFC 8599 push-notification contact expires (`contact_refresh_timer`). lunasip has no push-notification contacts, so it is declared (subscriptions and event routes load) but never raised." },
    EventDecl { name: "E_UL_LATENCY_UPDATE", params: CT, doc: "A contact answered an OPTIONS ping (nathelper `sipping_latency_flag`), or left one unanswered (latency 1800000000), as filtered by `latency_event_min_us` and `latency_event_min_us_delta`. `latency` is in µs." },
];

/// Raises `event` for `aor` in table `domain` (with the contact for the
/// contact events).
/// The parameters are built only when someone would get the event (a
/// subscriber, an `event_route`, a waiting `notify_on_event`).
pub fn raise(event: &'static str, domain: &str, aor: &str, c: Option<&Contact>) {
    if !crate::event::wanted(event) {
        return;
    }
    let mut m = Map::new();
    m.insert("domain".into(), Value::from(domain));
    m.insert("aor".into(), Value::from(aor));
    if let Some(c) = c {
        let opt = |v: &Option<String>| Value::from(v.clone().unwrap_or_default());
        m.insert("uri".into(), Value::from(c.uri.as_str()));
        m.insert("received".into(), opt(&c.received));
        m.insert("path".into(), opt(&c.path));
        m.insert("qval".into(), Value::from(c.q));
        m.insert("user_agent".into(), Value::from(c.user_agent.as_str()));
        m.insert("socket".into(), opt(&c.socket));
        m.insert("bflags".into(), Value::from(c.cflags));
        m.insert("expires".into(), Value::from(c.expires));
        m.insert("callid".into(), Value::from(c.callid.as_str()));
        m.insert("cseq".into(), Value::from(c.cseq));
        m.insert("attr".into(), Value::from(""));
        m.insert("latency".into(), Value::from(c.latency));
        m.insert("shtag".into(), Value::from(""));
    }
    tracing::debug!(event, domain, aor, "usrloc event");
    crate::event::raise_declared(event, m);
}

/// The events of one change to an AoR's contacts.
pub fn raise_diff(domain: &str, aor: &str, before: &[Contact], after: &[Contact]) {
    if before.is_empty() && !after.is_empty() {
        raise("E_UL_AOR_INSERT", domain, aor, None);
    }
    for a in after {
        match before.iter().find(|b| b.id == a.id) {
            None => raise("E_UL_CONTACT_INSERT", domain, aor, Some(a)),
            Some(b) if b == a => {}
            // A refresh too: OpenSIPS's update_ucontact raises it for
            // every REGISTER that reaches an existing contact.
            Some(_) => raise("E_UL_CONTACT_UPDATE", domain, aor, Some(a)),
        }
    }
    for b in before.iter().filter(|b| !after.iter().any(|a| a.id == b.id)) {
        raise("E_UL_CONTACT_DELETE", domain, aor, Some(b));
    }
    if !before.is_empty() && after.is_empty() {
        raise("E_UL_AOR_DELETE", domain, aor, None);
    }
}
