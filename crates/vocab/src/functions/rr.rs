//! rr: Record-Route and loose routing (`sip.rr.*`).

use super::Arg::{Format, Optional, Regex, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "rr";
const T: Option<&str> = Some("rr");
const RR: RouteMask = RouteMask::REQUEST
    .or(RouteMask::BRANCH)
    .or(RouteMask::FAILURE);

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "record_route", &[Optional(&Format)], RR),
    Function::new(
        M,
        T,
        "record_route_preset",
        &[Format, Optional(&Format)],
        RR,
    ),
    Function::new(M, T, "add_rr_param", &[Format], RR),
    Function::new(M, T, "check_route_param", &[Regex], RouteMask::REQUEST),
    Function::new(M, T, "is_direction", &[Str], RouteMask::REQUEST),
    Function::new(M, T, "loose_route", &[], RouteMask::REQUEST),
];
