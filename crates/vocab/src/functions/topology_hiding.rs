//! topology_hiding: hiding each side's addresses from the other
//! (`sip.topology_hiding.*`).

use super::Arg::{Format, Optional, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "topology_hiding";
const T: Option<&str> = Some("topology_hiding");
const R: RouteMask = RouteMask::REQUEST;

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "topology_hiding", &[Optional(&Format)], R),
    Function::new(M, T, "topology_hiding_match", &[Optional(&Str)], R),
];
