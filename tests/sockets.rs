//! Sending sockets on the wire (issue 12, "Sockets"): listeners on
//! 127.0.0.10 (UDP) and 127.0.0.11 (UDP and TCP), a UDP caller and a
//! TCP-only callee whose Contact names no transport. The INVITE leaves
//! from the TCP socket that `$socket_out`, `force_send_socket` or the
//! dispatcher's `socket` column names, double Record-Routed (RFC 5658);
//! `loose_route` then forces the socket the second Route entry names, as
//! OpenSIPS 3.4 `modules/rr/loose.c` (after_loose) does, so the ACK and
//! both BYEs take the right transport. The SIPp scenarios check what each
//! peer receives: the proxy's Via (transport and address) and both
//! Record-Route entries; a copy sent over the wrong transport never
//! reaches the TCP-only callee and fails the call.

mod common;

use common::*;

/// The proxy script; `choose` picks the callee's socket for the INVITE.
fn script(choose: &str, modules: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.10:{{PORT}}", "udp:127.0.0.11:{{PORT}}", "tcp:127.0.0.11:{{PORT}}" }},
  children = 1,
  modules = {{ mi_fifo = false, {modules} }},
}}

function route.main()
  if sip.has_totag() then
    if sip.rr.loose_route() then
      sip.tm.t_relay()
    else
      sip.sl.sl_send_reply(404, "Not Here")
    end
    sip.exit()
  end
  sip.rr.record_route()
  {choose}
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
"#
    )
}

/// One call each way: the caller hangs up, then the callee does.
fn calls_complete(choose: &dyn Fn(u16) -> (String, String)) {
    for (caller, callee) in [
        ("sock_uac.xml", "sock_uas.xml"),
        ("sock_uac_bye_in.xml", "sock_uas_bye_out.xml"),
    ] {
        let uas = uas(callee, "t1");
        let (pick, modules) = choose(uas.port);
        let proxy = Proxy::start(&script(&pick, &modules));
        let run = uac_to(
            &format!("127.0.0.10:{}", proxy.port),
            caller,
            "u1",
            1,
            1,
            &[],
        );
        let log = proxy.stop();
        assert_eq!(
            (run.successful, run.failed),
            (1, 0),
            "{caller}: {}\n{}\ncallee: {}\nproxy log:\n{log}",
            run.errors,
            run.messages,
            uas.errors()
        );
        assert_eq!(uas.counts(1), (1, 0), "{callee}: {}", uas.errors());
    }
}

#[test]
fn socket_out_sends_the_call_over_the_tcp_interface() {
    calls_complete(&|callee| {
        (
            format!(
                "sip.pv.ru = \"sip:callee@127.0.0.1:{callee}\"\n  sip.pv.set(\"$socket_out\", \"tcp:127.0.0.11:\" .. sip.pv.Rp)"
            ),
            String::new(),
        )
    });
}

#[test]
fn force_send_socket_sends_the_call_over_the_tcp_interface() {
    calls_complete(&|callee| {
        (
            format!(
                "sip.pv.ru = \"sip:callee@127.0.0.1:{callee}\"\n  sip.force_send_socket(\"tcp:127.0.0.11:\" .. sip.pv.Rp)"
            ),
            String::new(),
        )
    });
}

#[test]
fn dispatcher_socket_column_sends_the_call_over_the_tcp_interface() {
    calls_complete(&|callee| {
        (
            "if not sip.dispatcher.ds_select_dst(1, 0) then sip.sl.sl_send_reply(503, \"No Box\") sip.exit() end".to_string(),
            format!(
                "dispatcher = {{ destinations = {{ {{ setid = 1, destination = \"sip:127.0.0.1:{callee}\", socket = \"tcp:127.0.0.11:{{PORT}}\" }} }} }}"
            ),
        )
    });
}

/// Runs test `name` again in a network namespace whose loopback also
/// carries 10.0.0.10 and 10.0.0.11 (each address its own kernel route
/// source); true when the caller is that run.
fn in_two_address_netns(name: &str) -> bool {
    in_netns(
        name,
        "ip addr add 10.0.0.10/32 dev lo && ip addr add 10.0.0.11/32 dev lo &&",
    )
}

/// What the callee at 10.0.0.11 receives for one INVITE sent to the
/// proxy's 10.0.0.10 socket: the source address and the message.
fn through(proxy_port: u16, callee: &std::net::UdpSocket, user: &str) -> (String, String) {
    use std::time::Duration;
    let caller = std::net::UdpSocket::bind("10.0.0.10:0").expect("caller socket");
    let local = caller.local_addr().expect("local addr");
    let invite = format!(
        "INVITE sip:{user}@10.0.0.10:{proxy_port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKmh{user}\r\n\
         From: <sip:a@10.0.0.10>;tag=mh1\r\nTo: <sip:{user}@10.0.0.10>\r\n\
         Call-ID: mhomed-{user}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    caller
        .send_to(invite.as_bytes(), ("10.0.0.10", proxy_port))
        .expect("send");
    callee
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut buf = [0u8; 65536];
    match callee.recv_from(&mut buf) {
        Ok((n, from)) => (
            from.to_string(),
            String::from_utf8_lossy(&buf[..n]).into_owned(),
        ),
        Err(e) => (String::new(), format!("nothing received: {e}")),
    }
}

/// OpenSIPS `mhomed` (forward.c `get_out_socket`): a UDP copy leaves from
/// the listener on the address the kernel routes its destination from,
/// statelessly and through tm; without it, from the receiving socket.
#[test]
fn mhomed_sends_from_the_address_the_kernel_routes_from() {
    if !in_two_address_netns("mhomed_sends_from_the_address_the_kernel_routes_from") {
        return;
    }
    let callee = std::net::UdpSocket::bind("10.0.0.11:0").expect("callee socket");
    let cport = callee.local_addr().expect("addr").port();
    for mhomed in [true, false] {
        let proxy = Proxy::start(&format!(
            r#"config = {{
  listen = {{ "udp:10.0.0.10:{{PORT}}", "udp:10.0.0.11:{{PORT}}" }},
  children = 1,
  mhomed = {mhomed},
  modules = {{ mi_http = false, mi_fifo = false }},
}}
function route.main()
  sip.rr.record_route()
  local how = sip.pv.rU
  sip.pv.ru = "sip:callee@10.0.0.11:{cport}"
  if how == "sl" then sip.forward() else sip.tm.t_relay() end
end
"#
        ));
        let from = if mhomed { "10.0.0.11" } else { "10.0.0.10" };
        for user in ["sl", "tm"] {
            let (src, msg) = through(proxy.port, &callee, user);
            assert_eq!(src, format!("{from}:{}", proxy.port), "{user}: {msg}");
            assert!(
                msg.contains(&format!(
                    "\r\nVia: SIP/2.0/UDP {from}:{};branch=",
                    proxy.port
                )),
                "{user}: {msg}"
            );
            // Out on another interface: a double Record-Route (RFC 5658).
            assert_eq!(
                msg.matches("Record-Route: <sip:10.0.0.1").count(),
                if mhomed { 2 } else { 1 },
                "{user}: {msg}"
            );
        }
        proxy.stop();
    }
}
