//! registrar (OpenSIPS module of the same name): `save` processes a
//! REGISTER (RFC 3261 §10.3, Path per RFC 3327) into usrloc and answers
//! it; `lookup` turns a request for an address of record into its
//! registered contacts (R-URI and branches for a parallel fork);
//! `is_registered`, `is_contact_registered`, `is_ip_registered` and
//! `remove` ask and edit the location table. With usrloc's db_mode 1 or 3
//! these wait for the database: the route suspends, never the worker.

mod flags;
pub mod gruu;
mod lookup;
mod save;

use std::sync::Arc;

use mlua::{IntoLua, Lua, MultiValue};

use crate::modules::usrloc::cfg;
use crate::modules::{param, Module, Param, ParamKind};
use crate::script::exports::{Export, Func};
use crate::script::route::RouteMask;
use crate::stats::{stat_group, StatDecl};

/// The registrar's settings in force.
#[derive(Debug, Clone)]
pub struct RegConf {
    pub default_expires: u32,
    pub min_expires: u32,
    /// 0: no limit.
    pub max_expires: u32,
    /// 0: no limit.
    pub max_contacts: u32,
    /// q × 1000 for contacts without one; -1: unspecified.
    pub default_q: i32,
    pub case_sensitive: bool,
    /// `$avp(name)` whose value is saved as the contact's `received`
    /// (nathelper's fix_nated_register sets it).
    pub received_avp: Option<String>,
    /// `gruu_secret` (XOR key of temporary GRUUs).
    pub gruu_secret: String,
    /// `disable_gruu` (OpenSIPS 3.4's default: 1).
    pub disable_gruu: bool,
    /// Message flag (bit number) of `tcp_persistent_flag`: a REGISTER
    /// over TCP with it set keeps its connection open as long as its TCP
    /// contact is registered (OpenSIPS registrar/save.c).
    pub tcp_persistent_flag: Option<u32>,
}

impl Default for RegConf {
    fn default() -> RegConf {
        RegConf {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 0,
            max_contacts: 0,
            default_q: -1,
            case_sensitive: true,
            received_avp: None,
            gruu_secret: gruu::DEFAULT_SECRET.into(),
            disable_gruu: true,
            tcp_persistent_flag: None,
        }
    }
}

/// The settings in force (the registry of this thread's environment).
pub fn conf() -> Arc<RegConf> {
    crate::state::module::<RegConf>()
}

/// `config.modules.registrar`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    conf: RegConf,
}

fn u32_of(t: &mlua::Table, key: &str) -> Result<Option<u32>, String> {
    cfg::int(t, "registrar", key)?
        .map(|n| {
            u32::try_from(n)
                .map_err(|_| format!("config.modules.registrar.{key}: {n} is not 0 or more"))
        })
        .transpose()
}

/// Reads `config.modules.registrar`.
pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let mut c = RegConf::default();
    let Some(t) = cfg::table(modules, "registrar")? else {
        return Ok(Prepared { conf: c });
    };
    if let Some(v) = u32_of(&t, "default_expires")? {
        c.default_expires = v;
    }
    if let Some(v) = u32_of(&t, "min_expires")? {
        c.min_expires = v;
    }
    if let Some(v) = u32_of(&t, "max_expires")? {
        c.max_expires = v;
    }
    if let Some(v) = u32_of(&t, "max_contacts")? {
        c.max_contacts = v;
    }
    if let Some(q) = cfg::int(&t, "registrar", "default_q")? {
        if !(-1..=1000).contains(&q) {
            return Err(format!(
                "config.modules.registrar.default_q: {q} is not -1 or 0-1000 (q × 1000)"
            ));
        }
        c.default_q = q as i32;
    }
    if let Some(b) = cfg::bool(&t, "registrar", "case_sensitive")? {
        c.case_sensitive = b;
    }
    if let Some(a) = cfg::str(&t, "registrar", "received_avp")? {
        let name = a
            .strip_prefix("$avp(")
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("config.modules.registrar.received_avp: '{a}' is not $avp(name)"))?;
        c.received_avp = Some(name.to_string());
    }
    if let Some(sec) = cfg::str(&t, "registrar", "gruu_secret")? {
        if sec.is_empty() {
            return Err("config.modules.registrar.gruu_secret: empty".into());
        }
        c.gruu_secret = sec;
    }
    if let Some(n) = cfg::int(&t, "registrar", "disable_gruu")
        .or_else(|_| cfg::bool(&t, "registrar", "disable_gruu").map(|b| b.map(i64::from)))?
    {
        c.disable_gruu = n != 0;
    }
    c.tcp_persistent_flag = cfg::flag(&t, "registrar", "tcp_persistent_flag")?;
    // OpenSIPS: limits that contradict each other are brought in line.
    if c.max_expires != 0 && c.max_expires < c.min_expires {
        c.max_expires = c.min_expires;
    }
    if c.default_expires < c.min_expires {
        c.default_expires = c.min_expires;
    }
    Ok(Prepared { conf: c })
}

impl Prepared {
    pub fn commit(self, staged: &mut crate::state::Staged) {
        staged.put(self.conf);
    }
}

/// `ok, code`: OpenSIPS's return code as the second result.
pub(crate) fn coded(lua: &Lua, code: i64) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        (code > 0).into_lua(lua)?,
        code.into_lua(lua)?,
    ]))
}

/// The address of record of a SIP URI (OpenSIPS extract_aor): the
/// unescaped user, `@host` with use_domain; None without a user part.
pub fn aor_of(uri: &str, use_domain: bool, case_sensitive: bool) -> Option<String> {
    let u = crate::sip::Uri::parse(uri).ok()?;
    let user = u.user_unescaped()?;
    let mut user = String::from_utf8_lossy(&user).into_owned();
    if user.is_empty() {
        return None;
    }
    if !case_sensitive {
        user = user.to_lowercase();
    }
    Some(match use_domain {
        true => format!("{user}@{}", u.host.to_ascii_lowercase()),
        false => user,
    })
}

stat_group! {
    /// Registrar counters, declared in [`MODULE`]'s `stats`.
    pub struct Registrar: "registrar" {
        accepted_regs,
        rejected_regs,
    }
}

pub static REGISTRAR: Registrar = Registrar::new();

const I: ParamKind = ParamKind::Int;
const S: ParamKind = ParamKind::Str;
const B: ParamKind = ParamKind::Bool;

static PARAMS: &[Param] = &[
    param("default_expires", I, "3600", "Expires of a contact that asks for none (no `expires` parameter, no Expires header)."),
    param("min_expires", I, "60", "Shorter non-zero intervals are refused with 423 and Min-Expires (RFC 3261 §10.3 step 7; OpenSIPS raises them instead)."),
    param("max_expires", I, "0", "Longer intervals are cut to this (0: no limit)."),
    param("max_contacts", I, "0", "Contacts per AoR (0: no limit); past it a REGISTER gets 503 unless `force-registration` drops the oldest."),
    param("default_q", I, "-1", "q × 1000 for contacts without q (-1: unspecified)."),
    param("case_sensitive", B, "true", "false: the user part of an AoR is lower-cased."),
    param("received_avp", S, "none", "`$avp(name)` holding the source to save as `received` (set by nathelper's fix_nated_register)."),
    param("disable_gruu", I, "1", "0: GRUUs (RFC 5627) for REGISTERs with `Supported: gruu`: the 200 gives each binding with a `+sip.instance` its `pub-gruu` and `temp-gruu`, and `lookup` of a GRUU reaches only that instance (OpenSIPS 3.4's default is 1, off)."),
    param("gruu_secret", S, "0p3nS1pS", "Key XORed into temporary GRUUs (OpenSIPS's default when unset); registrars that share it decode each other's."),
    param("tcp_persistent_flag", S, "none", "Message flag (number or name): a REGISTER over TCP with it set keeps its connection open until its TCP contact (`transport=tcp`) expires, plus 10 s, past `tcp_connection_lifetime`."),
];

const R: RouteMask = RouteMask::REQUEST;

static EXPORTS: &[Export] = &[
    Export {
        name: "save",
        args: "(table [, flags [, aor]])",
        returns: "ok, code (1; -2 with the error reply sent)",
        routes: R,
        doc: "Processes the REGISTER into location table `table` as RFC 3261 §10.3 says and answers it (200 listing every binding with its expires; 423 with Min-Expires; 400 for a malformed Contact or Expires; 503 past max_contacts). A lone `Contact: *` with `Expires: 0` removes every binding; a contact whose Call-ID is stored with an equal or higher CSeq is left alone. Flags (OpenSIPS 3.x names or 2.x letters): `memory-only`/`m`, `no-reply`/`r`, `max-contacts=N`/`cN`, `min-expires=N`, `max-expires=N`, `path-off`/`p0`, `path-lazy`/`p1`, `path-strict`/`p2` (save Path, RFC 3327; strict refuses with 420 a UA without `Supported: path`), `path-received`, `force-registration`/`f`, `matching-mode=0|1`. With `disable_gruu = 0` and `Supported: gruu`, each binding with a `+sip.instance` gets `;pub-gruu=\"sip:<aor>;gr=<instance>\";temp-gruu=\"sip:tgruu.<token>@<socket>;gr\";+sip.instance=...` (RFC 5627 §6). `aor`: another address of record than the To URI. With db_mode 1 or 3 the route waits for the database.",
        func: Func::Async(save::save),
    },
    Export {
        name: "lookup",
        args: "(table [, flags [, uri]])",
        returns: "ok, code (1 found; -1 not found; -2 contacts found but none allows the method; -3 error)",
        routes: R.or(RouteMask::FAILURE),
        doc: "Looks the R-URI's (or `uri`'s) address of record up: the R-URI becomes the contact with the highest q, the others are appended as branches for a parallel fork (`t_relay`); `$du` is set to the first Path hop (the Path goes out as Route headers) or to the contact's `received`. Flags: `method-filtering`/`m` (skip contacts whose methods exclude the request's), `no-branches`/`b`, `to-branches-only`, `ua-filtering=/re/` (only contacts whose User-Agent the pattern finds; a basic POSIX pattern, extended with `extended-regexp`, `case-insensitive` to ignore case; none left: -1), `sort-by-latency` (contacts by nathelper's ping latency, lowest first, those never measured last), `max-ping-latency=N` (leave out contacts whose last ping took over N µs), `branch` (the `append_branch` branches are taken out and their AoRs looked up after the R-URI's: the first contact found becomes the R-URI, every other one a branch; a branch whose AoR has no contact is dropped), `global` (no effect: lunasip has no federation cluster, where OpenSIPS reads a global record); 2.x letters `u/re/`, `i`, `e`, `Y`, `y<N>`, `r`, `g` for the same. With `to-branches-only` a lookup that finds the AoR returns 1 even when every contact is filtered out, as OpenSIPS's does. A GRUU R-URI (`gr` parameter) reaches only the contact of its `+sip.instance` (a temporary GRUU: also of its Call-ID, and none once the instance registered again; one that does not decode: -3). With db_mode 3 the route waits for the database (a failure route cannot: there it fails).",
        func: Func::Async(lookup::lookup),
    },
    Export {
        name: "is_registered",
        args: "(table [, aor])",
        returns: "true if the AoR (the To URI, or `aor`) has a valid contact",
        routes: R,
        doc: "Whether the address of record is registered (OpenSIPS is_registered).",
        func: Func::Async(lookup::is_registered),
    },
    Export {
        name: "is_contact_registered",
        args: "(table [, aor [, contact [, callid]]])",
        returns: "true if found",
        routes: R,
        doc: "Whether the AoR has the contact (default: the request's first Contact) and/or the Call-ID registered.",
        func: Func::Async(lookup::is_contact_registered),
    },
    Export {
        name: "is_ip_registered",
        args: "(table, aor, ip)",
        returns: "true if a contact of the AoR was registered from `ip`",
        routes: R,
        doc: "Whether one of the AoR's contacts has `ip` as its received address (or, without received, as its URI host).",
        func: Func::Async(lookup::is_ip_registered),
    },
    Export {
        name: "remove",
        args: "(table, aor [, contact])",
        returns: "true if something was removed",
        routes: R,
        doc: "Removes the AoR's contacts (or only the one with URI `contact`) from the location table.",
        func: Func::Async(lookup::remove),
    },
];

pub static MODULE: Module = Module {
    name: "registrar",
    table: Some("registrar"),
    doc: "SIP registrar (OpenSIPS registrar): REGISTER processing and location lookups over usrloc. See docs/registrar.md.",
    exports: EXPORTS,
    stats: &[
        StatDecl::counter(
            "accepted_regs",
            &REGISTRAR.accepted_regs,
            "REGISTERs save accepted.",
        ),
        StatDecl::counter(
            "rejected_regs",
            &REGISTRAR.rejected_regs,
            "REGISTERs save refused (an error reply was sent).",
        ),
    ],
    params: PARAMS,
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};

crate::modules::staged_settings!(Prepared);

#[cfg(test)]
mod tests {
    #[test]
    fn aor_extraction() {
        assert_eq!(super::aor_of("sip:Alice@Example.com;transport=udp", false, true).as_deref(), Some("Alice"));
        assert_eq!(super::aor_of("sip:Alice@Example.com", true, false).as_deref(), Some("alice@example.com"));
        assert_eq!(super::aor_of("sip:%61lice@h", false, true).as_deref(), Some("alice"));
        assert_eq!(super::aor_of("sip:example.com", false, true), None);
    }
}
