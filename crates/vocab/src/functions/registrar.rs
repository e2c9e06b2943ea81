//! registrar: REGISTER processing and location lookups over usrloc
//! (`sip.registrar.*`).

use super::Arg::{Optional, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "registrar";
const T: Option<&str> = Some("registrar");
const R: RouteMask = RouteMask::REQUEST;

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "save", &[Str, Optional(&Str), Optional(&Str)], R),
    Function::new(
        M,
        T,
        "lookup",
        &[Str, Optional(&Str), Optional(&Str)],
        RouteMask::REQUEST.or(RouteMask::FAILURE),
    ),
    Function::new(M, T, "is_registered", &[Str, Optional(&Str)], R),
    Function::new(
        M,
        T,
        "is_contact_registered",
        &[Str, Optional(&Str), Optional(&Str), Optional(&Str)],
        R,
    ),
    Function::new(M, T, "is_ip_registered", &[Str, Str, Str], R),
    Function::new(M, T, "remove", &[Str, Str, Optional(&Str)], R),
];
