//! lunasip's OpenSIPS vocabulary, shared by the daemon and the
//! opensips.cfg translator: route types and masks, the Lua-visible
//! functions with their argument kinds, module parameters,
//! pseudo-variables and transformations. Plain data, std only.

pub mod functions;
pub mod params;
pub mod pv;
pub mod route;
pub mod tr;

pub use functions::{function, Arg, Function};
pub use pv::Pv;
pub use route::{RouteMask, RouteType};
pub use tr::Transformation;

/// Looks a pseudo-variable up by name, without `$` (`"hdr"`).
pub fn pseudo_variable(name: &str) -> Option<&'static Pv> {
    pv::lookup(name)
}

/// Looks a transformation up by its full name (`"uri.user"`).
pub fn transformation(name: &str) -> Option<&'static Transformation> {
    tr::lookup(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn crate_root_lookups() {
        let f = crate::function("sip.tm.t_on_failure").unwrap();
        assert_eq!(
            f.args.first(),
            Some(&crate::Arg::RouteName(crate::RouteType::Failure))
        );
        assert!(crate::pseudo_variable("ru").unwrap().writable);
        assert_eq!(crate::transformation("uri.param").unwrap().args, ",name");
    }
}
