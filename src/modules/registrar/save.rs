//! `save(table [, flags [, aor]])`: a REGISTER processed as RFC 3261
//! §10.3 says (OpenSIPS modules/registrar/save.c and lib/reg/): the
//! request is read and checked on the worker (a malformed one is answered
//! at once), the bindings are changed in usrloc (waiting for the database
//! where db_mode says), and the 200 lists every binding with its expires.

use std::rc::Rc;
use std::time::Duration;

use mlua::Lua;

use super::flags::{self, PathMode, SaveFlags};
use super::{aor_of, coded, conf, RegConf, REGISTRAR};
use crate::modules::usrloc::{self, contact::now, Contact, UlConf};
use crate::proxy::context::Value as PvValue;
use crate::proxy::reply;
use crate::script::exports::{Args, Step};
use crate::script::host::State;
use crate::sip::nameaddr::Contacts;

/// A reply refusing the REGISTER.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub code: u16,
    pub reason: &'static str,
    /// Extra header lines (CRLF terminated).
    pub headers: String,
}

fn reject(code: u16, reason: &'static str) -> Reject {
    Reject {
        code,
        reason,
        headers: String::new(),
    }
}

/// One Contact of the REGISTER.
#[derive(Debug, Clone)]
struct Ct {
    uri: String,
    /// Seconds asked for (after the limits); 0 removes the binding.
    secs: u32,
    q: i32,
    instance: Option<String>,
    reg_id: u32,
    methods: Option<u32>,
}

#[derive(Debug, Clone)]
enum Cts {
    Star,
    Query,
    List(Vec<Ct>),
}

/// What `save` takes from the request.
#[derive(Debug, Clone)]
struct Req {
    aor: String,
    callid: String,
    cseq: i64,
    contacts: Cts,
    path: Option<String>,
    echo_path: bool,
    user_agent: String,
    received: Option<String>,
    socket: Option<String>,
    cflags: u64,
    matching_mode: u8,
    max_contacts: u32,
    force: bool,
    /// GRUUs for the 200 (RFC 5627 §6): the receiving socket's
    /// `host:port` when enabled and the UA said `Supported: gruu`.
    gruu: Option<String>,
}

/// OpenSIPS's METHOD_* bits of a method name (METHOD_OTHER for others).
pub fn method_bit(m: &str) -> u32 {
    const NAMES: &[&str] = &[
        "INVITE",
        "CANCEL",
        "ACK",
        "BYE",
        "INFO",
        "OPTIONS",
        "UPDATE",
        "REGISTER",
        "MESSAGE",
        "SUBSCRIBE",
        "NOTIFY",
        "PRACK",
        "REFER",
        "PUBLISH",
    ];
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(m.trim()))
        .map_or(1 << 14, |i| 1 << i)
}

fn methods_of(list: &str) -> u32 {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .fold(0, |acc, m| acc | method_bit(m))
}

fn parse_q(s: &str) -> Option<i32> {
    let v: f64 = s.trim().parse().ok()?;
    (0.0..=1.0).contains(&v).then(|| (v * 1000.0).round() as i32)
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

/// Reads and checks the REGISTER (RFC 3261 §10.3 steps 5-7).
fn parse(
    st: &State,
    f: &SaveFlags,
    aor_arg: Option<&str>,
    ul: &UlConf,
    rc: &RegConf,
) -> Result<Req, Reject> {
    let call = st.call.borrow();
    let m = call
        .msg
        .as_ref()
        .filter(|m| m.is_request())
        .ok_or_else(|| reject(500, "Server Internal Error"))?;
    let to_uri;
    let aor_uri = match aor_arg {
        Some(a) => a,
        None => {
            to_uri = m
                .to()
                .map(|t| t.uri.to_string())
                .ok_or_else(|| reject(400, "Bad To header"))?;
            &to_uri
        }
    };
    let aor = aor_of(aor_uri, ul.use_domain, rc.case_sensitive)
        .ok_or_else(|| reject(400, "Bad AoR: no user part"))?;
    let callid = m
        .call_id()
        .ok_or_else(|| reject(400, "Missing Call-ID"))?
        .to_string();
    let cseq = i64::from(m.cseq().ok_or_else(|| reject(400, "Bad CSeq"))?.num);
    let hdr_expires = match m.header("Expires") {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u32>()
                .map_err(|_| reject(400, "Invalid Expires header"))?,
        ),
    };
    let min = f.min_expires.unwrap_or(rc.min_expires);
    let max = f.max_expires.unwrap_or(rc.max_expires);
    let contacts = match m.contacts().map_err(|_| reject(400, "Bad Contact header"))? {
        Contacts::Star => {
            // §10.3 step 6: "*" only with Expires: 0 and nothing else.
            if hdr_expires != Some(0) {
                return Err(reject(400, "Invalid * Contact with non-zero Expires"));
            }
            Cts::Star
        }
        Contacts::List(l) if l.is_empty() => Cts::Query,
        Contacts::List(l) => {
            let allow = m.header("Allow").map(methods_of);
            let mut out = Vec::with_capacity(l.len());
            for na in l {
                let secs = match na.param("expires") {
                    Some(Some(v)) => unquote(v)
                        .parse::<u32>()
                        .map_err(|_| reject(400, "Invalid expires param in Contact"))?,
                    Some(None) => return Err(reject(400, "Invalid expires param in Contact")),
                    None => hdr_expires.unwrap_or(rc.default_expires),
                };
                if secs != 0 && secs < min {
                    // §10.3 step 7: too brief.
                    return Err(Reject {
                        code: 423,
                        reason: "Interval Too Brief",
                        headers: format!("Min-Expires: {min}\r\n"),
                    });
                }
                let secs = if max != 0 && secs > max { max } else { secs };
                let q = match na.param("q") {
                    Some(Some(v)) => {
                        parse_q(unquote(v)).ok_or_else(|| reject(400, "Invalid q value"))?
                    }
                    _ => rc.default_q,
                };
                // A Contact fix_nated_contact rewrote is saved as
                // rewritten (OpenSIPS changes the parsed URI in place).
                let uri = match m.rewritten(na.uri) {
                    Some(r) => r.trim_start_matches('<').trim_end_matches('>'),
                    None => na.uri,
                }
                .to_string();
                if crate::sip::Uri::parse(&uri).is_err() || uri.contains(['\r', '\n', ' ']) {
                    return Err(reject(400, "Bad Contact URI"));
                }
                out.push(Ct {
                    uri,
                    secs,
                    q,
                    // Stored as OpenSIPS does: `<urn:…>`, without quotes.
                    instance: na
                        .param("+sip.instance")
                        .flatten()
                        .map(|s| unquote(s).to_string())
                        .filter(|s| !s.is_empty() && !s.contains(['\r', '\n'])),
                    reg_id: na
                        .param("reg-id")
                        .flatten()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0),
                    methods: na
                        .param("methods")
                        .flatten()
                        .map(|s| methods_of(unquote(s)))
                        .or(allow),
                });
            }
            Cts::List(out)
        }
    };
    let path_mode = f.path.unwrap_or_default();
    let path_vals = m.header_values("Path");
    let supports_path = m
        .header_values("Supported")
        .iter()
        .any(|v| v.trim().eq_ignore_ascii_case("path"));
    let path = match (path_mode, path_vals.is_empty()) {
        (PathMode::Off, _) | (_, true) => None,
        (PathMode::Strict, false) if !supports_path => {
            return Err(Reject {
                code: 420,
                reason: "Bad Extension",
                headers: "Unsupported: path\r\n".into(),
            })
        }
        // Folded lines become one (the value goes back out in headers).
        _ => Some(
            path_vals
                .iter()
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join(","),
        ),
    };
    let mut received = rc
        .received_avp
        .as_ref()
        .and_then(|n| call.avps.get(n))
        .and_then(|v| v.first())
        .and_then(|v| match v {
            PvValue::Str(s) => Some(s.clone()),
            _ => None,
        });
    if f.path_received && path.is_some() {
        // The first Path hop's received parameter names the UA's source.
        received = received.or_else(|| {
            let first = path_vals.first()?;
            let na = crate::sip::NameAddr::parse(first.trim()).ok()?;
            let u = crate::sip::Uri::parse(na.uri).ok()?;
            u.param("received").flatten().map(|r| unquote(r).to_string())
        });
    }
    let sock = st.env.sockets.list.get(call.src.socket);
    let socket = sock.map(|s| s.spec());
    let supports = |tag: &str| {
        m.header_values("Supported")
            .iter()
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(tag))
    };
    let gruu = match !rc.disable_gruu && supports("gruu") {
        true => sock.map(|s| s.addr.to_string()),
        false => None,
    };
    Ok(Req {
        aor,
        callid,
        cseq,
        contacts,
        echo_path: path.is_some() && supports_path,
        path,
        user_agent: m.header("User-Agent").unwrap_or("").trim().to_string(),
        received,
        socket,
        cflags: call.bflags,
        matching_mode: f.matching_mode.unwrap_or(ul.matching_mode),
        max_contacts: f.max_contacts.unwrap_or(conf().max_contacts),
        force: f.force,
        gruu,
    })
}

/// The bindings of the AoR after this REGISTER, or why it is refused (the
/// bindings are then left as they were).
fn apply(v: &mut Vec<Contact>, r: &Req, t: i64) -> Result<(), Reject> {
    let list = match &r.contacts {
        Cts::Query => return Ok(()),
        Cts::Star => {
            v.clear();
            return Ok(());
        }
        Cts::List(l) => l,
    };
    let mut work = v.clone();
    for c in list {
        let found = work
            .iter()
            .position(|x| x.uri == c.uri && (r.matching_mode == 0 || x.callid == r.callid));
        match found {
            Some(i) => {
                let x = &mut work[i];
                // §10.3 step 6: the same Call-ID with an older or equal
                // CSeq is a retransmission or out of order: left alone
                // (OpenSIPS answers 200 as for R_OOO / R_RETRANS).
                if x.callid == r.callid && r.cseq <= x.cseq {
                    continue;
                }
                if c.secs == 0 {
                    work.remove(i);
                    continue;
                }
                x.expires = t + i64::from(c.secs);
                x.q = c.q;
                x.callid = r.callid.clone();
                x.cseq = r.cseq;
                x.received = r.received.clone();
                x.path = r.path.clone();
                x.user_agent = r.user_agent.clone();
                x.socket = r.socket.clone();
                x.cflags = r.cflags;
                x.methods = c.methods;
                x.instance = c.instance.clone();
                x.reg_id = c.reg_id;
                x.last_modified = t;
            }
            None if c.secs == 0 => {}
            None => work.push(Contact {
                id: Contact::new_id(&r.aor, &c.uri),
                uri: c.uri.clone(),
                received: r.received.clone(),
                path: r.path.clone(),
                expires: t + i64::from(c.secs),
                q: c.q,
                callid: r.callid.clone(),
                cseq: r.cseq,
                flags: 0,
                cflags: r.cflags,
                user_agent: r.user_agent.clone(),
                socket: r.socket.clone(),
                methods: c.methods,
                instance: c.instance.clone(),
                reg_id: c.reg_id,
                last_modified: t,
                latency: 0,
            }),
        }
    }
    let max = r.max_contacts as usize;
    if max > 0 && work.len() > max {
        if !r.force {
            return Err(reject(503, "Too many registered contacts"));
        }
        // force-registration: the bindings closest to expiry make room.
        work.sort_by_key(|c| std::cmp::Reverse(c.expires));
        work.truncate(max);
    }
    // Highest q first, then the newest (lookup's fork order).
    work.sort_by(|a, b| {
        b.q.max(0)
            .cmp(&a.q.max(0))
            .then(b.last_modified.cmp(&a.last_modified))
    });
    *v = work;
    Ok(())
}

/// The 200's header lines: every binding with its expires (§10.3 step 8)
/// and the Path stored (RFC 3327 §5.3).
fn ok_headers(bindings: &[Contact], r: &Req, t: i64) -> String {
    let (rc, use_domain) = (conf(), usrloc::conf().use_domain);
    use std::fmt::Write;
    let mut h = String::with_capacity(bindings.iter().map(|c| c.uri.len() + 48).sum());
    for c in bindings.iter().filter(|c| c.valid(t)) {
        h.push_str("Contact: <");
        h.push_str(&c.uri);
        h.push_str(">;expires=");
        // Writing to a String cannot fail.
        let _ = write!(h, "{}", c.left(t));
        if c.q >= 0 {
            let _ = write!(h, ";q={:.2}", f64::from(c.q) / 1000.0);
        }
        if let Some(hp) = &r.gruu {
            let g = super::gruu::contact_params(c, &r.aor, use_domain, hp, &rc.gruu_secret, t);
            h.push_str(&g.unwrap_or_default());
        }
        h.push_str("\r\n");
    }
    if r.echo_path {
        if let Some(p) = &r.path {
            h.push_str("Path: ");
            h.push_str(p);
            h.push_str("\r\n");
        }
    }
    h
}

/// With `tcp_persistent_flag` set on a REGISTER received over TCP: its
/// peer and the longest expires of its TCP contacts (`transport=tcp`),
/// for which its connection is kept open (OpenSIPS registrar/save.c
/// `insert_contacts`/`update_contacts`, `DST_FCNTL_SET_LIFETIME`).
fn tcp_persistent(st: &State, rc: &RegConf, req: &Req) -> Option<(std::net::SocketAddr, u64)> {
    let bit = rc.tcp_persistent_flag?;
    let call = st.call.borrow();
    if call.flags & (1u64 << bit) == 0 || call.src.proto != crate::transport::Proto::Tcp {
        return None;
    }
    let Cts::List(list) = &req.contacts else {
        return None;
    };
    let secs = list
        .iter()
        .filter(|c| c.secs > 0)
        .filter(|c| {
            crate::sip::Uri::parse(&c.uri).is_ok_and(|u| {
                u.param("transport")
                    .flatten()
                    .is_some_and(|t| t.eq_ignore_ascii_case("tcp"))
            })
        })
        .map(|c| u64::from(c.secs))
        .max()?;
    Some((call.src.addr, secs))
}

pub fn save(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let table = a.str(0)?;
    let f = flags::save(&a.opt_str(1)?.unwrap_or_default()).map_err(|e| a.err(e))?;
    let aor_arg = a.opt_str(2)?;
    let d = usrloc::domain(&table).map_err(|e| a.err(e))?;
    let ul = usrloc::conf();
    let rc = conf();
    let req = match parse(st, &f, aor_arg.as_deref(), &ul, &rc) {
        Ok(r) => r,
        Err(rej) => {
            REGISTRAR.rejected_regs.inc();
            if !f.no_reply {
                reply::send_local_reply_with(st, rej.code, rej.reason, &rej.headers);
            }
            return Step::now(coded(lua, -2));
        }
    };
    let persist = !f.memory_only;
    let keep_tcp = tcp_persistent(st, &rc, &req);
    // Waits where the table is read or written through (not for db_mode 2
    // once loaded, nor for memory-only saves in db_mode 1).
    if d.read_waits() || (ul.db_mode == 1 && persist) {
        a.require_suspend()?;
    }
    let t = now();
    let done = Done { f, keep_tcp, t };
    // Where usrloc needs no database the bindings change at once.
    let edit = |v: &mut Vec<Contact>| apply(v, &req, t).map(|()| v.clone());
    if let Ok(out) = d.update_now(&req.aor, persist, edit) {
        return Step::now(done.answer(lua, st, &req, Ok(out)));
    }
    let (lua, st) = (lua.clone(), st.clone());
    Step::wait(async move {
        let r2 = req.clone();
        let edit = move |v: &mut Vec<Contact>| apply(v, &r2, t).map(|()| v.clone());
        let out = d.update(&req.aor, persist, edit).await;
        done.answer(&lua, &st, &req, out)
    })
}

/// What `save` does once the bindings changed (or could not).
struct Done {
    f: SaveFlags,
    keep_tcp: Option<(std::net::SocketAddr, u64)>,
    t: i64,
}

impl Done {
    /// Counts, keeps a TCP connection open, replies (unless told not to)
    /// and gives the return code.
    fn answer(
        self,
        lua: &Lua,
        st: &State,
        req: &Req,
        out: Result<Result<Vec<Contact>, Reject>, crate::db::DbError>,
    ) -> mlua::Result<mlua::MultiValue> {
        let (code, reason, headers, rcode) = match out {
            Ok(Ok(bindings)) => {
                REGISTRAR.accepted_regs.inc();
                if let Some((peer, secs)) = self.keep_tcp {
                    // save.c: the connection lives as long as the contact, plus 10 s.
                    let kept = st.env.tcp.keep_open(&peer, Duration::from_secs(secs + 10));
                    tracing::debug!("registrar: tcp {peer} kept open {secs}+10 s: {kept}");
                }
                (200, "OK", ok_headers(&bindings, req, self.t), 1)
            }
            Ok(Err(rej)) => {
                REGISTRAR.rejected_regs.inc();
                (rej.code, rej.reason, rej.headers, -2)
            }
            Err(e) => {
                tracing::error!("registrar: save for {}: {e}", req.aor);
                REGISTRAR.rejected_regs.inc();
                (500, "Server Internal Error", String::new(), -2)
            }
        };
        if !self.f.no_reply {
            reply::send_local_reply_with(st, code, reason, &headers);
        }
        coded(lua, rcode)
    }
}

#[cfg(test)]
#[path = "save_tests.rs"]
mod tests;
