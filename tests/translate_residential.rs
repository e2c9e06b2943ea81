//! OpenSIPS 3.4's menuconfig Residential script with its default options
//! (tests/fixtures/os34-menuconfig-residential-default.cfg, copied from
//! the shared corpus: USE_AUTH=no, USE_DBUSRLOC=no, usrloc in memory,
//! accounting to the log) translated on load and run under lunasip with
//! SIPp: two users register, one calls the other (record-routed, BYE
//! through loose_route), a call to a user not registered gets the
//! script's `t_reply(404, "Not Found")`, and a call to a foreign domain
//! from a foreign domain gets "403 Relay Forbidden".

mod common;

use common::translated::{final_reply, register_two_and_call, unregistered_user_gets_404};
use common::{free_port, uac, Proxy};

fn fixture() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/os34-menuconfig-residential-default.cfg"
    );
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn os34_residential_default_registers_and_calls() {
    let orig = fixture();
    let port = free_port();
    let fifo_dir = tempfile::tempdir().unwrap();
    let fifo = fifo_dir.path().join("fifo");
    let cfg = orig
        .replace(
            "socket=udp:127.0.0.1:5060",
            &format!("socket=udp:127.0.0.1:{port}"),
        )
        .replace("/tmp/opensips_fifo", &fifo.display().to_string());
    assert!(cfg.contains(&format!("socket=udp:127.0.0.1:{port}")));
    assert!(cfg.contains(&fifo.display().to_string()));

    // Every function it calls is lunasip's: it passes check as it is.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opensips.cfg");
    std::fs::write(&path, &cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let p = Proxy::try_start_file("opensips.cfg", &cfg, port, &[])
        .unwrap_or_else(|log| panic!("lunasip did not start:\n{log}"));
    register_two_and_call(port, &p);

    // Nobody registered as carol: the script's 404.
    unregistered_user_gets_404(port, &p, "res");
    // Neither the caller's nor the callee's domain is ours: not relayed.
    let relay = "INVITE sip:dave@example.net SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bK-res-relay\r\nFrom: <sip:eve@example.org>;tag=e1\r\nTo: <sip:dave@example.net>\r\nCall-ID: res-relay\r\nCSeq: 1 INVITE\r\nContact: <sip:eve@{LOCAL}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let r = final_reply(port, relay);
    assert!(
        r.starts_with("SIP/2.0 403 Relay Forbidden"),
        "{r}\n{}",
        p.log_text()
    );
    let log = p.stop();
    assert!(!log.contains("not supported by lunasip"), "{log}");
}

/// The same Residential script generated with `USE_AUTH=yes`
/// (tests/fixtures/os34-menuconfig-residential-auth.cfg: OpenSIPS 3.4's
/// menuconfig/configs/opensips_residential.m4 through m4 with that one
/// option on), its subscribers in MariaDB (auth_db, plain-text passwords
/// with `calculate_ha1`): a REGISTER is challenged (401) and saved once
/// answered, a wrong password is challenged again, a call from a local
/// user is challenged (407) and relayed once answered, a call to a
/// subscriber not registered gets the script's 404 and to an unknown user
/// its "420 Bad Extension" (`db_does_uri_exist`). The test names its own
/// subscriber table and the database of the test server; the routing
/// logic is the config's; it loads without `--allow-missing` (the
/// template sets auth_db's `load_credentials` to "": no AVPs, so a
/// subscriber table without OpenSIPS's default `rpid` column works).
#[test]
fn os34_residential_with_auth_on_mariadb_registers_and_calls() {
    use common::mysql::{Tables, URL};
    let t = Tables::new("resauth");
    t.add_user("bob@127.0.0.1", "b0b-pw");
    t.add_user("caller@127.0.0.1", "c4ll-pw");
    t.add_user("carol@127.0.0.1", "c4rol-pw");
    let orig = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/os34-menuconfig-residential-auth.cfg"
    ))
    .unwrap();
    let port = free_port();
    let fifo_dir = tempfile::tempdir().unwrap();
    let fifo = fifo_dir.path().join("fifo");
    let cfg = orig
        .replace(
            "socket=udp:127.0.0.1:5060",
            &format!("socket=udp:127.0.0.1:{port}"),
        )
        .replace("/tmp/opensips_fifo", &fifo.display().to_string())
        .replace("mysql://opensips:opensipsrw@localhost/opensips", URL)
        .replace("\"subscriber\"", &format!("\"{}\"", t.subscriber));
    assert!(cfg.contains(URL) && cfg.contains(&t.subscriber));

    let p = Proxy::try_start_file("opensips.cfg", &cfg, port, &[])
        .unwrap_or_else(|log| panic!("lunasip did not start:\n{log}"));
    // bob registers from the port his callee agent listens on next
    // (reg_auth.xml binds the contact to its own port).
    let bob_port = free_port();
    let reg = |pw: &str, scen: &str| {
        let bp = bob_port.to_string();
        uac(
            scen,
            port,
            "u1",
            1,
            1,
            &["-s", "bob", "-au", "bob", "-ap", pw, "-p", &bp],
        )
    };
    let wrong = reg("not-it", "reg_auth_wrong.xml");
    assert_eq!(
        wrong.successful,
        1,
        "wrong password: {}\n{}",
        wrong.errors,
        p.log_text()
    );
    let r = reg("b0b-pw", "reg_auth.xml");
    assert_eq!(
        r.successful,
        1,
        "REGISTER bob: {}\n{}",
        r.errors,
        p.log_text()
    );
    let callee = common::uas_on("uas.xml", "u1", bob_port);
    let call = uac(
        "uac_auth.xml",
        port,
        "u1",
        1,
        1,
        &["-s", "bob", "-au", "caller", "-ap", "c4ll-pw"],
    );
    assert_eq!(
        call.successful,
        1,
        "call: {}\n{}",
        call.errors,
        p.log_text()
    );
    assert_eq!(callee.counts(1).0, 1, "{}", callee.errors());

    // carol is a subscriber but not registered: 404; dave is nobody: 420.
    // (From a foreign domain, so the script asks no credentials.)
    for (user, want) in [
        ("carol", "SIP/2.0 404 Not Found"),
        ("dave", "SIP/2.0 420 Bad Extension"),
    ] {
        let invite = format!("INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-ra-{user}\r\nFrom: <sip:eve@example.org>;tag=e1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: ra-{user}\r\nCSeq: 1 INVITE\r\nContact: <sip:eve@{{LOCAL}}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
        let r = final_reply(port, &invite);
        assert!(r.starts_with(want), "{user}: {r}\n{}", p.log_text());
    }
    let log = p.stop();
    assert!(!log.contains("not supported by lunasip"), "{log}");
}
