//! The one table from OpenSIPS script functions to lunasip's Lua: every
//! function of the vocabulary under its OpenSIPS name, plus the older
//! names OpenSIPS still accepts. docs/migration.md is generated from it.

use vocab::{Arg, Function};

/// OpenSIPS names that are another spelling of a vocabulary function.
/// (OpenSIPS name, the function's OpenSIPS name in the vocabulary, why.)
pub static ALIASES: &[(&str, &str, &str)] = &[
    ("rewriteuri", "seturi", "OpenSIPS 1.x/2.x name"),
    ("rewritehost", "sethost", "OpenSIPS 1.x/2.x name"),
    ("rewritehostport", "sethostport", "OpenSIPS 1.x/2.x name"),
    ("rewriteuser", "setuser", "OpenSIPS 1.x/2.x name"),
    ("rewriteuserpass", "setuserpass", "OpenSIPS 1.x/2.x name"),
    ("rewriteport", "setport", "OpenSIPS 1.x/2.x name"),
    ("is_from_me", "is_myself", "lunasip's core check_self"),
    ("check_self", "is_myself", "OpenSIPS core check_self"),
];

/// Statements that look like calls and become Lua control flow.
pub static CONTROL: &[(&str, &str)] = &[
    (
        "route(name [, args])",
        "`route.name(args)`; numbered 1.x routes become `route.rN`",
    ),
    ("exit / return(0)", "`sip.exit()`"),
    ("drop", "`sip.drop()`"),
    (
        "return(n)",
        "`return n` (a route used in a condition returns 1 when it ends)",
    ),
    (
        "async(f(...), resume)",
        "`f(...)` (the route suspends by itself), then `route.resume()` and `sip.exit()`",
    ),
    (
        "launch(f(...) [, report [, \"p\"]])",
        "`sip.launch(function() … end)`: `f(...)` then `route.report(\"p\")` run detached, on a call with no message, while the route goes on",
    ),
    ("switch / case / default", "an `if … elseif … else` chain"),
    (
        "for ($var(x) in $(avp(l)[*]))",
        "a `for i = 0, math.huge` loop over the indexes until a value is missing",
    ),
    (
        "cond ? ==, !=, <, >",
        "Lua comparisons; `=~` → `sip.re_match(s, re, \"i\")`, `!~` → `not sip.re_match(…)`",
    ),
    (
        "&, |, ^, <<, >>, ~",
        "`sip.bit.band`, `bor`, `bxor`, `lshift`, `rshift`, `bnot` (32-bit, as OpenSIPS's `int`); in a condition, true when not 0",
    ),
    (
        "/, %",
        "`sip.bit.div`, `sip.bit.mod`: division and remainder of OpenSIPS's `int` (truncated as C's; a zero divisor logs \"divide by 0\" and gives no value)",
    ),
    (
        "a || b && c, 1 + 2 * 3",
        "OpenSIPS gives its two logical operators one precedence, and `+ - * / %` one, left to right: the Lua has parentheses where that differs from Lua's (`(a or b) and c`, `(1 + 2) * 3`)",
    ),
    ("uri == myself", "`sip.is_myself(sip.pv.ru)`"),
];

/// One row: how a call of `opensips` is written in Lua.
#[derive(Debug, Clone, Copy)]
pub struct Mapping {
    pub opensips: &'static str,
    pub function: &'static Function,
    /// Set for an older spelling.
    pub note: Option<&'static str>,
}

impl Mapping {
    pub fn lua(&self) -> String {
        self.function.full_name()
    }

    /// `sip.tm.t_on_failure(name)` style, argument kinds shown.
    pub fn lua_signature(&self) -> String {
        let args: Vec<String> = self
            .function
            .args
            .iter()
            .map(|a| {
                let k = kind_name(a.kind());
                if a.is_optional() {
                    format!("[{k}]")
                } else {
                    k.to_string()
                }
            })
            .collect();
        format!("{}({})", self.lua(), args.join(", "))
    }
}

fn kind_name(a: Arg) -> &'static str {
    match a {
        Arg::Int => "int",
        Arg::Str => "string",
        Arg::Format => "format",
        Arg::Regex => "regex",
        Arg::Subst => "subst",
        Arg::RouteName(_) => "route name",
        Arg::Pv => "pv spec",
        Arg::Flag => "flag",
        Arg::Table => "table",
        Arg::Verbatim => "text read as written",
        Arg::Optional(_) => "optional",
    }
}

/// Looks an OpenSIPS function name up.
pub fn lookup(name: &str) -> Option<Mapping> {
    if let Some(f) = vocab::functions::by_opensips_name(name) {
        // sip.drop/sip.exit are statements, not calls, in OpenSIPS.
        return Some(Mapping {
            opensips: f.opensips_name(),
            function: f,
            note: None,
        });
    }
    let (os, target, note) = ALIASES.iter().find(|a| a.0 == name)?;
    let f = vocab::functions::by_opensips_name(target)?;
    Some(Mapping {
        opensips: os,
        function: f,
        note: Some(note),
    })
}

/// Every row of the table: the vocabulary's functions, then the aliases.
pub fn all() -> Vec<Mapping> {
    let mut v: Vec<Mapping> = vocab::functions::all()
        .filter(|f| !matches!(f.name, "drop" | "exit"))
        .map(|f| Mapping {
            opensips: f.opensips_name(),
            function: f,
            note: None,
        })
        .collect();
    v.extend(ALIASES.iter().filter_map(|(os, _, _)| lookup(os)));
    v
}

static OPENSIPS_FUNCTIONS: &str = include_str!("../data/opensips-3.4-functions.txt");

/// Functions of other OpenSIPS versions than 3.4, by module (for the
/// report): (function, module).
static OTHER_VERSIONS: &[(&str, &str)] = &[
    ("db_check_to", "uri"),
    ("db_check_from", "uri"),
    ("fetch_event_params", "event_route"),
    ("exec_msg", "exec"),
    ("sql_query", "sqlops"),
    ("sql_query_one", "sqlops"),
];

/// The OpenSIPS module that exports a script function (3.4's tables,
/// then a few names of other versions), if known.
pub fn opensips_module_of(function: &str) -> Option<&'static str> {
    OPENSIPS_FUNCTIONS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, f)| *f == function)
        .map(|(m, _)| m)
        .or_else(|| {
            OTHER_VERSIONS
                .iter()
                .find(|(f, _)| *f == function)
                .map(|(_, m)| *m)
        })
}

/// Modules whose work lunasip does without a module of its own (the
/// transports, the MI, the DB drivers) or whose functions are all in
/// the vocabulary under another module.
pub static BUILT_IN: &[(&str, &str)] = &[
    ("proto_udp", "UDP is built in (config.listen)"),
    ("proto_tcp", "TCP is built in (config.listen)"),
    (
        "proto_bin",
        "BIN is built into the clusterer (it listens on my_node_info's url)",
    ),
    (
        "mi_fifo",
        "the MI FIFO is built in (config.modules.mi_fifo)",
    ),
    (
        "mi_http",
        "the MI over HTTP is built in (config.modules.mi_http)",
    ),
    ("httpd", "the MI's HTTP server is built in"),
    ("db_mysql", "the DB layer is built in (mysql:// URLs)"),
    ("mysql", "the DB layer is built in (mysql:// URLs)"),
    ("db_postgres", "the DB layer is built in (postgres:// URLs)"),
    ("db_sqlite", "the DB layer is built in (sqlite:// URLs)"),
    ("xlog", "xlog is a core function"),
    ("event_route", "event_route blocks are built in"),
];

/// Whether lunasip has the module (its functions, its parameters, or built in).
pub fn module_known(module: &str) -> bool {
    vocab::functions::all().any(|f| f.module == module)
        || vocab::params::has_module(module)
        || BUILT_IN.iter().any(|(m, _)| *m == module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        assert_eq!(lookup("t_relay").unwrap().lua(), "sip.tm.t_relay");
        assert_eq!(lookup("rewritehost").unwrap().lua(), "sip.sethost");
        assert_eq!(lookup("is_method").unwrap().lua(), "sip.is_method");
        assert!(lookup("rtpengine_offer").is_none());
        assert_eq!(opensips_module_of("rtpengine_offer"), Some("rtpengine"));
        assert!(module_known("tm") && module_known("usrloc") && !module_known("rtpengine"));
        assert!(all().len() > 100);
    }
}
