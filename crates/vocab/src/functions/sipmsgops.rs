//! sipmsgops (on `sip` itself).

use super::Arg::{Format, Int, Optional, Pv, Regex, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "sipmsgops";
const MSG: RouteMask = RouteMask::MSG;
const RURI: RouteMask = RouteMask::REQ;

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, None, "is_method", &[Str], MSG),
    Function::new(M, None, "has_totag", &[], MSG),
    Function::new(M, None, "append_hf", &[Format, Optional(&Str)], MSG),
    Function::new(M, None, "insert_hf", &[Format, Optional(&Str)], MSG),
    Function::new(M, None, "remove_hf", &[Str], MSG),
    Function::new(M, None, "remove_hf_re", &[Regex], MSG),
    Function::new(M, None, "remove_hf_glob", &[Str], MSG),
    Function::new(M, None, "is_present_hf", &[Str], MSG),
    Function::new(
        M,
        None,
        "append_to_reply",
        &[Format],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::BRANCH)
            .or(RouteMask::ERROR),
    ),
    Function::new(
        M,
        None,
        "change_reply_status",
        &[Int, Format],
        RouteMask::ONREPLY,
    ),
    Function::new(
        M,
        None,
        "ruri_has_param",
        &[Format, Optional(&Format)],
        RURI,
    ),
    Function::new(M, None, "ruri_add_param", &[Format], RURI),
    Function::new(M, None, "ruri_del_param", &[Format], RURI),
    Function::new(
        M,
        None,
        "is_uri_user_e164",
        &[Format],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::LOCAL),
    ),
    Function::new(M, None, "has_body", &[Optional(&Str)], MSG),
    Function::new(M, None, "has_body_part", &[Optional(&Str)], MSG),
    Function::new(M, None, "is_audio_on_hold", &[], MSG),
    Function::new(M, None, "stream_exists", &[Regex, Optional(&Regex)], MSG),
    Function::new(M, None, "stream_delete", &[Regex, Optional(&Regex)], MSG),
    Function::new(
        M,
        None,
        "append_time",
        &[],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::BRANCH)
            .or(RouteMask::LOCAL),
    ),
    Function::new(
        M,
        None,
        "append_urihf",
        &[Format, Format],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::BRANCH),
    ),
    Function::new(M, None, "ruri_tel2sip", &[], RURI),
    Function::new(M, None, "is_privacy", &[Str], MSG),
    Function::new(M, None, "list_hdr_has_option", &[Str, Format], MSG),
    Function::new(M, None, "list_hdr_add_option", &[Str, Format], MSG),
    Function::new(M, None, "list_hdr_remove_option", &[Str, Format], MSG),
    Function::new(M, None, "get_glob_headers_values", &[Str, Pv, Pv], MSG),
    Function::new(M, None, "get_updated_body_part", &[Optional(&Str), Pv], MSG),
    Function::new(
        M,
        None,
        "add_body_part",
        &[Format, Format, Optional(&Format)],
        MSG,
    ),
    Function::new(
        M,
        None,
        "remove_body_part",
        &[Optional(&Str), Optional(&Str)],
        MSG,
    ),
    Function::new(M, None, "codec_exists", &[Str, Optional(&Str)], MSG),
    Function::new(M, None, "codec_exists_re", &[Regex], MSG),
    Function::new(M, None, "codec_delete", &[Str, Optional(&Str)], MSG),
    Function::new(M, None, "codec_delete_re", &[Regex], MSG),
    Function::new(M, None, "codec_delete_except_re", &[Regex], MSG),
    Function::new(M, None, "codec_move_up", &[Str, Optional(&Str)], MSG),
    Function::new(M, None, "codec_move_up_re", &[Regex], MSG),
    Function::new(M, None, "codec_move_down", &[Str, Optional(&Str)], MSG),
    Function::new(M, None, "codec_move_down_re", &[Regex], MSG),
    Function::new(
        M,
        None,
        "sipmsg_validate",
        &[Optional(&Str), Optional(&Pv)],
        RouteMask::REQUEST
            .or(RouteMask::ONREPLY)
            .or(RouteMask::FAILURE)
            .or(RouteMask::BRANCH),
    ),
    Function::new(M, None, "msg_apply_changes", &[], MSG),
];
