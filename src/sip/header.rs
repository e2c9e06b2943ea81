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
    /// before comparing any bytes.
    pub fn of(name: &[u8]) -> HeaderKind {
        let eq = |full: &str| name.eq_ignore_ascii_case(full.as_bytes());
        match name.len() {
            1 => match name[0].to_ascii_lowercase() {
                b'v' => HeaderKind::Via,
                b'f' => HeaderKind::From,
                b't' => HeaderKind::To,
                b'i' => HeaderKind::CallId,
                b'm' => HeaderKind::Contact,
                b'l' => HeaderKind::ContentLength,
                b'c' => HeaderKind::ContentType,
                _ => HeaderKind::Other,
            },
            2 if eq("To") => HeaderKind::To,
            3 if eq("Via") => HeaderKind::Via,
            4 if eq("From") => HeaderKind::From,
            4 if eq("CSeq") => HeaderKind::CSeq,
            5 if eq("Route") => HeaderKind::Route,
            7 if eq("Call-ID") => HeaderKind::CallId,
            7 if eq("Contact") => HeaderKind::Contact,
            12 if eq("Content-Type") => HeaderKind::ContentType,
            12 if eq("Max-Forwards") => HeaderKind::MaxForwards,
            12 if eq("Record-Route") => HeaderKind::RecordRoute,
            14 if eq("Content-Length") => HeaderKind::ContentLength,
            _ => HeaderKind::Other,
        }
    }
}

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
    full: &'q str,
    compact: Option<u8>,
}

impl<'q> NameQuery<'q> {
    pub(crate) fn new(name: &'q str) -> NameQuery<'q> {
        let name = name.trim();
        let full = full_name(name);
        let kind = HeaderKind::of(full.as_bytes());
        // Known kinds match by kind; only other names need their letter.
        let compact = match (kind, name.as_bytes()) {
            (HeaderKind::Other, [c]) => Some(c.to_ascii_lowercase()),
            (HeaderKind::Other, _) => compact_name(full),
            _ => None,
        };
        NameQuery {
            kind,
            full,
            compact,
        }
    }

    /// Whether values of this header are split on commas.
    pub(crate) fn is_list(&self) -> bool {
        is_list(self.full)
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
            [c] => Some(c.to_ascii_lowercase()) == self.compact,
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
}
