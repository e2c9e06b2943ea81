//! auth_db: digest authorization against the subscriber table
//! (`sip.auth_db.*`).

use super::Arg::Str;
use super::Function;
use crate::route::RouteMask;

const M: &str = "auth_db";
const T: Option<&str> = Some("auth_db");
const R: RouteMask = RouteMask::REQUEST;

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "www_authorize", &[Str, Str], R),
    Function::new(M, T, "proxy_authorize", &[Str, Str], R),
];
