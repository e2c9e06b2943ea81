//! Digest authentication (RFC 2617, RFC 8760) as OpenSIPS's auth module and
//! lib/digest_auth do it: credentials parsed from Authorization /
//! Proxy-Authorization, HA1/response computed with MD5, SHA-256 or
//! SHA-512/256, and nonces that carry their expiry, algorithm and qop,
//! signed with the `secret` (HMAC-SHA-256) so that any instance sharing the
//! secret accepts them.

use std::collections::HashMap;
use std::sync::Mutex;

use md5::{Digest, Md5};
use sha2::{Sha256, Sha512_256};

/// A digest algorithm (OpenSIPS alg_t, the ones lunasip computes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Md5,
    Sha256,
    Sha512t256,
}

impl Alg {
    /// The `algorithm=` token (case-insensitive, as RFC 8760 says).
    pub fn parse(s: &str) -> Option<Alg> {
        let s = s.trim();
        [Alg::Md5, Alg::Sha256, Alg::Sha512t256]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::Md5 => "MD5",
            Alg::Sha256 => "SHA-256",
            Alg::Sha512t256 => "SHA-512-256",
        }
    }

    fn code(self) -> u8 {
        match self {
            Alg::Md5 => 1,
            Alg::Sha256 => 2,
            Alg::Sha512t256 => 3,
        }
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex(self, data: &[u8]) -> String {
        match self {
            Alg::Md5 => hex(&Md5::digest(data)),
            Alg::Sha256 => hex(&Sha256::digest(data)),
            Alg::Sha512t256 => hex(&Sha512_256::digest(data)),
        }
    }

    /// Lower-case hex of the hash of `parts` joined with `:`, without
    /// building the joined text.
    pub fn hex_joined(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            hex(&d.finalize())
        }
        match self {
            Alg::Md5 => run::<Md5>(parts),
            Alg::Sha256 => run::<Sha256>(parts),
            Alg::Sha512t256 => run::<Sha512_256>(parts),
        }
    }

    /// HA1 = H(user:realm:password).
    pub fn ha1(self, user: &str, realm: &str, password: &str) -> String {
        self.hex_joined(&[user.as_bytes(), realm.as_bytes(), password.as_bytes()])
    }
}

/// The qop offered in a challenge (OpenSIPS qop_type_t, fixup_qop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Qop {
    #[default]
    None,
    Auth,
    AuthInt,
    /// "auth,auth-int"
    AuthAuthInt,
    /// "auth-int,auth"
    AuthIntAuth,
}

impl Qop {
    /// A challenge's qop argument: `auth`, `auth-int` or both, comma
    /// separated (OpenSIPS fixup_qop).
    pub fn parse_list(s: &str) -> Option<Qop> {
        // OpenSIPS 2.x's integer form, still in many configs: "0" none,
        // "1" auth.
        match s.trim() {
            "0" => return Some(Qop::None),
            "1" => return Some(Qop::Auth),
            _ => {}
        }
        let mut q = Qop::None;
        for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            q = match (t, q) {
                ("auth", Qop::AuthInt) => Qop::AuthIntAuth,
                ("auth", _) => Qop::Auth,
                ("auth-int", Qop::Auth) => Qop::AuthAuthInt,
                ("auth-int", _) => Qop::AuthInt,
                _ => return None,
            };
        }
        Some(q)
    }

    pub fn header_value(self) -> Option<&'static str> {
        match self {
            Qop::None => None,
            Qop::Auth => Some("auth"),
            Qop::AuthInt => Some("auth-int"),
            Qop::AuthAuthInt => Some("auth,auth-int"),
            Qop::AuthIntAuth => Some("auth-int,auth"),
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> Option<Qop> {
        [Qop::None, Qop::Auth, Qop::AuthInt, Qop::AuthAuthInt, Qop::AuthIntAuth]
            .get(usize::from(c))
            .copied()
    }

    /// Whether a response with qop `given` answers a nonce issued with this
    /// qop (OpenSIPS pre_auth: no qop answers as "auth" when one was offered).
    fn accepts(self, given: Option<&str>) -> bool {
        match (self, given) {
            (Qop::None, None) => true,
            (Qop::None, Some(_)) => false,
            (Qop::Auth, None | Some("auth")) => true,
            (Qop::AuthInt, Some("auth-int")) => true,
            (Qop::AuthAuthInt | Qop::AuthIntAuth, None | Some("auth" | "auth-int")) => true,
            _ => false,
        }
    }
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    crate::pv::hash::hex(b)
}

/// A nonce's bytes from its hex, each pair read as
/// `u8::from_str_radix(pair, 16)` reads it (either case, a `+` first).
fn unhex_nonce(s: &str) -> Option<[u8; BODY + 16]> {
    let nib = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let s = s.as_bytes();
    if s.len() != 2 * (BODY + 16) {
        return None;
    }
    let mut raw = [0u8; BODY + 16];
    for (r, p) in raw.iter_mut().zip(s.chunks_exact(2)) {
        let lo = nib(p[1])?;
        *r = match p[0] {
            b'+' => lo,
            hi => nib(hi)? << 4 | lo,
        };
    }
    Some(raw)
}

/// The hash states after the key's inner and outer pad blocks (RFC 2104
/// §2 steps 1-2 and 5), for one key.
fn keyed(key: &[u8]) -> (Sha256, Sha256) {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    (inner, outer)
}

thread_local! {
    /// The pad states of the last key used on this thread (the secret
    /// changes only with a reload): two of a nonce's four SHA-256 blocks.
    static KEYED: std::cell::RefCell<Option<(Vec<u8>, Sha256, Sha256)>> =
        const { std::cell::RefCell::new(None) };
}

/// HMAC-SHA-256 (RFC 2104).
fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let (mut inner, mut outer) = KEYED.with_borrow_mut(|slot| match slot {
        Some((k, i, o)) if k.as_slice() == key => (i.clone(), o.clone()),
        _ => {
            let (i, o) = keyed(key);
            *slot = Some((key.to_vec(), i.clone(), o.clone()));
            (i, o)
        }
    });
    inner.update(msg);
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The credential parameters lunasip reads, in [`Cred`]'s order.
const CRED_NAMES: [&str; 9] = [
    "username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "qop", "nc",
];

/// `str::trim`, ASCII ends stripped without decoding chars (the
/// std pattern code cost more than the rest of a credential's parse).
fn trim(s: &str) -> &str {
    let ws = |b: &u8| matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ');
    let b = s.as_bytes();
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    let t = &s[start..end];
    match t.as_bytes() {
        [f, ..] if !f.is_ascii() => t.trim(),
        [.., l] if !l.is_ascii() => t.trim(),
        _ => t,
    }
}

/// Digest credentials of one Authorization / Proxy-Authorization value:
/// the first `name=value` pair of each name lunasip reads (names in any
/// case, quotes removed). None when the scheme is not Digest.
pub fn parse_credentials<'a>(v: &'a str) -> Option<Cred> {
    let rest = v.trim();
    let sp = rest.find(char::is_whitespace)?;
    if !rest[..sp].eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut f: [Option<&str>; 9] = [None; 9];
    let mut take = |piece: &'a str| {
        let Some(eq) = piece.bytes().position(|b| b == b'=') else {
            return;
        };
        let (k, v) = (trim(&piece[..eq]), &piece[eq + 1..]);
        if let Some(i) = CRED_NAMES.iter().position(|n| n.eq_ignore_ascii_case(k)) {
            let v = trim(v);
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v);
            f[i].get_or_insert(v);
        }
    };
    let (mut q, mut start) = (false, sp);
    for (i, &ch) in rest.as_bytes().iter().enumerate().skip(sp) {
        match ch {
            b'"' => q = !q,
            b',' if !q => {
                take(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    take(&rest[start..]);
    let [username, realm, nonce, uri, response, algorithm, cnonce, qop, nc] =
        f.map(|v| v.map(str::to_string));
    Some(Cred {
        username: username.unwrap_or_default(),
        realm: realm.unwrap_or_default(),
        nonce: nonce.unwrap_or_default(),
        uri: uri.unwrap_or_default(),
        response: response.unwrap_or_default(),
        algorithm,
        cnonce,
        qop: qop.map(|q| q.to_ascii_lowercase()),
        nc,
    })
}

/// The fields of digest credentials used to check them.
#[derive(Debug, Clone, Default)]
pub struct Cred {
    /// The username as sent (`user` or `user@domain`).
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
}

impl Cred {
    /// OpenSIPS check_dig_cred: the fields a response needs are present.
    pub fn well_formed(&self) -> bool {
        !self.username.is_empty()
            && !self.nonce.is_empty()
            && !self.uri.is_empty()
            && !self.response.is_empty()
            && (self.qop.is_none() || (self.cnonce.is_some() && self.nc.is_some()))
    }

    /// The user part of the username (before `@`).
    pub fn user(&self) -> &str {
        self.username.split('@').next().unwrap_or("")
    }

    /// The domain part of `user@domain`, if any.
    pub fn domain(&self) -> Option<&str> {
        self.username.split_once('@').map(|(_, d)| d)
    }

    /// The algorithm asked for; None for one lunasip does not compute.
    pub fn alg(&self) -> Option<Alg> {
        match &self.algorithm {
            None => Some(Alg::Md5),
            Some(a) => Alg::parse(a),
        }
    }

    /// Whether the response matches HA1 (RFC 2617 §3.2.2.1, RFC 8760).
    pub fn check(&self, alg: Alg, ha1: &str, method: &str, body: &[u8]) -> bool {
        let (m, uri) = (method.as_bytes(), self.uri.as_bytes());
        let ha2 = match self.qop.as_deref() {
            Some("auth-int") => alg.hex_joined(&[m, uri, alg.hex(body).as_bytes()]),
            _ => alg.hex_joined(&[m, uri]),
        };
        let ha1 = ha1.trim();
        let ha1 = match ha1.bytes().any(|b| b.is_ascii_uppercase()) {
            true => std::borrow::Cow::Owned(ha1.to_ascii_lowercase()),
            false => std::borrow::Cow::Borrowed(ha1),
        };
        let (ha1, nonce, ha2) = (ha1.as_bytes(), self.nonce.as_bytes(), ha2.as_bytes());
        let want = match (&self.qop, &self.nc, &self.cnonce) {
            (Some(q), Some(nc), Some(cn)) => {
                alg.hex_joined(&[ha1, nonce, nc.as_bytes(), cn.as_bytes(), q.as_bytes(), ha2])
            }
            _ => alg.hex_joined(&[ha1, nonce, ha2]),
        };
        // Compared without an early exit; the response's hex in any case.
        want.len() == self.response.len()
            && want
                .bytes()
                .zip(self.response.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_lowercase()))
                == 0
    }
}

/// What a nonce says once its signature is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceInfo {
    pub expires: u64,
    pub alg: Alg,
    pub qop: Qop,
}

const BODY: usize = 18;

/// A nonce: expiry (Unix seconds), 8 random bytes, algorithm and qop,
/// followed by the first 16 bytes of their HMAC-SHA-256 under `secret`,
/// all in hex (68 characters).
pub fn make_nonce(secret: &[u8], expires: u64, rand: u64, alg: Alg, qop: Qop) -> String {
    let mut b = [0u8; BODY];
    b[..8].copy_from_slice(&expires.to_be_bytes());
    b[8..16].copy_from_slice(&rand.to_be_bytes());
    b[16] = alg.code();
    b[17] = qop.code();
    let mac = hmac(secret, &b);
    let mut all = [0u8; BODY + 16];
    all[..BODY].copy_from_slice(&b);
    all[BODY..].copy_from_slice(&mac[..16]);
    hex(&all)
}

/// Checks a nonce's signature; None for one not signed with `secret`.
pub fn open_nonce(secret: &[u8], nonce: &str) -> Option<NonceInfo> {
    let raw = unhex_nonce(nonce)?;
    let mac = hmac(secret, &raw[..BODY]);
    if mac[..16]
        .iter()
        .zip(&raw[BODY..])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        != 0
    {
        return None;
    }
    let mut e = [0u8; 8];
    e.copy_from_slice(&raw[..8]);
    let alg = match raw[16] {
        1 => Alg::Md5,
        2 => Alg::Sha256,
        3 => Alg::Sha512t256,
        _ => return None,
    };
    Some(NonceInfo {
        expires: u64::from_be_bytes(e),
        alg,
        qop: Qop::from_code(raw[17])?,
    })
}

/// Why a nonce is refused (all are STALE_NONCE, -3, in OpenSIPS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Not signed with our secret, or malformed.
    Invalid,
    Expired,
    /// Issued for another algorithm or qop.
    Mismatch,
    /// Used before with this nc (or, without qop, used before at all).
    Replayed,
}

/// Nonces seen and the highest nc each was used with; entries leave when
/// their nonce expires.
/// (The registry's long-lived state: a reload keeps it.)
#[derive(Default)]
struct Seen(Mutex<Option<Nonces>>);

#[derive(Default)]
struct Nonces {
    map: HashMap<String, (u64, u64), ahash::RandomState>,
    /// When expired entries are swept next (unix seconds).
    next_sweep: u64,
}

impl Nonces {
    /// Drops expired nonces, at most once a second: with more live nonces
    /// than the sweep threshold (500 registrations/s and a 30 s
    /// nonce_expire make 15,000), sweeping on every use scanned the whole
    /// map for each authenticated request.
    fn sweep(&mut self, now: u64) {
        if self.map.len() > 4096 && now >= self.next_sweep {
            self.map.retain(|_, (exp, _)| *exp >= now);
            self.next_sweep = now + 1;
        }
    }
}

/// Checks a nonce for credentials `c` at `now` and records its use: a
/// nonce answered with qop must come with a higher nc each time; one
/// without qop is good once.
pub fn use_nonce(secret: &[u8], c: &Cred, alg: Alg, now: u64) -> Result<(), Stale> {
    let info = open_nonce(secret, &c.nonce).ok_or(Stale::Invalid)?;
    if info.alg != alg || !info.qop.accepts(c.qop.as_deref()) {
        return Err(Stale::Mismatch);
    }
    if info.expires < now {
        return Err(Stale::Expired);
    }
    let nc = match (&c.qop, &c.nc) {
        (Some(_), Some(nc)) => u64::from_str_radix(nc, 16).map_err(|_| Stale::Invalid)?,
        _ => 1,
    };
    let seen = crate::state::state::<Seen>();
    let mut g = seen.0.lock().unwrap_or_else(|e| e.into_inner());
    let seen = g.get_or_insert_with(Nonces::default);
    seen.sweep(now);
    let map = &mut seen.map;
    match map.get_mut(&c.nonce) {
        Some((_, last)) if nc <= *last => Err(Stale::Replayed),
        Some((_, last)) => {
            *last = nc;
            Ok(())
        }
        None => {
            map.insert(c.nonce.clone(), (info.expires, nc));
            Ok(())
        }
    }
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;
