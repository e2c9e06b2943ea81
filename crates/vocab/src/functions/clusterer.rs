//! clusterer: node addresses and generic messages between the nodes of
//! a cluster (`sip.clusterer.*`).

use super::Arg::{Int, Optional, Pv, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "clusterer";
const T: Option<&str> = Some("clusterer");

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(
        M,
        T,
        "cluster_check_addr",
        &[Int, Str, Optional(&Str)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        T,
        "cluster_send_req",
        &[Int, Int, Str, Optional(&Pv)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        T,
        "cluster_broadcast_req",
        &[Int, Str, Optional(&Pv)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        T,
        "cluster_send_rpl",
        &[Int, Int, Str, Pv],
        RouteMask::ANY,
    ),
];
