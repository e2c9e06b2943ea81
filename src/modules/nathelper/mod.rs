//! nathelper (OpenSIPS module of the same name): helpers for user agents
//! behind NAT. `nat_uac_test` tells whether a request comes through NAT;
//! `fix_nated_contact`, `add_rcv_param` and `fix_nated_register` make its
//! Contact reachable (rewritten, annotated, or saved as `received` by the
//! registrar); `fix_nated_sdp` points its media at the source address;
//! registered contacts are kept reachable by pings ([`ping`]). See
//! docs/nathelper.md.

mod contact;
mod flags;
mod ping;
mod sdp;
mod uac_test;

use std::rc::Rc;
use std::sync::Arc;

use crate::modules::usrloc::cfg;
use crate::modules::{param, Module, Param, ParamKind};
use crate::script::exports::{Export, Func};
use crate::script::route::RouteMask;
use crate::stats::{stat_group, StatDecl};

/// nathelper's settings in force.
#[derive(Debug, Clone)]
pub struct NhConf {
    /// Seconds between two pings of a contact; 0: no pinging.
    pub natping_interval: u64,
    pub ping_nated_only: bool,
    /// The line `add-no-rtpproxy` adds (empty: none).
    pub nortpproxy_str: String,
    /// `$avp` name `fix_nated_register` fills.
    pub received_avp: Option<String>,
    /// Listen socket pings leave from instead of the contact's.
    pub force_socket: Option<String>,
    pub ignore_codes: Vec<u16>,
    pub sipping_from: String,
    pub sipping_method: String,
    /// Contacts with this branch flag get OPTIONS pings (else 4 bytes).
    pub sipping_bflag: Option<u32>,
    /// Contacts with this branch flag are removed when pings time out.
    pub rm_on_timeout_bflag: Option<u32>,
    /// Contacts with this branch flag have their ping latency kept in
    /// usrloc (for `lookup`'s `sort-by-latency` and `max-ping-latency`).
    pub sipping_latency_flag: Option<u32>,
    pub natping_tcp: bool,
    /// `oldip_skip`: no `a=oldcip` / `a=oldoip` lines.
    pub skip_old_media: bool,
    pub skip_old_origin: bool,
    /// Seconds a ping waits for its answer.
    pub ping_threshold: u64,
    pub max_pings_lost: u32,
}

impl Default for NhConf {
    fn default() -> NhConf {
        NhConf {
            natping_interval: 0,
            ping_nated_only: false,
            nortpproxy_str: "a=nortpproxy:yes".into(),
            received_avp: None,
            force_socket: None,
            ignore_codes: Vec::new(),
            sipping_from: String::new(),
            sipping_method: "OPTIONS".into(),
            sipping_bflag: None,
            rm_on_timeout_bflag: None,
            sipping_latency_flag: None,
            natping_tcp: false,
            skip_old_media: false,
            skip_old_origin: false,
            ping_threshold: 3,
            max_pings_lost: 3,
        }
    }
}

/// The settings in force (the registry of this thread's environment).
pub fn conf() -> Arc<NhConf> {
    crate::state::module::<NhConf>()
}

/// `config.modules.nathelper`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    conf: NhConf,
}

const M: &str = "nathelper";

fn avp_name(key: &str, spec: &str) -> Result<String, String> {
    spec.strip_prefix("$avp(")
        .and_then(|r| r.strip_suffix(')'))
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("config.modules.nathelper.{key}: '{spec}' is not $avp(name)"))
}

fn nonneg(t: &mlua::Table, key: &str) -> Result<Option<u64>, String> {
    cfg::int(t, M, key)?
        .map(|n| u64::try_from(n).map_err(|_| format!("config.modules.nathelper.{key}: {n} is below 0")))
        .transpose()
}

/// Reads `config.modules.nathelper` (nothing started).
pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let mut c = NhConf::default();
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(Prepared { conf: c });
    };
    c.natping_interval = nonneg(&t, "natping_interval")?.unwrap_or(0);
    c.ping_nated_only = cfg::bool(&t, M, "ping_nated_only")?.unwrap_or(false);
    if let Some(s) = cfg::str(&t, M, "nortpproxy_str")? {
        c.nortpproxy_str = s.trim_end_matches(['\r', '\n']).to_string();
    }
    if let Some(a) = cfg::str(&t, M, "received_avp")?.filter(|s| !s.is_empty()) {
        c.received_avp = Some(avp_name("received_avp", &a)?);
    }
    if let Some(s) = cfg::str(&t, M, "force_socket")? {
        crate::config::parse_listen(&s).map_err(|e| format!("config.modules.nathelper.force_socket: {e}"))?;
        c.force_socket = Some(s);
    }
    if let Some(s) = cfg::str(&t, M, "sipping_ignore_rpl_codes")? {
        for code in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            match code.parse::<u16>() {
                Ok(n) if (100..700).contains(&n) => c.ignore_codes.push(n),
                _ => return Err(format!("config.modules.nathelper.sipping_ignore_rpl_codes: '{code}' is not a reply code")),
            }
        }
    }
    if let Some(f) = cfg::str(&t, M, "sipping_from")? {
        c.sipping_from = f;
    }
    if let Some(m) = cfg::str(&t, M, "sipping_method")? {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("config.modules.nathelper.sipping_method: '{m}' is not a method"));
        }
        c.sipping_method = m;
    }
    c.sipping_bflag = cfg::bflag(&t, M, "sipping_bflag")?;
    c.rm_on_timeout_bflag = cfg::bflag(&t, M, "remove_on_timeout_bflag")?;
    c.sipping_latency_flag = cfg::bflag(&t, M, "sipping_latency_flag")?;
    c.natping_tcp = cfg::bool(&t, M, "natping_tcp")?.unwrap_or(false);
    if let Some(n) = cfg::int(&t, M, "natping_partitions")? {
        if !(1..=8).contains(&n) {
            return Err(format!("config.modules.nathelper.natping_partitions: {n} is not 1-8"));
        }
    }
    if let Some(s) = cfg::str(&t, M, "oldip_skip")? {
        for ch in s.chars() {
            match ch {
                'c' => c.skip_old_media = true,
                'o' => c.skip_old_origin = true,
                ' ' => {}
                other => return Err(format!("config.modules.nathelper.oldip_skip: '{other}' is not c or o")),
            }
        }
    }
    c.ping_threshold = nonneg(&t, "ping_threshold")?.unwrap_or(3);
    c.max_pings_lost = nonneg(&t, "max_pings_lost")?.unwrap_or(3).clamp(1, u64::from(u32::MAX)) as u32;
    if c.natping_interval > 0 {
        let usrloc_nat = cfg::table(modules, "usrloc")?
            .map(|u| u.get::<mlua::Value>("nat_bflag").map(|v| !v.is_nil()))
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or(false);
        if c.ping_nated_only && !usrloc_nat {
            return Err("config.modules.nathelper.ping_nated_only needs config.modules.usrloc.nat_bflag".into());
        }
        if c.sipping_latency_flag.is_some() && c.sipping_bflag.is_none() {
            // OpenSIPS too logs it and starts.
            tracing::error!("config.modules.nathelper.sipping_latency_flag is set but sipping_bflag is not: no SIP pings, so no latencies");
        }
        if c.sipping_bflag.is_some() {
            if c.sipping_from.is_empty() {
                return Err("config.modules.nathelper: SIP pinging (sipping_bflag) needs sipping_from".into());
            }
            if crate::sip::Uri::parse(&c.sipping_from).is_err() {
                return Err(format!("config.modules.nathelper.sipping_from: '{}' is not a URI", c.sipping_from));
            }
        }
        if c.ping_threshold > c.natping_interval {
            // OpenSIPS: the threshold must stay below the interval.
            c.ping_threshold = c.natping_interval / 2;
        }
    }
    Ok(Prepared { conf: c })
}

impl Prepared {
    pub fn commit(self, staged: &mut crate::state::Staged) {
        staged.put(self.conf);
    }
}

stat_group! {
    /// nathelper counters (OpenSIPS 3.4's nathelper has none; these show
    /// the pinging at work).
    pub struct Nathelper: "nathelper" {
        sip_pings,
        udp_pings,
        removed_contacts,
    }
}

pub static NATHELPER: Nathelper = Nathelper::new();

/// Pings go out from the first worker.
fn child_init(rank: usize, worker: &Rc<crate::proxy::worker::Worker>) {
    if rank == 0 {
        tokio::task::spawn_local(ping::run(worker.clone()));
    }
}

const I: ParamKind = ParamKind::Int;
const S: ParamKind = ParamKind::Str;
const B: ParamKind = ParamKind::Bool;

static PARAMS: &[Param] = &[
    param("natping_interval", I, "0", "Seconds between two pings of each registered contact (0: no pinging); the contacts are spread over the interval."),
    param("ping_nated_only", B, "false", "Ping only contacts saved with usrloc's `nat_bflag` (which must be set)."),
    param("sipping_bflag", S, "none", "Branch flag (number or name) of contacts pinged with a SIP request (`sipping_method`) instead of a 4-byte UDP keepalive."),
    param("sipping_method", S, "OPTIONS", "Method of the SIP pings."),
    param("sipping_from", S, "none", "From URI of the SIP pings (needed with `sipping_bflag`)."),
    param("sipping_ignore_rpl_codes", S, "none", "Reply codes (`\"408,480\"`) that do not count as an answer to a SIP ping."),
    param("remove_on_timeout_bflag", S, "none", "Branch flag of contacts removed from usrloc after `max_pings_lost` SIP pings in a row go unanswered."),
    param("sipping_latency_flag", S, "none", "Branch flag of contacts whose SIP ping latency usrloc keeps (µs, in memory; 1800000000 for a ping left unanswered past `ping_threshold`): `lookup`'s `sort-by-latency` and `max-ping-latency` use it, `ul_dump` shows it as `Ping-Latency`, and each update raises `E_UL_LATENCY_UPDATE`. Not kept in db_mode 3. Needs `sipping_bflag`."),
    param("ping_threshold", I, "3", "Seconds a SIP ping waits for its answer (at most the interval: else half of it)."),
    param("max_pings_lost", I, "3", "Unanswered SIP pings in a row that remove a contact with `remove_on_timeout_bflag`."),
    param("natping_tcp", B, "false", "Ping TCP contacts too (else UDP ones only)."),
    param("natping_partitions", I, "1", "Accepted for OpenSIPS configs (1-8); one task pings here."),
    param("force_socket", S, "none", "Listen socket (`udp:ip:port`) pings leave from, instead of the one the contact registered through."),
    param("received_avp", S, "none", "`$avp(name)` `fix_nated_register` fills with `sip:ip:port` of the source (give the registrar the same one)."),
    param("nortpproxy_str", S, "a=nortpproxy:yes", "The SDP line `fix_nated_sdp`'s `add-no-rtpproxy` adds (empty: none)."),
    param("oldip_skip", S, "none", "`c` and/or `o`: `fix_nated_sdp` adds no `a=oldcip` / `a=oldoip` line with the replaced address."),
];

const ANY: RouteMask = RouteMask::REQUEST
    .or(RouteMask::ONREPLY)
    .or(RouteMask::FAILURE)
    .or(RouteMask::BRANCH)
    .or(RouteMask::LOCAL);

static EXPORTS: &[Export] = &[
    Export {
        name: "nat_uac_test",
        args: "(flags)",
        returns: "ok, code (1 a test holds; -1 none does)",
        routes: ANY,
        doc: "Whether the sender is behind NAT. `flags`: comma-separated OpenSIPS 3.x names — `private-contact` (a Contact host in RFC 1918/6598 or loopback space), `diff-ip-src-via` (top Via host, or maddr, is not the source address, or it has `received`), `private-via`, `private-sdp` (the first `c=` of each SDP part), `diff-port-src-via` (Via port, 5060 when none, is not the source port), `diff-ip-src-contact`, `diff-port-src-contact`, `carrier-grade-nat` (192.0.0.0/29 counts as private too) — or the number of older configs (`\"19\"`: bits 1, 2, 16 in that order).",
        func: Func::Sync(uac_test::nat_uac_test),
    },
    Export {
        name: "fix_nated_contact",
        args: "([params])",
        returns: "ok, code (1; -1 when the Contact was already rewritten)",
        routes: RouteMask::REQUEST.or(RouteMask::ONREPLY).or(RouteMask::BRANCH).or(RouteMask::LOCAL),
        doc: "Rewrites the host and port of every Contact URI to the source address and port (a `maddr` parameter goes). `params` (`\";bnat=yes\"`) are added after the port; a Contact without `<>` is then enclosed. Seen by the next hop; reads in this route still see the Contact as received.",
        func: Func::Sync(contact::fix_nated_contact),
    },
    Export {
        name: "fix_nated_register",
        args: "()",
        returns: "ok, code (1)",
        routes: RouteMask::REQUEST,
        doc: "Puts the source as `sip:ip:port` (`;transport=tcp` on TCP) into nathelper's `received_avp`, which the registrar's `save` stores as the contact's `received` when its own `received_avp` names the same AVP.",
        func: Func::Sync(contact::fix_nated_register),
    },
    Export {
        name: "add_rcv_param",
        args: "([flag])",
        returns: "ok, code (1; -1 when the Contact does not parse)",
        routes: RouteMask::REQUEST,
        doc: "Adds `;received=\"sip:ip:port\"` (the source) to each Contact: as a header parameter, or inside the URI when `flag` is above 0.",
        func: Func::Sync(contact::add_rcv_param),
    },
    Export {
        name: "fix_nated_sdp",
        args: "(flags [, ip [, new_sdp_lines]])",
        returns: "ok, code (1; -1 without SDP or when an address line cannot be rewritten)",
        routes: ANY,
        doc: "Rewrites the SDP of the message. `flags`: `add-dir-active` (adds `a=direction:active`), `rewrite-media-ip` (every `c=` address becomes `ip`, default the source address; the old one kept in `a=oldcip:`), `add-no-rtpproxy` (adds `nortpproxy_str`), `rewrite-origin-ip` (the same for `o=`, `a=oldoip:`), `rewrite-null-ips` (0.0.0.0 rewritten too) — or a number (`\"10\"`: media and origin). `new_sdp_lines` are appended with the `add-*` lines. IPv4 only, as OpenSIPS.",
        func: Func::Sync(sdp::fix_nated_sdp),
    },
];

crate::modules::staged_settings!(Prepared);

pub static MODULE: Module = Module {
    name: "nathelper",
    table: Some("nathelper"),
    doc: "NAT traversal helpers (OpenSIPS nathelper): NAT detection, Contact and SDP rewriting, `received` for the registrar, keepalive pings of registered contacts. See docs/nathelper.md.",
    exports: EXPORTS,
    mi: ping::COMMANDS,
    stats: &[
        StatDecl::counter("sip_pings", &NATHELPER.sip_pings, "SIP pings (OPTIONS) sent to contacts with `sipping_bflag`."),
        StatDecl::counter("udp_pings", &NATHELPER.udp_pings, "4-byte UDP keepalives sent."),
        StatDecl::counter("removed_contacts", &NATHELPER.removed_contacts, "Contacts removed after `max_pings_lost` unanswered pings."),
    ],
    params: PARAMS,
    child_init: Some(child_init),
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
