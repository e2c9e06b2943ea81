//! The per-call context moved to `proxy::context`; these names stay for
//! code and tests written against them.

pub use crate::proxy::context::*;
