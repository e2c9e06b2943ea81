//! dialog (OpenSIPS module of the same name): call tracking from the
//! initial INVITE to the BYE. `create_dialog` makes a dialog and marks
//! our Record-Route with its `did`; tm's observer hook moves it through
//! the INVITE's replies; `loose_route` finds it again for sequential
//! requests (rr's hook); a timer task on the first worker ends dialogs
//! at their timeout (BYE both ways with flag `B`) and sends in-dialog
//! OPTIONS pings (flags `P`/`p`) and re-INVITE pings (flags `R`/`r`). Profiles count dialogs per name and
//! value; `$DLG_*` and `$dlg_val` read them; MI lists and ends them.

mod ctx;
pub mod db;
mod flags;
mod json;
mod lua;
pub mod machine;
mod mi;
mod ping;
pub mod profiles;
mod pv;
mod seq;
pub mod store;
mod timer;

use std::sync::Arc;

use crate::modules::usrloc::cfg;
use crate::modules::{param, Hooks, Module, Param, ParamKind};
use crate::stats::{stat_group, StatDecl};

/// dialog's settings in force.
#[derive(Clone)]
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
    /// Seconds between re-INVITE pings (flags `R` / `r`).
    pub reinvite_ping_interval: u32,
    /// 0 memory only, 1 each change written, 3 written at shutdown.
    pub db_mode: u8,
    pub db_url: Option<String>,
    pub db_table: String,
    /// The pool of `db_url` (opened at commit).
    pub db: Option<crate::db::Db>,
    /// `dialog_replication_cluster`: the cluster of the sharing tags
    /// (0: none; dialogs are not replicated).
    pub repl_cluster: i32,
}

impl std::fmt::Debug for DlgConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DlgConf")
            .field("default_timeout", &self.default_timeout)
            .field("match_mode", &self.match_mode)
            .field("profiles", &self.profiles)
            .field("db_mode", &self.db_mode)
            .field("db_url", &self.db_url.as_deref().map(crate::db::redact))
            .finish()
    }
}

impl Default for DlgConf {
    fn default() -> Self {
        DlgConf {
            default_timeout: 43_200,
            match_mode: 1,
            rr_param: "did".into(),
            profiles: Vec::new(),
            ping_interval: 30,
            reinvite_ping_interval: 300,
            db_mode: 0,
            db_url: None,
            db_table: "dialog".into(),
            db: None,
            repl_cluster: 0,
        }
    }
}

/// The settings in force (the registry of this thread's environment).
pub fn conf() -> Arc<DlgConf> {
    crate::state::module::<DlgConf>()
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
    if let Some(n) = cfg::int(&t, m, "dialog_replication_cluster")? {
        c.repl_cluster = i32::try_from(n)
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("config.modules.dialog.dialog_replication_cluster: {n} is not a cluster id"))?;
    }
    if let Some(n) = cfg::int(&t, m, "options_ping_interval")? {
        c.ping_interval = u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("config.modules.dialog.options_ping_interval: {n} is not a number of seconds"))?;
    }
    if let Some(n) = cfg::int(&t, m, "reinvite_ping_interval")? {
        c.reinvite_ping_interval = u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("config.modules.dialog.reinvite_ping_interval: {n} is not a number of seconds"))?;
    }
    if let Some(n) = cfg::int(&t, m, "db_mode")? {
        c.db_mode = match n {
            0 | 1 | 3 => n as u8,
            // OpenSIPS's delayed writes exist so a worker does not wait on
            // the database; lunasip's writes never make it wait, so 2 writes
            // through as 1 does.
            2 => 1,
            _ => return Err(format!("config.modules.dialog.db_mode: {n} is not 0, 1, 2 or 3")),
        };
    }
    c.db_url = cfg::str(&t, m, "db_url")?;
    if let Some(u) = &c.db_url {
        crate::db::check_url(u).map_err(|e| format!("config.modules.dialog.db_url: {e}"))?;
    }
    if c.db_mode > 0 && c.db_url.is_none() {
        return Err(format!("config.modules.dialog: db_mode {} needs a db_url", c.db_mode));
    }
    if let Some(tn) = cfg::str(&t, m, "table_name")? {
        crate::db::Ident::new(&tn).map_err(|e| format!("config.modules.dialog.table_name: {e}"))?;
        c.db_table = tn;
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
    /// Installs the settings; with a `db_mode`, the first commit reads the
    /// `dialog` table back (start-up, before traffic).
    pub fn commit(self, staged: &mut crate::state::Staged) -> Result<(), String> {
        let mut c = self.conf.unwrap_or_default();
        if let Some(u) = &c.db_url {
            c.db = Some(crate::db::open(u).map_err(|e| format!("dialog: {e}"))?);
        }
        // Read once per registry (its long-lived state), not on reloads.
        #[derive(Default)]
        struct Loaded(std::sync::OnceLock<()>);
        let loaded = crate::state::state::<Loaded>();
        if c.db_mode > 0 && loaded.0.get().is_none() {
            let n = db::load_wait(&c)?;
            let _ = loaded.0.set(());
            tracing::info!("dialog: {n} dialogs read from the database");
        }
        staged.put(c);
        Ok(())
    }
}

fn shutdown() {
    db::save_all_wait();
}

stat_group! {
    /// dialog counters, declared in [`MODULE`]'s `stats`.
    pub struct Dialog: "dialog" {
        processed,
        expired,
        failed,
        db_errors,
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
    param("db_mode", I, "0", "0 dialogs in memory only; 1 each answered dialog is written to the `dialog` table when its state changes and deleted when it ends (queued, never waited for); 2 as 1 (OpenSIPS delays writes so workers do not wait on the database; lunasip's never do); 3 written at shutdown. With 1 or 3 the table is read at start: answered calls survive a restart."),
    param("db_url", S, "none", "Database of the `dialog` table (OpenSIPS 3.4 schema, version 12; `lunasip db init` creates it)."),
    param("table_name", S, "dialog", "Name of the dialog table."),
    param("dialog_replication_cluster", I, "0", "The clusterer cluster whose sharing tags `set_dlg_sharing_tag` names; a dialog whose tag is backup on this node sends no BYE at its timeout, runs no `dlg_on_timeout` route and sends no pings (the node holding the tag active does). Dialogs themselves are not replicated."),
    param("options_ping_interval", I, "30", "Seconds between in-dialog OPTIONS pings of dialogs created with `P`/`p`; a ping answered 408 or 481 (or not at all) ends the dialog with BYEs."),
    param("reinvite_ping_interval", I, "300", "Seconds between re-INVITE pings of dialogs created with `R` (the caller) / `r` (the callee), counted from the ACK: an in-dialog INVITE with the SDP that side was last sent; a 2xx is ACKed, a 408 (or no answer) or 481 ends the dialog with BYEs both ways (`$DLG_end_reason` `Caller ReINVITE Ping Timeout` / `Callee ReINVITE Ping Timeout`)."),
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

crate::modules::staged_settings!(Prepared);

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
        StatDecl::counter("db_errors", &DIALOG.db_errors, "Dialog writes to the database that failed or found the queue full."),
    ],
    params: PARAMS,
    child_init: Some(timer::child_init),
    shutdown: Some(shutdown),
    hooks: Hooks {
        tm: Some(machine::observer),
        loose_route: Some(loose_route_hook),
    },
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
