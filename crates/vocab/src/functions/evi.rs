//! evi: the event interface's script functions (`sip.raise_event`,
//! `sip.subscribe_event`, OpenSIPS core names).

use super::Arg::{Int, Optional, Str, Table};
use super::Function;
use crate::route::RouteMask;

const M: &str = "evi";

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(
        M,
        None,
        "raise_event",
        &[Str, Optional(&Table)],
        RouteMask::ANY,
    ),
    Function::new(
        M,
        None,
        "subscribe_event",
        &[Str, Str, Optional(&Int)],
        RouteMask::ANY,
    ),
];
