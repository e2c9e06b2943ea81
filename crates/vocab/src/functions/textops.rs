//! textops: regular-expression search and replace (`sip.textops.*`).

use super::Arg::{Format, Regex, Subst};
use super::Function;
use crate::route::RouteMask;

const M: &str = "textops";
const T: Option<&str> = Some("textops");
const MSG: RouteMask = RouteMask::MSG;
const URI: RouteMask = RouteMask::REQUEST
    .or(RouteMask::ONREPLY)
    .or(RouteMask::FAILURE)
    .or(RouteMask::BRANCH);

pub(super) static FUNCTIONS: &[Function] = &[
    Function::new(M, T, "search", &[Regex], MSG),
    Function::new(M, T, "search_body", &[Regex], MSG),
    Function::new(M, T, "search_append", &[Regex, Format], MSG),
    Function::new(M, T, "search_append_body", &[Regex, Format], MSG),
    Function::new(M, T, "replace", &[Regex, Format], MSG),
    Function::new(M, T, "replace_all", &[Regex, Format], MSG),
    Function::new(M, T, "replace_body", &[Regex, Format], MSG),
    Function::new(M, T, "replace_body_all", &[Regex, Format], MSG),
    Function::new(M, T, "replace_body_atonce", &[Regex, Format], MSG),
    Function::new(M, T, "subst", &[Subst], MSG),
    Function::new(M, T, "subst_uri", &[Subst], URI),
    Function::new(M, T, "subst_user", &[Subst], URI),
    Function::new(M, T, "subst_body", &[Subst], MSG),
];
