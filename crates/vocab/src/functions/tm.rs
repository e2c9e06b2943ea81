//! tm: transactions (`sip.tm.*`).

use super::Arg::{Format, Int, Optional, Regex, RouteName, Str};
use super::Function;
use crate::route::{RouteMask, RouteType};

const M: &str = "tm";
const T: Option<&str> = Some("tm");
const RELAY: RouteMask = RouteMask::REQUEST
    .or(RouteMask::FAILURE)
    .or(RouteMask::BRANCH);

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "t_relay", &[Optional(&Str), Optional(&Str)], RELAY),
    Function::new(
        M,
        T,
        "t_on_failure",
        &[RouteName(RouteType::Failure)],
        RELAY,
    ),
    Function::new(M, T, "t_on_reply", &[RouteName(RouteType::OnReply)], RELAY),
    Function::new(M, T, "t_on_branch", &[RouteName(RouteType::Branch)], RELAY),
    Function::new(
        M,
        T,
        "t_check_trans",
        &[],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::ONREPLY),
    ),
    Function::new(M, T, "t_newtran", &[], RouteMask::REQUEST),
    Function::new(
        M,
        T,
        "t_reply",
        &[Int, Str],
        RouteMask::REQUEST.or(RouteMask::FAILURE),
    ),
    Function::new(
        M,
        T,
        "t_reply_with_body",
        &[Int, Format, Format],
        RouteMask::REQUEST.or(RouteMask::FAILURE),
    ),
    Function::new(
        M,
        T,
        "t_flush_flags",
        &[],
        RouteMask::REQUEST.or(RouteMask::BRANCH),
    ),
    Function::new(M, T, "t_add_hdrs", &[Format], RouteMask::REQUEST),
    Function::new(
        M,
        T,
        "t_replicate",
        &[Format, Optional(&Str)],
        RouteMask::REQUEST.or(RouteMask::FAILURE),
    ),
    Function::new(M, T, "t_add_cancel_reason", &[Format], RouteMask::REQUEST),
    Function::new(
        M,
        T,
        "t_new_request",
        &[
            Format,
            Format,
            Format,
            Format,
            Optional(&Format),
            Optional(&Format),
        ],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        T,
        "t_write_unix",
        &[Format, Format],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::BRANCH),
    ),
    Function::new(
        M,
        T,
        "t_write_req",
        &[Format, Format],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::BRANCH),
    ),
    Function::new(
        M,
        T,
        "t_wait_for_new_branches",
        &[Optional(&Int)],
        RouteMask::REQUEST,
    ),
    Function::new(
        M,
        T,
        "t_wait_no_more_branches",
        &[],
        RouteMask::REQUEST
            .or(RouteMask::ONREPLY)
            .or(RouteMask::BRANCH)
            .or(RouteMask::FAILURE),
    ),
    Function::new(
        M,
        T,
        "t_inject_branches",
        &[Str, Optional(&Str)],
        RouteMask::REQUEST.or(RouteMask::ONREPLY),
    ),
    Function::new(M, T, "t_anycast_replicate", &[], RouteMask::REQUEST),
    Function::new(
        M,
        T,
        "t_reply_by_callid",
        &[Int, Format, Optional(&Format), Optional(&Format)],
        RouteMask::REQUEST,
    ),
    Function::new(
        M,
        T,
        "t_was_cancelled",
        &[],
        RouteMask::FAILURE.or(RouteMask::ONREPLY),
    ),
    Function::new(
        M,
        T,
        "t_check_status",
        &[Regex],
        RouteMask::FAILURE.or(RouteMask::ONREPLY),
    ),
    // "all" or "last".
    Function::new(
        M,
        T,
        "t_local_replied",
        &[Str],
        RouteMask::REQUEST
            .or(RouteMask::BRANCH)
            .or(RouteMask::FAILURE)
            .or(RouteMask::ONREPLY),
    ),
    Function::new(
        M,
        T,
        "t_cancel_branch",
        &[Optional(&Str)],
        RouteMask::ONREPLY,
    ),
];
