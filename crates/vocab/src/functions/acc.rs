//! acc: accounting (`sip.acc.*`).

use super::Arg::{Optional, Str};
use super::Function;
use crate::route::RouteMask;

pub(super) static FUNCTIONS: &[Function] = &[Function::new(
    "acc",
    Some("acc"),
    "do_accounting",
    &[Str, Optional(&Str), Optional(&Str)],
    RouteMask::REQUEST
        .or(RouteMask::BRANCH)
        .or(RouteMask::FAILURE),
)];
