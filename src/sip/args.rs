//! What scripts hand to the message functions, checked before it
//! touches a message: header names, header lines, method lists (OpenSIPS
//! sipmsgops.c fixups). Also used by `lunasip check` on literals.

use super::Method;

/// OpenSIPS's method ids (parser/msg_parser.h), as a bit each.
pub fn method_bit(m: Method) -> u32 {
    match m {
        Method::Invite => 1,
        Method::Cancel => 2,
        Method::Ack => 4,
        Method::Bye => 8,
        Method::Info => 16,
        Method::Options => 32,
        Method::Update => 64,
        Method::Register => 128,
        Method::Message => 256,
        Method::Subscribe => 512,
        Method::Notify => 1024,
        Method::Prack => 2048,
        Method::Refer => 4096,
        Method::Publish => 8192,
        Method::Other => 16384,
    }
}

/// What `is_method`'s argument asks for (sipmsgops.c `fixup_method`):
/// known methods by id (names case-insensitive), a single unknown one by
/// name; a `|` list may hold known methods only.
#[derive(Debug, PartialEq, Eq)]
pub enum MethodWant {
    Ids(u32),
    Name(String),
}

pub fn parse_methods(arg: &str) -> Result<MethodWant, String> {
    if arg.is_empty() {
        return Err("empty method name".into());
    }
    let list = arg.contains('|') || arg.contains(',');
    let mut ids = 0;
    for name in arg.split(['|', ',']) {
        let name = name.trim();
        let kind = method_any_case(name);
        if name.is_empty() || (kind == Method::Other && list) {
            return Err(format!(
                "'{name}' in '{arg}': a list may name only methods OpenSIPS knows (INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, MESSAGE, SUBSCRIBE, NOTIFY, PRACK, REFER, PUBLISH)"
            ));
        }
        if kind == Method::Other {
            return Ok(MethodWant::Name(name.to_string()));
        }
        ids |= method_bit(kind);
    }
    Ok(MethodWant::Ids(ids))
}

/// A method name in any case (as OpenSIPS's `is_method` compares them),
/// without allocating: the known names are at most 9 letters.
fn method_any_case(name: &str) -> Method {
    let mut up = [0u8; 9];
    match up.get_mut(..name.len()) {
        Some(buf) => {
            buf.copy_from_slice(name.as_bytes());
            buf.make_ascii_uppercase();
            std::str::from_utf8(buf).map_or(Method::Other, Method::of)
        }
        None => Method::Other,
    }
}

/// A header name as a script gives it: a token (RFC 3261 §25.1), so no
/// CR, LF, colon or space can slip into a header line.
pub fn check_name(name: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("'{}' is not a header name", name.escape_debug()));
    }
    Ok(())
}

/// Header lines as a script gives them: each `Name: value`, CRLF
/// terminated (a missing final CRLF is added, as lunasip always did,
/// rather than glued to the next line as OpenSIPS would), folding
/// allowed; no empty line, no bare CR or LF.
pub fn header_lines(text: &str) -> Result<String, String> {
    let mut t = text.to_string();
    if t.ends_with('\n') && !t.ends_with("\r\n") {
        t.pop();
    }
    if !t.ends_with("\r\n") {
        t.push_str("\r\n");
    }
    let bad = |why: &str| {
        Err(format!(
            "'{}' is not header lines: {why}",
            text.escape_debug()
        ))
    };
    let body = &t[..t.len() - 2];
    for (i, line) in body.split("\r\n").enumerate() {
        if line.contains(['\r', '\n']) {
            return bad("a bare CR or LF");
        }
        if line.starts_with([' ', '\t']) {
            if i == 0 {
                return bad("it starts with a continuation line");
            }
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            return bad("a line without ':'");
        };
        if check_name(name.trim_end()).is_err() {
            return bad("a bad header name");
        }
    }
    Ok(t)
}

/// nathelper's `nat_uac_test` tests, by bit from bit 0 (OpenSIPS 3.x
/// names).
pub const NAT_UAC_TEST_FLAGS: &[&str] = &[
    "private-contact",
    "diff-ip-src-via",
    "private-via",
    "private-sdp",
    "diff-port-src-via",
    "diff-ip-src-contact",
    "diff-port-src-contact",
    "carrier-grade-nat",
];

/// nathelper's `fix_nated_sdp` actions, by bit from bit 0.
pub const FIX_NATED_SDP_FLAGS: &[&str] = &[
    "add-dir-active",
    "rewrite-media-ip",
    "add-no-rtpproxy",
    "rewrite-origin-ip",
    "rewrite-null-ips",
];

/// A flags argument as OpenSIPS 3.x `fixup_named_flags` reads it: names
/// from `names` separated by commas (blanks around each allowed), matched
/// exactly; or the number older configs write (bit i = `names[i]`).
pub fn named_flags(arg: &str, names: &[&str]) -> Result<u32, String> {
    let t = arg.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: u64 = t.parse().map_err(|_| format!("flags '{t}' out of range"))?;
        let all = (1u64 << names.len()) - 1;
        if n & !all != 0 {
            return Err(format!("flags {n}: only bits 0-{} exist", names.len() - 1));
        }
        return Ok(n as u32);
    }
    let mut bits = 0;
    for name in t.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match names.iter().position(|n| *n == name) {
            Some(i) => bits |= 1 << i,
            None => {
                return Err(format!(
                    "unknown flag '{name}' (known: {})",
                    names.join(", ")
                ))
            }
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_lists() {
        assert_eq!(parse_methods("INVITE"), Ok(MethodWant::Ids(1)));
        assert_eq!(parse_methods("invite|ack|BYE"), Ok(MethodWant::Ids(13)));
        assert_eq!(parse_methods("KDMQ"), Ok(MethodWant::Name("KDMQ".into())));
        assert!(parse_methods("INVITE|KDMQ").is_err());
        assert!(parse_methods("").is_err());
        assert_eq!(
            parse_methods(" subscribe "),
            Ok(MethodWant::Ids(method_bit(Method::Subscribe)))
        );
        // Longer than any known name, and non-ASCII: another method.
        assert_eq!(
            parse_methods("SUBSCRIBES"),
            Ok(MethodWant::Name("SUBSCRIBES".into()))
        );
        assert_eq!(
            parse_methods("INVITÉ"),
            Ok(MethodWant::Name("INVITÉ".into()))
        );
        assert!(parse_methods("INVITE|").is_err());
    }

    #[test]
    fn header_text() {
        assert_eq!(header_lines("X-A: 1").unwrap(), "X-A: 1\r\n");
        assert_eq!(header_lines("X-A: 1\n").unwrap(), "X-A: 1\r\n");
        assert_eq!(
            header_lines("X-A: 1\r\nX-B: 2\r\n").unwrap(),
            "X-A: 1\r\nX-B: 2\r\n"
        );
        header_lines("X-A: 1\r\n  folded\r\n").unwrap();
        for bad in [
            "X-A: 1\r\n\r\n",
            "X-A 1",
            "X-A: 1\nX-B: 2",
            "Bad Name: 1",
            ": x",
            " X: 1",
        ] {
            assert!(header_lines(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("X-Foo").is_ok());
        assert!(check_name("X-Foo\r\nX-Evil").is_err());
        assert!(check_name("").is_err());
    }
}
