//! Route types (OpenSIPS route blocks) and the masks functions declare to
//! say where they may run: defined in the `vocab` crate, re-exported here.

pub use vocab::route::{RouteMask, RouteType};

pub use crate::proxy::context::route_name;
