//! permissions: the address table (`sip.permissions.*`).

use super::Arg::{Format, Int, Optional, Pv, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "permissions";
const T: Option<&str> = Some("permissions");
const R: RouteMask = RouteMask::REQUEST
    .or(RouteMask::FAILURE)
    .or(RouteMask::LOCAL)
    .or(RouteMask::BRANCH);

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
];
