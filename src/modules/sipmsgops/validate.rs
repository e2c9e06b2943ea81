//! `sipmsg_validate([flags [, reason_pv]])` (OpenSIPS
//! modules/sipmsgops/sipmsgops.c `w_sip_validate`): RFC 3261 checks with
//! OpenSIPS's negative codes as the second result and the reason written
//! to a pseudo-variable.

use mlua::{Lua, MultiValue};

use super::ret_code;
use crate::proxy::context::Call;
use crate::script::exports::Args;
use crate::script::host::State;
use crate::sip::{Contacts, HeaderKind, Message, Method, NameAddr, Uri};

/// sipmsgops.c `check_hostname`: starts alphanumeric (or '['), no '..',
/// ends alphanumeric, '.' or ']'.
fn hostname_ok(h: &str) -> bool {
    let b = h.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if !(first.is_ascii_alphanumeric() || first == b'[') {
        return false;
    }
    if !(last.is_ascii_alphanumeric() || last == b'.' || last == b']') {
        return false;
    }
    if b.len() > 2 {
        for w in b[..b.len() - 1].windows(2) {
            let c = w[1];
            if !(c.is_ascii_alphanumeric() || c == b'-' || c == b':' || c == b'.') {
                return false;
            }
            if c == b'.' && w[0] == b'.' {
                return false;
            }
        }
    }
    true
}

/// The flags: s (SDP), h (headers), m (no Max-Forwards check), r
/// (R-URI), t (To), f (From), c (Contact); others are ignored.
#[derive(Default)]
struct Flags {
    sdp: bool,
    hdrs: bool,
    no_mf: bool,
    ruri: bool,
    to: bool,
    from: bool,
    contact: bool,
}

fn flags(s: &str) -> Flags {
    let mut f = Flags::default();
    for c in s.chars().map(|c| c.to_ascii_lowercase()) {
        match c {
            's' => f.sdp = true,
            'h' => f.hdrs = true,
            'm' => f.no_mf = true,
            'r' => f.ruri = true,
            't' => f.to = true,
            'f' => f.from = true,
            'c' => f.contact = true,
            _ => {}
        }
    }
    f
}

type Fail = (i64, &'static str);

fn check_addr(
    a: Option<NameAddr<'_>>,
    codes: (i64, i64),
    what: [&'static str; 2],
) -> Result<(), Fail> {
    let u = a
        .and_then(|a| Uri::parse(a.uri).ok())
        .ok_or((codes.0, what[0]))?;
    if !u.host.is_empty() && !hostname_ok(u.host) {
        return Err((codes.1, what[1]));
    }
    Ok(())
}

fn validate(m: &Message, call: &Call, f: &Flags) -> Result<(), Fail> {
    if m.call_id().is_none() {
        return Err((-3, "message doesn't have callid"));
    }
    if call.src.proto.is_stream() && m.header("Content-Length").is_none() {
        return Err((-4, "message doesn't have Content Length header"));
    }
    let body = m.body();
    let ct = m.header("Content-Type");
    if f.sdp
        && !body.is_empty()
        && ct.is_some_and(|c| crate::sip::sdp::mime_of(c) == "application/sdp")
        && !body.starts_with(b"v=")
    {
        return Err((-6, "failed to parse SDP message"));
    }
    if m.cseq().is_none() {
        return Err((-7, ""));
    }
    if m.from().is_none() {
        return Err((-8, ""));
    }
    if m.to().is_none() {
        return Err((-9, ""));
    }
    if m.top_via().is_none() {
        return Err((-10, ""));
    }
    if f.to {
        check_addr(
            m.to(),
            (-22, -23),
            [
                "failed to parse 'To' header",
                "invalid domain for 'To' header",
            ],
        )?;
    }
    if f.from {
        check_addr(
            m.from(),
            (-24, -25),
            [
                "failed to parse 'From' header",
                "invalid domain for 'From' header",
            ],
        )?;
    }
    let method = m.method_kind();
    if m.is_request() {
        if f.ruri {
            let u = Uri::parse(m.ruri()).map_err(|_| (-11, "failed to parse R-URI"))?;
            if !u.host.is_empty() && !hostname_ok(u.host) {
                return Err((-12, "invalid domain for R-URI"));
            }
        }
        if !f.no_mf && m.max_forwards().is_none() {
            return Err((-13, ""));
        }
        if f.contact {
            check_contact(m, method, false)?;
        }
        if method != Method::Register && m.header("Path").is_some() {
            return Err((-15, "PATH header supported only for REGISTERs"));
        }
    } else {
        let code = m.status().unwrap_or(0);
        if method != Method::Cancel {
            let need = match code {
                405 => Some((-16, "Allow")),
                423 if method == Method::Register => Some((-17, "Min-Expires")),
                407 => Some((-18, "Proxy-Authenticate")),
                420 => Some((-19, "Unsupported")),
                401 => Some((-20, "WWW-Authenticate")),
                _ => None,
            };
            if let Some((rc, h)) = need {
                if m.header(h).is_none() {
                    return Err((rc, ""));
                }
            }
        }
        if f.contact && (200..400).contains(&code) {
            check_contact(m, method, true)?;
        }
    }
    if method != Method::Cancel && !body.is_empty() && ct.is_none() {
        return Err((-21, ""));
    }
    if f.hdrs {
        let r = if m.is_request() {
            m.validate_request()
        } else {
            m.validate_response()
        };
        r.map_err(|_| (-2, "failed to parse headers"))?;
        if m.headers().any(|h| h.kind == HeaderKind::Contact) && m.contacts().is_err() {
            return Err((-2, "failed to parse headers"));
        }
    }
    Ok(())
}

/// sipmsgops.c `validate_contact_header`.
fn check_contact(m: &Message, method: Method, reply: bool) -> Result<(), Fail> {
    let with = matches!(
        method,
        Method::Invite | Method::Register | Method::Update | Method::Subscribe | Method::Refer
    );
    if !with {
        return Ok(());
    }
    if m.header("Contact").is_none() {
        return Err((-14, "SIP message doesn't have 'Contact' header"));
    }
    match m.contacts() {
        Err(_) => Err((-26, "failed to parse 'Contact' header")),
        Ok(Contacts::Star) => {
            if method != Method::Register || reply {
                return Err((
                    -30,
                    "'Contact' header with '*' is valid only in a REGISTER request",
                ));
            }
            match m.header("Expires").map(str::trim) {
                Some("0") => Ok(()),
                _ => Err((-30, "'Contact: *' needs 'Expires: 0'")),
            }
        }
        Ok(Contacts::List(l)) => {
            if l.iter().any(|c| Uri::parse(c.uri).is_err()) {
                return Err((-26, "failed to parse 'Contact' header"));
            }
            Ok(())
        }
    }
}

pub fn sipmsg_validate(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let f = flags(&a.opt_str(0)?.unwrap_or_default());
    let out = match a.opt_str(1)? {
        Some(s) => Some(st.pv.borrow_mut().spec(&s).map_err(|e| a.err(e))?),
        None => None,
    };
    let mut call = st.call.borrow_mut();
    let res = match call.msg.as_ref() {
        Some(m) => validate(m, &call, &f),
        None => Err((-1, "no message object")),
    };
    match res {
        Ok(()) => ret_code(lua, 1),
        Err((rc, reason)) => {
            if let Some(spec) = out {
                crate::pv::set(&mut call, &spec, crate::pv::Value::Str(reason.to_string()))
                    .map_err(|e| a.err(e))?;
            }
            ret_code(lua, rc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        for ok in [
            "example.com",
            "a",
            "10.0.0.1",
            "[2001:db8::1]",
            "example.com.",
        ] {
            assert!(hostname_ok(ok), "{ok}");
        }
        for bad in ["-a.com", "a..b", "a_b.com", "a-", ""] {
            assert!(!hostname_ok(bad), "{bad}");
        }
    }
}
