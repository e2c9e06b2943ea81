//! signaling: replies stateful or stateless as the request has a
//! transaction (`sip.signaling.*`).

use super::Arg::{Format, Int};
use super::Function;
use crate::route::RouteMask;

pub(super) static FUNCTIONS: &[Function] = &[Function::new(
    "signaling",
    Some("signaling"),
    "send_reply",
    &[Int, Format],
    RouteMask::REQUEST
        .or(RouteMask::ERROR)
        .or(RouteMask::FAILURE),
)];
