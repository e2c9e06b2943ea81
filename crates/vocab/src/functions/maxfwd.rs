//! maxfwd (`sip.maxfwd.*`).

use super::Arg::Int;
use super::Function;
use crate::route::RouteMask;

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(
        "maxfwd",
        Some("maxfwd"),
        "mf_process_maxfwd_header",
        &[Int],
        RouteMask::REQUEST,
    ),
    Function::new(
        "maxfwd",
        Some("maxfwd"),
        "is_maxfwd_lt",
        &[Int],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::BRANCH),
    ),
];
