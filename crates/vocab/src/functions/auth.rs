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
    Function::new(
        M,
        T,
        "append_rpid_hf",
        &[Optional(&Str), Optional(&Str)],
        R.or(RouteMask::BRANCH).or(RouteMask::FAILURE),
    ),
    Function::new(M, T, "is_rpid_user_e164", &[], R),
];
