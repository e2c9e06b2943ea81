//! Max-Forwards as the proxy processes it (RFC 3261 §16.3 step 3, §16.6
//! step 3); the maxfwd module's function and `forward` share it.

use crate::proxy::context::Call;
use crate::sip::HeaderKind;

/// Upper bound of a decremented Max-Forwards (OpenSIPS maxfwd `max_limit`).
pub const MAX_LIMIT: u32 = 256;

/// What processing Max-Forwards found.
#[derive(Debug, PartialEq, Eq)]
pub enum MaxFwd {
    /// Decremented (or added); the request may go on.
    Ok,
    /// It was 0: the request must not be forwarded (483).
    Exhausted,
    /// Not a number.
    Bad,
}

/// Decrements Max-Forwards, capping it at `limit`, or adds it as `absent`
/// when missing. Done once per message.
pub fn process(call: &mut Call, limit: u32, absent: u32) -> Result<MaxFwd, super::ProxyError> {
    if call.maxfwd_done {
        return Ok(MaxFwd::Ok);
    }
    let m = call.msg.as_mut().ok_or(super::ProxyError::NoRequest)?;
    let idx = m.header_index(HeaderKind::MaxForwards);
    let r = match (m.max_forwards(), idx) {
        (None, _) | (_, None) => {
            m.prepend_header("Max-Forwards", &absent.to_string());
            MaxFwd::Ok
        }
        (Some(Ok(0)), _) => MaxFwd::Exhausted,
        (Some(Ok(n)), Some(i)) => {
            m.set_header_value(i, &(n - 1).min(limit).to_string());
            MaxFwd::Ok
        }
        (Some(Err(_)), _) => MaxFwd::Bad,
    };
    if r == MaxFwd::Ok {
        call.maxfwd_done = true;
    } else if r == MaxFwd::Exhausted {
        call.last_error = Some((483, "Too Many Hops"));
    } else {
        call.last_error = Some((400, "Bad Max-Forwards"));
    }
    Ok(r)
}
