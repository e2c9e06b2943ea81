//! Route types (OpenSIPS route blocks) and the masks functions declare to
//! say where they may run.

/// The kind of route a Lua function runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteType {
    Request,
    Branch,
    Failure,
    OnReply,
    Local,
    Startup,
    Timer,
    Event,
    Error,
}

impl RouteType {
    /// The global table holding routes of this type.
    pub fn table(self) -> &'static str {
        match self {
            RouteType::Request => "route",
            RouteType::Branch => "branch_route",
            RouteType::Failure => "failure_route",
            RouteType::OnReply => "onreply_route",
            RouteType::Local => "local_route",
            RouteType::Startup => "startup_route",
            RouteType::Timer => "timer_route",
            RouteType::Event => "event_route",
            RouteType::Error => "error_route",
        }
    }

    /// The route type whose table (and OpenSIPS block keyword) is `name`.
    pub fn from_table(name: &str) -> Option<RouteType> {
        RouteType::ALL.into_iter().find(|t| t.table() == name)
    }

    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }

    pub const ALL: [RouteType; 9] = [
        RouteType::Request,
        RouteType::Branch,
        RouteType::Failure,
        RouteType::OnReply,
        RouteType::Local,
        RouteType::Startup,
        RouteType::Timer,
        RouteType::Event,
        RouteType::Error,
    ];
}

/// A set of route types (OpenSIPS `REQUEST_ROUTE|FAILURE_ROUTE|…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteMask(pub u16);

impl RouteMask {
    pub const REQUEST: RouteMask = RouteMask(1 << RouteType::Request as u16);
    pub const BRANCH: RouteMask = RouteMask(1 << RouteType::Branch as u16);
    pub const FAILURE: RouteMask = RouteMask(1 << RouteType::Failure as u16);
    pub const ONREPLY: RouteMask = RouteMask(1 << RouteType::OnReply as u16);
    pub const LOCAL: RouteMask = RouteMask(1 << RouteType::Local as u16);
    pub const ERROR: RouteMask = RouteMask(1 << RouteType::Error as u16);
    pub const TIMER: RouteMask = RouteMask(1 << RouteType::Timer as u16);
    pub const EVENT: RouteMask = RouteMask(1 << RouteType::Event as u16);
    /// Routes that can suspend while a function waits on I/O (the others
    /// run in the middle of tm's work or before traffic).
    pub const WAIT: RouteMask = RouteMask(
        RouteMask::REQUEST.0 | RouteMask::FAILURE.0 | RouteMask::TIMER.0 | RouteMask::EVENT.0,
    );
    /// Routes that carry a message.
    pub const MSG: RouteMask = RouteMask(
        RouteMask::REQUEST.0
            | RouteMask::BRANCH.0
            | RouteMask::FAILURE.0
            | RouteMask::ONREPLY.0
            | RouteMask::LOCAL.0
            | RouteMask::ERROR.0,
    );
    /// Routes that carry a request.
    pub const REQ: RouteMask = RouteMask(
        RouteMask::REQUEST.0 | RouteMask::BRANCH.0 | RouteMask::FAILURE.0 | RouteMask::LOCAL.0,
    );
    pub const ANY: RouteMask = RouteMask(u16::MAX);

    pub const fn or(self, o: RouteMask) -> RouteMask {
        RouteMask(self.0 | o.0)
    }

    pub fn allows(self, t: RouteType) -> bool {
        self.0 & t.bit() != 0
    }

    /// Names of the route tables allowed, for docs.
    pub fn names(self) -> String {
        if self == RouteMask::ANY {
            return "any".into();
        }
        RouteType::ALL
            .iter()
            .filter(|t| self.allows(**t))
            .map(|t| t.table())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip() {
        for t in RouteType::ALL {
            assert_eq!(RouteType::from_table(t.table()), Some(t));
        }
        assert_eq!(RouteType::from_table("nowhere"), None);
    }

    #[test]
    fn masks() {
        let m = RouteMask::REQUEST.or(RouteMask::FAILURE);
        assert!(m.allows(RouteType::Failure) && !m.allows(RouteType::OnReply));
        assert_eq!(m.names(), "route, failure_route");
        assert_eq!(RouteMask::ANY.names(), "any");
        assert!(
            RouteMask::MSG.allows(RouteType::Error) && !RouteMask::MSG.allows(RouteType::Timer)
        );
    }
}
