//! The dialog-less mode's Contact parameter (OpenSIPS 3.4
//! topo_hiding_logic.c `build_encoded_contact_suffix` /
//! `topo_no_dlg_seq_handling`): the route set towards a side, its
//! Contact and the socket it talks to, masked with
//! `th_contact_encode_passwd` and written in OpenSIPS's word64 or word32
//! (`th_contact_encode_scheme` base64 / base32). The fields are joined by
//! newlines, not OpenSIPS's length prefixes: only this proxy reads them.

/// What an encoded Contact carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Route set towards the side, nearest hop first (`<uri>, <uri>`).
    pub routes: String,
    /// The side's Contact URI.
    pub contact: String,
    /// The socket (`udp:127.0.0.1:5060`) the side talks to.
    pub socket: String,
    /// topology_hiding's flags (`U`).
    pub flags: String,
}

/// Fields are separated by a byte no header value holds.
const SEP: u8 = b'\n';

fn mask(bytes: &mut [u8], passwd: &[u8]) {
    if passwd.is_empty() {
        return;
    }
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= passwd[i % passwd.len()];
    }
}

/// A header value on one line (folding replaced by spaces).
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

pub fn encode(info: &Info, passwd: &str, base32: bool) -> String {
    let mut plain = Vec::new();
    for (i, f) in [&info.routes, &info.contact, &info.socket, &info.flags].iter().enumerate() {
        if i > 0 {
            plain.push(SEP);
        }
        plain.extend_from_slice(one_line(f).as_bytes());
    }
    mask(&mut plain, passwd.as_bytes());
    if base32 {
        super::word::word32_encode(&plain)
    } else {
        super::word::word64_encode(&plain)
    }
}

/// Reads a value [`encode`] wrote; None when it is not one (a forged or
/// mangled parameter).
pub fn decode(text: &str, passwd: &str, base32: bool) -> Option<Info> {
    if text.len() > 16_384 {
        return None;
    }
    let mut plain = if base32 {
        super::word::word32_decode(text)?
    } else {
        super::word::word64_decode(text)?
    };
    mask(&mut plain, passwd.as_bytes());
    let s = String::from_utf8(plain).ok()?;
    let mut f = s.split(SEP as char);
    let info = Info {
        routes: f.next()?.to_string(),
        contact: f.next()?.to_string(),
        socket: f.next()?.to_string(),
        flags: f.next()?.to_string(),
    };
    if f.next().is_some() || !info.contact.starts_with("sip") {
        return None;
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_contact_reads_back_and_hides_its_text() {
        let i = Info {
            routes: "<sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>".into(),
            contact: "sip:alice@192.0.2.7:5071".into(),
            socket: "udp:127.0.0.1:5060".into(),
            flags: "U".into(),
        };
        for base32 in [false, true] {
            let e = encode(&i, "ToPoCtPaSS", base32);
            assert!(!e.contains("alice"), "{e}");
            let digit = |b: u8| match base32 {
                true => b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b) || b == b'-',
                false => b.is_ascii_alphanumeric() || b"+.-".contains(&b),
            };
            assert!(e.bytes().all(digit), "{e}");
            assert_eq!(decode(&e, "ToPoCtPaSS", base32), Some(i.clone()));
            assert_eq!(decode(&e, "other", base32), None);
            assert_eq!(decode(&e, "ToPoCtPaSS", !base32), None);
        }
        assert_eq!(decode("zz", "ToPoCtPaSS", false), None);
        assert_eq!(decode("abc", "ToPoCtPaSS", false), None);
    }
}
