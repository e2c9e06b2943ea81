//! acc: accounting (`sip.acc.*`).

use super::Arg::{Optional, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "acc";
const T: Option<&str> = Some("acc");
const R: RouteMask = RouteMask::REQUEST
    .or(RouteMask::BRANCH)
    .or(RouteMask::FAILURE);
const MSG: RouteMask = R.or(RouteMask::ONREPLY);

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(
        M,
        T,
        "do_accounting",
        &[Str, Optional(&Str), Optional(&Str)],
        R,
    ),
    Function::new(M, T, "acc_log_request", &[Str], MSG),
    Function::new(M, T, "acc_db_request", &[Str, Str], MSG),
    Function::new(M, T, "acc_evi_request", &[Str], MSG),
    Function::new(M, T, "acc_new_leg", &[], R),
    Function::new(
        M,
        T,
        "drop_accounting",
        &[Optional(&Str), Optional(&Str)],
        R,
    ),
    Function::new(M, T, "acc_load_ctx_from_dlg", &[], RouteMask::ANY),
    Function::new(M, T, "acc_unload_ctx_from_dlg", &[], RouteMask::ANY),
];
