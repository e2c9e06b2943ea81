//! OpenSIPS core functions (on `sip` itself).

use super::Arg::{Flag, Format, Int, Optional, Pv, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "core";

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(
        M,
        None,
        "forward",
        &[Optional(&Str)],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::BRANCH),
    ),
    Function::new(M, None, "drop", &[], RouteMask::ANY),
    Function::new(M, None, "exit", &[], RouteMask::ANY),
    Function::new(M, None, "setflag", &[Flag], RouteMask::MSG),
    Function::new(M, None, "resetflag", &[Flag], RouteMask::MSG),
    Function::new(M, None, "isflagset", &[Flag], RouteMask::MSG),
    Function::new(M, None, "setbflag", &[Flag, Optional(&Int)], RouteMask::ANY),
    Function::new(
        M,
        None,
        "resetbflag",
        &[Flag, Optional(&Int)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "isbflagset",
        &[Flag, Optional(&Int)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "is_myself",
        &[Format, Optional(&Int)],
        RouteMask::ANY,
    ),
    // The level comes first and may be left out, as in OpenSIPS.
    Function::new(M, None, "xlog", &[Optional(&Str), Format], RouteMask::ANY),
    Function::new(M, None, "log", &[Optional(&Str), Str], RouteMask::ANY),
    Function::new(M, None, "force_rport", &[], RouteMask::REQ),
    Function::new(M, None, "add_local_rport", &[], RouteMask::REQ),
    // The cache functions (the daemon's "core (cache)" table).
    Function::new(
        M,
        None,
        "cache_store",
        &[Format, Format, Format, Optional(&Int)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "cache_raw_query",
        &[Format, Str, Optional(&Str)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "cache_fetch",
        &[Format, Format, Optional(&Pv)],
        RouteMask::ANY,
    ),
    Function::new(M, None, "cache_remove", &[Format, Format], RouteMask::ANY),
    Function::new(
        M,
        None,
        "cache_add",
        &[Format, Format, Int, Int, Optional(&Pv)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "cache_sub",
        &[Format, Format, Int, Int, Optional(&Pv)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "cache_counter_fetch",
        &[Format, Format, Optional(&Pv)],
        RouteMask::ANY,
    ),
    // R-URI and $du functions (the daemon's "core (R-URI)" table).
    Function::new(M, None, "seturi", &[Format], RouteMask::ANY),
    Function::new(M, None, "sethost", &[Format], RouteMask::ANY),
    Function::new(M, None, "sethostport", &[Format], RouteMask::ANY),
    Function::new(M, None, "setuser", &[Format], RouteMask::ANY),
    Function::new(M, None, "setuserpass", &[Format], RouteMask::ANY),
    Function::new(M, None, "setport", &[Format], RouteMask::ANY),
    Function::new(M, None, "prefix", &[Format], RouteMask::ANY),
    Function::new(M, None, "strip", &[Int], RouteMask::ANY),
    Function::new(M, None, "strip_tail", &[Int], RouteMask::ANY),
    Function::new(M, None, "revert_uri", &[], RouteMask::ANY),
    Function::new(M, None, "setdsturi", &[Format], RouteMask::ANY),
    Function::new(M, None, "resetdsturi", &[], RouteMask::ANY),
    Function::new(M, None, "isdsturiset", &[], RouteMask::ANY),
    Function::new(
        M,
        None,
        "construct_uri",
        &[
            Format,
            Optional(&Format),
            Format,
            Optional(&Format),
            Optional(&Format),
            Optional(&Pv),
        ],
        RouteMask::ANY,
    ),
    Function::new(M, None, "pv_printf", &[Pv, Format], RouteMask::ANY),
    // The daemon's "core (sending)" table.
    Function::new(M, None, "set_advertised_address", &[Format], RouteMask::ANY),
    Function::new(M, None, "set_advertised_port", &[Format], RouteMask::ANY),
    Function::new(M, None, "force_send_socket", &[Format], RouteMask::ANY),
    Function::new(
        M,
        None,
        "send",
        &[Format, Optional(&Format)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "get_timestamp",
        &[Optional(&Pv), Optional(&Pv)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "force_tcp_alias",
        &[Optional(&Int)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "script_trace",
        &[Optional(&Int), Optional(&Format), Optional(&Str)],
        RouteMask::ANY,
    ),
    // The daemon's "core (destination set)" table.
    Function::new(M, None, "remove_branch", &[Int], RouteMask::ANY),
    Function::new(
        M,
        None,
        "serialize_branches",
        &[Int, Optional(&Int)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "next_branches",
        &[],
        RouteMask::REQUEST.or(RouteMask::FAILURE),
    ),
    // The daemon declares it with tm (its "core (branches)" table).
    Function::new(
        M,
        None,
        "append_branch",
        &[Optional(&Str)],
        RouteMask::REQUEST.or(RouteMask::FAILURE),
    ),
    // The daemon's "core (blacklists)" table (OpenSIPS core_cmds.c).
    Function::new(M, None, "use_blacklist", &[Str], RouteMask::ANY),
    Function::new(M, None, "unuse_blacklist", &[Str], RouteMask::ANY),
    Function::new(
        M,
        None,
        "check_blacklist_rule",
        &[Str, Str, Optional(&Int), Optional(&Str), Optional(&Str)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "add_blacklist_rule",
        &[
            Str,
            Str,
            Optional(&Int),
            Optional(&Str),
            Optional(&Str),
            Optional(&Int),
        ],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "del_blacklist_rule",
        &[Str, Str, Optional(&Int), Optional(&Str), Optional(&Str)],
        RouteMask::ANY,
    ),
    // The daemon's "core (status report)" table (OpenSIPS status_report.c).
    Function::new(
        M,
        None,
        "sr_check_status",
        &[Str, Optional(&Str)],
        RouteMask::ANY,
    ),
];
