//! `lookup` and the questions about registrations (OpenSIPS
//! lib/reg/lookup.c, modules/registrar/lookup.c): codes 1 found, -1 not
//! found, -2 contacts found but none allows the method, -3 internal error,
//! as the second result.

use std::rc::Rc;

use mlua::{Lua, MultiValue};

use super::save::method_bit;
use super::gruu::{self, Target};
use super::{aor_of, coded, conf, flags};
use crate::modules::usrloc::{self, Contact};
use crate::proxy::context::PendingBranch;
use crate::script::exports::{ret, Args, Step};
use crate::script::host::State;

/// The first URI of a Path value (`<sip:lb;lr>,<sip:x>` → `sip:lb;lr`).
fn first_hop(path: &str) -> Option<String> {
    let mut depth = 0;
    let end = path
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                _ => {}
            }
            c == ',' && depth == 0
        })
        .map_or(path.len(), |(i, _)| i);
    let na = crate::sip::NameAddr::parse(path[..end].trim()).ok()?;
    Some(na.uri.to_string())
}

/// Where a contact's request goes first: its Path's first hop, else the
/// address it registered from (OpenSIPS push_branch).
fn next_hop(c: &Contact) -> Option<String> {
    match &c.path {
        Some(p) => first_hop(p),
        None => c.received.clone(),
    }
}

/// Where the contacts a lookup selects go (OpenSIPS push_branch): the
/// first to the R-URI (unless `to-branches-only`), the others to new
/// branches.
struct Pusher<'a> {
    st: &'a State,
    ruri_pushed: bool,
}

impl Pusher<'_> {
    fn socket_of(&self, s: &Option<String>) -> Option<usize> {
        let list = &self.st.env.sockets.list;
        s.as_ref()
            .and_then(|s| list.iter().find(|x| &x.spec() == s).map(|x| x.id))
    }

    /// False when the message is gone.
    fn push(&mut self, c: &Contact) -> bool {
        let socket = self.socket_of(&c.socket);
        let mut call = self.st.call.borrow_mut();
        if !self.ruri_pushed {
            let Some(m) = call.msg.as_mut() else {
                return false;
            };
            m.set_ruri(&c.uri);
            call.du = next_hop(c);
            call.path_vec = c.path.clone();
            call.ru_q = (c.q >= 0).then_some(i64::from(c.q));
            call.bflags |= c.cflags;
            if socket.is_some() {
                call.socket_out = socket;
            }
            self.ruri_pushed = true;
            return true;
        }
        call.tm.branches.push(PendingBranch {
            uri: c.uri.clone(),
            duri: next_hop(c),
            q: (c.q >= 0).then_some(i64::from(c.q)),
            path: c.path.clone(),
            flags: c.cflags,
            socket,
        });
        true
    }
}

pub fn lookup(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let table = a.str(0)?;
    let f = flags::lookup_cached(&a.opt_str(1)?.unwrap_or_default()).map_err(|e| a.err(e))?;
    let uri_arg = a.opt_str(2)?;
    let d = usrloc::domain(&table).map_err(|e| a.err(e))?;
    let ul = usrloc::conf();
    let (uri, method, branch_uris) = {
        let mut call = st.call.borrow_mut();
        let m = call
            .msg
            .as_ref()
            .filter(|m| m.is_request())
            .ok_or_else(|| a.err("no request in this route"))?;
        let (uri, method) = (
            uri_arg.unwrap_or_else(|| m.ruri().to_string()),
            m.method().to_string(),
        );
        // `branch`: the branches give way to their AoRs' contacts.
        let branches: Vec<String> = match f.branch {
            true => call.tm.branches.drain(..).map(|b| b.uri).collect(),
            false => Vec::new(),
        };
        (uri, method, branches)
    };
    // A GRUU (RFC 5627 §8): the AoR of a temporary one is inside it.
    let target = match gruu::target(&uri, &conf().gruu_secret) {
        Ok(t) => t,
        Err(gruu::BadTempGruu) => {
            tracing::error!("{}: '{uri}' is a temporary GRUU that does not decode", a.fname);
            return Step::now(coded(lua, -3));
        }
    };
    let aor = match &target {
        Some(Target::Temp { aor, .. }) => Some(aor.clone()),
        _ => aor_of(&uri, ul.use_domain, conf().case_sensitive),
    };
    let Some(aor) = aor else {
        let code = if crate::sip::Uri::parse(&uri).is_ok() { -1 } else { -3 };
        return Step::now(coded(lua, code));
    };
    // The R-URI's AoR, then each branch's; one that has none ends the
    // lookup there with -3 (lookup.c `next_aor`).
    let mut aors = vec![aor];
    let mut bad_branch = false;
    for b in &branch_uris {
        match aor_of(b, ul.use_domain, conf().case_sensitive) {
            Some(x) => aors.push(x),
            None => {
                tracing::error!("{}: branch '{b}' has no address of record", a.fname);
                bad_branch = true;
                break;
            }
        }
    }
    let found = Found {
        f,
        method,
        target,
        bad_branch,
    };
    // Where usrloc has the contacts in memory, answered at once.
    if !d.read_waits() {
        let lists = aors.into_iter().map(|x| (d.get_memory(&x), x)).collect();
        return Step::now(found.answer(lua, st, lists));
    }
    a.require_suspend()?;
    let (lua, st) = (lua.clone(), st.clone());
    Step::wait(async move {
        let mut lists = Vec::with_capacity(aors.len());
        for x in aors {
            match d.get(&x).await {
                Ok(cts) => lists.push((cts, x)),
                Err(e) => {
                    tracing::error!("registrar: lookup of {x}: {e}");
                    return coded(&lua, -3);
                }
            }
        }
        found.answer(&lua, &st, lists)
    })
}

/// What `lookup` does with the contacts of the AoRs.
struct Found {
    f: Rc<flags::LookupFlags>,
    method: String,
    target: Option<Target>,
    /// A branch's URI had no AoR: -3 after the AoRs before it.
    bad_branch: bool,
}

impl Found {
    /// Selects and orders each AoR's contacts and sets the R-URI and the
    /// branches (lib/reg/lookup.c `lookup`): the return code.
    fn answer(self, lua: &Lua, st: &State, lists: Vec<(Vec<Contact>, String)>) -> mlua::Result<MultiValue> {
        let ua_re = match &self.f.ua_filter {
            Some((re, icase)) => {
                let posix = crate::pv::re::Posix {
                    icase: *icase,
                    newline: false,
                };
                match crate::pv::re::posix(re, posix) {
                    Ok(re) => Some(re),
                    Err(e) => {
                        tracing::error!("registrar: lookup: {e}");
                        return coded(lua, -3);
                    }
                }
            }
            None => None,
        };
        let mut ret: i64 = -1;
        let mut pusher = Pusher {
            st,
            ruri_pushed: false,
        };
        for (i, (cts, aor)) in lists.into_iter().enumerate() {
            // Not found: the next AoR.
            if cts.is_empty() {
                continue;
            }
            let target = if i == 0 { self.target.as_ref() } else { None };
            let cts = self.select(&aor, cts, target, ua_re.as_deref(), &mut ret);
            // to-branches-only: found, so 1 whatever is selected (as
            // lookup.c marks the R-URI pushed).
            if self.f.to_branches_only {
                pusher.ruri_pushed = true;
            }
            for c in &cts {
                if !pusher.push(c) {
                    return coded(lua, -3);
                }
                if self.f.no_branches {
                    return coded(lua, 1);
                }
            }
        }
        if self.bad_branch {
            return coded(lua, -3);
        }
        coded(lua, if pusher.ruri_pushed { 1 } else { ret })
    }

    /// The contacts of one AoR that go on (select_contacts), highest q
    /// first (or by latency). `ret` becomes 1 when some are; else, when
    /// it is below 0, -2 or -1 as the last valid contact allowed the
    /// method or not (OpenSIPS sets it contact by contact).
    fn select(
        &self,
        aor: &str,
        mut cts: Vec<Contact>,
        target: Option<&Target>,
        ua_re: Option<&regex::Regex>,
        ret: &mut i64,
    ) -> Vec<Contact> {
        // Rows another writer put in the table go on the wire only if they
        // are a URI and one-line Path (never a malformed request).
        cts.retain(|c| {
            let ok = crate::sip::Uri::parse(&c.uri).is_ok()
                && !c.uri.contains(['\r', '\n', ' '])
                && c.path.as_deref().is_none_or(|p| !p.contains(['\r', '\n']));
            if !ok {
                tracing::warn!("registrar: lookup of {aor}: skipping the malformed contact {:?}", c.uri);
            }
            ok
        });
        cts.sort_by(|a, b| {
            b.q.max(0)
                .cmp(&a.q.max(0))
                .then(b.last_modified.cmp(&a.last_modified))
        });
        let bit = method_bit(&self.method);
        let allowed = |c: &Contact| !self.f.method_filtering || c.methods.is_none_or(|m| m & bit != 0);
        let last_allowed = cts.last().map(allowed);
        let max = i64::from(self.f.max_latency);
        cts.retain(|c| {
            allowed(c)
                && ua_re.is_none_or(|re| re.is_match(&c.user_agent))
                && (max == 0 || i64::from(c.latency) <= max)
        });
        if let Some(t) = target {
            cts = gruu::select(cts, t);
        }
        if !cts.is_empty() {
            *ret = 1;
        } else if let (true, Some(ok)) = (*ret < 0, last_allowed) {
            *ret = if ok { -1 } else { -2 };
        }
        if self.f.sort_by_latency {
            // Unmeasured (0) last (lookup.c `cmp_ucontact`).
            cts.sort_by_key(|c| (c.latency == 0, c.latency));
        }
        cts
    }
}

/// The AoR a question is about: the argument, else the To URI of a
/// REGISTER or the From URI of another request (OpenSIPS select_uri).
fn question_aor(st: &State, a: &Args, at: usize) -> mlua::Result<Option<String>> {
    let ul = usrloc::conf();
    let uri = match a.opt_str(at)? {
        Some(u) => u,
        None => {
            let call = st.call.borrow();
            let m = call
                .msg
                .as_ref()
                .filter(|m| m.is_request())
                .ok_or_else(|| a.err("no request in this route"))?;
            let h = match m.method().eq_ignore_ascii_case("REGISTER") {
                true => m.to(),
                false => m.from(),
            };
            match h {
                Some(n) => n.uri.to_string(),
                None => return Ok(None),
            }
        }
    };
    Ok(aor_of(&uri, ul.use_domain, conf().case_sensitive))
}

/// A question answered from the AoR's valid contacts.
fn ask(
    lua: &Lua,
    st: &Rc<State>,
    a: &Args,
    aor_at: usize,
    judge: impl FnOnce(&[Contact]) -> bool + 'static,
) -> mlua::Result<Step> {
    let table = a.str(0)?;
    let d = usrloc::domain(&table).map_err(|e| a.err(e))?;
    let Some(aor) = question_aor(st, a, aor_at)? else {
        return Step::now(ret(lua, false));
    };
    if let Some(cts) = d.get_now(&aor) {
        return Step::now(ret(lua, judge(&cts)));
    }
    a.require_suspend()?;
    let lua = lua.clone();
    Step::wait(async move {
        match d.get(&aor).await {
            Ok(cts) => ret(&lua, judge(&cts)),
            Err(e) => {
                tracing::error!("registrar: reading {aor}: {e}");
                ret(&lua, false)
            }
        }
    })
}

pub fn is_registered(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    ask(lua, st, &a, 1, |cts| !cts.is_empty())
}

pub fn is_contact_registered(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let contact = a.opt_str(2)?;
    let callid = a.opt_str(3)?;
    let contact = match (contact, &callid) {
        (Some(c), _) => Some(c),
        (None, Some(_)) => None,
        (None, None) => {
            // The request's first Contact.
            let call = st.call.borrow();
            let first = call
                .msg
                .as_ref()
                .and_then(|m| match m.contacts() {
                    Ok(crate::sip::nameaddr::Contacts::List(l)) => {
                        l.first().map(|n| n.uri.to_string())
                    }
                    _ => None,
                });
            match first {
                Some(c) => Some(c),
                None => return Step::now(ret(lua, false)),
            }
        }
    };
    ask(lua, st, &a, 1, move |cts| {
        cts.iter().any(|c| {
            contact.as_ref().is_none_or(|u| &c.uri == u)
                && callid.as_ref().is_none_or(|i| &c.callid == i)
        })
    })
}

/// The host of a `received` or contact URI (`sip:1.2.3.4:5060` → `1.2.3.4`).
fn host_of(uri: &str) -> Option<String> {
    let u = crate::sip::Uri::parse(uri).ok()?;
    Some(u.host_bare().to_string())
}

pub fn is_ip_registered(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let ip = a.str(2)?;
    let ip = ip.trim().trim_start_matches('[').trim_end_matches(']').to_string();
    ask(lua, st, &a, 1, move |cts| {
        cts.iter().any(|c| {
            let src = c.received.as_deref().unwrap_or(&c.uri);
            host_of(src).is_some_and(|h| h == ip)
        })
    })
}

pub fn remove(lua: &Lua, _st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let table = a.str(0)?;
    let d = usrloc::domain(&table).map_err(|e| a.err(e))?;
    let ul = usrloc::conf();
    let aor_uri = a.str(1)?;
    let aor = aor_of(&aor_uri, ul.use_domain, conf().case_sensitive)
        .ok_or_else(|| a.err(format!("'{aor_uri}' is not an AoR URI with a user part")))?;
    let contact = a.opt_str(2)?;
    if ul.db_mode != 0 {
        a.require_suspend()?;
    }
    let edit = move |v: &mut Vec<Contact>| {
        let n = v.len();
        match &contact {
            Some(u) => v.retain(|c| &c.uri != u),
            None => v.clear(),
        }
        n != v.len()
    };
    // Where usrloc needs no database the contacts go at once.
    let edit = match d.update_now(&aor, true, edit) {
        Ok(removed) => return Step::now(ret(lua, removed)),
        Err(edit) => edit,
    };
    let lua = lua.clone();
    Step::wait(async move {
        match d.update(&aor, true, edit).await {
            Ok(removed) => ret(&lua, removed),
            Err(e) => {
                tracing::error!("registrar: remove {aor}: {e}");
                ret(&lua, false)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_first_hop() {
        assert_eq!(
            super::first_hop("<sip:lb.example.com;lr>,<sip:x;lr>").as_deref(),
            Some("sip:lb.example.com;lr")
        );
        assert_eq!(super::first_hop("<sip:a;lr>").as_deref(), Some("sip:a;lr"));
    }
}
