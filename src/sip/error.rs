//! Parse errors of the message layer.

/// Why a message (or one of its header values) did not parse. The text is
/// short, lowercase and safe to put in a 400's reason phrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("bad start line")]
    StartLine,
    #[error("unsupported sip version")]
    Version,
    #[error("bad header {0}")]
    Header(&'static str),
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("bad content-length")]
    ContentLength,
    #[error("truncated body")]
    Truncated,
    #[error("message too large")]
    TooLarge,
    #[error("{0} too long")]
    TooLong(&'static str),
    #[error("{0} host too long")]
    HostTooLong(&'static str),
    #[error("too many headers")]
    TooManyHeaders,
    #[error("cseq method mismatch")]
    CSeqMismatch,
    #[error("bad uri")]
    Uri,
    #[error("incomplete")]
    Incomplete,
}
