//! auth (OpenSIPS module of the same name): digest challenges
//! (`www_challenge`, `proxy_challenge`) with nonces that carry their expiry
//! and are signed with the `secret`, so instances that share the secret
//! accept each other's nonces; the checks every authorize function runs
//! first (OpenSIPS auth/api.c pre_auth), used by auth_db; and
//! `consume_credentials`. See docs/auth.md.

pub mod digest;
mod rpid;

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mlua::{Lua, MultiValue};

use crate::modules::registrar::coded;
use crate::modules::usrloc::cfg;
use crate::modules::{param, Module, Param, ParamKind};
use crate::proxy::reply;
use crate::script::exports::{Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::sip::Method;
use digest::{Alg, Cred, Qop};

/// OpenSIPS auth_result_t (modules/auth/api.h), the second result of the
/// authorize functions.
pub mod code {
    /// AUTH_ERROR: an error, no reply sent.
    pub const AUTH_ERROR: i64 = -5;
    /// NO_CREDENTIALS: no credentials for the realm.
    pub const NO_CREDENTIALS: i64 = -4;
    /// STALE_NONCE: the nonce is expired, replayed, or not ours.
    pub const STALE_NONCE: i64 = -3;
    /// INVALID_PASSWORD: the response does not match.
    pub const INVALID_PASSWORD: i64 = -2;
    /// USER_UNKNOWN: no such user in the table.
    pub const USER_UNKNOWN: i64 = -1;
    /// ERROR: an error, a reply (400/500) was sent.
    pub const ERROR: i64 = 0;
    /// AUTHORIZED.
    pub const AUTHORIZED: i64 = 1;
}

/// The auth module's settings in force.
#[derive(Debug, Clone)]
pub struct AuthConf {
    pub secret: Vec<u8>,
    /// Seconds a nonce is good for.
    pub nonce_expire: u64,
    /// The AVP name (`$avp(name)` → `name`) holding the Remote-Party-ID
    /// URI; None: `rpid_avp` set empty.
    pub rpid_avp: Option<String>,
    pub rpid_prefix: String,
    pub rpid_suffix: String,
}

/// auth_mod.c's defaults.
const DEF_RPID_AVP: &str = "rpid";
const DEF_RPID_SUFFIX: &str = ";party=calling;id-type=subscriber;screen=yes";


/// 16 bytes nobody can guess, for a secret nobody configured.
fn random_secret() -> Vec<u8> {
    let mut b = vec![0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        b = next_rand().to_be_bytes().to_vec();
        b.extend(next_rand().to_be_bytes());
    }
    b
}

/// The settings in force (the registry of this thread's environment);
/// before a commit a secret made once per registry.
pub fn conf() -> Arc<AuthConf> {
    /// The secret nobody configured, kept for the registry's life.
    struct Unset(Arc<AuthConf>);
    impl Default for Unset {
        fn default() -> Unset {
            Unset(Arc::new(AuthConf {
                secret: random_secret(),
                nonce_expire: 30,
                rpid_avp: Some(DEF_RPID_AVP.into()),
                rpid_prefix: String::new(),
                rpid_suffix: DEF_RPID_SUFFIX.into(),
            }))
        }
    }
    let reg = crate::state::current();
    reg.get::<AuthConf>()
        .unwrap_or_else(|| reg.state::<Unset>().0.clone())
}

/// `config.modules.auth`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    secret: Option<String>,
    nonce_expire: Option<u64>,
    rpid_avp: Option<Option<String>>,
    rpid_prefix: Option<String>,
    rpid_suffix: Option<String>,
}

/// `$avp(name)` → `name` (OpenSIPS refuses any other pseudo-variable).
pub fn avp_name(what: &str, spec: &str) -> Result<String, String> {
    spec.trim()
        .strip_prefix("$avp(")
        .and_then(|r| r.strip_suffix(')'))
        .filter(|n| !n.is_empty() && !n.contains(['(', ')', '$', ' ']))
        .map(str::to_string)
        .ok_or_else(|| format!("{what}: '{spec}' is not $avp(name)"))
}

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let Some(t) = cfg::table(modules, "auth")? else {
        return Ok(Prepared::default());
    };
    let secret = cfg::str(&t, "auth", "secret")?;
    if secret.as_deref() == Some("") {
        return Err("config.modules.auth.secret: empty".into());
    }
    let nonce_expire = match cfg::int(&t, "auth", "nonce_expire")? {
        Some(n) if n <= 0 => {
            return Err(format!(
                "config.modules.auth.nonce_expire: {n} is not 1 or more"
            ))
        }
        n => n.map(|n| n as u64),
    };
    let rpid_avp = cfg::str(&t, "auth", "rpid_avp")?
        .map(|s| match s.trim().is_empty() {
            true => Ok(None),
            false => avp_name("config.modules.auth.rpid_avp", &s).map(Some),
        })
        .transpose()?;
    let line = |key: &str| -> Result<Option<String>, String> {
        let v = cfg::str(&t, "auth", key)?;
        if v.as_deref().is_some_and(|s| s.contains(['\r', '\n'])) {
            return Err(format!("config.modules.auth.{key}: must not hold line breaks"));
        }
        Ok(v)
    };
    Ok(Prepared {
        secret,
        nonce_expire,
        rpid_avp,
        rpid_prefix: line("rpid_prefix")?,
        rpid_suffix: line("rpid_suffix")?,
    })
}

impl Prepared {
    /// Installs the settings; a secret left unset stays the random one
    /// chosen at start (nonces survive a reload).
    pub fn commit(self, staged: &mut crate::state::Staged) {
        let old = conf();
        let c = AuthConf {
            secret: self
                .secret
                .map_or_else(|| old.secret.clone(), String::into_bytes),
            nonce_expire: self.nonce_expire.unwrap_or(30),
            rpid_avp: self.rpid_avp.unwrap_or_else(|| Some(DEF_RPID_AVP.into())),
            rpid_prefix: self.rpid_prefix.unwrap_or_default(),
            rpid_suffix: self.rpid_suffix.unwrap_or_else(|| DEF_RPID_SUFFIX.into()),
        };
        staged.put(c);
    }
}

fn next_rand() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    thread_local!(static RS: RandomState = RandomState::new());
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    RS.with(|rs| {
        let mut h = rs.build_hasher();
        h.write_u64(N.fetch_add(1, Ordering::Relaxed));
        h.write_u64(t);
        h.finish()
    })
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

thread_local! {
    /// `$mi` of the message whose nonce was found stale by an authorize
    /// function: its challenge says stale=true (OpenSIPS marks the
    /// credentials).
    static STALE: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Which header carries the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Www,
    Proxy,
}

impl Kind {
    pub fn cred_header(self) -> &'static str {
        match self {
            Kind::Www => "Authorization",
            Kind::Proxy => "Proxy-Authorization",
        }
    }
}

/// The realm of a call with an empty realm argument (OpenSIPS get_realm):
/// the To host of a REGISTER checked with Authorization, else the From host.
fn default_realm(m: &crate::sip::Message, kind: Kind) -> Option<String> {
    let na = if kind == Kind::Www && m.method_kind() == Method::Register {
        m.to()?
    } else {
        m.from()?
    };
    let u = crate::sip::Uri::parse(na.uri).ok()?;
    Some(u.host.to_string())
}

/// What [`pre_auth`] found: credentials to check against a password.
pub struct Pending {
    pub cred: Cred,
    pub alg: Alg,
    pub realm: String,
    pub method: String,
    pub body: Vec<u8>,
}

/// OpenSIPS pre_auth: finds the credentials for `realm`, checks them and
/// their nonce. Err is the code to return (a 400/500 is sent for
/// `ERROR`); Ok(None) means authorized without a password (ACK, CANCEL).
pub fn pre_auth(st: &State, realm: &str, kind: Kind) -> Result<Option<Pending>, i64> {
    let (msg_id, found) = {
        let call = st.call.borrow();
        let Some(m) = call.msg.as_ref().filter(|m| m.is_request()) else {
            return Err(code::AUTH_ERROR);
        };
        if matches!(m.method_kind(), Method::Ack | Method::Cancel) {
            return Ok(None);
        }
        let realm = match realm.is_empty() {
            false => realm.to_string(),
            true => match default_realm(m, kind) {
                Some(r) => r,
                None => {
                    drop(call);
                    reply::send_local_reply(st, 400, "Bad Request");
                    return Err(code::ERROR);
                }
            },
        };
        let found = m
            .header_values(kind.cred_header())
            .into_iter()
            .filter_map(digest::parse_credentials)
            .find(|c| c.realm == realm);
        (
            call.msg_id,
            found.map(|c| (c, realm, m.method().to_string(), m.body().to_vec())),
        )
    };
    let Some((cred, realm, method, body)) = found else {
        return Err(code::NO_CREDENTIALS);
    };
    if !cred.well_formed() {
        reply::send_local_reply(st, 400, "Bad Request");
        return Err(code::ERROR);
    }
    let c = conf();
    // An algorithm lunasip does not compute gets a new challenge.
    let stale = match cred.alg() {
        None => true,
        Some(alg) => match digest::use_nonce(&c.secret, &cred, alg, now()) {
            Ok(()) => {
                return Ok(Some(Pending {
                    cred,
                    alg,
                    realm,
                    method,
                    body,
                }))
            }
            Err(why) => {
                tracing::debug!("auth: nonce refused: {why:?}");
                true
            }
        },
    };
    if stale {
        STALE.with(|s| s.set(Some(msg_id)));
    }
    Err(code::STALE_NONCE)
}

/// A WWW-/Proxy-Authenticate value for one algorithm.
/// Appends one challenge's value: `Digest realm=…, nonce=…[, stale=true]
/// [, qop=…][, algorithm=…]`.
fn auth_hf(out: &mut String, realm: &str, alg: Option<Alg>, qop: Qop, stale: bool, c: &AuthConf) {
    let nonce = digest::make_nonce(
        &c.secret,
        now() + c.nonce_expire,
        next_rand(),
        alg.unwrap_or(Alg::Md5),
        qop,
    );
    for part in ["Digest realm=\"", realm, "\", nonce=\"", &nonce, "\""] {
        out.push_str(part);
    }
    if stale {
        out.push_str(", stale=true");
    }
    if let Some(q) = qop.header_value() {
        for part in [", qop=\"", q, "\""] {
            out.push_str(part);
        }
    }
    if let Some(a) = alg {
        out.push_str(", algorithm=");
        out.push_str(a.name());
    }
}

/// The algorithms argument: a comma-separated list (OpenSIPS
/// dauth_fixup_algorithms); none given offers MD5 without naming it.
fn parse_algs(s: &str) -> Result<Vec<Alg>, String> {
    let mut v = Vec::new();
    for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let a = Alg::parse(t).ok_or_else(|| format!("unsupported algorithm '{t}'"))?;
        if !v.contains(&a) {
            v.push(a);
        }
    }
    // OpenSIPS offers the strongest first.
    v.sort_by_key(|a| std::cmp::Reverse(*a as u8));
    Ok(v)
}

fn challenge(lua: &Lua, st: &State, a: Args, kind: Kind) -> mlua::Result<MultiValue> {
    let realm_arg = a.str(0)?;
    let qop = match a.opt_str(1)? {
        None => Qop::None,
        Some(q) => Qop::parse_list(&q)
            .ok_or_else(|| a.err(format!("bad qop '{q}' (auth, auth-int, both comma-separated, or 0/1)")))?,
    };
    let algs = parse_algs(&a.opt_str(2)?.unwrap_or_default()).map_err(|e| a.err(e))?;
    if realm_arg.contains(['"', '\r', '\n', '\\']) {
        return Err(a.err("realm must not hold quotes, backslashes or line breaks"));
    }
    let (realm, stale) = {
        let call = st.call.borrow();
        let Some(m) = call.msg.as_ref().filter(|m| m.is_request()) else {
            return Err(a.err("no request in this route"));
        };
        let realm = match realm_arg.is_empty() {
            false => Some(realm_arg),
            true => default_realm(m, kind).filter(|r| !r.contains(['"', '\r', '\n', '\\'])),
        };
        (realm, STALE.with(|s| s.get()) == Some(call.msg_id))
    };
    let Some(realm) = realm else {
        reply::send_local_reply(st, 400, "Bad Request");
        return coded(lua, code::ERROR);
    };
    // RFC 8760 algorithms need qop.
    let qop = match (qop, algs.is_empty()) {
        (Qop::None, false) if algs != [Alg::Md5] => Qop::Auth,
        (q, _) => q,
    };
    let c = conf();
    let (code, reason, hname) = match kind {
        Kind::Www => (401, "Unauthorized", "WWW-Authenticate"),
        Kind::Proxy => (407, "Proxy Authentication Required", "Proxy-Authenticate"),
    };
    // One header line per algorithm; none given: MD5, not named.
    let mut hdrs = String::with_capacity((algs.len().max(1)) * (realm.len() + 192));
    let mut one = |alg: Option<Alg>| {
        hdrs.push_str(hname);
        hdrs.push_str(": ");
        auth_hf(&mut hdrs, &realm, alg, qop, stale, &c);
        hdrs.push_str("\r\n");
    };
    match algs.is_empty() {
        true => one(None),
        false => algs.into_iter().for_each(|a| one(Some(a))),
    }
    let sent = reply::send_local_reply_with(st, code, reason, &hdrs);
    match sent {
        // Sent: `true, 0` (OpenSIPS returns 0, which ends its script).
        true => Ok(MultiValue::from_iter([
            mlua::Value::Boolean(true),
            mlua::Value::Integer(code::ERROR),
        ])),
        false => coded(lua, -1),
    }
}

fn www_challenge(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    challenge(lua, st, a, Kind::Www)
}

fn proxy_challenge(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    challenge(lua, st, a, Kind::Proxy)
}

/// Removes the credentials headers (OpenSIPS removes the one authorized;
/// lunasip removes every Authorization and Proxy-Authorization).
fn consume_credentials(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mut call = st.call.borrow_mut();
    let m = call
        .msg
        .as_mut()
        .ok_or_else(|| a.err("no message in this route"))?;
    let n = m.remove_headers("Proxy-Authorization") + m.remove_headers("Authorization");
    crate::script::exports::ret(lua, n > 0)
}

const R: RouteMask = RouteMask::REQUEST;

static EXPORTS: &[Export] = &[
    Export {
        name: "www_challenge",
        args: "(realm [, qop [, algorithms]])",
        returns: "ok, code (true, 0 with the 401 sent)",
        routes: R,
        doc: "Answers 401 with a WWW-Authenticate for each algorithm (`\"MD5,SHA-256,SHA-512-256\"`; none: MD5 without naming it), a nonce that expires after `nonce_expire` and is signed with `secret`, `qop` (`auth`, `auth-int`, or both comma-separated; OpenSIPS 2.x's `\"0\"`/`\"1\"` mean none/auth; RFC 8760 algorithms imply `auth`), and `stale=true` when an authorize function found the nonce stale. An empty realm is the To host (REGISTER) or the From host. The script should `sip.exit()` after it.",
        func: Func::Sync(www_challenge),
    },
    Export {
        name: "proxy_challenge",
        args: "(realm [, qop [, algorithms]])",
        returns: "ok, code (true, 0 with the 407 sent)",
        routes: R,
        doc: "As `www_challenge` with 407 and Proxy-Authenticate; an empty realm is the From host.",
        func: Func::Sync(proxy_challenge),
    },
    Export {
        name: "consume_credentials",
        args: "()",
        returns: "boolean (false: no credentials header)",
        routes: R,
        doc: "Removes the Authorization and Proxy-Authorization headers before the request is relayed.",
        func: Func::Sync(consume_credentials),
    },
    Export {
        name: "append_rpid_hf",
        args: "([prefix, suffix])",
        returns: "ok, code (1 appended; -1 no string in the rpid AVP, or it holds a line break)",
        routes: R.or(RouteMask::BRANCH).or(RouteMask::FAILURE),
        doc: "Appends `Remote-Party-ID: <prefix><rpid><suffix>` after the last header, `<rpid>` being the newest value of the AVP named by `rpid_avp` (auth_db's `load_credentials` fills it from the subscriber's `rpid` column on a successful authorize). Give both `prefix` and `suffix` or neither (then the `rpid_prefix` / `rpid_suffix` params).",
        func: Func::Sync(rpid::append_rpid_hf),
    },
    Export {
        name: "is_rpid_user_e164",
        args: "()",
        returns: "ok, code (1 E.164; -1 not, or no rpid AVP)",
        routes: R,
        doc: "Whether the user part of the URI in the rpid AVP (a name-addr when it holds `<`, else a bare URI) is an E.164 number: `+` and 2 to 15 digits.",
        func: Func::Sync(rpid::is_rpid_user_e164),
    },
];

static PARAMS: &[Param] = &[
    param("secret", ParamKind::Str, "random", "Key that signs nonces (HMAC-SHA-256); instances with the same secret accept each other's nonces. Unset: a random key per process."),
    param("nonce_expire", ParamKind::Int, "30", "Seconds a nonce is good for; an older one is stale (a new challenge with stale=true)."),
    param("rpid_avp", ParamKind::Str, "$avp(rpid)", "The AVP holding the Remote-Party-ID URI for `append_rpid_hf` and `is_rpid_user_e164`; empty: none."),
    param("rpid_prefix", ParamKind::Str, "\"\"", "Text `append_rpid_hf()` puts before the rpid value."),
    param("rpid_suffix", ParamKind::Str, ";party=calling;id-type=subscriber;screen=yes", "Text `append_rpid_hf()` puts after the rpid value."),
];

pub static MODULE: Module = Module {
    name: "auth",
    table: Some("auth"),
    doc: "Digest authentication challenges and nonces (OpenSIPS auth). See docs/auth.md.",
    exports: EXPORTS,
    params: PARAMS,
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};

crate::modules::staged_settings!(Prepared);

#[cfg(test)]
mod tests {
    use super::*;

    // The challenge's value, field by field (RFC 2617 §3.2.1, RFC 8760 §2).
    #[test]
    fn challenge_value_layout() {
        let c = AuthConf {
            secret: b"s".to_vec(),
            nonce_expire: 30,
            rpid_avp: None,
            rpid_prefix: String::new(),
            rpid_suffix: String::new(),
        };
        let mut v = String::from("x: ");
        auth_hf(&mut v, "r.test", Some(Alg::Sha256), Qop::Auth, true, &c);
        let (head, tail) = v.split_at(v.find("nonce=\"").expect("nonce") + 7);
        assert_eq!(head, "x: Digest realm=\"r.test\", nonce=\"");
        let (nonce, rest) = tail.split_at(68);
        let info = digest::open_nonce(b"s", nonce).expect("signed");
        assert_eq!((info.alg, info.qop), (Alg::Sha256, Qop::Auth));
        assert_eq!(rest, "\", stale=true, qop=\"auth\", algorithm=SHA-256");
        let mut v = String::new();
        auth_hf(&mut v, "r", None, Qop::None, false, &c);
        assert!(v.starts_with("Digest realm=\"r\", nonce=\"") && v.ends_with('"') && v.len() == 94);
    }
}
