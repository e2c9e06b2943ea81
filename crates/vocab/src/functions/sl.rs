//! sl: stateless replies (`sip.sl.*`).

use super::Arg::{Format, Int};
use super::Function;
use crate::route::RouteMask;

const M: &str = "sl";
const T: Option<&str> = Some("sl");
const ROUTES: RouteMask = RouteMask::REQUEST
    .or(RouteMask::FAILURE)
    .or(RouteMask::ERROR);

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "sl_send_reply", &[Int, Format], ROUTES),
    Function::new(M, T, "sl_reply_error", &[], ROUTES),
];
