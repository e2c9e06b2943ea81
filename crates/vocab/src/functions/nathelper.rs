//! nathelper: NAT detection, Contact/SDP rewriting and keepalives
//! (`sip.nathelper.*`).

use super::Arg::{Int, Optional, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "nathelper";
const T: Option<&str> = Some("nathelper");
const ANY: RouteMask = RouteMask::REQUEST
    .or(RouteMask::ONREPLY)
    .or(RouteMask::FAILURE)
    .or(RouteMask::BRANCH)
    .or(RouteMask::LOCAL);

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "nat_uac_test", &[Str], ANY),
    Function::new(
        M,
        T,
        "fix_nated_contact",
        &[Optional(&Str)],
        RouteMask::REQUEST
            .or(RouteMask::ONREPLY)
            .or(RouteMask::BRANCH)
            .or(RouteMask::LOCAL),
    ),
    Function::new(M, T, "fix_nated_register", &[], RouteMask::REQUEST),
    Function::new(M, T, "add_rcv_param", &[Optional(&Int)], RouteMask::REQUEST),
    Function::new(
        M,
        T,
        "fix_nated_sdp",
        &[Str, Optional(&Str), Optional(&Str)],
        ANY,
    ),
];
