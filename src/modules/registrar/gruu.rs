//! GRUU (RFC 5627) as OpenSIPS 3.4's registrar does it
//! (modules/registrar/reply.c build_contact, lib/reg/sip_msg.c
//! extract_aor, lib/reg/lookup.c select_contacts): a REGISTER that says
//! `Supported: gruu` gets, for each binding with a `+sip.instance`, a
//! public GRUU (`sip:<aor>;gr=<instance>`) and a temporary one
//! (`sip:tgruu.<base64>@<socket>;gr`, the base64 of "time aor instance
//! call-id" XORed with `gruu_secret`) in its 200; `lookup` of a GRUU
//! R-URI reaches only the contact of that instance (for a temporary GRUU
//! also of that Call-ID, and only while no newer registration of the
//! instance replaced it).

use crate::modules::usrloc::Contact;
use crate::pv::tr::{b64decode_bytes, b64encode_bytes};
use crate::sip::Uri;

/// reply.c's secret when `gruu_secret` is unset.
pub const DEFAULT_SECRET: &str = "0p3nS1pS";

/// User prefix of a temporary GRUU.
const TEMP_PREFIX: &str = "tgruu.";

/// An instance as stored (`<urn:uuid:…>`, quoted or not) without its
/// quotes and angle brackets.
pub fn inner(instance: &str) -> &str {
    let s = instance.trim().trim_matches('"');
    s.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(s)
}

fn xor(data: &mut [u8], secret: &[u8]) {
    if secret.is_empty() {
        return;
    }
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= secret[i % secret.len()];
    }
}

/// The user part of a temporary GRUU after `tgruu.`.
pub fn temp_token(secret: &str, t: i64, aor: &str, instance: &str, callid: &str) -> String {
    let mut b = format!("{t} {aor} {} {callid}", inner(instance)).into_bytes();
    xor(&mut b, secret.as_bytes());
    b64encode_bytes(&b)
}

/// `;pub-gruu="…";temp-gruu="…";+sip.instance="…"` for one binding of the
/// 200 (reply.c). `host_port`: the socket the REGISTER came in on; the
/// public GRUU names it only without use_domain.
pub fn contact_params(
    c: &Contact,
    aor: &str,
    use_domain: bool,
    host_port: &str,
    secret: &str,
    t: i64,
) -> Option<String> {
    let instance = c.instance.as_deref().filter(|i| !inner(i).is_empty())?;
    let id = inner(instance);
    let at = match use_domain {
        true => String::new(),
        false => format!("@{host_port}"),
    };
    let token = temp_token(secret, t, aor, instance, &c.callid);
    Some(format!(
        ";pub-gruu=\"sip:{aor}{at};gr={id}\";temp-gruu=\"sip:{TEMP_PREFIX}{token}@{host_port};gr\";+sip.instance=\"<{id}>\""
    ))
}

/// What a request URI with a `gr` parameter asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A public GRUU: the AoR's contact of this instance.
    Public { instance: String },
    /// A temporary GRUU, decoded.
    Temp {
        aor: String,
        instance: String,
        callid: String,
    },
}

/// A temporary GRUU that does not decode (with this secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTempGruu;

/// Reads the `gr` parameter of `uri` (sip_msg.c extract_aor). Ok(None):
/// no GRUU.
pub fn target(uri: &str, secret: &str) -> Result<Option<Target>, BadTempGruu> {
    let Ok(u) = Uri::parse(uri) else {
        return Ok(None);
    };
    let Some(gr) = u.param("gr") else {
        return Ok(None);
    };
    if let Some(tok) = u.user.and_then(|s| s.strip_prefix(TEMP_PREFIX)) {
        let mut b = b64decode_bytes(tok).ok_or(BadTempGruu)?;
        xor(&mut b, secret.as_bytes());
        let s = String::from_utf8(b).map_err(|_| BadTempGruu)?;
        let mut it = s.splitn(4, ' ');
        let (_time, aor, instance, callid) = (it.next(), it.next(), it.next(), it.next());
        let (Some(aor), Some(instance), Some(callid)) = (aor, instance, callid) else {
            return Err(BadTempGruu);
        };
        if aor.is_empty() || instance.is_empty() {
            return Err(BadTempGruu);
        }
        return Ok(Some(Target::Temp {
            aor: aor.to_string(),
            instance: instance.to_string(),
            callid: callid.to_string(),
        }));
    }
    match gr.filter(|g| !g.is_empty()) {
        Some(g) => Ok(Some(Target::Public {
            instance: g.to_string(),
        })),
        // `;gr` alone on a URI that is no temporary GRUU: an AoR.
        None => Ok(None),
    }
}

/// The one contact a GRUU reaches, from the AoR's contacts in lookup
/// order (lookup.c select_contacts): the first of the instance; for a
/// temporary GRUU also of its Call-ID, and none when a later registration
/// of the same instance exists (the GRUU expired).
pub fn select(cts: Vec<Contact>, t: &Target) -> Vec<Contact> {
    let (want, callid) = match t {
        Target::Public { instance } => (instance.as_str(), None),
        Target::Temp {
            instance, callid, ..
        } => (instance.as_str(), Some(callid.as_str())),
    };
    let of = |c: &Contact| c.instance.as_deref().is_some_and(|i| inner(i) == want);
    let Some(hit) = cts
        .iter()
        .find(|c| of(c) && callid.is_none_or(|id| c.callid == id))
    else {
        return Vec::new();
    };
    if callid.is_some()
        && cts
            .iter()
            .any(|c| of(c) && c.last_modified > hit.last_modified)
    {
        return Vec::new();
    }
    vec![hit.clone()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_gruu_round_trip_and_forgery() {
        let tok = temp_token("k3y", 1700000000, "bob@example.com", "\"<urn:uuid:1>\"", "cid-1@h");
        let uri = format!("sip:tgruu.{tok}@127.0.0.1:5060;gr");
        assert_eq!(
            target(&uri, "k3y"),
            Ok(Some(Target::Temp {
                aor: "bob@example.com".into(),
                instance: "urn:uuid:1".into(),
                callid: "cid-1@h".into()
            }))
        );
        // Another secret does not decode to the same binding.
        assert_ne!(
            target(&uri, "other"),
            target(&uri, "k3y")
        );
        assert_eq!(target("sip:tgruu.!!@h;gr", "k3y"), Err(BadTempGruu));
        assert_eq!(
            target("sip:bob@example.com;gr=urn:uuid:2", "k3y"),
            Ok(Some(Target::Public { instance: "urn:uuid:2".into() }))
        );
        assert_eq!(target("sip:bob@example.com", "k3y"), Ok(None));
    }
}
