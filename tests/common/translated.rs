//! What the tests of translated OpenSIPS configs ask of a running one:
//! two users register, one calls the other, an unknown user gets 404.

use super::*;

/// The first final reply to one datagram (100 Trying skipped); `{LOCAL}`
/// in `msg` is the sending socket's address.
pub fn final_reply(port: u16, msg: &str) -> String {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = s.local_addr().unwrap();
    let msg = msg.replace("{LOCAL}", &local.to_string());
    s.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 65536];
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !r.starts_with("SIP/2.0 1") {
            return r;
        }
    }
    String::new()
}

/// bob (a SIPp callee) and alice register through the proxy on `port`
/// (`save`), then alice calls bob: `lookup` finds his contact, the call is
/// relayed and record-routed, the BYE follows the route set.
pub fn register_two_and_call(port: u16, p: &Proxy) {
    let callee = uas("uas.xml", "u1");
    let caller_contact = free_port();
    for (user, contact) in [("bob", callee.port), ("alice", caller_contact)] {
        let contact = contact.to_string();
        let args = [
            "-s",
            user,
            "-key",
            "contact_port",
            &contact,
            "-key",
            "expires",
            "60",
        ];
        let r = uac("reg_register.xml", port, "u1", 1, 1, &args);
        assert_eq!(
            r.successful,
            1,
            "REGISTER {user}: {}\n{}",
            r.errors,
            p.log_text()
        );
    }
    let call = uac("uac.xml", port, "u1", 1, 1, &["-s", "bob"]);
    assert_eq!(
        call.successful,
        1,
        "call: {}\n{}",
        call.errors,
        p.log_text()
    );
    assert_eq!(callee.counts(1).0, 1, "{}", callee.errors());
    assert!(
        call.messages
            .contains(&format!("Record-Route: <sip:127.0.0.1:{port};lr")),
        "{}",
        call.messages
    );
}

/// An INVITE for carol, whom nobody registered: the script's 404.
pub fn unregistered_user_gets_404(port: u16, p: &Proxy, tag: &str) {
    let invite = format!(
        "INVITE sip:carol@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-{tag}-carol\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:carol@127.0.0.1>\r\nCall-ID: {tag}-carol\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{{LOCAL}}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let r = final_reply(port, &invite);
    assert!(
        r.starts_with("SIP/2.0 404 Not Found"),
        "{r}\n{}",
        p.log_text()
    );
}
