//! dialog: dialog tracking, profiles and dialog values (`sip.dialog.*`).

use super::Arg::{Format, Int, Optional, Pv, RouteName, Str};
use super::Function;
use crate::route::RouteMask;
use crate::route::RouteType;

const M: &str = "dialog";
const T: Option<&str> = Some("dialog");
const R: RouteMask = RouteMask::REQUEST;
const MSG: RouteMask = RouteMask::REQUEST
    .or(RouteMask::BRANCH)
    .or(RouteMask::FAILURE)
    .or(RouteMask::ONREPLY);

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "set_dlg_sharing_tag", &[Format], R),
    Function::new(M, T, "create_dialog", &[Optional(&Format)], R),
    Function::new(M, T, "match_dialog", &[Optional(&Int)], R),
    Function::new(M, T, "validate_dialog", &[], R),
    Function::new(M, T, "fix_route_dialog", &[], R),
    Function::new(
        M,
        T,
        "set_dlg_profile",
        &[Str, Optional(&Format), Optional(&Int)],
        MSG,
    ),
    Function::new(M, T, "unset_dlg_profile", &[Str, Optional(&Format)], MSG),
    Function::new(M, T, "is_in_profile", &[Str, Optional(&Format)], MSG),
    Function::new(
        M,
        T,
        "get_profile_size",
        &[Str, Optional(&Format), Optional(&Pv)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        T,
        "get_dialog_info",
        &[Str, Pv, Str, Format, Optional(&Pv)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        T,
        "get_dialogs_by_val",
        &[Str, Format, Pv, Pv],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        T,
        "get_dialogs_by_profile",
        &[Str, Optional(&Format), Pv, Pv],
        RouteMask::ANY,
    ),
    Function::new(M, T, "get_dialog_vals", &[Pv, Pv, Format], RouteMask::ANY),
    Function::new(
        M,
        T,
        "load_dialog_ctx",
        &[Format, Optional(&Str)],
        RouteMask::ANY,
    ),
    Function::new(M, T, "unload_dialog_ctx", &[], RouteMask::ANY),
    Function::new(
        M,
        T,
        "dlg_on_answer",
        &[Optional(&RouteName(RouteType::Request))],
        MSG,
    ),
    Function::new(
        M,
        T,
        "dlg_on_timeout",
        &[Optional(&RouteName(RouteType::Request))],
        MSG,
    ),
    Function::new(
        M,
        T,
        "dlg_on_hangup",
        &[Optional(&RouteName(RouteType::Request))],
        MSG,
    ),
    Function::new(
        M,
        T,
        "dlg_send_sequential",
        &[Str, Str, Optional(&Str), Optional(&Str), Optional(&Str)],
        RouteMask::ANY,
    ),
    Function::new(M, T, "store_dlg_value", &[Str, Format], MSG),
    Function::new(M, T, "fetch_dlg_value", &[Str, Optional(&Pv)], MSG),
    Function::new(M, T, "set_dlg_flag", &[Str], RouteMask::ANY),
    Function::new(M, T, "reset_dlg_flag", &[Str], RouteMask::ANY),
    Function::new(M, T, "is_dlg_flag_set", &[Str], RouteMask::ANY),
    Function::new(M, T, "test_and_set_dlg_flag", &[Str, Int], RouteMask::ANY),
];
