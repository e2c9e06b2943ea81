//! Remote-Party-ID (OpenSIPS 3.4 modules/auth/rpid.c): `append_rpid_hf`
//! adds `Remote-Party-ID: <prefix><rpid><suffix>` built from the AVP named
//! by `rpid_avp` (which auth_db's `load_credentials` fills from the
//! subscriber's `rpid` column), and `is_rpid_user_e164` checks that the
//! user of that URI is an E.164 number.

use mlua::{Lua, MultiValue};

use super::conf;
use crate::modules::registrar::coded;
use crate::proxy::context::Value;
use crate::script::exports::Args;
use crate::script::host::State;
use crate::sip::{NameAddr, Uri};

/// The newest value of the rpid AVP when it is a non-empty string
/// (rpid.c returns -1 for none, an empty one or an integer).
fn rpid_value(st: &State, fname: &str) -> Option<String> {
    let Some(name) = conf().rpid_avp.clone() else {
        tracing::error!("{fname}: auth's rpid_avp is not set");
        return None;
    };
    let call = st.call.borrow();
    match call.avps.get(&name).and_then(|l| l.first()) {
        Some(Value::Str(s)) if !s.is_empty() => Some(s.to_string()),
        _ => {
            tracing::debug!("{fname}: no string in $avp({name})");
            None
        }
    }
}

/// `append_rpid_hf([prefix, suffix])`: both or neither (rpid.c); without
/// them the `rpid_prefix` / `rpid_suffix` params. The header goes after
/// the last header of the request.
pub fn append_rpid_hf(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (prefix, suffix) = match (a.opt_str(0)?, a.opt_str(1)?) {
        (Some(p), Some(s)) => (p, s),
        (None, None) => {
            let c = conf();
            (c.rpid_prefix.clone(), c.rpid_suffix.clone())
        }
        _ => return Err(a.err("give both prefix and suffix, or neither")),
    };
    if prefix.contains(['\r', '\n']) || suffix.contains(['\r', '\n']) {
        return Err(a.err("prefix and suffix must not hold line breaks"));
    }
    let Some(rpid) = rpid_value(st, a.fname) else {
        return coded(lua, -1);
    };
    // A value from the database must stay one header line.
    if rpid.contains(['\r', '\n']) {
        tracing::error!("{}: the rpid AVP holds a line break; not appended", a.fname);
        return coded(lua, -1);
    }
    let line = format!("Remote-Party-ID: {prefix}{rpid}{suffix}\r\n");
    let mut call = st.call.borrow_mut();
    let m = call
        .msg
        .as_mut()
        .ok_or_else(|| a.err("no message in this route"))?;
    let at = m.headers_end();
    match m.replace_at(at..at, line) {
        Ok(_) => coded(lua, 1),
        Err(e) => {
            tracing::error!("{}: {e}", a.fname);
            coded(lua, -1)
        }
    }
}

/// OpenSIPS `is_e164` (ut.h): '+' then 2 to 15 digits.
pub fn is_e164(user: &str) -> bool {
    user.strip_prefix('+')
        .is_some_and(|d| (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `<` occurs outside a quoted string (rpid.c find_not_quoted).
fn has_unquoted_lt(s: &str) -> bool {
    let mut quoted = false;
    let mut esc = false;
    for b in s.bytes() {
        match b {
            _ if esc => esc = false,
            b'\\' if quoted => esc = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => return true,
            _ => {}
        }
    }
    false
}

/// The user part of an rpid value: a name-addr when it holds `<`, else a
/// bare URI.
pub fn rpid_user(rpid: &str) -> Option<String> {
    let uri = match has_unquoted_lt(rpid) {
        true => NameAddr::parse(rpid).ok()?.uri,
        false => rpid.trim(),
    };
    let u = Uri::parse(uri).ok()?;
    Some(u.user.unwrap_or_default().to_string())
}

/// `is_rpid_user_e164()`: 1 when the rpid AVP's URI user is E.164, else
/// -1 (also without an AVP or with one that does not parse).
pub fn is_rpid_user_e164(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let Some(rpid) = rpid_value(st, a.fname) else {
        return coded(lua, -1);
    };
    let ok = match rpid_user(&rpid) {
        Some(u) => is_e164(&u),
        None => {
            tracing::error!("{}: cannot parse the RPID '{rpid}'", a.fname);
            false
        }
    };
    coded(lua, if ok { 1 } else { -1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_as_opensips_ut_h() {
        assert!(is_e164("+12"));
        assert!(is_e164("+123456789012345"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+1"));
        assert!(!is_e164("12345"));
        assert!(!is_e164("+12a4"));
        assert!(!is_e164(""));
    }

    #[test]
    fn rpid_user_from_name_addr_or_uri() {
        assert_eq!(rpid_user("\"A <b>\" <sip:+4930123@x.org>;party=calling").as_deref(), Some("+4930123"));
        assert_eq!(rpid_user("sip:+4930123@x.org").as_deref(), Some("+4930123"));
        assert_eq!(rpid_user("<sip:alice@x.org>").as_deref(), Some("alice"));
        assert_eq!(rpid_user("not a uri"), None);
    }
}
