//! statistics (on `sip` itself).

use super::Arg::{Int, Pv, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "statistics";

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, None, "update_stat", &[Str, Int], RouteMask::ANY),
    Function::new(M, None, "reset_stat", &[Str], RouteMask::ANY),
    Function::new(M, None, "stat_iter_init", &[Str, Str], RouteMask::ANY),
    Function::new(M, None, "stat_iter_next", &[Pv, Pv, Str], RouteMask::ANY),
    Function::new(
        M,
        None,
        "update_stat_series",
        &[Str, Str, Int],
        RouteMask::ANY,
    ),
];
