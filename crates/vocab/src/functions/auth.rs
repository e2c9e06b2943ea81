//! auth: digest challenges and credentials (`sip.auth.*`).

use super::Arg::{Optional, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "auth";
const T: Option<&str> = Some("auth");
const R: RouteMask = RouteMask::REQUEST;

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(
        M,
        T,
        "www_challenge",
        &[Str, Optional(&Str), Optional(&Str)],
        R,
    ),
    Function::new(
        M,
        T,
        "proxy_challenge",
        &[Str, Optional(&Str), Optional(&Str)],
        R,
    ),
    Function::new(M, T, "consume_credentials", &[], R),
];
