//! dialog (OpenSIPS module of the same name): call tracking from the
//! initial INVITE to the BYE. `create_dialog` makes a dialog and marks
//! our Record-Route with its `did`; tm's observer hook moves it through
//! the INVITE's replies; `loose_route` finds it again for sequential
//! requests (rr's hook); a timer task on the first worker ends dialogs
//! at their timeout (BYE both ways with flag `B`) and sends in-dialog
//! OPTIONS pings (flags `P`/`p`). Profiles count dialogs per name and
//! value; `$DLG_*` and `$dlg_val` read them; MI lists and ends them.

mod lua;
pub mod machine;
mod mi;
pub mod profiles;
mod pv;
pub mod store;
mod timer;

use std::sync::{Arc, RwLock};

use crate::modules::usrloc::cfg;
use crate::modules::{param, Hooks, Module, Param, ParamKind};
use crate::stats::{stat_group, StatDecl};

/// dialog's settings in force.
#[derive(Debug, Clone)]
pub struct DlgConf {
    /// Seconds a confirmed dialog lasts without `$DLG_timeout`.
    pub default_timeout: u32,
    /// 0 `did` only, 1 `did` then Call-ID/tags, 2 Call-ID/tags only.
    pub match_mode: u8,
    pub rr_param: String,
    /// Declared profiles: (name, takes a value).
    pub profiles: Vec<(String, bool)>,
    /// Seconds between in-dialog OPTIONS pings.
    pub ping_interval: u32,
}

impl Default for DlgConf {
    fn default() -> Self {
        DlgConf {
            default_timeout: 43_200,
            match_mode: 1,
            rr_param: "did".into(),
            profiles: Vec::new(),
            ping_interval: 30,
        }
    }
}

static CONF: RwLock<Option<Arc<DlgConf>>> = RwLock::new(None);

pub fn conf() -> Arc<DlgConf> {
    CONF.read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// `config.modules.dialog`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    conf: Option<DlgConf>,
}

/// Reads `config.modules.dialog` (nothing started).
pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let Some(t) = cfg::table(modules, "dialog")? else {
        return Ok(Prepared::default());
    };
    let m = "dialog";
    let mut c = DlgConf::default();
    if let Some(n) = cfg::int(&t, m, "default_timeout")? {
        c.default_timeout = u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("config.modules.dialog.default_timeout: {n} is not a number of seconds"))?;
    }
    if let Some(n) = cfg::int(&t, m, "dlg_match_mode")? {
        c.match_mode = u8::try_from(n)
            .ok()
            .filter(|n| *n <= 2)
            .ok_or_else(|| format!("config.modules.dialog.dlg_match_mode: {n} is not 0, 1 or 2"))?;
    }
    if let Some(p) = cfg::str(&t, m, "rr_param")? {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(format!("config.modules.dialog.rr_param: '{p}' is not a URI parameter name"));
        }
        c.rr_param = p;
    }
    if let Some(n) = cfg::int(&t, m, "options_ping_interval")? {
        c.ping_interval = u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("config.modules.dialog.options_ping_interval: {n} is not a number of seconds"))?;
    }
    for (key, with_value) in [("profiles_with_value", true), ("profiles_no_value", false)] {
        for name in profiles::parse_list(&cfg::str(&t, m, key)?.unwrap_or_default()) {
            if c.profiles.iter().any(|(n, _)| *n == name) {
                return Err(format!("config.modules.dialog.{key}: profile '{name}' is declared twice"));
            }
            c.profiles.push((name, with_value));
        }
    }
    Ok(Prepared { conf: Some(c) })
}

impl Prepared {
    pub fn commit(self) {
        *CONF.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(self.conf.unwrap_or_default()));
    }
}

stat_group! {
    /// dialog counters, declared in [`MODULE`]'s `stats`.
    pub struct Dialog: "dialog" {
        processed,
        expired,
        failed,
    }
}

pub static DIALOG: Dialog = Dialog::new();

fn active() -> u64 {
    store::table().count_state(|s| (store::CONFIRMED_NA..store::DELETED).contains(&s))
}

fn early() -> u64 {
    store::table().count_state(|s| s == store::EARLY)
}

const I: ParamKind = ParamKind::Int;
const S: ParamKind = ParamKind::Str;

static PARAMS: &[Param] = &[
    param("default_timeout", I, "43200", "Seconds a dialog lasts once answered, unless `$DLG_timeout` says otherwise; at the end it is deleted (with flag `B`, a BYE goes to both sides)."),
    param("dlg_match_mode", I, "1", "How sequential requests find their dialog: 0 only by the `did` Route parameter, 1 by `did` and else by Call-ID and tags, 2 only by Call-ID and tags."),
    param("rr_param", S, "did", "Name of the Record-Route parameter holding the dialog id."),
    param("profiles_with_value", S, "none", "Profiles whose members carry a value (`caller; trunk`)."),
    param("profiles_no_value", S, "none", "Profiles without values (`inbound; outbound`)."),
    param("options_ping_interval", I, "30", "Seconds between in-dialog OPTIONS pings of dialogs created with `P`/`p`; a ping answered 408 or 481 (or not at all) ends the dialog with BYEs."),
];

static EVENTS: &[crate::event::EventDecl] = &[crate::event::EventDecl {
    name: "E_DLG_STATE_CHANGED",
    params: &["id", "db_id", "callid", "from_tag", "to_tag", "old_state", "new_state"],
    doc: "A dialog changed state (1 unconfirmed, 2 early, 3 confirmed without ACK, 4 confirmed, 5 deleted).",
}];

fn loose_route_hook(st: &crate::script::host::State, params: &str) {
    let mode = conf().match_mode;
    machine::on_sequential(&mut st.call.borrow_mut(), Some(params), mode);
}

pub static MODULE: Module = Module {
    name: "dialog",
    table: Some("dialog"),
    doc: "Dialog tracking (OpenSIPS dialog): states from INVITE to BYE, matching of sequential requests, timeouts with BYE, profiles, dialog values. See docs/dialog.md.",
    exports: lua::EXPORTS,
    mi: mi::COMMANDS,
    pvs: pv::PVS,
    events: EVENTS,
    stats: &[
        StatDecl::computed("active_dialogs", active, "Dialogs answered and not ended."),
        StatDecl::computed("early_dialogs", early, "Dialogs with a provisional reply and no final one yet."),
        StatDecl::counter("processed_dialogs", &DIALOG.processed, "Dialogs created."),
        StatDecl::counter("expired_dialogs", &DIALOG.expired, "Dialogs ended by their timeout."),
        StatDecl::counter("failed_dialogs", &DIALOG.failed, "Dialogs that ended before an answer (negative final reply, CANCEL)."),
    ],
    params: PARAMS,
    child_init: Some(timer::child_init),
    hooks: Hooks {
        tm: Some(machine::observer),
        loose_route: Some(loose_route_hook),
    },
    ..Module::NONE
};
