//! alias_db: user aliases from the `dbaliases` table (`sip.alias_db.*`).

use super::Arg::{Format, Optional, Pv, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "alias_db";
const T: Option<&str> = Some("alias_db");

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(
        M,
        T,
        "alias_db_lookup",
        &[Str, Optional(&Str)],
        RouteMask::REQUEST.or(RouteMask::FAILURE),
    ),
    Function::new(
        M,
        T,
        "alias_db_find",
        &[Str, Format, Pv, Optional(&Str)],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::ONREPLY)
            .or(RouteMask::BRANCH)
            .or(RouteMask::LOCAL),
    ),
];
