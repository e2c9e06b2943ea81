//! avpops: AVPs from and to a database and operations on them
//! (`sip.avpops.*`).

use super::Arg::{Int, Optional, Str, Subst, Verbatim as V};
use super::Function;
use crate::route::RouteMask;

const M: &str = "avpops";
const T: Option<&str> = Some("avpops");

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(
        M,
        T,
        "avp_db_query",
        &[V, Optional(&V), Optional(&Int)],
        RouteMask::WAIT,
    ),
    Function::new(
        M,
        T,
        "avp_db_load",
        &[V, V, Optional(&Int), Optional(&Str)],
        RouteMask::WAIT,
    ),
    Function::new(
        M,
        T,
        "avp_db_store",
        &[V, V, Optional(&Int)],
        RouteMask::WAIT,
    ),
    Function::new(
        M,
        T,
        "avp_db_delete",
        &[V, V, Optional(&Int)],
        RouteMask::WAIT,
    ),
    Function::new(M, T, "avp_delete", &[V], RouteMask::ANY),
    Function::new(M, T, "avp_copy", &[V, V], RouteMask::ANY),
    Function::new(M, T, "avp_shuffle", &[V], RouteMask::ANY),
    Function::new(M, T, "avp_pushto", &[V, V], RouteMask::ANY),
    Function::new(M, T, "avp_check", &[V, V], RouteMask::ANY),
    Function::new(M, T, "avp_op", &[V, V], RouteMask::ANY),
    Function::new(M, T, "avp_subst", &[V, Subst], RouteMask::ANY),
    Function::new(M, T, "is_avp_set", &[V], RouteMask::ANY),
    Function::new(M, T, "avp_print", &[], RouteMask::ANY),
];
