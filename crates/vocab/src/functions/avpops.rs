//! avpops: AVPs from and to a database and operations on them
//! (`sip.avpops.*`).

use super::Arg::{Int, Optional, Str, Subst};
use super::Function;
use crate::route::RouteMask;

const M: &str = "avpops";
const T: Option<&str> = Some("avpops");

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "avp_db_query", &[Str, Optional(&Str), Optional(&Int)], RouteMask::WAIT),
    Function::new(M, T, "avp_db_load", &[Str, Str, Optional(&Int), Optional(&Str)], RouteMask::WAIT),
    Function::new(M, T, "avp_db_store", &[Str, Str, Optional(&Int)], RouteMask::WAIT),
    Function::new(M, T, "avp_db_delete", &[Str, Str, Optional(&Int)], RouteMask::WAIT),
    Function::new(M, T, "avp_delete", &[Str], RouteMask::ANY),
    Function::new(M, T, "avp_copy", &[Str, Str], RouteMask::ANY),
    Function::new(M, T, "avp_shuffle", &[Str], RouteMask::ANY),
    Function::new(M, T, "avp_pushto", &[Str, Str], RouteMask::ANY),
    Function::new(M, T, "avp_check", &[Str, Str], RouteMask::ANY),
    Function::new(M, T, "avp_op", &[Str, Str], RouteMask::ANY),
    Function::new(M, T, "avp_subst", &[Str, Subst], RouteMask::ANY),
    Function::new(M, T, "is_avp_set", &[Str], RouteMask::ANY),
    Function::new(M, T, "avp_print", &[], RouteMask::ANY),
];
