//! domain: local domains from the `domain` table (`sip.domain.*`).

use super::Arg::{Format, Optional, Pv};
use super::Function;
use crate::route::RouteMask;

const M: &str = "domain";
const T: Option<&str> = Some("domain");
const R: RouteMask = RouteMask::REQUEST
    .or(RouteMask::BRANCH)
    .or(RouteMask::FAILURE)
    .or(RouteMask::LOCAL);

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "is_from_local", &[Optional(&Pv)], R),
    Function::new(M, T, "is_uri_host_local", &[Optional(&Pv)], R),
    Function::new(M, T, "is_domain_local", &[Format, Optional(&Pv)], R),
];
