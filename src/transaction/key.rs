//! Matching messages to transactions (RFC 3261 §17.1.3, §17.2.3), with the
//! RFC 2543 fallback for requests whose branch lacks the magic cookie.

use super::hash;
use crate::sip::{Message, Method};

const MAGIC: &str = "z9hG4bK";

/// The identity of a transaction in the shared table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TxnKey {
    /// RFC 3261: branch, sent-by of the top Via (host in lower case) and
    /// method (upper case), as one string `branch NUL sent-by NUL METHOD`:
    /// one allocation per key. ACK and CANCEL are looked up under INVITE
    /// by the callers that need it.
    Branch(Box<str>),
    /// RFC 2543: a hash of Request-URI, From tag, Call-ID, CSeq number,
    /// top Via and method.
    Legacy(u64),
}

/// A [`TxnKey::Branch`], built to its exact length.
fn branch_key(branch: &str, host: &str, port: Option<u16>, method: &str) -> TxnKey {
    let port_len = port.map_or(0, |p| 2 + p.checked_ilog10().unwrap_or(0) as usize);
    let mut k = String::with_capacity(branch.len() + host.len() + port_len + method.len() + 2);
    k.push_str(branch);
    k.push('\0');
    let at = k.len();
    k.push_str(host);
    k[at..].make_ascii_lowercase();
    if let Some(p) = port {
        // Digits by hand: `write!` goes through the formatting machinery.
        let (digits, at) = crate::sip::reply::u16_digits(p);
        k.push(':');
        k.push_str(std::str::from_utf8(&digits[at..]).unwrap_or(""));
    }
    k.push('\0');
    let at = k.len();
    k.push_str(method);
    k[at..].make_ascii_uppercase();
    TxnKey::Branch(k.into_boxed_str())
}

fn method_key(m: &str) -> &str {
    // The ACK of a non-2xx final belongs to its INVITE transaction.
    if m.eq_ignore_ascii_case("ACK") {
        "INVITE"
    } else {
        m
    }
}

/// The server transaction a request belongs to; `as_method` overrides the
/// method (a CANCEL looks for its INVITE with `Some("INVITE")`).
pub fn server_key(m: &Message, as_method: Option<&str>) -> Option<TxnKey> {
    let via = m.top_via()?;
    let method = as_method.unwrap_or_else(|| method_key(m.method()));
    // The branch as found when the top Via was parsed, not looked up again.
    match m.top_via_branch().filter(|b| b.starts_with(MAGIC)) {
        Some(b) => Some(branch_key(b, via.host, via.port, method)),
        None => {
            let cseq = m.cseq()?.num.to_le_bytes();
            Some(TxnKey::Legacy(hash(&[
                m.original_ruri().as_bytes(),
                m.from_tag().unwrap_or("").as_bytes(),
                m.call_id()?.as_bytes(),
                &cseq,
                via.host.as_bytes(),
                &via.port.unwrap_or(5060).to_le_bytes(),
                method.to_ascii_uppercase().as_bytes(),
            ])))
        }
    }
}

/// The client transaction a response belongs to: our own branch in its top
/// Via and the CSeq method (a CANCEL's 200 is not its INVITE's response).
pub fn client_key(m: &Message) -> Option<TxnKey> {
    let branch = m.top_via_branch().filter(|b| b.starts_with(MAGIC))?;
    Some(branch_key(branch, "", None, m.cseq()?.method))
}

/// The key under which a client transaction we created is found again.
pub fn our_client_key(branch: &str, method: &str) -> TxnKey {
    branch_key(branch, "", None, method)
}

/// Whether a request starts an INVITE transaction (ACK never starts one).
pub fn is_invite(m: &Message) -> bool {
    m.method_kind() == Method::Invite
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(s: &str) -> Message {
        Message::parse(Bytes::from(s.to_string())).expect("parses")
    }

    const INV: &str = "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP Host.example.com:5062;branch=z9hG4bKx1\r\nFrom: <sip:a@example.com>;tag=f\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn ack_and_cancel_find_the_invite() {
        let inv = server_key(&msg(INV), None).unwrap();
        let ack = msg(&INV
            .replace("INVITE sip:", "ACK sip:")
            .replace("7 INVITE", "7 ACK"));
        assert_eq!(server_key(&ack, None).unwrap(), inv);
        let cancel = msg(&INV
            .replace("INVITE sip:", "CANCEL sip:")
            .replace("7 INVITE", "7 CANCEL"));
        assert_ne!(server_key(&cancel, None).unwrap(), inv);
        assert_eq!(server_key(&cancel, Some("INVITE")).unwrap(), inv);
        // Another sent-by is another transaction, even with the same branch.
        let other = msg(&INV.replace("Host.example.com:5062", "host.example.com:5063"));
        assert_ne!(server_key(&other, None).unwrap(), inv);
        // sent-by compares case-insensitively.
        let lower = msg(&INV.replace("Host.example.com", "host.example.com"));
        assert_eq!(server_key(&lower, None).unwrap(), inv);
    }

    #[test]
    fn branch_keys_are_built_to_their_length() {
        for (host, port) in [
            ("H.example", Some(5060)),
            ("h", Some(9)),
            ("h", Some(10)),
            ("h", Some(0)),
            ("Ä.B", Some(65535)),
            ("h", None),
        ] {
            let TxnKey::Branch(k) = branch_key("z9hG4bKa", host, port, "invite") else {
                unreachable!()
            };
            let want = match port {
                Some(p) => format!("z9hG4bKa\0{}:{p}\0INVITE", host.to_ascii_lowercase()),
                None => format!("z9hG4bKa\0{}\0INVITE", host.to_ascii_lowercase()),
            };
            assert_eq!(&*k, want);
        }
    }

    #[test]
    fn rfc2543_fallback() {
        let old = INV.replace(";branch=z9hG4bKx1", "");
        let k = server_key(&msg(&old), None).unwrap();
        assert!(matches!(k, TxnKey::Legacy(_)));
        let retrans = server_key(&msg(&old), None).unwrap();
        assert_eq!(k, retrans);
        let next = server_key(&msg(&old.replace("CSeq: 7", "CSeq: 8")), None).unwrap();
        assert_ne!(k, next);
    }

    #[test]
    fn responses_match_by_our_branch_and_cseq_method() {
        let r = msg("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKours\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx1\r\nFrom: <sip:a@b>;tag=f\r\nTo: <sip:b@c>;tag=t\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            client_key(&r).unwrap(),
            our_client_key("z9hG4bKours", "INVITE")
        );
        assert_ne!(
            client_key(&r).unwrap(),
            our_client_key("z9hG4bKours", "CANCEL")
        );
    }
}
