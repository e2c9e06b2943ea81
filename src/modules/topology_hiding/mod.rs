//! topology_hiding (OpenSIPS 3.4 module of the same name): neither side
//! of a call learns the other's addresses. `topology_hiding()` marks an
//! initial request; tm's hooks then strip each copy to our Via, no
//! Record-Route and our Contact, and give replies their Vias back.
//! In-dialog requests come to our Contact and `topology_hiding_match()`
//! sends them on: with a dialog by its id, without one by the Contact
//! and route set encoded in our Contact.

mod callid;
mod encode;
mod logic;
mod lua;
mod pv;
mod word;

use crate::modules::cfg;
use crate::modules::{param, Hooks, Module, Param, ParamKind};

/// topology_hiding's settings in force.
#[derive(Debug, Clone)]
pub struct ThConf {
    /// `force_dialog`: make a dialog when the script did not.
    pub force_dialog: bool,
    /// Contact URI parameters carried over into ours.
    pub uri_params: Vec<String>,
    /// Contact header parameters carried over into ours.
    pub hdr_params: Vec<String>,
    pub encode_passwd: String,
    pub encode_param: String,
    /// `th_contact_encode_scheme` base32 (else base64, OpenSIPS's default).
    pub encode_base32: bool,
    /// Flag `C`: the key and the prefix of the callee's Call-ID.
    pub callid_passwd: String,
    pub callid_prefix: String,
}

impl Default for ThConf {
    fn default() -> Self {
        ThConf {
            force_dialog: false,
            uri_params: Vec::new(),
            hdr_params: Vec::new(),
            encode_passwd: "ToPoCtPaSS".into(),
            encode_param: "thinfo".into(),
            encode_base32: false,
            callid_passwd: "OpenSIPS".into(),
            callid_prefix: "DLGCH_".into(),
        }
    }
}

pub fn conf() -> std::sync::Arc<ThConf> {
    crate::state::module::<ThConf>()
}

/// `config.modules.topology_hiding`, read and checked.
#[derive(Debug, Default)]
pub struct Prepared(ThConf);

fn list(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let mut c = ThConf::default();
    let m = "topology_hiding";
    let Some(t) = cfg::table(modules, m)? else {
        return Ok(Prepared(c));
    };
    if let Some(n) = cfg::int(&t, m, "force_dialog")? {
        c.force_dialog = n != 0;
    }
    if let Some(s) = cfg::str(&t, m, "th_passed_contact_uri_params")? {
        c.uri_params = list(&s);
    }
    if let Some(s) = cfg::str(&t, m, "th_passed_contact_params")? {
        c.hdr_params = list(&s);
    }
    if let Some(s) = cfg::str(&t, m, "th_contact_encode_passwd")? {
        if s.is_empty() {
            return Err("config.modules.topology_hiding.th_contact_encode_passwd: empty".into());
        }
        c.encode_passwd = s;
    }
    if let Some(s) = cfg::str(&t, m, "th_contact_encode_param")? {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(format!("config.modules.topology_hiding.th_contact_encode_param: '{s}' is not a URI parameter name"));
        }
        c.encode_param = s;
    }
    if let Some(s) = cfg::str(&t, m, "th_contact_encode_scheme")? {
        c.encode_base32 = match s.as_str() {
            "base64" => false,
            "base32" => true,
            _ => return Err(format!("config.modules.topology_hiding.th_contact_encode_scheme: '{s}' is not base64 or base32")),
        };
    }
    if let Some(s) = cfg::str(&t, m, "th_callid_passwd")? {
        if s.is_empty() {
            return Err("config.modules.topology_hiding.th_callid_passwd: empty".into());
        }
        c.callid_passwd = s;
    }
    if let Some(s) = cfg::str(&t, m, "th_callid_prefix")? {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'@') {
            return Err(format!("config.modules.topology_hiding.th_callid_prefix: '{s}' cannot start a Call-ID"));
        }
        c.callid_prefix = s;
    }
    Ok(Prepared(c))
}

impl Prepared {
    pub fn commit(self, staged: &mut crate::state::Staged) {
        staged.put(self.0);
    }
}

crate::modules::staged_settings!(Prepared);

const I: ParamKind = ParamKind::Int;
const S: ParamKind = ParamKind::Str;

static PARAMS: &[Param] = &[
    param("force_dialog", I, "0", "1: `topology_hiding()` creates a dialog when the script did not, so the call is hidden with the dialog's id in our Contact rather than the dialog-less encoding."),
    param("th_passed_contact_uri_params", S, "none", "Contact URI parameters (`;`-separated names) copied into the Contact we put in place."),
    param("th_passed_contact_params", S, "none", "Contact header parameters (`;`-separated names, such as `+sip.instance`) copied after the Contact we put in place."),
    param("th_callid_passwd", S, "OpenSIPS", "Key that masks the Call-ID the callee sees with flag `C`."),
    param("th_callid_prefix", S, "DLGCH_", "Prefix of the Call-ID the callee sees with flag `C` (how a hidden Call-ID is recognized)."),
    param("th_contact_encode_passwd", S, "ToPoCtPaSS", "Key that masks the dialog-less mode's encoded Contact parameter."),
    param("th_contact_encode_scheme", S, "base64", "How the dialog-less mode's Contact parameter is written: `base64` (OpenSIPS's word64: digits `A-Za-z0-9+.`, padding `-`) or `base32` (digits `A-Z2-7`, padding `-`, for user agents that change the case of URIs)."),
    param("th_contact_encode_param", S, "thinfo", "Name of the Contact URI parameter of the dialog-less mode."),
];

pub static MODULE: Module = Module {
    name: "topology_hiding",
    table: Some("topology_hiding"),
    doc: "Topology hiding (OpenSIPS topology_hiding): the callee sees no Via, Record-Route or Contact of the caller's side and the caller none of the callee's; in-dialog requests come to our Contact and are matched by `topology_hiding_match`, with or without a dialog.",
    exports: lua::EXPORTS,
    pvs: pv::PVS,
    params: PARAMS,
    hooks: Hooks {
        tm: Some(logic::observer),
        loose_route: None,
    },
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
