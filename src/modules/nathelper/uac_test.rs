//! `nat_uac_test(flags)` (nathelper.c `nat_uac_test_f`): true when any of
//! the asked tests finds the sender behind NAT.

use mlua::{Lua, MultiValue};

use super::contact::{contact_spans, differs};
use super::flags::{self, *};
use super::sdp::private_sdp;
use crate::modules::registrar::coded;
use crate::script::exports::Args;
use crate::script::host::State;
use crate::sip::uri::Scheme;
use crate::sip::Message;
use crate::transport::out::Source;

/// The tests of `bits` on message `m` from `src`.
pub fn test(m: &Message, src: &Source, bits: u32) -> bool {
    let rfc_6333 = bits & RFC_6333 != 0;
    let via = m.top_via();
    // diff-port-src-via: the Via port, 5060 when none is written.
    if bits & RPORT != 0 {
        if let Some(v) = &via {
            if src.addr.port() != v.port.unwrap_or(5060) {
                return true;
            }
        }
    }
    // diff-ip-src-via (msg_translator.c received_test): a Via that
    // already carries received=, or whose maddr/host is not the source.
    if bits & V_RCVD != 0 {
        if let Some(v) = &via {
            let host = v.maddr().unwrap_or(v.host);
            if v.received().is_some() || differs(src.addr.ip(), host) {
                return true;
            }
        }
    }
    if bits & C_1918 != 0
        && contact_spans(m)
            .iter()
            .any(|c| flags::is_private(c.uri.host_bare(), rfc_6333))
    {
        return true;
    }
    if bits & S_1918 != 0 && private_sdp(m, rfc_6333) {
        return true;
    }
    if bits & V_1918 != 0 && via.as_ref().is_some_and(|v| flags::is_private(v.host_bare(), rfc_6333)) {
        return true;
    }
    if bits & C_RCVD != 0 && contact_spans(m).iter().any(|c| differs(src.addr.ip(), c.uri.host)) {
        return true;
    }
    if bits & C_RPORT != 0 {
        let default_port = |c: &super::contact::ContactSpan<'_>| match c.uri.scheme {
            Scheme::Sips => 5061,
            _ => 5060,
        };
        if contact_spans(m)
            .iter()
            .any(|c| c.uri.port.unwrap_or_else(|| default_port(c)) != src.addr.port())
        {
            return true;
        }
    }
    false
}

/// `nat_uac_test(flags)`: names (`"private-contact,diff-port-src-via"`)
/// or the numbers of older configs (`"19"`); 1 when a test holds, -1
/// otherwise.
pub fn nat_uac_test(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let bits = flags::parse(&a.str(0)?, UAC_TEST_NAMES).map_err(|e| a.err(e))?;
    let call = st.call.borrow();
    let Some(m) = call.msg.as_ref() else {
        return Err(a.err("no message in this route"));
    };
    coded(lua, if test(m, &call.src, bits) { 1 } else { -1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Proto;

    fn msg(via: &str, contact: &str, body: &str) -> Message {
        let text = format!(
            "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContact: {contact}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Message::parse(text.into_bytes().into()).expect("parses")
    }

    fn src(a: &str) -> Source {
        Source {
            addr: a.parse().expect("addr"),
            proto: Proto::Udp,
            socket: 0,
        }
    }

    #[test]
    fn each_test_alone() {
        let sdp = "v=0\r\nc=IN IP4 192.168.1.9\r\nm=audio 4000 RTP/AVP 0\r\n";
        let m = msg("10.0.0.5:5060", "<sip:a@10.0.0.5:5060>", sdp);
        let nat = src("203.0.113.7:40000");
        for bit in [C_1918, V_RCVD, V_1918, S_1918, RPORT, C_RCVD, C_RPORT] {
            assert!(test(&m, &nat, bit), "bit {bit:#x}");
        }
        // Not behind NAT: a public UA sending from what it advertises.
        let m = msg("203.0.113.7:40000", "<sip:a@203.0.113.7:40000>", "v=0\r\nc=IN IP4 203.0.113.7\r\n");
        for bit in [C_1918, V_RCVD, V_1918, S_1918, RPORT, C_RCVD, C_RPORT] {
            assert!(!test(&m, &nat, bit), "bit {bit:#x}");
        }
        // No port in the Via means 5060; a name in the Contact differs.
        let m = msg("203.0.113.7", "<sip:a@ua.example:40000>", "v=0\r\nc=IN IP4 0.0.0.0\r\n");
        assert!(test(&m, &nat, RPORT));
        assert!(test(&m, &nat, C_RCVD));
        assert!(!test(&m, &nat, C_RPORT));
        // A null media address makes private-sdp false.
        assert!(!test(&m, &nat, S_1918));
        // carrier-grade-nat adds 192.0.0.0/29 to the private ranges.
        let m = msg("192.0.0.2:5060", "<sip:a@192.0.0.2>", "");
        let here = src("192.0.0.2:5060");
        assert!(!test(&m, &here, C_1918 | V_1918));
        assert!(test(&m, &here, C_1918 | RFC_6333));
    }
}
