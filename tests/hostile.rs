//! Peer data that used to become script errors: a function given a
//! malformed header answers false (as OpenSIPS), the route goes on.
//!
//! Hostile messages name hosts that are not ours: each test runs again
//! inside a network namespace that has only loopback (`unshare --net`),
//! so nothing it provokes can leave the machine.

mod common;

use common::netns::in_loopback_netns;
use common::*;
use std::time::Duration;

#[test]
fn a_malformed_route_header_makes_loose_route_false_not_a_script_error() {
    if !in_loopback_netns("a_malformed_route_header_makes_loose_route_false_not_a_script_error") {
        return;
    }
    let proxy = Proxy::start(
        r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 1 }
function route.main()
  if sip.has_totag() then
    if sip.rr.loose_route() then
      sip.sl.sl_send_reply(200, "Routed")
    else
      sip.sl.sl_send_reply(404, "Not Here")
    end
    sip.exit()
  end
  sip.sl.sl_send_reply(403, "No")
end
"#,
    );
    let bye = "BYE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKbadroute\r\n\
               Route: <sip:a]b.example.com;lr>\r\n\
               From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: badroute\r\n\
               CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let r = udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        bye,
        Duration::from_secs(3),
    )
    .unwrap_or_default();
    let log = proxy.stop();
    assert!(r.starts_with("SIP/2.0 404 Not Here\r\n"), "{r}\n{log}");
    assert!(!log.contains("ERROR"), "{log}");
}
