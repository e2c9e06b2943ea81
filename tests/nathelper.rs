//! nathelper end to end: the built binary, user agents "behind a NAT"
//! (sending from 127.0.0.2/127.0.0.3 while their Contact, Via and SDP
//! name private 10.x/192.168.x addresses), what the callee receives
//! (Contact and SDP rewritten), the `received` column of OpenSIPS 3.4's
//! `location` table on MariaDB, and the keepalive pings arriving where
//! the user agent registered from (SIPp, raw sockets).
//!
//! Tests whose messages would make the proxy answer a private address if
//! it went wrong run inside a loopback-only network namespace
//! (`unshare --net`), so nothing can leave the machine; the MariaDB test
//! cannot (the server is outside) and only ever names 10.0.0.9 in a
//! Contact that the proxy must not use.

mod common;

use common::ds::mi;
use common::netns::in_loopback_netns;
use common::*;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A user agent on a raw socket at `ip` (any port).
struct Ua {
    sock: UdpSocket,
}

impl Ua {
    fn new(ip: &str) -> Ua {
        let sock = UdpSocket::bind((ip, 0)).expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Ua { sock }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().expect("addr").port()
    }

    fn send(&self, to: u16, msg: &str) {
        self.sock
            .send_to(msg.as_bytes(), ("127.0.0.1", to))
            .expect("send");
    }

    /// Datagrams for `wait`, until one `pick` accepts.
    fn recv_until(&self, wait: Duration, pick: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let end = Instant::now() + wait;
        let mut buf = [0u8; 65536];
        while Instant::now() < end {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                if pick(&buf[..n]) {
                    return Some(buf[..n].to_vec());
                }
            }
        }
        None
    }

    fn recv_text(&self, wait: Duration, start: &str) -> Option<String> {
        self.recv_until(wait, |b| b.starts_with(start.as_bytes()))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }
}

/// `header` of a message (first line that starts with it).
fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .unwrap_or("")
}

/// A 200 to request `req` (its Via, From, To, Call-ID, CSeq copied).
fn ok_to(req: &str) -> String {
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for l in req.lines().filter(|l| l.starts_with(&format!("{name}:"))) {
            out.push_str(l);
            if name == "To" && !l.contains("tag=") {
                out.push_str(";tag=ua");
            }
            out.push_str("\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// REGISTER of `user` from behind a NAT: Via and Contact name 10.0.0.7.
fn nat_register(user: &str, callid: &str) -> String {
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK-{callid};rport\r\n\
         From: <sip:{user}@127.0.0.1>;tag=r1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {callid}\r\n\
         CSeq: 1 REGISTER\r\nContact: <sip:{user}@10.0.0.7:5060>\r\nExpires: 300\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A registrar with nathelper: NATed REGISTERs get the NAT and ping
/// flags and `received`; calls are looked up, and a NATed caller's
/// Contact and SDP rewritten.
fn script(mi_port: u16, nathelper: &str, usrloc: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    usrloc = {{ nat_bflag = "NAT", timer_interval = 1 {usrloc} }},
    registrar = {{ received_avp = "$avp(rcv)" }},
    nathelper = {{ received_avp = "$avp(rcv)", sipping_from = "sip:pinger@127.0.0.1" {nathelper} }},
  }},
}}

function route.main()
  local natted = sip.nathelper.nat_uac_test("private-contact,diff-port-src-via")
  if sip.is_method("REGISTER") then
    if natted then
      sip.setbflag("NAT")
      sip.setbflag("SIP_PING")
      sip.nathelper.fix_nated_register()
    end
    sip.registrar.save("location")
    sip.exit()
  end
  if sip.has_totag() then
    sip.tm.t_relay()
    sip.exit()
  end
  if natted then
    sip.nathelper.fix_nated_contact()
    if sip.has_body("application/sdp") then
      sip.nathelper.fix_nated_sdp("rewrite-media-ip,rewrite-origin-ip")
    end
  end
  if not sip.registrar.lookup("location") then
    sip.sl.sl_send_reply(404, "Not Found")
    sip.exit()
  end
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end
"#
    )
}

#[test]
fn a_natted_callee_is_reached_at_its_source_and_sees_the_caller_rewritten() {
    if !in_loopback_netns("a_natted_callee_is_reached_at_its_source_and_sees_the_caller_rewritten")
    {
        return;
    }
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, "", ""));
    let bob = Ua::new("127.0.0.3");
    bob.send(p.port, &nat_register("bob", "reg-bob"));
    let ok = bob
        .recv_text(Duration::from_secs(3), "SIP/2.0")
        .expect("REGISTER answered at the source port (rport)");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");

    // The binding keeps the private Contact and the source as received.
    let (ok, dump) = mi(mi_port, &["ul_dump"]);
    assert!(ok, "{dump}");
    let received = format!("sip:127.0.0.3:{}", bob.port());
    assert!(dump.contains(&received), "{dump}");
    assert!(dump.contains("sip:bob@10.0.0.7:5060"), "{dump}");

    // A caller behind another NAT: Contact and SDP name 192.168.1.50.
    let caller = Ua::new("127.0.0.2");
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.168.1.50\r\ns=-\r\nc=IN IP4 192.168.1.50\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let invite = format!(
        "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK-inv1;rport\r\n\
         From: <sip:carol@127.0.0.1>;tag=c1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: inv1\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:carol@192.168.1.50:5060;transport=udp>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    caller.send(p.port, &invite);
    let got = bob
        .recv_text(Duration::from_secs(3), "INVITE")
        .unwrap_or_else(|| panic!("bob got no INVITE at its source address\n{}", p.log_text()));
    // lookup: the registered (private) Contact as R-URI, sent to received.
    assert!(
        got.starts_with("INVITE sip:bob@10.0.0.7:5060 SIP/2.0"),
        "{got}"
    );
    let cport = caller.port();
    assert_eq!(
        header(&got, "Contact"),
        format!("Contact: <sip:carol@127.0.0.2:{cport};transport=udp>"),
        "{got}"
    );
    assert!(got.contains("\r\nc=IN IP4 127.0.0.2\r\n"), "{got}");
    assert!(got.contains("\r\no=- 1 1 IN IP4 127.0.0.2\r\n"), "{got}");
    assert!(got.contains("a=oldcip:192.168.1.50"), "{got}");
    assert!(got.contains("a=oldoip:192.168.1.50"), "{got}");
    assert!(!got.contains("c=IN IP4 192.168.1.50"), "{got}");
    // Content-Length follows the longer body.
    let body = got.split("\r\n\r\n").nth(1).unwrap_or("");
    assert_eq!(
        header(&got, "Content-Length"),
        format!("Content-Length: {}", body.len())
    );
}

#[test]
fn contacts_that_stop_answering_pings_are_removed() {
    if !in_loopback_netns("contacts_that_stop_answering_pings_are_removed") {
        return;
    }
    let mi_port = free_port();
    let p = Proxy::start(&script(
        mi_port,
        r#", natping_interval = 2, sipping_bflag = "SIP_PING", remove_on_timeout_bflag = "NAT", ping_threshold = 1, max_pings_lost = 2"#,
        "",
    ));
    let ua = Ua::new("127.0.0.3");
    ua.send(p.port, &nat_register("dave", "reg-dave"));
    assert!(ua
        .recv_text(Duration::from_secs(3), "SIP/2.0 200")
        .is_some());
    // Pings arrive where the REGISTER came from, for the saved Contact;
    // they are answered for a while.
    for _ in 0..2 {
        let ping = ua
            .recv_text(Duration::from_secs(5), "OPTIONS")
            .unwrap_or_else(|| panic!("no ping\n{}", p.log_text()));
        assert!(
            ping.starts_with("OPTIONS sip:dave@10.0.0.7:5060 SIP/2.0"),
            "{ping}"
        );
        assert!(
            header(&ping, "From").contains("sip:pinger@127.0.0.1"),
            "{ping}"
        );
        ua.sock
            .send_to(ok_to(&ping).as_bytes(), ("127.0.0.1", p.port))
            .expect("send");
    }
    std::thread::sleep(Duration::from_secs(3));
    let (_, dump) = mi(mi_port, &["ul_dump"]);
    assert!(
        dump.contains("sip:dave@10.0.0.7:5060"),
        "answered pings keep it: {dump}"
    );
    // Then the UA goes silent: after two unanswered pings it is gone.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, dump) = mi(mi_port, &["ul_dump"]);
        if !dump.contains("sip:dave@10.0.0.7:5060") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still there: {dump}\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = p.stop();
    assert!(stat(&log, "nathelper:removed_contacts") >= 1, "{log}");
    assert!(stat(&log, "nathelper:sip_pings") >= 3, "{log}");
}

#[test]
fn contacts_without_the_sip_ping_flag_get_udp_keepalives_and_mi_turns_pings_off() {
    if !in_loopback_netns(
        "contacts_without_the_sip_ping_flag_get_udp_keepalives_and_mi_turns_pings_off",
    ) {
        return;
    }
    let mi_port = free_port();
    // sipping_bflag names a flag the script never sets: 4-byte pings.
    let p = Proxy::start(&script(
        mi_port,
        r#", natping_interval = 1, ping_nated_only = 1, sipping_bflag = "OTHER""#,
        "",
    ));
    let ua = Ua::new("127.0.0.3");
    ua.send(p.port, &nat_register("erin", "reg-erin"));
    assert!(ua
        .recv_text(Duration::from_secs(3), "SIP/2.0 200")
        .is_some());
    let ka = ua.recv_until(Duration::from_secs(4), |b| b == [0, 0, 0, 0]);
    assert!(ka.is_some(), "no keepalive\n{}", p.log_text());

    let (ok, r) = mi(mi_port, &["nh_enable_ping"]);
    assert!(ok && r.replace(' ', "").contains("\"Status\":1"), "{r}");
    let (ok, r) = mi(mi_port, &["nh_enable_ping", "0"]);
    assert!(ok && r.contains("OK"), "{r}");
    let (_, r) = mi(mi_port, &["nh_enable_ping"]);
    assert!(r.replace(' ', "").contains("\"Status\":0"), "{r}");
    // Drain what was on its way, then nothing for three intervals.
    ua.recv_until(Duration::from_millis(1200), |_| false);
    assert!(ua
        .recv_until(Duration::from_secs(3), |b| b == [0, 0, 0, 0])
        .is_none());
    let (ok, _) = mi(mi_port, &["nh_enable_ping", "1"]);
    assert!(ok);
    assert!(ua
        .recv_until(Duration::from_secs(4), |b| b == [0, 0, 0, 0])
        .is_some());
}

#[test]
fn nh_enable_ping_without_pinging_is_an_error() {
    let mi_port = free_port();
    let p = Proxy::start(&script(mi_port, "", ""));
    let (ok, r) = mi(mi_port, &["nh_enable_ping"]);
    assert!(!ok, "{r}");
    assert!(r.contains("NATping disabled"), "{r}");
    drop(p);
}

/// SIPp at 127.0.0.2 (the "NAT"'s outside) with `scen`.
fn sipp_at(scen: &str, proxy: u16, local: u16, extra: &[&str]) -> Command {
    let mut c = Command::new("sipp");
    c.arg(format!("127.0.0.1:{proxy}"))
        .arg("-sf")
        .arg(scenario(scen))
        .args([
            "-i",
            "127.0.0.2",
            "-p",
            &local.to_string(),
            "-t",
            "u1",
            "-nostdin",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

#[test]
fn sipp_behind_a_nat_gets_received_saved_in_mariadb_and_is_pinged() {
    sipp_nat_on_mariadb(1);
}

/// db_mode 3: the pinger reads the contacts from the table.
#[test]
fn sipp_behind_a_nat_is_pinged_from_a_db_only_location_table() {
    sipp_nat_on_mariadb(3);
}

fn sipp_nat_on_mariadb(db_mode: u8) {
    let table = format!("loc_nat{db_mode}_{}", std::process::id());
    let url = "mysql://root@127.0.0.1:3306/test";
    let out = Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["db", "init", url, "--location-table", &table])
        .output()
        .expect("lunasip db init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sql = |q: &str| {
        let o = Command::new("mariadb")
            .args(["-uroot", "-h127.0.0.1", "-N", "-B", "test", "-e", q])
            .output()
            .expect("mariadb client");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let mi_port = free_port();
    let s = script(
        mi_port,
        r#", natping_interval = 1, sipping_bflag = "SIP_PING""#,
        &format!(r#", db_mode = {db_mode}, db_url = "{url}""#),
    )
    .replace("\"location\"", &format!("\"{table}\""));
    let p = Proxy::start(&s);
    let local = free_port();
    let dir = tempfile::tempdir().expect("dir");
    let st = sipp_at(
        "nat_register.xml",
        p.port,
        local,
        &["-m", "1", "-s", "frank", "-timeout", "10s"],
    )
    .current_dir(dir.path())
    .status()
    .expect("sipp");
    assert!(st.success(), "SIPp REGISTER failed\n{}", p.log_text());
    let row = sql(&format!(
        "SELECT contact, received, cflags FROM {table} WHERE username = 'frank'"
    ));
    let received = format!("sip:127.0.0.2:{local}");
    assert!(row.starts_with("sip:frank@10.0.0.9:5060\t"), "{row}");
    assert!(row.contains(&format!("\t{received}\t")), "{row}");

    // The same address now answers the keepalive OPTIONS (SIPp as UAS).
    let uas = sipp_at(
        "nat_ping_uas.xml",
        p.port,
        local,
        &[
            "-m",
            "2",
            "-timeout",
            "15s",
            "-trace_msg",
            "-message_file",
            "msg.log",
        ],
    )
    .current_dir(dir.path())
    .status()
    .expect("sipp");
    let msgs = std::fs::read_to_string(dir.path().join("msg.log")).unwrap_or_default();
    assert!(uas.success(), "SIPp got no pings\n{msgs}\n{}", p.log_text());
    assert!(
        msgs.contains("OPTIONS sip:frank@10.0.0.9:5060 SIP/2.0"),
        "{msgs}"
    );
    drop(p);
    sql(&format!("DROP TABLE IF EXISTS {table}"));
    sql(&format!("DELETE FROM version WHERE table_name = '{table}'"));
}

#[test]
fn fix_nated_contact_before_save_and_add_rcv_param_on_a_relayed_register() {
    if !in_loopback_netns("fix_nated_contact_before_save_and_add_rcv_param_on_a_relayed_register") {
        return;
    }
    let mi_port = free_port();
    let p = Proxy::start(&format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{ mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }}, mi_fifo = false }},
}}

function route.main()
  local relay = sip.pv.get("$hdr(X-Relay)")
  if relay then
    sip.nathelper.add_rcv_param()
    sip.nathelper.add_rcv_param(1)
    sip.pv.du = relay
    sip.tm.t_relay()
    sip.exit()
  end
  sip.nathelper.fix_nated_contact(";bnat=yes")
  sip.registrar.save("location")
end
"#
    ));
    // A registrar behind lunasip: the Contact saved as rewritten.
    let ua = Ua::new("127.0.0.3");
    ua.send(p.port, &nat_register("gus", "reg-gus"));
    let ok = ua
        .recv_text(Duration::from_secs(3), "SIP/2.0")
        .unwrap_or_default();
    let saved = format!("sip:gus@127.0.0.3:{};bnat=yes", ua.port());
    assert!(ok.starts_with("SIP/2.0 200") && ok.contains(&saved), "{ok}");
    let (_, dump) = mi(mi_port, &["ul_dump"]);
    assert!(dump.contains(&saved), "{dump}");

    // A proxy in front of a registrar: received= on the way.
    let registrar = Ua::new("127.0.0.1");
    let reg = nat_register("hal", "reg-hal").replace(
        "Max-Forwards: 70\r\n",
        &format!(
            "X-Relay: sip:127.0.0.1:{}\r\nMax-Forwards: 70\r\n",
            registrar.port()
        ),
    );
    ua.send(p.port, &reg);
    let got = registrar
        .recv_text(Duration::from_secs(3), "REGISTER")
        .unwrap_or_else(|| panic!("not relayed\n{}", p.log_text()));
    let rcv = format!("received=\"sip:127.0.0.3:{}\"", ua.port());
    assert_eq!(
        header(&got, "Contact"),
        format!("Contact: <sip:hal@10.0.0.7:5060;{rcv}>;{rcv}"),
        "{got}"
    );
}
