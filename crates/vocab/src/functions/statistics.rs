//! statistics (on `sip` itself).

use super::Arg::{Int, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "statistics";

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, None, "update_stat", &[Str, Int], RouteMask::ANY),
    Function::new(M, None, "reset_stat", &[Str], RouteMask::ANY),
];
