//! Route types (OpenSIPS route blocks) and the masks functions declare to
//! say where they may run: defined in the `vocab` crate, re-exported here.

pub use vocab::route::{RouteMask, RouteType};

/// A route's name as `$route.name` keeps it: `"main"` as is, any other
/// interned once per worker thread. Only names of route functions the
/// script defines get here, so the set stays as small as the script.
pub fn route_name(name: &str) -> &'static str {
    use std::cell::RefCell;
    use std::collections::HashSet;
    thread_local! {
        static NAMES: RefCell<HashSet<&'static str>> = RefCell::new(HashSet::new());
    }
    if name == "main" {
        return "main";
    }
    NAMES.with(|n| {
        let mut n = n.borrow_mut();
        if let Some(s) = n.get(name) {
            return *s;
        }
        let s: &'static str = Box::leak(name.into());
        n.insert(s);
        s
    })
}
