//! dialog's `set_dlg_sharing_tag` (OpenSIPS 3.4 modules/dialog
//! dialog.c `w_set_dlg_shtag`, dlg_handlers.c `dlg_ontimeout`): a
//! dialog bound to a clusterer sharing tag that is backup on this node
//! ends at its timeout without BYEs; once the tag is active here (MI
//! `clusterer_shtag_set_active`) the timeout sends BYE to both sides.
//! Caller and callee are plain UDP sockets; what they receive is asserted.

mod common;

use common::ds::{dialogs, json, mi};
use common::{free_port, Proxy};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn script(callee: u16, mi_port: u16, bin: u16) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    clusterer = {{ db_mode = 0, my_node_id = 1, my_node_info = "cluster_id=1,url=bin:127.0.0.1:{bin}",
      sharing_tag = "calls/1=backup" }},
    dialog = {{ dialog_replication_cluster = 1 }},
  }},
}}

function route.main()
  if sip.has_totag() then
    if sip.rr.loose_route() then sip.tm.t_relay() end
    sip.exit()
  end
  sip.dialog.create_dialog("B")
  sip.pv.set("$DLG_timeout", 2)
  local ok, rc = sip.dialog.set_dlg_sharing_tag("calls")
  sip.xlog("L_INFO", "set_dlg_sharing_tag rc=" .. tostring(rc) .. "\n")
  sip.rr.record_route()
  sip.pv.du = "sip:127.0.0.1:{callee}"
  sip.tm.t_relay()
end
"#
    )
}

fn sock() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let p = s.local_addr().expect("addr").port();
    (s, p)
}

/// Datagrams received on `s` for `secs` seconds, or until one starts
/// with `stop`.
fn recv_for(s: &UdpSocket, secs: f64, stop: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = m.starts_with(stop);
            out.push(m);
            if done {
                break;
            }
        }
    }
    out
}

/// One call answered by the callee: INVITE through the proxy, the
/// callee's 200 (with the Record-Route), the caller's ACK.
fn call(proxy: u16, caller: &(UdpSocket, u16), callee: &(UdpSocket, u16), id: &str) {
    let (c, cp) = (&caller.0, caller.1);
    let invite = format!(
        "INVITE sip:callee@127.0.0.1:{up} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cp};rport;branch=z9hG4bK{id}\r\n\
         From: <sip:caller@127.0.0.1>;tag=f{id}\r\nTo: <sip:callee@127.0.0.1>\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:caller@127.0.0.1:{cp}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        up = callee.1
    );
    c.send_to(invite.as_bytes(), ("127.0.0.1", proxy))
        .expect("send");
    let got = recv_for(&callee.0, 5.0, "INVITE");
    let inv = got
        .iter()
        .find(|m| m.starts_with("INVITE"))
        .expect("the INVITE reached the callee")
        .clone();
    let mut ok = "SIP/2.0 200 OK\r\n".to_string();
    for l in inv.lines() {
        let name = l.split(':').next().unwrap_or("").to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" | "record-route" => {
                ok.push_str(&format!("{l}\r\n"))
            }
            "to" => ok.push_str(&format!("{l};tag=t{id}\r\n")),
            _ => {}
        }
    }
    ok.push_str(&format!(
        "Contact: <sip:callee@127.0.0.1:{}>\r\nContent-Length: 0\r\n\r\n",
        callee.1
    ));
    callee
        .0
        .send_to(ok.as_bytes(), ("127.0.0.1", proxy))
        .expect("send");
    let got = recv_for(c, 5.0, "SIP/2.0 200");
    let answer = got
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200"))
        .expect("the caller got the 200")
        .clone();
    let route: Vec<String> = answer
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("record-route:"))
        .map(|l| format!("Route:{}\r\n", &l["record-route:".len()..]))
        .collect();
    let ack = format!(
        "ACK sip:callee@127.0.0.1:{up} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{cp};rport;branch=z9hG4bK{id}ack\r\n\
         {routes}From: <sip:caller@127.0.0.1>;tag=f{id}\r\nTo: <sip:callee@127.0.0.1>;tag=t{id}\r\nCall-ID: {id}\r\n\
         CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        up = callee.1,
        routes = route.concat()
    );
    c.send_to(ack.as_bytes(), ("127.0.0.1", proxy))
        .expect("send");
}

#[test]
fn a_backup_node_sends_no_timeout_bye_and_an_active_one_does() {
    let (caller, callee) = (sock(), sock());
    let (mi_port, bin) = (free_port(), free_port());
    let proxy = Proxy::start(&script(callee.1, mi_port, bin));
    call(proxy.port, &caller, &callee, "shtagbackup");
    assert_eq!(dialogs(mi_port).len(), 1);
    // The 2 s timeout passes: the dialog ends, nobody gets a BYE.
    let to_caller = recv_for(&caller.0, 3.5, "BYE");
    let to_callee = recv_for(&callee.0, 0.5, "BYE");
    assert!(
        !to_caller
            .iter()
            .chain(&to_callee)
            .any(|m| m.starts_with("BYE")),
        "{to_caller:?} {to_callee:?}"
    );
    assert!(dialogs(mi_port).is_empty());
    let (ok, stats) = mi(mi_port, &["get_statistics", "dialog:"]);
    assert!(ok, "{stats}");
    assert_eq!(json(&stats)["dialog:expired_dialogs"], 1, "{stats}");

    // This node takes the tag over: its dialogs' timeouts are its own.
    let (ok, out) = mi(mi_port, &["clusterer_shtag_set_active", "calls/1"]);
    assert!(ok, "{out}");
    call(proxy.port, &caller, &callee, "shtagactive");
    let to_caller = recv_for(&caller.0, 5.0, "BYE");
    let to_callee = recv_for(&callee.0, 2.0, "BYE");
    assert!(
        to_caller.iter().any(|m| m.starts_with("BYE")),
        "{to_caller:?}\n{}",
        proxy.log_text()
    );
    assert!(
        to_callee.iter().any(|m| m.starts_with("BYE")),
        "{to_callee:?}"
    );
    let log = proxy.stop();
    assert_eq!(log.matches("set_dlg_sharing_tag rc=1").count(), 2, "{log}");
}
