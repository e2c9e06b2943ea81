//! dispatcher: load balancing and failover (`sip.dispatcher.*`).

use super::Arg::{Int, Optional, Pv, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "dispatcher";
const T: Option<&str> = Some("dispatcher");
const SEL: RouteMask = RouteMask::REQUEST.or(RouteMask::FAILURE);
/// `(set, alg [, flags [, partition [, max_results]]])`: a set is a number
/// or `"partition:set"`, `alg` a number or a list like `"4,0"`.
const SELECT: &[super::Arg] = &[Str, Str, Optional(&Str), Optional(&Str), Optional(&Int)];

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "ds_select_dst", SELECT, SEL),
    Function::new(M, T, "ds_select_domain", SELECT, SEL),
    Function::new(M, T, "ds_next_dst", &[Optional(&Str)], SEL),
    Function::new(M, T, "ds_next_domain", &[Optional(&Str)], SEL),
    Function::new(M, T, "ds_mark_dst", &[Optional(&Str), Optional(&Str)], SEL),
    Function::new(
        M,
        T,
        "ds_is_in_list",
        &[Str, Int, Optional(&Str), Optional(&Str), Optional(&Int)],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::BRANCH)
            .or(RouteMask::ONREPLY),
    ),
    Function::new(
        M,
        T,
        "ds_count",
        &[Str, Str, Optional(&Pv), Optional(&Str)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        T,
        "ds_push_script_attrs",
        &[Str, Str, Int, Optional(&Int), Optional(&Str)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        T,
        "ds_get_script_attrs",
        &[Str, Int, Optional(&Str), Optional(&Pv)],
        RouteMask::ANY,
    ),
];
