//! The Contact side of nathelper (nathelper.c): `fix_nated_contact`
//! puts the source address into each Contact URI, `add_rcv_param` adds a
//! `received` parameter naming it, `fix_nated_register` hands it to the
//! registrar in `received_avp`; and the Contact reads of `nat_uac_test`.

use std::net::IpAddr;
use std::ops::Range;

use mlua::{Lua, MultiValue};

use super::conf;
use crate::modules::registrar::coded;
use crate::proxy::context::Value;
use crate::script::exports::Args;
use crate::script::host::State;
use crate::sip::nameaddr::Contacts;
use crate::sip::{Message, Uri};
use crate::transport::out::Source;
use crate::transport::Proto;

/// One Contact of the message with the byte ranges nathelper edits.
pub struct ContactSpan<'a> {
    pub uri: Uri<'a>,
    /// The URI's bytes (without `<>`).
    pub uri_at: Range<usize>,
    /// The whole contact value, header parameters included.
    pub whole_end: usize,
    /// Written as `<uri>`.
    pub enclosed: bool,
}

/// The contacts in order, up to the first that does not parse or has no
/// host (nathelper.c `get_contact_uri` stops there); none for `*`.
pub fn contact_spans(m: &Message) -> Vec<ContactSpan<'_>> {
    let Ok(Contacts::List(list)) = m.contacts() else {
        return Vec::new();
    };
    let buf = m.as_bytes();
    let mut out = Vec::new();
    for na in list {
        let Ok(uri) = Uri::parse(na.uri) else { break };
        if uri.host.is_empty() {
            break;
        }
        let Some(start) = m.offset_of(na.uri) else { break };
        let uri_end = start + na.uri.len();
        let enclosed = buf.get(uri_end) == Some(&b'>');
        let mut whole_end = if enclosed { uri_end + 1 } else { uri_end };
        if !na.params.is_empty() {
            if let Some(p) = m.offset_of(na.params) {
                whole_end = whole_end.max(p + na.params.len());
            }
        }
        out.push(ContactSpan {
            uri,
            uri_at: start..uri_end,
            whole_end,
            enclosed,
        });
    }
    out
}

/// `ip:port` as a URI writes the source (IPv6 in brackets).
fn hostport(src: &Source) -> String {
    match src.addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]:{}", src.addr.port()),
        IpAddr::V4(ip) => format!("{ip}:{}", src.addr.port()),
    }
}

/// nathelper.c `create_rcv_uri`: `sip:ip:port`, with `;transport=` for
/// anything but UDP.
pub fn rcv_uri(src: &Source) -> String {
    match src.proto {
        Proto::Udp => format!("sip:{}", hostport(src)),
        p => format!("sip:{};transport={}", hostport(src), p.as_str()),
    }
}

/// The new text of one Contact URI (nathelper.c `fix_nated_contact_f`):
/// the host and port become the source, a `maddr` parameter goes, and
/// `params` (when given) follow the port; a URI not enclosed in `<>`
/// gets them, and loses its own URI parameters, inside new brackets.
fn fixed_uri(c: &ContactSpan<'_>, hp: &str, params: Option<&str>) -> String {
    let text = c.uri.text;
    let host_start = c.uri.host_span.start;
    let hp_end = c.uri.port_span.as_ref().map_or(c.uri.host_span.end, |p| p.end);
    let prefix = &text[..host_start];
    let mut rest = text[hp_end..].to_string();
    if let Some(Some(v)) = c.uri.param("maddr") {
        // ";maddr=value" is left out, the rest kept.
        let v_at = v.as_ptr() as usize - text.as_ptr() as usize;
        let name_at = text[..v_at].rfind(';').unwrap_or(v_at);
        if name_at >= hp_end {
            rest = format!("{}{}", &text[hp_end..name_at], &text[v_at + v.len()..]);
        }
    }
    match (params, c.enclosed) {
        (None, _) => format!("{prefix}{hp}{rest}"),
        (Some(p), false) => format!("<{prefix}{hp}{p}>"),
        (Some(p), true) => format!("{prefix}{hp}{p}{rest}"),
    }
}

/// `fix_nated_contact([params])`: 1; -1 when a Contact was already
/// rewritten for this message (OpenSIPS's "second attempt" script bug).
pub fn fix_nated_contact(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let params = a.opt_str(0)?.filter(|p| !p.is_empty());
    let mut call = st.call.borrow_mut();
    let hp = hostport(&call.src);
    let Some(m) = call.msg.as_mut() else {
        return Err(a.err("no message in this route"));
    };
    let edits: Vec<(Range<usize>, String)> = contact_spans(m)
        .iter()
        .map(|c| (c.uri_at.clone(), fixed_uri(c, &hp, params.as_deref())))
        .collect();
    if edits.iter().any(|(r, _)| m.replaced_text(r.clone()).is_some()) {
        tracing::error!("fix_nated_contact: script bug - second attempt to change the Contact URI");
        return coded(lua, -1);
    }
    for (r, text) in edits {
        if let Err(e) = m.replace_at(r, text) {
            tracing::warn!("fix_nated_contact: {e}");
            return coded(lua, -1);
        }
    }
    coded(lua, 1)
}

/// `add_rcv_param([flag])`: `;received="sip:ip:port"` after each Contact
/// (flag 0 or none) or inside each Contact URI (flag > 0). 1; -1 when the
/// Contact header does not parse.
pub fn add_rcv_param(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let in_uri = a.opt_int(0)?.is_some_and(|f| f > 0);
    let mut call = st.call.borrow_mut();
    let param = format!(";received=\"{}\"", rcv_uri(&call.src));
    let Some(m) = call.msg.as_mut() else {
        return Err(a.err("no message in this route"));
    };
    if m.contacts().is_err() {
        return coded(lua, -1);
    }
    let at: Vec<usize> = contact_spans(m)
        .iter()
        .map(|c| if in_uri { c.uri_at.end } else { c.whole_end })
        .collect();
    for p in at {
        if let Err(e) = m.replace_at(p..p, param.clone()) {
            tracing::warn!("add_rcv_param: {e}");
            return coded(lua, -1);
        }
    }
    coded(lua, 1)
}

/// `fix_nated_register()`: the source as `sip:ip:port` into nathelper's
/// `received_avp` for the registrar's save (1; nothing to do without
/// `received_avp`).
pub fn fix_nated_register(lua: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    let Some(name) = conf().received_avp.clone() else {
        return coded(lua, 1);
    };
    let mut call = st.call.borrow_mut();
    let uri = rcv_uri(&call.src);
    call.avps.entry(name).or_default().insert(0, Value::Str(uri));
    coded(lua, 1)
}

/// Whether the source differs from a host written in the message
/// (resolver.c `check_ip_address` without DNS: a name always differs).
pub fn differs(src: IpAddr, host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip != src,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Message;

    fn msg(contact: &str) -> Message {
        let text = format!(
            "REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n{contact}Content-Length: 0\r\n\r\n"
        );
        Message::parse(text.into_bytes().into()).expect("parses")
    }

    fn fixed(contact: &str, params: Option<&str>) -> Vec<String> {
        let m = msg(contact);
        contact_spans(&m)
            .iter()
            .map(|c| fixed_uri(c, "1.2.3.4:6000", params))
            .collect()
    }

    #[test]
    fn contact_uris_get_the_source() {
        assert_eq!(
            fixed("Contact: <sip:alice@10.0.0.5:5062;transport=udp>;expires=60\r\n", None),
            vec!["sip:alice@1.2.3.4:6000;transport=udp"]
        );
        assert_eq!(fixed("Contact: sip:alice@10.0.0.5\r\n", None), vec!["sip:alice@1.2.3.4:6000"]);
        assert_eq!(
            fixed("Contact: sip:alice@10.0.0.5;expires=5\r\n", Some(";bnat=yes")),
            vec!["<sip:alice@1.2.3.4:6000;bnat=yes>"]
        );
        assert_eq!(
            fixed("Contact: <sip:alice@10.0.0.5;lr>\r\n", Some(";bnat=yes")),
            vec!["sip:alice@1.2.3.4:6000;bnat=yes;lr"]
        );
        assert_eq!(
            fixed("Contact: <sip:a@10.0.0.5;maddr=10.0.0.9;x=1>, <sip:b@h2:7>\r\n", None),
            vec!["sip:a@1.2.3.4:6000;x=1", "sip:b@1.2.3.4:6000"]
        );
        assert!(fixed("Contact: *\r\n", None).is_empty());
        // A tel: URI has no host: the walk stops there.
        assert_eq!(fixed("Contact: <tel:+123>, <sip:b@h>\r\n", None).len(), 0);
    }

    #[test]
    fn received_uri_and_address_compare() {
        let s = Source {
            addr: "[::1]:5070".parse().expect("addr"),
            proto: Proto::Tcp,
            socket: 0,
        };
        assert_eq!(rcv_uri(&s), "sip:[::1]:5070;transport=tcp");
        let s = Source {
            addr: "10.1.1.1:5060".parse().expect("addr"),
            proto: Proto::Udp,
            socket: 0,
        };
        assert_eq!(rcv_uri(&s), "sip:10.1.1.1:5060");
        let ip: IpAddr = "10.1.1.1".parse().expect("ip");
        assert!(!differs(ip, "10.1.1.1"));
        assert!(differs(ip, "10.1.1.2"));
        assert!(differs(ip, "host.example"));
        assert!(!differs("::1".parse().expect("ip"), "[::1]"));
    }
}
