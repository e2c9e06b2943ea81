//! usrloc (OpenSIPS module of the same name): the location service. An
//! in-memory table shared by every worker (address of record → contacts
//! with expires, q, Call-ID, CSeq, received, Path, socket, user agent,
//! flags, methods, sip.instance/reg-id), an expiry timer, and OpenSIPS
//! 3.4's `location` table in the database as `db_mode` says (see
//! [`store`]). The registrar module reads and writes it; MI commands
//! `ul_dump`, `ul_show_contact`, `ul_add`, `ul_rm`, `ul_rm_contact`,
//! `ul_flush`, `ul_sync` inspect and edit it.

/// The config readers, here since usrloc was their first user.
pub use crate::modules::cfg;
pub mod contact;
pub mod events;
mod mi;
pub mod scan;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use crate::modules::{param, Module, Param, ParamKind};
use crate::stats::{stat_group, StatDecl};

pub use contact::Contact;
pub use store::{domain, Domain};

/// usrloc's settings in force.
#[derive(Clone, Default)]
pub struct UlConf {
    /// 0 memory, 1 write-through, 2 write-back, 3 DB only.
    pub db_mode: u8,
    pub db_url: Option<String>,
    /// The pool of `db_url` (opened, not connected, at commit).
    pub db: Option<Db>,
    /// AoRs are `user@domain` (else the user part only).
    pub use_domain: bool,
    /// The branch flag that marks a contact behind NAT.
    pub nat_bflag: Option<u32>,
    /// 0: a contact matches by URI; 1: by URI and Call-ID.
    pub matching_mode: u8,
    /// Seconds between expiry runs (and write-back flushes).
    pub timer_interval: u64,
    /// `E_UL_LATENCY_UPDATE` filters (µs; 0: off).
    pub latency_event_min_us: i64,
    pub latency_event_min_us_delta: i64,
}

impl std::fmt::Debug for UlConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UlConf")
            .field("db_mode", &self.db_mode)
            .field("db_url", &self.db_url.as_deref().map(crate::db::redact))
            .field("use_domain", &self.use_domain)
            .field("nat_bflag", &self.nat_bflag)
            .field("matching_mode", &self.matching_mode)
            .field("timer_interval", &self.timer_interval)
            .finish()
    }
}

/// The settings in force (the registry of this thread's environment;
/// memory only until a config is committed).
pub fn conf() -> Arc<UlConf> {
    crate::state::current().get::<UlConf>().unwrap_or_else(|| {
        Arc::new(UlConf {
            timer_interval: 60,
            ..UlConf::default()
        })
    })
}

/// `config.modules.usrloc`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    conf: Option<UlConf>,
}

/// Reads `config.modules.usrloc` (nothing opened or connected).
pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let Some(t) = cfg::table(modules, "usrloc")? else {
        return Ok(Prepared::default());
    };
    let m = "usrloc";
    let preset = cfg::str(&t, m, "working_mode_preset")?;
    let mut db_mode = match preset.as_deref() {
        None => 0,
        Some("single-instance-no-db") => 0,
        Some("single-instance-sql-write-through") => 1,
        Some("single-instance-sql-write-back") => 2,
        Some("sql-only") => 3,
        Some(other) => {
            return Err(format!(
                "config.modules.usrloc.working_mode_preset: '{other}' is not one lunasip knows (single-instance-no-db, single-instance-sql-write-through, single-instance-sql-write-back, sql-only)"
            ))
        }
    };
    if let Some(n) = cfg::int(&t, m, "db_mode")? {
        db_mode = u8::try_from(n)
            .ok()
            .filter(|n| *n <= 3)
            .ok_or_else(|| format!("config.modules.usrloc.db_mode: {n} is not 0, 1, 2 or 3"))?;
    }
    let db_url = cfg::str(&t, m, "db_url")?;
    if let Some(u) = &db_url {
        crate::db::check_url(u).map_err(|e| format!("config.modules.usrloc.db_url: {e}"))?;
    }
    if db_mode > 0 && db_url.is_none() {
        return Err(format!(
            "config.modules.usrloc: db_mode {db_mode} needs a db_url"
        ));
    }
    let nat_bflag = cfg::bflag(&t, m, "nat_bflag")?;
    let matching_mode = match cfg::int(&t, m, "matching_mode")?.unwrap_or(0) {
        0 => 0,
        1 => 1,
        n => return Err(format!("config.modules.usrloc.matching_mode: {n} is not 0 or 1")),
    };
    let timer_interval = cfg::int(&t, m, "timer_interval")?.unwrap_or(60);
    if !(1..=86400).contains(&timer_interval) {
        return Err(format!(
            "config.modules.usrloc.timer_interval: {timer_interval} is not 1-86400 seconds"
        ));
    }
    let latency = |name: &str| -> Result<i64, String> {
        match cfg::int(&t, m, name)?.unwrap_or(0) {
            n if (0..=i64::from(i32::MAX)).contains(&n) => Ok(n),
            n => Err(format!("config.modules.usrloc.{name}: {n} is not 0-{} µs", i32::MAX)),
        }
    };
    Ok(Prepared {
        conf: Some(UlConf {
            latency_event_min_us: latency("latency_event_min_us")?,
            latency_event_min_us_delta: latency("latency_event_min_us_delta")?,
            db_mode,
            db_url,
            db: None,
            use_domain: cfg::bool(&t, m, "use_domain")?.unwrap_or(false),
            nat_bflag,
            matching_mode,
            timer_interval: timer_interval as u64,
        }),
    })
}

impl Prepared {
    /// Installs the settings (opening, not connecting, the pool) and
    /// starts the timer once.
    pub fn commit(self, staged: &mut crate::state::Staged) -> Result<(), String> {
        let mut c = self.conf.unwrap_or(UlConf {
            timer_interval: 60,
            ..UlConf::default()
        });
        if let Some(u) = &c.db_url {
            c.db = Some(crate::db::open(u).map_err(|e| format!("usrloc: {e}"))?);
        }
        let old = conf();
        if old.db_mode != c.db_mode || old.db_url != c.db_url || old.use_domain != c.use_domain {
            if old.db_mode == 2 {
                flush_all();
            }
            store::reset();
        }
        staged.put(c);
        start_timer();
        Ok(())
    }
}

/// Starts the timer thread once per registry; it serves the registry of
/// the thread that committed the settings.
fn start_timer() {
    #[derive(Default)]
    struct Started(std::sync::OnceLock<()>);
    let reg = crate::state::current();
    reg.state::<Started>().0.get_or_init(|| {
        let r = std::thread::Builder::new()
            .name("usrloc-timer".into())
            .spawn(move || {
                let _in = crate::state::enter(reg);
                timer()
            });
        if let Err(e) = r {
            tracing::error!("usrloc: cannot start the timer thread: {e}");
        }
    });
}

/// Expires contacts and flushes write-back changes every
/// `timer_interval` seconds. (A table is read into memory when first used
/// by a route or an MI command, db_mode 1 and 2.)
fn timer() {
    let mut waited = 0u64;
    loop {
        std::thread::sleep(Duration::from_millis(250));
        waited += 250;
        if waited < conf().timer_interval * 1000 {
            continue;
        }
        waited = 0;
        tick();
    }
}

/// One timer run (also for tests through MI `ul_flush`).
pub fn tick() {
    let c = conf();
    for d in store::all() {
        match d.expire_wait() {
            Ok(n) => USRLOC.expires.add(n as u64),
            Err(e) => tracing::warn!("usrloc: expiring contacts of {}: {e}", d.name),
        }
        if c.db_mode == 2 {
            if let Err(e) = d.flush_wait() {
                tracing::warn!("usrloc: write-back of {}: {e}", d.name);
            }
        }
    }
}

/// Writes every queued change (db_mode 2; at shutdown and `ul_flush`).
pub fn flush_all() {
    for d in store::all() {
        if let Err(e) = d.flush_wait() {
            tracing::error!("usrloc: write-back of {}: {e}", d.name);
        }
    }
}

fn shutdown() {
    if conf().db_mode == 2 {
        flush_all();
    }
}

stat_group! {
    /// usrloc counters, declared in [`MODULE`]'s `stats`.
    pub struct Usrloc: "usrloc" {
        expires,
    }
}

pub static USRLOC: Usrloc = Usrloc::new();

fn registered_users() -> u64 {
    store::all().iter().map(|d| d.records.len() as u64).sum()
}

fn contacts() -> u64 {
    store::all()
        .iter()
        .map(|d| d.records.iter().map(|r| r.value().len() as u64).sum::<u64>())
        .sum()
}

const I: ParamKind = ParamKind::Int;
const S: ParamKind = ParamKind::Str;
const B: ParamKind = ParamKind::Bool;

static PARAMS: &[Param] = &[
    param("db_mode", I, "0", "0 memory only, 1 write-through (a save waits for the database), 2 write-back (flushed every `timer_interval`), 3 database only (every lookup reads the table: several proxies share registrations)."),
    param("working_mode_preset", S, "none", "OpenSIPS 3.x presets: `single-instance-no-db`, `single-instance-sql-write-through`, `single-instance-sql-write-back`, `sql-only` (db_mode 0-3)."),
    param("db_url", S, "none", "`mysql://…`, `postgres://…` or `sqlite:///path` holding OpenSIPS 3.4's `location` table (version 1013). Each SIP worker queries it on connections of its own (MySQL: up to 8 per worker, 2 kept idle; PostgreSQL: up to 4), opened when first needed; docs/ARCHITECTURE.md, \"The database layer\"."),
    param("use_domain", B, "false", "The AoR is `user@domain` (username and domain columns), else the user part only."),
    param("nat_bflag", S, "none", "Branch flag (a number, or a name as `setbflag` takes it: `\"NAT\"`) saved with a contact registered from behind NAT and set again by lookup."),
    param("matching_mode", I, "0", "0: a REGISTER's contact replaces the binding with the same URI; 1: the same URI and Call-ID."),
    param("timer_interval", I, "60", "Seconds between expiry runs and write-back flushes."),
    param("latency_event_min_us", I, "0", "`E_UL_LATENCY_UPDATE` is raised for a ping latency (nathelper `sipping_latency_flag`) of at least this many µs. With this and `latency_event_min_us_delta` both 0, for every ping answered."),
    param("latency_event_min_us_delta", I, "0", "`E_UL_LATENCY_UPDATE` is also raised when a contact's latency rose by at least this many µs since its last answered ping. As OpenSIPS 3.4's code does (not its README), a fall is not counted."),
];

pub static MODULE: Module = Module {
    name: "usrloc",
    table: Some("usrloc"),
    doc: "The location service (OpenSIPS usrloc): registrations in memory shared by all workers, and in OpenSIPS's `location` table by `db_mode`. See docs/registrar.md.",
    mi: mi::COMMANDS,
    events: events::EVENTS,
    stats: &[
        StatDecl::computed(
            "registered_users",
            registered_users,
            "Addresses of record with at least one contact (in memory; 0 in db_mode 3).",
        ),
        StatDecl::computed(
            "location-contacts",
            contacts,
            "Contacts in memory.",
        ),
        StatDecl::counter(
            "location-expires",
            &USRLOC.expires,
            "Contacts removed because they expired.",
        ),
    ],
    params: PARAMS,
    shutdown: Some(shutdown),
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};

crate::modules::staged_settings!(Prepared);

#[cfg(test)]
mod nat_bflag_tests {
    fn nat_bflag(code: &str) -> Result<Option<u32>, String> {
        let lua = mlua::Lua::new();
        let t: mlua::Table = lua.load(code).eval().expect("table");
        super::prepare(&t).map(|p| p.conf.and_then(|c| c.nat_bflag))
    }

    #[test]
    fn nat_bflag_takes_a_number_or_the_name_setbflag_uses() {
        assert_eq!(nat_bflag("return { usrloc = { nat_bflag = 6 } }"), Ok(Some(6)));
        assert_eq!(nat_bflag("return { usrloc = { nat_bflag = '7' } }"), Ok(Some(7)));
        let named = nat_bflag("return { usrloc = { nat_bflag = 'NAT' } }");
        assert_eq!(named, Ok(super::super::core::branch_flag_bit("NAT")));
        assert!(matches!(named, Ok(Some(b)) if b >= 32));
        assert!(nat_bflag("return { usrloc = { nat_bflag = 64 } }").is_err());
        assert!(nat_bflag("return { usrloc = { nat_bflag = true } }").is_err());
    }
}
