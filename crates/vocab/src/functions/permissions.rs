//! permissions: the address tables and the allow/deny files
//! (`sip.permissions.*`).

use super::Arg::{Format, Int, Optional, Pv, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "permissions";
const T: Option<&str> = Some("permissions");
const R: RouteMask = RouteMask::REQUEST
    .or(RouteMask::FAILURE)
    .or(RouteMask::LOCAL)
    .or(RouteMask::BRANCH);

const RF: RouteMask = RouteMask::REQUEST
    .or(RouteMask::FAILURE)
    .or(RouteMask::LOCAL);

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(
        M,
        T,
        "check_address",
        &[
            Int,
            Format,
            Format,
            Format,
            Optional(&Pv),
            Optional(&Format),
            Optional(&Str),
        ],
        R.or(RouteMask::TIMER),
    ),
    Function::new(
        M,
        T,
        "check_source_address",
        &[Int, Optional(&Pv), Optional(&Format), Optional(&Str)],
        R,
    ),
    Function::new(M, T, "get_source_group", &[Pv, Optional(&Str)], R),
    Function::new(M, T, "allow_routing", &[Optional(&Str)], RF),
    Function::new(M, T, "allow_register", &[Str], RF),
    Function::new(M, T, "allow_uri", &[Str, Format], R.or(RouteMask::TIMER)),
];
