//! The one place usrloc's events are raised (OpenSIPS's
//! `E_UL_AOR_INSERT`, `E_UL_AOR_DELETE`, `E_UL_CONTACT_INSERT`,
//! `E_UL_CONTACT_UPDATE`, `E_UL_CONTACT_DELETE`, `E_UL_CONTACT_REFRESH`).
//! Until the event interface exists they are logged at debug level; the
//! events issue connects [`raise`] to it.

use super::contact::Contact;

/// Raises `event` for `aor` in table `domain` (with the contact for the
/// contact events).
pub fn raise(event: &'static str, domain: &str, aor: &str, c: Option<&Contact>) {
    match c {
        Some(c) => tracing::debug!(
            event,
            domain,
            aor,
            uri = c.uri.as_str(),
            callid = c.callid.as_str(),
            expires = c.expires,
            "usrloc event"
        ),
        None => tracing::debug!(event, domain, aor, "usrloc event"),
    }
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
            Some(b) => {
                let refresh_only = Contact {
                    expires: b.expires,
                    cseq: b.cseq,
                    last_modified: b.last_modified,
                    ..a.clone()
                } == *b;
                let ev = match refresh_only {
                    true => "E_UL_CONTACT_REFRESH",
                    false => "E_UL_CONTACT_UPDATE",
                };
                raise(ev, domain, aor, Some(a));
            }
        }
    }
    for b in before.iter().filter(|b| !after.iter().any(|a| a.id == b.id)) {
        raise("E_UL_CONTACT_DELETE", domain, aor, Some(b));
    }
    if !before.is_empty() && after.is_empty() {
        raise("E_UL_AOR_DELETE", domain, aor, None);
    }
}
