//! rabbitmq: `sip.rabbitmq.rabbitmq_publish` (OpenSIPS rabbitmq module).

use super::Arg::{Format, Optional, Pv, Str};
use super::Function;
use crate::route::RouteMask;

const M: &str = "rabbitmq";

pub(super) static FUNCTIONS: &[Function] = &[Function::new(
    M,
    Some(M),
    "rabbitmq_publish",
    &[
        Str,
        Format,
        Format,
        Optional(&Format),
        Optional(&Pv),
        Optional(&Pv),
    ],
    RouteMask::ANY,
)];
