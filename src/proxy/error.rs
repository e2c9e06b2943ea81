//! The proxy layer's error: why a request could not be relayed, and the
//! SIP answer `sl_reply_error` gives for it (OpenSIPS's `err2reason`).

/// Why relaying failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The function needs a request in the current call.
    #[error("needs a request")]
    NoRequest,
    /// Not a URI lunasip can route to: bad syntax, another scheme, `sips`
    /// (no TLS yet), an unknown `transport=`.
    #[error("{0}")]
    BadUri(String),
    /// A destination name with no address (RFC 3263).
    #[error("cannot resolve {0}")]
    Unresolvable(String),
    /// Every address of the destination is on a blacklist in use
    /// (OpenSIPS E_IP_BLOCKED).
    #[error("{0} is blacklisted")]
    Blocked(String),
    /// No listening socket of the destination's transport and family.
    #[error("no {proto} socket to reach {dest}")]
    NoSocket { proto: &'static str, dest: String },
    /// Max-Forwards is not a number.
    #[error("bad Max-Forwards")]
    BadMaxForwards,
    /// The request has nothing a transaction can be keyed on.
    #[error("the request has no transaction identity")]
    NoTransaction,
    /// A local request that cannot be built (bad headers from the caller).
    #[error("{0}")]
    BadLocalRequest(String),
}

impl ProxyError {
    /// The reply `sl_reply_error` sends for it.
    pub fn reply(&self) -> (u16, &'static str) {
        match self {
            ProxyError::BadUri(_) => (400, "Bad Destination"),
            ProxyError::BadMaxForwards => (400, "Bad Max-Forwards"),
            // OpenSIPS E_BAD_ADDRESS (-476): err2reason answers 476.
            ProxyError::Unresolvable(_) => (476, "Unresolvable destination"),
            // OpenSIPS E_IP_BLOCKED (-473, error.c): "Filtered destination".
            ProxyError::Blocked(_) => (473, "Filtered destination"),
            _ => (500, "Server Internal Error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_follow_opensips() {
        assert_eq!(
            ProxyError::Unresolvable("x".into()).reply(),
            (476, "Unresolvable destination")
        );
        assert_eq!(ProxyError::BadUri("x".into()).reply().0, 400);
        assert_eq!(ProxyError::NoTransaction.reply().0, 500);
    }
}
