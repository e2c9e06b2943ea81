//! cfgutils (`sip.cfgutils.*`): sleeps, probabilities, clocks, locks.

use super::Arg::{Int, Optional, Pv, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "cfgutils";
const T: Option<&str> = Some("cfgutils");

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "sleep", &[Int], RouteMask::WAIT),
    Function::new(M, T, "usleep", &[Int], RouteMask::WAIT),
    Function::new(M, T, "rand_set_prob", &[Int], RouteMask::ANY),
    Function::new(M, T, "rand_reset_prob", &[], RouteMask::ANY),
    Function::new(M, T, "rand_get_prob", &[], RouteMask::ANY),
    Function::new(M, T, "rand_event", &[Optional(&Int)], RouteMask::ANY),
    Function::new(M, T, "set_count", &[Str, Optional(&Pv)], RouteMask::ANY),
    Function::new(M, T, "set_select_weight", &[Str], RouteMask::ANY),
    Function::new(
        M,
        T,
        "get_accurate_time",
        &[Optional(&Pv), Optional(&Pv), Optional(&Pv)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        T,
        "ts_usec_delta",
        &[Int, Int, Int, Int, Optional(&Pv), Optional(&Pv)],
        RouteMask::ANY,
    ),
    Function::new(M, T, "pkg_status", &[], RouteMask::ANY),
    Function::new(M, T, "shm_status", &[], RouteMask::ANY),
    Function::new(M, T, "abort", &[], RouteMask::ANY),
    Function::new(
        M,
        T,
        "check_time_rec",
        &[Str, Optional(&Int)],
        RouteMask::ANY,
    ),
    Function::new(M, T, "get_static_lock", &[Str], RouteMask::ANY),
    Function::new(M, T, "release_static_lock", &[Str], RouteMask::ANY),
    Function::new(M, T, "get_dynamic_lock", &[Str], RouteMask::ANY),
    Function::new(M, T, "release_dynamic_lock", &[Str], RouteMask::ANY),
    Function::new(M, T, "strings_share_lock", &[Str, Str], RouteMask::ANY),
];
