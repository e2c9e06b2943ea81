//! sipmsgops (on `sip` itself).

use super::Arg::{Format, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "sipmsgops";

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, None, "is_method", &[Str], RouteMask::MSG),
    Function::new(M, None, "has_totag", &[], RouteMask::MSG),
    Function::new(M, None, "append_hf", &[Format], RouteMask::MSG),
    Function::new(M, None, "remove_hf", &[Str], RouteMask::MSG),
    Function::new(M, None, "is_present_hf", &[Str], RouteMask::MSG),
];
