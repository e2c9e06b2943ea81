//! Peer data never becomes a script error: each function that parses what
//! a sender wrote (Route, Record-Route, Contact, Authorization, list
//! headers, the SDP body, URIs) is called on a message whose headers are
//! malformed but that passes RFC 3261 §16.3 validation. Each must answer
//! (true, false or a code), never raise a Lua error a sender could trigger
//! at will.

mod common;

use common::worker::*;

const HOSTILE: &str = "INVITE sip:bob@example.com;lr;x=1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKhostile;rport\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@example.com>;tag=a1\r\n\
To: Bob <sip:bob@example.com>;tag=b2\r\n\
Call-ID: hostile@10.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Route: <sip:a]b.example.com;lr>, <sip:[::1;lr>, garbage<<\r\n\
Record-Route: <sip:[::1;lr>, <<>>\r\n\
Contact: <sip:a@b>;;, \"unterminated <sip:x\r\n\
Authorization: Digest username=\"a, realm=, nonce\r\n\
Proxy-Authorization: Basic %%%\r\n\
Privacy: ;;;,,\r\n\
Supported: ,,,\"\r\n\
Expires: abc\r\n\
Content-Type: multipart/mixed;boundary=\r\n\
Content-Length: 54\r\n\r\n\
v=0\r\nm=audio x RTP/AVP 0 x\r\na=rtpmap:abc\r\nm=\r\nc=IN IP4";

/// Each call runs under pcall; a raised error is collected into a 500.
const CALLS: &[&str] = &[
    "sip.rr.loose_route()",
    "sip.rr.check_route_param('x')",
    "sip.rr.is_direction('downstream')",
    "sip.has_totag()",
    "sip.is_myself('$rd')",
    "sip.ruri_has_param('x')",
    "sip.ruri_has_param('x', 'y')",
    "sip.ruri_del_param('x')",
    "sip.has_body('application/sdp')",
    "sip.has_body_part('application/sdp')",
    "sip.is_audio_on_hold()",
    "sip.stream_exists('audio')",
    "sip.stream_delete('video')",
    "sip.codec_exists('PCMU')",
    "sip.codec_exists_re('PC.*')",
    "sip.codec_delete('PCMA')",
    "sip.codec_move_up('PCMU')",
    "sip.codec_delete_except_re('PCMU')",
    "sip.remove_body_part('application/sdp')",
    "sip.is_privacy('id')",
    "sip.list_hdr_has_option('Supported', 'timer')",
    "sip.list_hdr_add_option('Supported', 'timer')",
    "sip.list_hdr_remove_option('Supported', 'x')",
    "sip.get_updated_body_part('application/sdp', '$var(b)')",
    "sip.sipmsg_validate()",
    "sip.sipmsg_validate('sSmMhHcCrRpPt')",
    "sip.append_urihf('X-U: ', '\\r\\n')",
    "sip.maxfwd.mf_process_maxfwd_header(10)",
    "sip.maxfwd.is_maxfwd_lt(5)",
    "sip.auth.consume_credentials()",
    "sip.pv.get('$(ct{nameaddr.uri})')",
    "sip.pv.get('$(hdr(Route){uri.host})')",
    "sip.pv.get('$(hdr(Record-Route)[1]{nameaddr.uri})')",
    "sip.pv.get('$ct.fields(uri)')",
    "sip.pv.get('$(ru{uri.param,x})')",
    "sip.pv.get('$rp')",
    "sip.pv.get('$auth.nonce')",
    "sip.pv.get('$rr_params')",
    "sip.pv.get('$cs')",
    "sip.pv.get('$(rb{sdp.line,m})')",
    "sip.pv.get('$rb')",
    "sip.pv.set('$rU', 'carol')",
    "sip.textops.subst_uri('/bob/carol/')",
    "sip.textops.subst_user('/bob/carol/')",
    "sip.msg_apply_changes()",
];

#[test]
fn functions_on_malformed_peer_headers_answer_instead_of_raising() {
    let mut script = String::from("function route.main()\n  local errs = {}\n");
    for c in CALLS {
        script.push_str(&format!(
            "  do local ok, e = pcall(function() return {c} end)\n    if not ok then errs[#errs + 1] = {c:?} .. ' -> ' .. tostring(e) end end\n"
        ));
    }
    script.push_str(
        "  if #errs > 0 then sip.sl.sl_send_reply(500, (table.concat(errs, ' | '):gsub('[\\r\\n]', ' '))) else sip.sl.sl_send_reply(200, 'OK') end\nend\n",
    );
    let w = worker(&script);
    let out = run(&w, HOSTILE, Proto::Udp);
    let reply = out.first().map(|o| o.2.clone()).unwrap_or_default();
    let line = reply.lines().next().unwrap_or("");
    assert!(
        line.starts_with("SIP/2.0 200 OK"),
        "{}",
        line.replace(" | ", "\n")
    );
}
