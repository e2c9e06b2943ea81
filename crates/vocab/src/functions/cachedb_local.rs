//! cachedb_local: the local cache engine (`sip.cachedb_local.*`).

use super::Arg::{Format, Optional};
use super::Function;
use crate::route::RouteMask;

pub(super) static FUNCTIONS: &[Function] = &[Function::new(
    "cachedb_local",
    Some("cachedb_local"),
    "cache_remove_chunk",
    &[Optional(&Format), Format],
    RouteMask::ANY,
)];
