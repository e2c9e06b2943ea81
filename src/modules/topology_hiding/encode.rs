//! The dialog-less mode's Contact parameter, as OpenSIPS 3.4 writes and
//! reads it (topo_hiding_logic.c `build_encoded_contact_suffix` /
//! `topo_no_dlg_seq_handling`): four fields, each a 16-bit length
//! (OpenSIPS's `short` in the byte order of x86, little-endian) and its
//! bytes: the route set towards the side (Record-Route entries joined by
//! `,`), the side's Contact URI, topology_hiding's flags as a decimal
//! number of `TOPOH_*` bits, and the socket the side talks to
//! (`udp:127.0.0.1:5060`). The whole is masked byte by byte with
//! `th_contact_encode_passwd` (cycled) and written in word64 or word32
//! (`th_contact_encode_scheme`). A Contact OpenSIPS encoded with the same
//! password decodes here, and the other way round.

/// What an encoded Contact carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Route set towards the side, nearest hop first (`<uri>,<uri>`).
    pub routes: String,
    /// The side's Contact URI.
    pub contact: String,
    /// topology_hiding's flags (`TOPOH_*` bits).
    pub flags: u32,
    /// The socket (`udp:127.0.0.1:5060`) the side talks to.
    pub socket: String,
}

fn mask(bytes: &mut [u8], passwd: &[u8]) {
    if passwd.is_empty() {
        return;
    }
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= passwd[i % passwd.len()];
    }
}

/// The plain fields; None when one does not fit OpenSIPS's 16-bit
/// signed length.
fn plain(info: &Info) -> Option<Vec<u8>> {
    let flags = info.flags.to_string();
    let fields = [
        info.routes.as_bytes(),
        info.contact.as_bytes(),
        flags.as_bytes(),
        info.socket.as_bytes(),
    ];
    let mut out = Vec::with_capacity(8 + fields.iter().map(|f| f.len()).sum::<usize>());
    for f in fields {
        let len = i16::try_from(f.len()).ok()?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(f);
    }
    Some(out)
}

/// The parameter's value; None when a field is too long to encode (over
/// 32767 bytes).
pub fn encode(info: &Info, passwd: &str, base32: bool) -> Option<String> {
    let mut p = plain(info)?;
    mask(&mut p, passwd.as_bytes());
    Some(if base32 {
        super::word::word32_encode(&p)
    } else {
        super::word::word64_encode(&p)
    })
}

/// Reads a value [`encode`] (or OpenSIPS) wrote; None when it is not
/// one: not word64/word32, a length negative or past the end, a field
/// not UTF-8. As OpenSIPS, bytes after the fourth field are ignored and
/// flags that are not a number count as none.
pub fn decode(text: &str, passwd: &str, base32: bool) -> Option<Info> {
    if text.len() > 65_536 {
        return None;
    }
    let mut p = if base32 {
        super::word::word32_decode(text)?
    } else {
        super::word::word64_decode(text)?
    };
    mask(&mut p, passwd.as_bytes());
    let mut rest = &p[..];
    let mut field = || -> Option<String> {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let len = usize::try_from(i16::from_le_bytes(*len)).ok()?;
        if len > tail.len() {
            return None;
        }
        let (f, tail) = tail.split_at(len);
        rest = tail;
        String::from_utf8(f.to_vec()).ok()
    };
    let routes = field()?;
    let contact = field()?;
    let flags = field()?;
    let socket = field()?;
    Some(Info {
        routes,
        contact,
        flags: flags.trim().parse().unwrap_or(0),
        socket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_contact_reads_back_and_hides_its_text() {
        let i = Info {
            routes: "<sip:10.0.0.1;lr>,<sip:10.0.0.2;lr>".into(),
            contact: "sip:alice@192.0.2.7:5071".into(),
            flags: 4,
            socket: "udp:127.0.0.1:5060".into(),
        };
        for base32 in [false, true] {
            let e = encode(&i, "ToPoCtPaSS", base32).expect("fits");
            assert!(!e.contains("alice"), "{e}");
            let digit = |b: u8| match base32 {
                true => b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b) || b == b'-',
                false => b.is_ascii_alphanumeric() || b"+.-".contains(&b),
            };
            assert!(e.bytes().all(digit), "{e}");
            assert_eq!(decode(&e, "ToPoCtPaSS", base32), Some(i.clone()));
            assert_ne!(decode(&e, "other", base32), Some(i.clone()));
            assert_eq!(decode(&e, "ToPoCtPaSS", !base32), None);
        }
        assert_eq!(decode("zz", "ToPoCtPaSS", false), None);
        assert_eq!(decode("abc", "ToPoCtPaSS", false), None);
        let long = Info {
            contact: "x".repeat(40_000),
            ..i
        };
        assert_eq!(encode(&long, "p", false), None);
    }

    /// topo_hiding_logic.c `build_encoded_contact_suffix` worked by hand
    /// for no route set, Contact `sip:bob@192.0.2.9`, flags `U` (4) and
    /// socket `udp:127.0.0.1:5060`: the bytes
    /// `00 00 | 11 00 "sip:bob@192.0.2.9" | 01 00 "4" | 12 00
    /// "udp:127.0.0.1:5060"` XOR-ed with the default password
    /// `ToPoCtPaSS` cycled, then word64 (base64 with `+.` and `-`).
    #[test]
    fn a_contact_opensips_encoded_decodes_here() {
        let opensips = "VG9BbzAdIFsxPDYvYVZxWmBPYX1tblBbUXQlBSNpZV1nQXNaYE9iaWFfZl8-";
        let want = Info {
            routes: String::new(),
            contact: "sip:bob@192.0.2.9".into(),
            flags: 4,
            socket: "udp:127.0.0.1:5060".into(),
        };
        assert_eq!(decode(opensips, "ToPoCtPaSS", false), Some(want.clone()));
        assert_eq!(encode(&want, "ToPoCtPaSS", false).as_deref(), Some(opensips));
        // A length past the end, and a negative one, are refused.
        let mut bad = plain(&want).expect("fits");
        bad[2] = 0x7f;
        mask(&mut bad, b"ToPoCtPaSS");
        assert_eq!(decode(&super::super::word::word64_encode(&bad), "ToPoCtPaSS", false), None);
        let mut neg = plain(&want).expect("fits");
        neg[3] = 0xff;
        mask(&mut neg, b"ToPoCtPaSS");
        assert_eq!(decode(&super::super::word::word64_encode(&neg), "ToPoCtPaSS", false), None);
    }
}
