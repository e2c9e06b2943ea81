//! cfgutils: `sleep`/`usleep` (`sip.cfgutils.*`).

use super::Arg::Int;
use super::Function;
use crate::route::RouteMask;

const M: &str = "cfgutils";
const T: Option<&str> = Some("cfgutils");

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "sleep", &[Int], RouteMask::WAIT),
    Function::new(M, T, "usleep", &[Int], RouteMask::WAIT),
];
