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

/// Sets the R-URI and the branches (OpenSIPS push_branch). False when the
/// message is gone.
fn push(st: &State, cts: &[Contact], f: &flags::LookupFlags) -> bool {
    let socket_of = |s: &Option<String>| {
        s.as_ref().and_then(|s| {
            st.env
                .sockets
                .list
                .iter()
                .find(|x| &x.spec() == s)
                .map(|x| x.id)
        })
    };
    let mut call = st.call.borrow_mut();
    let mut rest = cts;
    if !f.to_branches_only {
        let Some((first, others)) = cts.split_first() else {
            return true;
        };
        rest = others;
        let Some(m) = call.msg.as_mut() else {
            return false;
        };
        m.set_ruri(&first.uri);
        call.du = next_hop(first);
        call.path_vec = first.path.clone();
        call.ru_q = (first.q >= 0).then_some(i64::from(first.q));
        call.bflags |= first.cflags;
        if let Some(s) = socket_of(&first.socket) {
            call.socket_out = Some(s);
        }
    }
    if f.no_branches {
        return true;
    }
    for c in rest {
        call.tm.branches.push(PendingBranch {
            uri: c.uri.clone(),
            duri: next_hop(c),
            q: (c.q >= 0).then_some(i64::from(c.q)),
            path: c.path.clone(),
            flags: c.cflags,
            socket: socket_of(&c.socket),
        });
    }
    true
}

pub fn lookup(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let table = a.str(0)?;
    let f = flags::lookup(&a.opt_str(1)?.unwrap_or_default()).map_err(|e| a.err(e))?;
    let uri_arg = a.opt_str(2)?;
    let d = usrloc::domain(&table).map_err(|e| a.err(e))?;
    let ul = usrloc::conf();
    let (uri, method) = {
        let call = st.call.borrow();
        let m = call
            .msg
            .as_ref()
            .filter(|m| m.is_request())
            .ok_or_else(|| a.err("no request in this route"))?;
        (
            uri_arg.unwrap_or_else(|| m.ruri().to_string()),
            m.method().to_string(),
        )
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
    let found = Found { f, method, target };
    // Where usrloc has the contacts in memory, answered at once.
    if let Some(cts) = d.get_now(&aor) {
        return Step::now(found.answer(lua, st, &aor, cts));
    }
    a.require_suspend()?;
    let (lua, st) = (lua.clone(), st.clone());
    Step::wait(async move {
        match d.get(&aor).await {
            Ok(cts) => found.answer(&lua, &st, &aor, cts),
            Err(e) => {
                tracing::error!("registrar: lookup of {aor}: {e}");
                coded(&lua, -3)
            }
        }
    })
}

/// What `lookup` does with the contacts of the AoR.
struct Found {
    f: flags::LookupFlags,
    method: String,
    target: Option<Target>,
}

impl Found {
    /// Filters and orders the contacts, then sets the R-URI and the
    /// branches: the return code.
    fn answer(self, lua: &Lua, st: &State, aor: &str, mut cts: Vec<Contact>) -> mlua::Result<MultiValue> {
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
        if cts.is_empty() {
            return coded(lua, -1);
        }
        if self.f.method_filtering {
            let bit = method_bit(&self.method);
            cts.retain(|c| c.methods.is_none_or(|m| m & bit != 0));
            if cts.is_empty() {
                return coded(lua, -2);
            }
        }
        // After the method check: contacts that allow the method but whose
        // User-Agent does not match leave -1, not -2 (select_contacts).
        if let Some((re, icase)) = &self.f.ua_filter {
            let posix = crate::pv::re::Posix {
                icase: *icase,
                newline: false,
            };
            match crate::pv::re::posix(re, posix) {
                Ok(re) => cts.retain(|c| re.is_match(&c.user_agent)),
                Err(e) => {
                    tracing::error!("registrar: lookup of {aor}: {e}");
                    return coded(lua, -3);
                }
            }
            if cts.is_empty() {
                return coded(lua, -1);
            }
        }
        cts.sort_by(|a, b| {
            b.q.max(0)
                .cmp(&a.q.max(0))
                .then(b.last_modified.cmp(&a.last_modified))
        });
        if let Some(t) = &self.target {
            cts = gruu::select(cts, t);
            if cts.is_empty() {
                return coded(lua, -1);
            }
        }
        match push(st, &cts, &self.f) {
            true => coded(lua, 1),
            false => coded(lua, -3),
        }
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
