//! Record-Route as the proxy writes it (RFC 3261 §16.6 step 4, RFC 5658
//! double Record-Route): the script notes what it wants, the header goes
//! into each copy when it is sent, once the outgoing socket is known.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::proxy::context::Call;
use crate::transport::myself::SocketInfo;
use crate::transport::Sockets;

/// OpenSIPS rr `append_fromtag` (default on): Record-Route carries the
/// caller's From tag as `ftag` (what `is_direction` compares).
static APPEND_FROMTAG: AtomicBool = AtomicBool::new(true);

/// Sets `append_fromtag` (rr's `config.modules.rr`, at start and reload).
pub fn set_append_fromtag(on: bool) {
    APPEND_FROMTAG.store(on, Ordering::Relaxed);
}

/// A Record-Route the script asked for, written when the request is sent.
#[derive(Debug, Clone, Default)]
pub struct PendingRr {
    /// Extra URI parameters (`record_route(params)`, `add_rr_param`).
    pub params: String,
    /// `record_route_preset(inbound [, outbound])`: host[:port][;params] as given.
    pub preset: Option<(String, Option<String>)>,
    /// `record_route`/`record_route_preset` ran: parameters added alone
    /// (`add_rr_param`, dialog's `did`) write no Record-Route, as in
    /// OpenSIPS.
    pub recorded: bool,
}

fn push_params(uri: &mut String, params: &str) {
    for p in params.split(';').filter(|p| !p.is_empty()) {
        uri.push(';');
        uri.push_str(p);
    }
}

/// `<sip:host:port[;transport=tcp];lr[;r2=on];ftag=…;params>` for a socket.
fn socket_rr(
    sockets: &Sockets,
    sock: &SocketInfo,
    towards: std::net::IpAddr,
    ftag: Option<&str>,
    params: &str,
    r2: bool,
    adv: (Option<&str>, Option<u16>),
) -> String {
    let host = match adv.0 {
        Some(h) => h.to_string(),
        None => sockets.via_host(sock, towards),
    };
    let mut uri = format!("<sip:{host}:{}", adv.1.unwrap_or(sock.adv_port));
    if sock.proto.is_stream() {
        uri.push_str(";transport=");
        uri.push_str(sock.proto.as_str());
    }
    close_rr(uri, ftag, params, r2)
}

fn preset_rr(preset: &str, ftag: Option<&str>, params: &str, r2: bool) -> String {
    let uri = format!("<sip:{}", preset.trim_start_matches("sip:"));
    close_rr(uri, ftag, params, r2)
}

/// `;lr[;r2=on][;ftag=…][;params]>` after the host part of a Record-Route.
fn close_rr(mut uri: String, ftag: Option<&str>, params: &str, r2: bool) -> String {
    uri.push_str(";lr");
    if r2 {
        uri.push_str(";r2=on");
    }
    if let Some(tag) = ftag {
        uri.push_str(";ftag=");
        uri.push_str(tag);
    }
    push_params(&mut uri, params);
    uri.push('>');
    uri
}

/// Writes the pending Record-Route(s) into the message for a copy sent
/// from socket `out` towards `dest`. The caller truncates the edits after
/// serializing, so each copy gets its own.
pub fn apply(call: &mut Call, sockets: &Sockets, out: &SocketInfo, dest: std::net::IpAddr) {
    let Some(rr) = call.rr.clone().filter(|r| r.recorded) else {
        return;
    };
    let src = call.src;
    // set_advertised_address/port name the sending side (OpenSIPS
    // substitutes them for the send socket's address); the inbound entry
    // of a double Record-Route keeps the receiving socket's.
    let adv_host = call.adv_address.clone();
    let adv = (adv_host.as_deref(), call.adv_port);
    let Some(m) = call.msg.as_mut() else { return };
    let ftag = APPEND_FROMTAG
        .load(Ordering::Relaxed)
        .then(|| m.from_tag().map(str::to_string))
        .flatten();
    let ftag = ftag.as_deref();
    // RFC 3261 §12.1.2: the caller uses the route set in reverse, so the
    // entry it must reach (the inbound side) goes in last, below.
    let (outbound, inbound) = match &rr.preset {
        Some((inb, Some(outb))) => (
            Some(preset_rr(outb, ftag, &rr.params, true)),
            preset_rr(inb, ftag, &rr.params, true),
        ),
        Some((inb, None)) => (None, preset_rr(inb, ftag, &rr.params, false)),
        None => {
            let Some(inb) = sockets.list.get(src.socket) else {
                return;
            };
            if inb.id == out.id {
                (
                    None,
                    socket_rr(sockets, inb, src.addr.ip(), ftag, &rr.params, false, adv),
                )
            } else {
                (
                    Some(socket_rr(sockets, out, dest, ftag, &rr.params, true, adv)),
                    socket_rr(
                        sockets,
                        inb,
                        src.addr.ip(),
                        ftag,
                        &rr.params,
                        true,
                        (None, None),
                    ),
                )
            }
        }
    };
    if let Some(o) = outbound {
        m.prepend_header("Record-Route", &o);
    }
    m.prepend_header("Record-Route", &inbound);
}
