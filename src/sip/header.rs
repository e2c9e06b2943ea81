//! Header names: full and compact forms (RFC 3261 §7.3.3 and extensions),
//! which headers carry comma lists (§7.3.1), and name matching.

/// Header kinds the core looks up by kind; unknown names are `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderKind {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    ContentLength,
    ContentType,
    MaxForwards,
    Route,
    RecordRoute,
    Other,
}

impl HeaderKind {
    /// Classifies a header name, full or compact, any case.
    ///
    /// Runs once per header line at parse time, so it dispatches on length
    /// and first letter before comparing any bytes, and compares a name
    /// with one 128-bit operation.
    pub fn of(name: &[u8]) -> HeaderKind {
        let Some(&first) = name.first() else {
            return HeaderKind::Other;
        };
        let is = |n: &Name| n.matches(name);
        // `| 0x20` lowercases a letter; a non-letter never turns into one,
        // so length and first letter pick at most two names to compare.
        match (name.len(), first | 0x20) {
            (1, b'v') => HeaderKind::Via,
            (1, b'f') => HeaderKind::From,
            (1, b't') => HeaderKind::To,
            (1, b'i') => HeaderKind::CallId,
            (1, b'm') => HeaderKind::Contact,
            (1, b'l') => HeaderKind::ContentLength,
            (1, b'c') => HeaderKind::ContentType,
            (2, b't') if is(&TO) => HeaderKind::To,
            (3, b'v') if is(&VIA) => HeaderKind::Via,
            (4, b'f') if is(&FROM) => HeaderKind::From,
            (4, b'c') if is(&CSEQ) => HeaderKind::CSeq,
            (5, b'r') if is(&ROUTE) => HeaderKind::Route,
            (7, b'c') if is(&CALL_ID) => HeaderKind::CallId,
            (7, b'c') if is(&CONTACT) => HeaderKind::Contact,
            (12, b'c') if is(&CONTENT_TYPE) => HeaderKind::ContentType,
            (12, b'm') if is(&MAX_FORWARDS) => HeaderKind::MaxForwards,
            (12, b'r') if is(&RECORD_ROUTE) => HeaderKind::RecordRoute,
            (14, b'c') if is(&CONTENT_LENGTH) => HeaderKind::ContentLength,
            _ => HeaderKind::Other,
        }
    }
}

/// A header name of at most 16 bytes prepared for a case-insensitive
/// compare in one step: the name in lower case, zero-padded, and a mask
/// with 0x20 on each letter. `x | 0x20` equals a lowercase letter only
/// when `x` is that letter in either case, and bytes that are not letters
/// ('-') are compared as they are, so the compare is exact.
struct Name {
    lower: u128,
    mask: u128,
}

impl Name {
    const fn new(name: &str) -> Name {
        let b = name.as_bytes();
        assert!(b.len() <= 16);
        let mut lower = [0u8; 16];
        let mut mask = [0u8; 16];
        let mut i = 0;
        while i < b.len() {
            lower[i] = b[i].to_ascii_lowercase();
            if b[i].is_ascii_alphabetic() {
                mask[i] = 0x20;
            }
            i += 1;
        }
        Name {
            lower: u128::from_le_bytes(lower),
            mask: u128::from_le_bytes(mask),
        }
    }

    /// Whether `name` (of this name's length, checked by the caller) is
    /// this name in any case.
    fn matches(&self, name: &[u8]) -> bool {
        let mut buf = [0u8; 16];
        match buf.get_mut(..name.len()) {
            Some(head) => head.copy_from_slice(name),
            None => return false,
        }
        u128::from_le_bytes(buf) | self.mask == self.lower
    }
}

const TO: Name = Name::new("To");
const VIA: Name = Name::new("Via");
const FROM: Name = Name::new("From");
const CSEQ: Name = Name::new("CSeq");
const ROUTE: Name = Name::new("Route");
const CALL_ID: Name = Name::new("Call-ID");
const CONTACT: Name = Name::new("Contact");
const CONTENT_TYPE: Name = Name::new("Content-Type");
const MAX_FORWARDS: Name = Name::new("Max-Forwards");
const RECORD_ROUTE: Name = Name::new("Record-Route");
const CONTENT_LENGTH: Name = Name::new("Content-Length");

/// Compact forms and the full names they stand for: RFC 3261 §7.3.3 (c, e,
/// f, i, k, l, m, s, t, v), RFC 3265 (o, u), RFC 3515 (r), RFC 3892 (b),
/// RFC 4028 (x), RFC 3841 (a, j, d), RFC 4474 (y, n).
pub const COMPACT_FORMS: &[(u8, &str)] = &[
    (b'a', "Accept-Contact"),
    (b'b', "Referred-By"),
    (b'c', "Content-Type"),
    (b'd', "Request-Disposition"),
    (b'e', "Content-Encoding"),
    (b'f', "From"),
    (b'i', "Call-ID"),
    (b'j', "Reject-Contact"),
    (b'k', "Supported"),
    (b'l', "Content-Length"),
    (b'm', "Contact"),
    (b'n', "Identity-Info"),
    (b'o', "Event"),
    (b'r', "Refer-To"),
    (b's', "Subject"),
    (b't', "To"),
    (b'u', "Allow-Events"),
    (b'v', "Via"),
    (b'x', "Session-Expires"),
    (b'y', "Identity"),
];

/// Headers whose grammar is a comma-separated list (`x *(COMMA x)`), so a
/// comma outside quotes and `<>` separates values. Everything else (Date,
/// the authentication headers, unknown extensions) is one opaque value.
const LIST_HEADERS: &[&str] = &[
    "Via",
    "Route",
    "Record-Route",
    "Contact",
    "Path",
    "Service-Route",
    "Allow",
    "Supported",
    "Require",
    "Proxy-Require",
    "Unsupported",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Allow-Events",
    "Accept-Contact",
    "Reject-Contact",
    "Request-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Warning",
    "Call-Info",
    "Alert-Info",
    "Error-Info",
    "In-Reply-To",
    "History-Info",
    "Reason",
    "Diversion",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "P-Associated-URI",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Resource-Priority",
    "Accept-Resource-Priority",
];

/// The full name for a compact one ("v" → "Via"); other names unchanged.
pub fn full_name(name: &str) -> &str {
    if let [c] = name.as_bytes() {
        let c = c.to_ascii_lowercase();
        if let Some((_, full)) = COMPACT_FORMS.iter().find(|(k, _)| *k == c) {
            return full;
        }
    }
    name
}

/// The compact letter of a full name, if it has one.
pub fn compact_name(name: &str) -> Option<u8> {
    COMPACT_FORMS
        .iter()
        .find(|(_, full)| full.eq_ignore_ascii_case(name))
        .map(|(c, _)| *c)
}

/// Whether the header (full or compact name) carries a comma list.
pub fn is_list(name: &str) -> bool {
    let full = full_name(name);
    LIST_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(full))
}

/// Whether two header names are the same header (case-insensitive, compact
/// forms equal to their full forms: "v" == "Via", "i" == "Call-ID", …).
pub fn same_name(a: &str, b: &str) -> bool {
    full_name(a).eq_ignore_ascii_case(full_name(b))
}

/// A header name asked for by a caller, prepared once so that matching it
/// against every header line costs a comparison, not a table lookup.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameQuery<'q> {
    kind: HeaderKind,
    /// The full name (a compact one expanded), as the caller spelled it.
    full: &'q str,
    /// The caller gave the one-letter form.
    letter: Option<u8>,
}

impl<'q> NameQuery<'q> {
    pub(crate) fn new(name: &'q str) -> NameQuery<'q> {
        let name = name.trim();
        let full = full_name(name);
        let letter = match name.as_bytes() {
            [c] => Some(c.to_ascii_lowercase()),
            _ => None,
        };
        NameQuery {
            kind: HeaderKind::of(full.as_bytes()),
            full,
            letter,
        }
    }

    /// The kind the name stands for (`Other` for names the core does not
    /// classify).
    pub(crate) fn kind(&self) -> HeaderKind {
        self.kind
    }

    /// Whether values of this header are split on commas.
    pub(crate) fn is_list(&self) -> bool {
        match self.kind {
            HeaderKind::Via | HeaderKind::Route | HeaderKind::RecordRoute | HeaderKind::Contact => {
                true
            }
            HeaderKind::Other => is_list(self.full),
            _ => false,
        }
    }

    /// Whether a header line named `name` (classified as `kind` at parse
    /// time) is this header.
    pub(crate) fn matches(&self, name: &[u8], kind: HeaderKind) -> bool {
        if self.kind != HeaderKind::Other {
            return kind == self.kind;
        }
        if kind != HeaderKind::Other {
            return false;
        }
        match name {
            // A one-letter line: looked up only here (a rare case), not
            // for every query.
            [c] => {
                let compact = self.letter.or_else(|| compact_name(self.full));
                Some(c.to_ascii_lowercase()) == compact
            }
            _ => name.eq_ignore_ascii_case(self.full.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_full_and_compact() {
        let cases: &[(&str, HeaderKind)] = &[
            ("Via", HeaderKind::Via),
            ("v", HeaderKind::Via),
            ("ViA", HeaderKind::Via),
            ("f", HeaderKind::From),
            ("FROM", HeaderKind::From),
            ("t", HeaderKind::To),
            ("to", HeaderKind::To),
            ("i", HeaderKind::CallId),
            ("call-id", HeaderKind::CallId),
            ("cseq", HeaderKind::CSeq),
            ("M", HeaderKind::Contact),
            ("Contact", HeaderKind::Contact),
            ("l", HeaderKind::ContentLength),
            ("Content-Length", HeaderKind::ContentLength),
            ("c", HeaderKind::ContentType),
            ("content-type", HeaderKind::ContentType),
            ("MaX-fOrWaRdS", HeaderKind::MaxForwards),
            ("Route", HeaderKind::Route),
            ("record-route", HeaderKind::RecordRoute),
            ("k", HeaderKind::Other),
            ("C%6Fntact", HeaderKind::Other),
            ("", HeaderKind::Other),
            ("CALL-id", HeaderKind::CallId),
            ("cONTENT-lENGTH", HeaderKind::ContentLength),
            ("Max\rForwards", HeaderKind::Other),
            ("Max_Forwards", HeaderKind::Other),
            ("Max-Forwardz", HeaderKind::Other),
            ("Call-IDs", HeaderKind::Other),
            ("Vi", HeaderKind::Other),
            ("V\u{1}a", HeaderKind::Other),
            ("Content-Lengt\u{e9}", HeaderKind::Other),
            ("Record-Route-X-Yz", HeaderKind::Other),
            ("@", HeaderKind::Other),
            ("6", HeaderKind::Other),
        ];
        for (name, kind) in cases {
            assert_eq!(HeaderKind::of(name.as_bytes()), *kind, "{name}");
        }
    }

    #[test]
    fn compact_names() {
        for (c, full) in COMPACT_FORMS {
            let letter = (*c as char).to_string();
            assert!(same_name(&letter, full));
            assert!(same_name(&letter.to_uppercase(), &full.to_lowercase()));
            assert_eq!(full_name(&letter), *full);
        }
        assert!(same_name("k", "Supported"));
        assert!(same_name("s", "subject"));
        assert!(same_name("o", "Event"));
        assert!(same_name("x", "Session-Expires"));
        assert!(same_name("y", "Identity"));
        assert!(same_name("n", "Identity-Info"));
        assert!(!same_name("v", "f"));
        assert!(!same_name("Via", "Vias"));
        assert!(same_name("X-Foo", "x-foo"));
        assert!(!same_name("z", "Via"));
    }

    #[test]
    fn lists() {
        assert!(is_list("v"));
        assert!(is_list("Route"));
        assert!(is_list("k"));
        assert!(is_list("accept"));
        assert!(!is_list("From"));
        assert!(!is_list("Date"));
        assert!(!is_list("Authorization"));
        assert!(!is_list("X-Unknown"));
    }

    #[test]
    fn queries() {
        let q = NameQuery::new("Supported");
        assert!(q.matches(b"k", HeaderKind::Other));
        assert!(q.matches(b"SUPPORTED", HeaderKind::Other));
        assert!(!q.matches(b"v", HeaderKind::Via));
        let q = NameQuery::new("k");
        assert!(q.matches(b"Supported", HeaderKind::Other));
        let q = NameQuery::new("v");
        assert!(q.matches(b"Via", HeaderKind::Via));
        assert!(!q.matches(b"Route", HeaderKind::Route));
        let q = NameQuery::new("z");
        assert!(q.matches(b"Z", HeaderKind::Other));
        assert!(!q.matches(b"zz", HeaderKind::Other));
    }

    #[test]
    fn query_lists_agree_with_the_table() {
        let names = [
            "Via",
            "v",
            "From",
            "f",
            "To",
            "t",
            "Call-ID",
            "i",
            "CSeq",
            "Contact",
            "m",
            "l",
            "Content-Length",
            "c",
            "Content-Type",
            "Max-Forwards",
            "Route",
            "Record-Route",
            "k",
            "Supported",
            "Authorization",
            "X-Foo",
            "allow",
        ];
        for name in names {
            assert_eq!(NameQuery::new(name).is_list(), is_list(name), "{name}");
        }
    }
}
