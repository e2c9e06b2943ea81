//! `allow_routing`, `allow_register` and `allow_uri` (OpenSIPS 3.4
//! modules/permissions/permissions.c): a request is allowed when a rule
//! of the allow file matches, denied when one of the deny file matches,
//! allowed otherwise (and always when both files are empty or missing).
//! The default pair is `default_allow_file` / `default_deny_file`; a
//! basename argument names `<basename>.allow` / `<basename>.deny`
//! (`allow_suffix`, `deny_suffix`); a name without '/' is in the
//! script's directory (permissions.c get_pathname). Files are read once per config load
//! (the default pair at load, the others at their first use) and kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mlua::{Lua, MultiValue};
use serde_json::{json, Value as Json};

use super::rules::Rules;
use crate::mi::{Ctx, MiError, Params};
use crate::modules::registrar::coded;
use crate::script::api::pv_fmt;
use crate::script::cfg_path;
use crate::script::exports::Args;
use crate::script::host::State;
use crate::sip::nameaddr::Contacts;
use crate::sip::Uri;

/// An allow file and its deny file.
#[derive(Debug, Default)]
pub struct Pair {
    pub allow: Rules,
    pub deny: Rules,
}

impl Pair {
    fn empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// The rule files of one config load.
#[derive(Debug)]
pub struct Files {
    pub default: Arc<Pair>,
    pub allow_suffix: String,
    pub deny_suffix: String,
    pub check_all_branches: bool,
    /// Pairs by basename, read at their first use.
    cache: Mutex<HashMap<String, Arc<Pair>>>,
    /// The script's directory, where a basename without '/' is.
    dir: String,
}

impl Default for Files {
    fn default() -> Files {
        Files::new(Pair::default(), ".allow", ".deny", true)
    }
}

/// A file's rules; a missing file is an empty rule set (OpenSIPS logs it
/// and goes on), lines that do not parse are skipped with a warning.
pub fn read_rules(path: &str) -> Rules {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let (rules, warnings) = Rules::parse(&text);
            for w in warnings {
                tracing::warn!("permissions: {path}: {w} (rule skipped)");
            }
            rules
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!("permissions: {path} not found: empty rule set");
            Rules::default()
        }
        Err(e) => {
            tracing::warn!("permissions: {path}: {e}: empty rule set");
            Rules::default()
        }
    }
}

impl Files {
    pub fn new(default: Pair, allow_suffix: &str, deny_suffix: &str, check_all_branches: bool) -> Files {
        Files {
            default: Arc::new(default),
            allow_suffix: allow_suffix.into(),
            deny_suffix: deny_suffix.into(),
            check_all_branches,
            cache: Mutex::new(HashMap::new()),
            dir: String::new(),
        }
    }

    /// Basenames without '/' are in `dir` (the script's directory, with
    /// its trailing '/'; permissions.c get_pathname).
    pub fn in_dir(mut self, dir: &str) -> Files {
        self.dir = dir.to_string();
        self
    }

    /// The pair of `basename` (None: the default pair).
    fn pair(&self, basename: Option<&str>) -> Arc<Pair> {
        let Some(b) = basename else {
            return self.default.clone();
        };
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.entry(b.to_string())
            .or_insert_with(|| {
                let path = |sfx: &str| cfg_path::get_pathname(&self.dir, &format!("{b}{sfx}"));
                Arc::new(Pair {
                    allow: read_rules(&path(&self.allow_suffix)),
                    deny: read_rules(&path(&self.deny_suffix)),
                })
            })
            .clone()
    }
}

fn files() -> Arc<Files> {
    crate::state::module::<super::PermConf>().files.clone()
}

/// permissions.c get_plain_uri: `sip:user@host`, or `sip:host` without a
/// user.
fn plain(uri: &str) -> Option<String> {
    let u = Uri::parse(uri).ok()?;
    Some(match u.user {
        Some(user) if !user.is_empty() => format!("sip:{user}@{}", u.host),
        _ => format!("sip:{}", u.host),
    })
}

fn basename(a: &Args, i: usize) -> mlua::Result<Option<String>> {
    let b = a.opt_str(i)?;
    if b.as_deref() == Some("") {
        return Err(a.err("the basename is empty"));
    }
    Ok(b)
}

/// `allow_routing([basename])`: From URI against `sip:user@host` of the
/// R-URI, then (check_all_branches) of every branch.
pub fn allow_routing(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let f = files();
    let pair = f.pair(basename(&a, 0)?.as_deref());
    if pair.empty() {
        return coded(lua, 1);
    }
    let (from, ruri, branches) = {
        let call = st.call.borrow();
        let Some(m) = call.msg.as_ref().filter(|m| m.is_request()) else {
            return coded(lua, -1);
        };
        let Some(from) = m.from().map(|f| f.uri.to_string()) else {
            tracing::error!("{}: no From", a.fname);
            return coded(lua, -1);
        };
        // The R-URI as sip:user@host, with the '@' even without a user.
        let Ok(u) = Uri::parse(m.ruri()) else {
            tracing::error!("{}: bad R-URI", a.fname);
            return coded(lua, -1);
        };
        let ruri = format!("sip:{}@{}", u.user.unwrap_or(""), u.host);
        let branches: Vec<String> = call.tm.branches.iter().map(|b| b.uri.clone()).collect();
        (from, ruri, branches)
    };
    if pair.allow.search(&from, &ruri) {
        if !f.check_all_branches {
            return coded(lua, 1);
        }
    } else if pair.deny.search(&from, &ruri) {
        return coded(lua, -1);
    } else if !f.check_all_branches {
        return coded(lua, 1);
    }
    for b in branches {
        let Some(p) = plain(&b) else {
            tracing::error!("{}: bad branch URI {b}", a.fname);
            return coded(lua, -1);
        };
        if !pair.allow.search(&from, &p) && pair.deny.search(&from, &p) {
            return coded(lua, -1);
        }
    }
    coded(lua, 1)
}

/// `allow_register(basename)`: To URI against `sip:user@host` of each
/// Contact; no Contact or `*` is allowed.
pub fn allow_register(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let f = files();
    let pair = f.pair(basename(&a, 0)?.as_deref());
    if pair.empty() {
        return coded(lua, 1);
    }
    let (to, contacts) = {
        let call = st.call.borrow();
        let Some(m) = call.msg.as_ref().filter(|m| m.is_request()) else {
            return coded(lua, -1);
        };
        let Some(to) = m.to().map(|t| t.uri.to_string()) else {
            tracing::error!("{}: no To", a.fname);
            return coded(lua, -1);
        };
        let list: Vec<String> = match m.contacts() {
            Err(_) => {
                tracing::error!("{}: bad Contact", a.fname);
                return coded(lua, -1);
            }
            Ok(Contacts::Star) => return coded(lua, 1),
            Ok(Contacts::List(l)) => l.iter().map(|n| n.uri.to_string()).collect(),
        };
        (to, list)
    };
    for c in contacts {
        let Some(p) = plain(&c) else {
            tracing::error!("{}: bad Contact URI {c}", a.fname);
            return coded(lua, -1);
        };
        // permissions.c: an allow match skips the deny file only with
        // check_all_branches.
        if pair.allow.search(&to, &p) && f.check_all_branches {
            continue;
        }
        if pair.deny.search(&to, &p) {
            return coded(lua, -1);
        }
    }
    coded(lua, 1)
}

/// `allow_uri(basename, uri)`: From URI against `uri` as given.
pub fn allow_uri(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let f = files();
    let pair = f.pair(basename(&a, 0)?.as_deref());
    let uri = pv_fmt(lua, st, &a.str(1)?)?;
    if pair.empty() {
        return coded(lua, 1);
    }
    let from = {
        let call = st.call.borrow();
        call.msg.as_ref().and_then(|m| m.from()).map(|f| f.uri.to_string())
    };
    let Some(from) = from else {
        tracing::error!("{}: no From", a.fname);
        return coded(lua, -1);
    };
    if pair.allow.search(&from, &uri) {
        return coded(lua, 1);
    }
    coded(lua, if pair.deny.search(&from, &uri) { -1 } else { 1 })
}

/// MI `allow_uri(basename, uri, contact)` (permissions/mi.c): the
/// `<basename>.allow` / `.deny` pair judges `uri` (as From) against
/// `contact`: "OK", or 403 "Forbidden"; OpenSIPS's 404s for an empty or
/// too long argument. OpenSIPS answers 403 for a basename no script
/// function loaded at start; lunasip reads the pair on first use, here too.
pub fn mi_allow_uri(_: &Ctx, p: &Params) -> Result<Json, MiError> {
    // OpenSIPS's MAX_URI_SIZE.
    const MAX_URI: usize = 1023;
    let arg = |name: &str| p.str(name).ok_or_else(|| MiError::params("Too few or too many parameters"));
    let base = arg("basename")?;
    let (uri, contact) = (arg("uri")?, arg("contact")?);
    if base.is_empty() || uri.is_empty() || contact.is_empty() {
        return Err(MiError::new(404, "Basename is empty"));
    }
    if uri.len() > MAX_URI {
        return Err(MiError::new(404, "URI is too long"));
    }
    if contact.len() > MAX_URI {
        return Err(MiError::new(404, "Contact is too long"));
    }
    let pair = files().pair(Some(base));
    let allowed = pair.empty() || pair.allow.search(uri, contact) || !pair.deny.search(uri, contact);
    if allowed {
        Ok(json!("OK"))
    } else {
        Err(MiError::new(403, "Forbidden"))
    }
}
