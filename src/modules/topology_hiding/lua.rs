//! topology_hiding's Lua functions (OpenSIPS 3.4 topology_hiding.c
//! names and results).

use mlua::{Lua, MultiValue};

use super::logic::{engage, side_of, Flags, Mode, Th, ONGOING};
use super::{conf, encode};
use crate::modules::dialog::machine::{self, CallDlg};
use crate::modules::dialog::store::{self, lock};
use crate::proxy::context::Call;
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::sip::Uri;

fn topology_hiding(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let flags = match a.opt_str(0)? {
        Some(f) => pv_fmt(lua, st, &f)?,
        None => String::new(),
    };
    let mut call = st.call.borrow_mut();
    let Some(m) = call.msg.as_ref() else {
        return ret(lua, false);
    };
    if m.to_tag().is_some_and(|t| !t.is_empty()) {
        tracing::warn!("{}: not for a sequential request", a.fname);
        return ret(lua, false);
    }
    let rr = m.header_values("Record-Route");
    let rr_back = (!rr.is_empty()).then(|| rr.join(", "));
    let Some(up) = st.env.sockets.list.get(call.src.socket).map(side_of) else {
        return ret(lua, false);
    };
    let mut dlg = call.slot_ref::<CallDlg>().and_then(|c| c.dlg.clone());
    if dlg.is_none() && conf().force_dialog {
        dlg = machine::create(&mut call, 0, Some(up.1.clone()));
        if dlg.is_none() {
            tracing::error!("{}: failed to create the dialog", a.fname);
            return ret(lua, false);
        }
    }
    let mut flags = Flags::parse(&flags);
    let bits = flags.bits();
    let mode = match &dlg {
        Some(d) => {
            let mut d = lock(d);
            if d.mod_flags & ONGOING != 0 {
                // Already engaged for this dialog (OpenSIPS: a no-op).
                return ret(lua, true);
            }
            // OpenSIPS keeps them as the dialog's module flags (persisted
            // in the `module_flags` column).
            d.mod_flags |= ONGOING | flags.bits();
            Mode::Dialog { did: d.did() }
        }
        None => {
            // OpenSIPS: both need the dialog engaged.
            if flags.did_in_user || flags.hide_callid {
                tracing::warn!("{}: flags C and D need a dialog; skipped", a.fname);
            }
            flags.did_in_user = false;
            flags.hide_callid = false;
            Mode::NoDialog {
                reply_routes: None,
                bits,
            }
        }
    };
    let th = Th {
        flags,
        mode,
        towards_callee: true,
        rr_back,
        up,
        down: Default::default(),
    };
    engage(&mut call, th);
    ret(lua, true)
}

/// The R-URI if it names this proxy and the request has no Route: the
/// in-dialog request of a hidden call (OpenSIPS topology_hiding_match).
fn our_ruri(st: &State, call: &Call) -> Option<String> {
    let m = call.msg.as_ref()?;
    let u = Uri::parse(m.ruri()).ok()?;
    (st.env.sockets.is_myself(u.host, u.port) && m.routes().is_empty()).then(|| m.ruri().to_string())
}

/// The value of URI parameter `name` in `uri`.
fn uri_param<'a>(uri: &Uri<'a>, name: &str) -> Option<&'a str> {
    uri.params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The `did` our Contact carried: a parameter, or with flag `D` in the
/// user part (`user.did.<entry>.<id>`).
fn did_in(uri: &Uri, rr_param: &str) -> Option<String> {
    if let Some(d) = uri_param(uri, rr_param) {
        return Some(d.to_string());
    }
    let user = uri.user?;
    let marker = format!(".{rr_param}.");
    let at = user.rfind(&marker)?;
    let did = &user[at + marker.len()..];
    store::parse_did(did).map(|_| did.to_string())
}

/// The request goes to `contact` through `routes`, from socket `socket`.
fn retarget(st: &State, call: &mut Call, contact: Option<&str>, routes: &[String], socket: Option<&str>) {
    if let Some(m) = call.msg.as_mut() {
        if let Some(c) = contact.filter(|c| !c.is_empty()) {
            m.set_ruri(c);
        }
        if !routes.is_empty() {
            m.prepend_header("Route", &routes.join(", "));
        }
    }
    call.du = routes
        .first()
        .map(|r| r.trim().trim_start_matches('<').split('>').next().unwrap_or_default().to_string());
    if let Some(s) = socket.and_then(|s| st.env.sockets.by_spec(s)) {
        call.socket_out = Some(s.id);
    }
}

fn match_dialog_mode(st: &State, call: &mut Call, uri: &str, mode: u8) -> Option<bool> {
    let rr_param = crate::modules::dialog::conf().rr_param.clone();
    let u = Uri::parse(uri).ok()?;
    let did = did_in(&u, &rr_param)?;
    // A request from the callee may carry the hidden Call-ID (flag C).
    let plain = call.msg.as_ref().and_then(|m| m.call_id()).and_then(super::callid::decode);
    if !machine::on_sequential_as(call, Some(&format!("{rr_param}={did}")), mode, plain.as_deref()) {
        return Some(false);
    }
    let cd = call.slot_ref::<CallDlg>()?;
    let (r, dst) = (cd.dlg.clone()?, cd.dst_leg?);
    let (flags, contact, routes, bind, did) = {
        let d = lock(&r);
        if d.mod_flags & ONGOING == 0 {
            // A dialog that is not hidden: matched, nothing to change.
            return Some(true);
        }
        let l = &d.legs[dst];
        (d.mod_flags, l.contact.clone(), l.route_set.clone(), l.bind.clone(), d.did())
    };
    retarget(st, call, Some(&contact), &routes, bind.as_deref());
    let up = st.env.sockets.list.get(call.src.socket).map(side_of)?;
    let th = Th {
        flags: Flags::from_bits(flags),
        mode: Mode::Dialog { did },
        towards_callee: dst == store::CALLEE,
        rr_back: None,
        up,
        down: Default::default(),
    };
    engage(call, th);
    Some(true)
}

fn match_no_dialog(st: &State, call: &mut Call, uri: &str) -> Option<bool> {
    let c = conf();
    let u = Uri::parse(uri).ok()?;
    let enc = uri_param(&u, &c.encode_param)?;
    let Some(info) = encode::decode(enc, &c.encode_passwd, c.encode_base32) else {
        tracing::info!("topology_hiding_match: a {} parameter that does not decode", c.encode_param);
        return Some(false);
    };
    let routes: Vec<String> = if info.routes.is_empty() {
        Vec::new()
    } else {
        crate::sip::split::CommaSplit::new(&info.routes).map(|s| s.trim().to_string()).collect()
    };
    retarget(st, call, Some(&info.contact), &routes, Some(&info.socket));
    let up = st.env.sockets.list.get(call.src.socket).map(side_of)?;
    let mut flags = Flags::from_bits(info.flags);
    // As at the start: C and D need a dialog.
    flags.did_in_user = false;
    flags.hide_callid = false;
    let th = Th {
        flags,
        mode: Mode::NoDialog {
            reply_routes: Some(info.routes),
            bits: info.flags,
        },
        towards_callee: false,
        rr_back: None,
        up,
        down: Default::default(),
    };
    engage(call, th);
    Some(true)
}

fn topology_hiding_match(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mode = match a.opt_str(0)? {
        None => crate::modules::dialog::conf().match_mode,
        Some(s) => match s.as_str() {
            "did_only" | "0" => 0,
            "did_fallback" | "1" => 1,
            "did_none" | "2" => 2,
            other => return Err(a.err(format!("'{other}' is not did_only, did_fallback or did_none"))),
        },
    };
    let mut call = st.call.borrow_mut();
    let Some(uri) = our_ruri(st, &call) else {
        return ret(lua, false);
    };
    let found = match match_dialog_mode(st, &mut call, &uri, mode) {
        Some(f) => f,
        None => match_no_dialog(st, &mut call, &uri).unwrap_or(false),
    };
    ret(lua, found)
}

const R: RouteMask = RouteMask::REQUEST;

pub static EXPORTS: &[Export] = &[
    Export {
        name: "topology_hiding",
        args: "([flags])",
        returns: "true, false for a sequential request",
        routes: R,
        doc: "Hides this initial request's topology from the callee and the callee's from the caller: every copy leaves with only our Via, no Record-Route (ours neither) and our Contact; replies get the caller's Vias and Record-Route back and our Contact. With a dialog (`create_dialog` before, or `force_dialog`) our Contact carries the dialog id; without, it carries the caller's Contact and route set encoded (`th_contact_encode_param`). Flags: `U` keep the Contact's user part; with a dialog, `D` puts the dialog id in the user part and `C` shows the callee another Call-ID (`th_callid_prefix` and the caller's masked with `th_callid_passwd`, in word64), restored on the way back; `a` the caller, `A` the callee, sees all through the dialog the Contact first advertised to it (the 2xx's, the INVITE's) even when the other side's Contact or our socket changes.",
        func: Func::Sync(topology_hiding),
    },
    Export {
        name: "topology_hiding_match",
        args: "([match_mode])",
        returns: "true if the request is an in-dialog request of a hidden call",
        routes: R,
        doc: "For a sequential request sent to our Contact (R-URI ours, no Route): finds its dialog by the id in the R-URI (match mode `did_only`, `did_fallback`, `did_none` or 0-2, default `dlg_match_mode`) or decodes the dialog-less parameter, then sends it to the other side's Contact through its route set, hidden as the initial request was.",
        func: Func::Sync(topology_hiding_match),
    },
];
