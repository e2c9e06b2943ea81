//! Every Lua-visible function of a lunasip module: where it sits under
//! `sip`, its OpenSIPS name, its argument kinds and the routes it may run
//! in. One file per module; the daemon's drift test (`tests/vocab.rs`)
//! keeps them equal to `lunasip::modules::ALL`.

mod acc;
mod alias_db;
mod auth;
mod auth_db;
mod avpops;
mod cachedb_local;
mod cfgutils;
mod clusterer;
mod core;
mod dialog;
mod dispatcher;
mod domain;
mod event_routing;
mod evi;
mod maxfwd;
mod nathelper;
mod permissions;
mod rabbitmq;
mod registrar;
mod rr;
mod signaling;
mod sipmsgops;
mod sl;
mod statistics;
mod textops;
mod tm;
mod topology_hiding;

use crate::route::{RouteMask, RouteType};

/// What an argument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arg {
    /// An integer (a numeric string is accepted).
    Int,
    /// Plain text.
    Str,
    /// Text in which the function expands pseudo-variables (`"$rm from $si"`).
    Format,
    /// A regular expression (POSIX extended, as OpenSIPS).
    Regex,
    /// A sed-like substitution `/re/replacement/flags` (textops `subst`).
    Subst,
    /// The name of a route of this type, which the script must define.
    RouteName(RouteType),
    /// A pseudo-variable spec the function writes (`"$var(n)"`).
    Pv,
    /// A flag: a number 0..63 or a name.
    Flag,
    /// A Lua table of names to values (event parameters).
    Table,
    /// Text the function reads pseudo-variables from itself (avpops'
    /// `"$avp(x)/g"`, `"le/$avp(lim)"`, `avp_db_query`'s SQL, whose
    /// variables become bound parameters): passed as written, never
    /// expanded before the call.
    Verbatim,
    /// An argument that may be left out.
    Optional(&'static Arg),
}

impl Arg {
    pub fn is_optional(self) -> bool {
        matches!(self, Arg::Optional(_))
    }

    /// The kind without [`Arg::Optional`].
    pub fn kind(self) -> Arg {
        match self {
            Arg::Optional(a) => a.kind(),
            a => a,
        }
    }

    /// The route type this argument names, if it names one.
    pub fn route(self) -> Option<RouteType> {
        match self.kind() {
            Arg::RouteName(t) => Some(t),
            _ => None,
        }
    }
}

/// One Lua-visible function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// OpenSIPS module (`"core"` for core functions).
    pub module: &'static str,
    /// Sub-table of `sip` (`Some("sl")` → `sip.sl.*`); None: on `sip` itself.
    pub table: Option<&'static str>,
    /// Name in Lua.
    pub name: &'static str,
    /// OpenSIPS name when it differs from `name`.
    pub opensips: Option<&'static str>,
    pub args: &'static [Arg],
    pub routes: RouteMask,
}

impl Function {
    pub const fn new(
        module: &'static str,
        table: Option<&'static str>,
        name: &'static str,
        args: &'static [Arg],
        routes: RouteMask,
    ) -> Function {
        Function {
            module,
            table,
            name,
            opensips: None,
            args,
            routes,
        }
    }

    /// `sip.tm.t_relay` style full name.
    pub fn full_name(&self) -> String {
        match self.table {
            Some(t) => format!("sip.{t}.{}", self.name),
            None => format!("sip.{}", self.name),
        }
    }

    /// The name an opensips.cfg calls it by.
    pub fn opensips_name(&self) -> &'static str {
        self.opensips.unwrap_or(self.name)
    }

    /// Arguments that must be given.
    pub fn min_args(&self) -> usize {
        self.args.iter().filter(|a| !a.is_optional()).count()
    }

    pub fn max_args(&self) -> usize {
        self.args.len()
    }

    /// Positions of the arguments that name a route, with the route type.
    pub fn route_args(&self) -> impl Iterator<Item = (usize, RouteType)> + '_ {
        self.args
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.route().map(|t| (i, t)))
    }
}

/// The functions of each module, in the daemon's registration order.
static MODULES: &[&[Function]] = &[
    core::FUNCTIONS,
    sipmsgops::FUNCTIONS,
    sl::FUNCTIONS,
    signaling::FUNCTIONS,
    maxfwd::FUNCTIONS,
    rr::FUNCTIONS,
    statistics::FUNCTIONS,
    clusterer::FUNCTIONS,
    tm::FUNCTIONS,
    dispatcher::FUNCTIONS,
    cfgutils::FUNCTIONS,
    registrar::FUNCTIONS,
    cachedb_local::FUNCTIONS,
    textops::FUNCTIONS,
    evi::FUNCTIONS,
    event_routing::FUNCTIONS,
    auth::FUNCTIONS,
    auth_db::FUNCTIONS,
    rabbitmq::FUNCTIONS,
    nathelper::FUNCTIONS,
    domain::FUNCTIONS,
    alias_db::FUNCTIONS,
    avpops::FUNCTIONS,
    permissions::FUNCTIONS,
    dialog::FUNCTIONS,
    acc::FUNCTIONS,
    topology_hiding::FUNCTIONS,
];

/// Every function.
pub fn all() -> impl Iterator<Item = &'static Function> {
    MODULES.iter().flat_map(|m| m.iter())
}

/// Looks a function up by its full Lua name (`"sip.tm.t_on_failure"`).
pub fn function(full_name: &str) -> Option<&'static Function> {
    let rest = full_name.strip_prefix("sip.")?;
    let (table, name) = match rest.rsplit_once('.') {
        Some((t, n)) => (Some(t), n),
        None => (None, rest),
    };
    all().find(|f| f.table == table && f.name == name)
}

/// Looks a function up by the name an opensips.cfg uses (`"t_on_failure"`).
pub fn by_opensips_name(name: &str) -> Option<&'static Function> {
    all().find(|f| f.opensips_name() == name)
}

/// Functions with an argument that names a route: (function, position, type).
pub fn route_args() -> impl Iterator<Item = (&'static Function, usize, RouteType)> {
    all().flat_map(|f| f.route_args().map(move |(i, t)| (f, i, t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_on_failure_names_a_failure_route() {
        let f = function("sip.tm.t_on_failure").unwrap();
        assert_eq!(f.args, &[Arg::RouteName(RouteType::Failure)]);
        assert_eq!(f.args[0].route(), Some(RouteType::Failure));
        assert_eq!(f.module, "tm");
        assert_eq!(f.full_name(), "sip.tm.t_on_failure");
        assert!(f.routes.allows(RouteType::Branch) && !f.routes.allows(RouteType::OnReply));
    }

    #[test]
    fn route_naming_functions() {
        let mut got: Vec<_> = route_args()
            .map(|(f, i, t)| (f.opensips_name(), i, t))
            .collect();
        got.sort_by_key(|g| g.0);
        assert_eq!(
            got,
            [
                // dialog's event routes name a plain `route[name]`.
                ("dlg_on_answer", 0, RouteType::Request),
                ("dlg_on_hangup", 0, RouteType::Request),
                ("dlg_on_timeout", 0, RouteType::Request),
                // event_routing's notification route is a plain route too.
                ("notify_on_event", 2, RouteType::Request),
                ("t_on_branch", 0, RouteType::Branch),
                ("t_on_failure", 0, RouteType::Failure),
                ("t_on_reply", 0, RouteType::OnReply),
            ]
        );
    }

    #[test]
    fn lookups() {
        let f = function("sip.forward").unwrap();
        assert_eq!((f.module, f.table), ("core", None));
        assert_eq!((f.min_args(), f.max_args()), (0, 1));
        assert!(function("sip.sl.sl_send_reply").is_some());
        assert!(function("sip.sl_send_reply").is_none());
        assert!(function("sip.tm.nothing").is_none());
        assert!(function("tm.t_relay").is_none());
        let d = function("sip.dispatcher.ds_select_dst").unwrap();
        assert_eq!((d.min_args(), d.max_args()), (2, 5));
        assert_eq!(d.args[4], Arg::Optional(&Arg::Int));
        assert_eq!(d.args[4].kind(), Arg::Int);
        let s = by_opensips_name("usleep").unwrap();
        assert_eq!(s.full_name(), "sip.cfgutils.usleep");
        assert_eq!((s.args, s.routes), (&[Arg::Int][..], RouteMask::WAIT));
        let x = function("sip.xlog").unwrap();
        assert_eq!(x.args, &[Arg::Optional(&Arg::Str), Arg::Format]);
        let c = function("sip.dispatcher.ds_count").unwrap();
        assert_eq!(c.args[2].kind(), Arg::Pv);
    }

    #[test]
    fn names_are_unique() {
        let mut lua: Vec<_> = all().map(|f| f.full_name()).collect();
        let mut os: Vec<_> = all().map(|f| f.opensips_name()).collect();
        let n = lua.len();
        lua.sort();
        lua.dedup();
        os.sort();
        os.dedup();
        assert_eq!((lua.len(), os.len()), (n, n));
    }
}
