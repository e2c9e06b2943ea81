//! Status reports (OpenSIPS 3.4 `status_report.c`): groups of identifiers,
//! each with a status (positive: ready, negative: not ready), a text and a
//! short log of reports; the core's own group `core` (identifier `main`:
//! initializing, running, shutting down). Read by `sr_check_status` and
//! the MI `sr_*` commands; modules set theirs with [`set_status`].

use mlua::{IntoLua, Lua, MultiValue};
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::mi::{opt, req, Command, Ctx, Kind, MiError, Params};
use crate::modules::Module;
use crate::script::exports::{Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// OpenSIPS `sr_core_states`.
pub const STATE_TERMINATING: i64 = -2;
pub const STATE_INITIALIZING: i64 = -1;
pub const STATE_RUNNING: i64 = 1;
/// Reports kept per identifier (OpenSIPS keeps 10 for the core).
const MAX_REPORTS: usize = 10;
const MAIN: &str = "main";

struct Identifier {
    name: String,
    status: i64,
    text: String,
    reports: std::collections::VecDeque<(u64, String)>,
}

struct Group {
    name: String,
    ids: Vec<Identifier>,
}

static GROUPS: Mutex<Vec<Group>> = Mutex::new(Vec::new());

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn with<T>(f: impl FnOnce(&mut Vec<Group>) -> T) -> T {
    f(&mut GROUPS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Sets `group`/`identifier`'s status and text (registering them on first
/// use) and logs the change as a report.
pub fn set_status(group: &str, identifier: &str, status: i64, text: &str) {
    with(|groups| {
        let g = match groups.iter().position(|g| g.name == group) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(Group {
                    name: group.to_string(),
                    ids: Vec::new(),
                });
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        let id = match g.ids.iter().position(|i| i.name == identifier) {
            Some(i) => &mut g.ids[i],
            None => {
                g.ids.push(Identifier {
                    name: identifier.to_string(),
                    status,
                    text: String::new(),
                    reports: Default::default(),
                });
                let last = g.ids.len() - 1;
                &mut g.ids[last]
            }
        };
        id.status = status;
        id.text = text.to_string();
        if id.reports.len() == MAX_REPORTS {
            id.reports.pop_front();
        }
        id.reports
            .push_back((now(), format!("status changed to {status} ({text})")));
    });
}

/// Adds a report to `group`/`identifier`'s log (OpenSIPS
/// `sr_add_report`); nothing when the identifier is not registered.
pub fn add_report(group: &str, identifier: &str, text: &str) {
    with(|groups| {
        let Some(id) = groups
            .iter_mut()
            .find(|g| g.name == group)
            .and_then(|g| g.ids.iter_mut().find(|i| i.name == identifier))
        else {
            return;
        };
        if id.reports.len() == MAX_REPORTS {
            id.reports.pop_front();
        }
        id.reports.push_back((now(), text.to_string()));
    });
}

/// `group`/`identifier`'s status and text, if registered.
pub fn status_of(group: &str, identifier: &str) -> Option<(i64, String)> {
    check(group, Some(identifier)).ok().flatten()
}

/// The core's own status (`core`/`main`).
pub fn set_core_status(status: i64, text: &str) {
    set_status("core", MAIN, status, text);
}

/// A group's status: one identifier's (None: `main`), or for `all` 1 when
/// every one is ready and -1 otherwise (`_check_status`). Err: no such
/// group; Ok(None): no such identifier.
fn check(group: &str, identifier: Option<&str>) -> Result<Option<(i64, String)>, ()> {
    with(|groups| {
        let g = groups.iter().find(|g| g.name == group).ok_or(())?;
        Ok(match identifier.unwrap_or(MAIN) {
            i if i.eq_ignore_ascii_case("all") => {
                let ready = g.ids.iter().all(|i| i.status >= 0);
                Some((if ready { 1 } else { -1 }, "aggregated".to_string()))
            }
            name => g
                .ids
                .iter()
                .find(|i| i.name == name)
                .map(|i| (i.status, i.text.clone())),
        })
    })
}

/// `sr_check_status(group, [identifier])`: true when ready, and the
/// status number (`sr_core_states` for the core).
fn sr_check_status(lua: &Lua, _: &State, a: Args) -> mlua::Result<MultiValue> {
    let group = a.str(0)?;
    let id = a.opt_str(1)?;
    let (status, _) = check(&group, id.as_deref())
        .map_err(|_| a.err(format!("status report group {group:?} is not registered")))?
        .unwrap_or((-1, String::new()));
    Ok(MultiValue::from_iter([
        (status > 0).into_lua(lua)?,
        status.into_lua(lua)?,
    ]))
}

fn status_json(i: &Identifier, named: bool) -> Value {
    let mut o = json!({ "Readiness": i.status >= 0, "Status": i.status });
    if named {
        o = json!({ "Name": i.name, "Readiness": i.status >= 0, "Status": i.status });
    }
    if !i.text.is_empty() {
        o["Details"] = json!(i.text);
    }
    o
}

fn reports_json(i: &Identifier) -> Value {
    Value::Array(
        i.reports
            .iter()
            .map(|(ts, log)| json!({ "Timestamp": ts, "Date": crate::mi::core::ctime(UNIX_EPOCH + std::time::Duration::from_secs(*ts)), "Log": log }))
            .collect(),
    )
}

fn group_error() -> MiError {
    MiError::new(404, "Group not found")
}

fn mi_sr_get_status(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let group = p.str("group").unwrap_or("");
    let id = p.str("identifier");
    if id.is_some_and(|i| i.eq_ignore_ascii_case("all")) {
        let (status, text) = check(group, id).map_err(|_| group_error())?.unwrap_or_default();
        return Ok(json!({ "Readiness": status >= 0, "Status": status, "Details": text }));
    }
    with(|groups| {
        let g = groups.iter().find(|g| g.name == group).ok_or_else(group_error)?;
        let name = id.unwrap_or(MAIN);
        g.ids
            .iter()
            .find(|i| i.name == name)
            .map(|i| status_json(i, false))
            .ok_or_else(|| MiError::new(404, "Identity not found"))
    })
}

/// The groups `group` names (all when None).
fn pick<'a>(groups: &'a [Group], group: Option<&str>) -> Result<Vec<&'a Group>, MiError> {
    match group {
        None => Ok(groups.iter().collect()),
        Some(n) => groups
            .iter()
            .find(|g| g.name == n)
            .map(|g| vec![g])
            .ok_or_else(group_error),
    }
}

fn mi_sr_list_status(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    with(|groups| {
        let one = p.str("group").is_some();
        let list = pick(groups, p.str("group"))?;
        let ids = |g: &Group| Value::Array(g.ids.iter().map(|i| status_json(i, true)).collect());
        Ok(match (one, list.first()) {
            (true, Some(g)) => ids(g),
            _ => Value::Array(
                list.iter()
                    .map(|g| json!({ "Name": g.name, "Identifiers": ids(g) }))
                    .collect(),
            ),
        })
    })
}

fn mi_sr_list_reports(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    with(|groups| {
        let list = pick(groups, p.str("group"))?;
        if let (Some(g), Some(id)) = (list.first(), p.str("identifier")) {
            let i = g
                .ids
                .iter()
                .find(|i| i.name == id)
                .ok_or_else(|| MiError::new(404, "Identifier not found"))?;
            return Ok(reports_json(i));
        }
        let ids = |g: &Group| {
            Value::Array(
                g.ids
                    .iter()
                    .map(|i| json!({ "Name": i.name, "Reports": reports_json(i) }))
                    .collect(),
            )
        };
        Ok(match (p.str("group"), list.first()) {
            (Some(_), Some(g)) => ids(g),
            _ => Value::Array(
                list.iter()
                    .map(|g| json!({ "Name": g.name, "Identifiers": ids(g) }))
                    .collect(),
            ),
        })
    })
}

fn mi_sr_list_identifiers(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    with(|groups| {
        let list = pick(groups, p.str("group"))?;
        let one = |g: &Group| {
            json!({ "Group": g.name, "Identifiers": g.ids.iter().map(|i| i.name.clone()).collect::<Vec<_>>() })
        };
        Ok(match (p.str("group"), list.first()) {
            (Some(_), Some(g)) => one(g),
            _ => Value::Array(list.iter().map(|g| one(g)).collect()),
        })
    })
}

fn init() -> Result<(), String> {
    set_core_status(STATE_INITIALIZING, "initializing");
    Ok(())
}

fn child_init(rank: usize, _: &std::rc::Rc<crate::proxy::worker::Worker>) {
    if rank == 0 {
        set_core_status(STATE_RUNNING, "running");
    }
}

fn shutdown() {
    set_core_status(STATE_TERMINATING, "shutting down");
}

pub static STATUS: Module = Module {
    name: "core (status report)",
    table: None,
    doc: "Status reports (OpenSIPS 3.4 status_report.c): the core's readiness as group `core`, identifier `main` (-1 initializing, 1 running, -2 shutting down); the dispatcher's (when configured) as group `dispatcher`, an identifier per partition (-2 no data loaded, -1 startup data loading, 1 data available, 2 data re-loading; a report per load) and `PARTITION;events` (1; a report per destination state change), as dispatch.c registers them. Read from routes and the MI.",
    exports: &[Export {
        name: "sr_check_status",
        args: "(group, [identifier])",
        returns: "true when ready, and the status number",
        routes: RouteMask::ANY,
        doc: "The status of `identifier` in `group` (the group's `main` when left out; `\"all\"`: 1 when all are ready, else -1); a missing identifier reads as -1. An unknown group is an error.",
        func: Func::Sync(sr_check_status),
    }],
    mi: &[
        Command {
            name: "sr_get_status",
            help: "The status of an identifier of a group (its `main` by default; `all` aggregates).",
            module: "core",
            params: &[req("group", Kind::Str), opt("identifier", Kind::Str)],
            result: "`{\"Readiness\": bool, \"Status\": n, \"Details\"?: text}`",
            handler: mi_sr_get_status,
        },
        Command {
            name: "sr_list_status",
            help: "The status of every identifier, of one group or of all.",
            module: "core",
            params: &[opt("group", Kind::Str)],
            result: "`[{\"Name\", \"Identifiers\": [{\"Name\", \"Readiness\", \"Status\", \"Details\"?}]}]` (the identifiers only when `group` is given)",
            handler: mi_sr_list_status,
        },
        Command {
            name: "sr_list_reports",
            help: "The reports logged for identifiers (all, a group's or one).",
            module: "core",
            params: &[opt("group", Kind::Str), opt("identifier", Kind::Str)],
            result: "`[{\"Name\", \"Identifiers\": [{\"Name\", \"Reports\": [{\"Timestamp\", \"Date\", \"Log\"}]}]}]`, narrowed by `group` and `identifier`",
            handler: mi_sr_list_reports,
        },
        Command {
            name: "sr_list_identifiers",
            help: "The identifiers of a group, or of every group.",
            module: "core",
            params: &[opt("group", Kind::Str)],
            result: "`{\"Group\", \"Identifiers\": [names]}` (an array of those without `group`)",
            handler: mi_sr_list_identifiers,
        },
    ],
    init: Some(init),
    child_init: Some(child_init),
    shutdown: Some(shutdown),
    ..Module::NONE
};
