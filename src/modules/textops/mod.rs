//! textops (OpenSIPS module of the same name, checked against
//! modules/textops/textops.c of 3.4): regular-expression search and
//! replace over the message text, `sip.textops.*`.
//!
//! Patterns are POSIX extended regular expressions as OpenSIPS compiles
//! them (`pv::re::posix`): a `regex` argument is case-insensitive with
//! REG_NEWLINE; a `subst` expression is `/re/replacement/flags` (any
//! separator, flags `i`, `g`, `s`; `\0`-`\9`, `\u` and pseudo-variables in
//! the replacement). Literal patterns are checked by `lunasip check`;
//! each is compiled once per worker and kept.

use crate::modules::Module;
use crate::script::exports::{Export, Func};
use crate::script::route::RouteMask;

pub mod ops;

const MSG: RouteMask = RouteMask::MSG;
const URI: RouteMask = RouteMask::REQUEST
    .or(RouteMask::ONREPLY)
    .or(RouteMask::FAILURE)
    .or(RouteMask::BRANCH);

macro_rules! export {
    ($name:literal, $args:literal, $ret:literal, $routes:expr, $doc:literal, $f:expr) => {
        Export {
            name: $name,
            args: $args,
            returns: $ret,
            routes: $routes,
            doc: $doc,
            func: Func::Sync($f),
        }
    };
}

pub static MODULE: Module = Module {
    name: "textops",
    table: Some("textops"),
    doc: "Regular-expression search and replace over the message (OpenSIPS textops). Searches read the message as received; changes reach the wire when it is sent (see docs/message-changes.md).",
    exports: &[
        export!("search", "(regex)", "boolean", MSG,
            "Whether the regular expression (case-insensitive, `^`/`$` at line ends) matches the message, start line included.",
            ops::search),
        export!("search_body", "(regex)", "boolean", MSG,
            "Whether the regular expression matches the body (false for an empty body).",
            ops::search_body),
        export!("search_append", "(regex, text)", "boolean, code", MSG,
            "Inserts `text` (pseudo-variables expanded) after the first match after the start line.",
            ops::search_append),
        export!("search_append_body", "(regex, text)", "boolean, code", MSG,
            "Inserts `text` after the first match in the body.",
            ops::search_append_body),
        export!("replace", "(regex, text)", "boolean, code", MSG,
            "Replaces the first match after the start line with `text` (pseudo-variables expanded, no back-references).",
            ops::replace),
        export!("replace_all", "(regex, text)", "boolean, code", MSG,
            "Replaces every match after the start line with `text`.",
            ops::replace_all),
        export!("replace_body", "(regex, text)", "boolean, code", MSG,
            "Replaces the first match in the body; Content-Length follows.",
            ops::replace_body),
        export!("replace_body_all", "(regex, text)", "boolean, code", MSG,
            "Replaces every match in the body.",
            ops::replace_body_all),
        export!("replace_body_atonce", "(regex, text)", "boolean, code", MSG,
            "Replaces every match in the body (as `replace_body_all`).",
            ops::replace_body_atonce),
        export!("subst", "(expr)", "boolean, code", MSG,
            "sed-like `/re/replacement/flags` over the message after the start line: `\\1`..`\\9` groups, `\\0` the match, `\\u` the R-URI, pseudo-variables; flags `i` ignore case, `g` every match, `s` `.` matches newlines.",
            ops::subst),
        export!("subst_uri", "(expr)", "boolean, code", URI,
            "`subst` on the current R-URI; the result becomes the R-URI.",
            ops::subst_uri),
        export!("subst_user", "(expr)", "boolean, code", URI,
            "`subst` on the user of the current R-URI; the result becomes the user.",
            ops::subst_user),
        export!("subst_body", "(expr)", "boolean, code", MSG,
            "`subst` on the body; Content-Length follows.",
            ops::subst_body),
    ],
    ..Module::NONE
};
