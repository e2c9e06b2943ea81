//! auth_db: digest authorization against the subscriber table
//! (`sip.auth_db.*`).

use super::Arg::{Format, Pv, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "auth_db";
const T: Option<&str> = Some("auth_db");
const R: RouteMask = RouteMask::REQUEST;
const RFL: RouteMask = RouteMask::REQUEST
    .or(RouteMask::FAILURE)
    .or(RouteMask::LOCAL);

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "www_authorize", &[Str, Str], R),
    Function::new(M, T, "proxy_authorize", &[Str, Str], R),
    Function::new(M, T, "db_is_to_authorized", &[Str], R),
    Function::new(M, T, "db_is_from_authorized", &[Str], R),
    Function::new(M, T, "db_does_uri_exist", &[Format, Str], RFL),
    Function::new(M, T, "db_get_auth_id", &[Str, Format, Pv, Pv], RFL),
];
