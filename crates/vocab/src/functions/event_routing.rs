//! event_routing: subscriptions to events from routes (OpenSIPS
//! modules/event_routing); `notify_on_event` names the plain `route[name]`
//! it runs at each matching event.

use super::Arg::{Int, Pv, RouteName, Str};
use super::Function;
use crate::route::{RouteMask, RouteType};

const M: &str = "event_routing";
const T: Option<&str> = Some("event_routing");

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(
        M,
        T,
        "notify_on_event",
        &[Str, Pv, RouteName(RouteType::Request), Int],
        RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::ONREPLY)
            .or(RouteMask::BRANCH)
            .or(RouteMask::EVENT),
    ),
    Function::new(M, T, "wait_for_event", &[Str, Pv, Int], RouteMask::WAIT),
];
