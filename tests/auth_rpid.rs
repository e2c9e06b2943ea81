//! auth_db's `load_credentials` (OpenSIPS 3.4 modules/auth_db/authorize.c
//! generate_avps, aaa_avps.h) and auth's Remote-Party-ID functions
//! (modules/auth/rpid.c) end to end: SIPp callers answer a 407 with
//! digest credentials checked against OpenSIPS's `subscriber` table on
//! MariaDB; the authorized request reaches a SIPp callee that echoes the
//! Remote-Party-ID and the headers built from the loaded AVPs back in its
//! 200, so the test reads what the callee saw.

mod common;

use common::mysql::{sql, Tables, URL};
use common::*;

fn script(t: &Tables, uas: u16) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{
    mi_fifo = false,
    auth = {{ rpid_avp = "$avp(my_rpid)", rpid_suffix = ";party=calling;screen=yes" }},
    auth_db = {{ db_url = "{URL}", use_domain = 1,
                 load_credentials = "$avp(caller_uuid)=email_address; $avp(my_rpid)=rpid" }},
  }},
}}

function route.main()
  local ok, rc = sip.auth_db.proxy_authorize("example.com", "{sub}")
  if not ok then
    if rc == 0 then sip.exit() end
    sip.auth.proxy_challenge("example.com", "auth")
    sip.exit()
  end
  sip.auth.consume_credentials()
  local _, e164 = sip.auth.is_rpid_user_e164()
  local app
  if sip.pv.fU == "bob" then
    _, app = sip.auth.append_rpid_hf("\"Bob\" <", ">;screen=no")
  else
    _, app = sip.auth.append_rpid_hf()
  end
  sip.append_hf("X-Codes: e164=" .. e164 .. " append=" .. app .. "\r\n")
  if sip.avp.caller_uuid then
    sip.append_hf("X-Uuid: $avp(caller_uuid)\r\n")
  end
  sip.pv.set("$du", "sip:127.0.0.1:{uas}")
  sip.tm.t_relay()
end
"#,
        sub = t.subscriber
    )
}

/// One OPTIONS by `user` answered with its password; the callee's 200 as
/// SIPp logged it.
fn call(port: u16, user: &str, password: &str) -> String {
    let r = uac(
        "opt_proxy_auth.xml",
        port,
        "u1",
        1,
        1,
        &["-s", user, "-au", user, "-ap", password, "-nr"],
    );
    assert_eq!(r.successful, 1, "{user}: {}\n{}", r.errors, r.messages);
    let i = r
        .messages
        .rfind("SIP/2.0 200 OK")
        .expect("a 200 in the log");
    r.messages[i..].to_string()
}

/// The value of header `name` in `msg` ("" when empty or absent).
fn hdr<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map_or("", str::trim)
}

#[test]
fn load_credentials_fill_avps_and_the_callee_sees_remote_party_id() {
    let t = Tables::new("rp");
    for u in ["alice", "bob", "carol"] {
        t.add_user(&format!("{u}@example.com"), "pw");
    }
    sql(&format!(
        "UPDATE {} SET rpid = '<sip:+4930123456@example.com>', email_address = 'uuid-alice' WHERE username = 'alice'",
        t.subscriber
    ));
    sql(&format!(
        "UPDATE {} SET rpid = 'sip:bob@example.com' WHERE username = 'bob'",
        t.subscriber
    ));
    let uas = uas("rpid_uas.xml", "u1");
    let p = Proxy::start(&script(&t, uas.port));

    // alice: both columns loaded; the default prefix/suffix params; E.164.
    let ok = call(p.port, "alice", "pw");
    assert_eq!(
        hdr(&ok, "X-Saw-Rpid"),
        "Remote-Party-ID: <sip:+4930123456@example.com>;party=calling;screen=yes",
        "{ok}"
    );
    assert_eq!(hdr(&ok, "X-Saw-Uuid"), "X-Uuid: uuid-alice", "{ok}");
    assert_eq!(hdr(&ok, "X-Saw-Codes"), "X-Codes: e164=1 append=1", "{ok}");
    // consume_credentials removed them before the relay.
    assert_eq!(hdr(&ok, "X-Saw-Auth"), "", "{ok}");

    // bob: explicit prefix and suffix; a user that is not E.164; an empty
    // email_address is not loaded (generate_avps skips empty strings).
    let ok = call(p.port, "bob", "pw");
    assert_eq!(
        hdr(&ok, "X-Saw-Rpid"),
        "Remote-Party-ID: \"Bob\" <sip:bob@example.com>;screen=no",
        "{ok}"
    );
    assert_eq!(hdr(&ok, "X-Saw-Uuid"), "", "{ok}");
    assert_eq!(hdr(&ok, "X-Saw-Codes"), "X-Codes: e164=-1 append=1", "{ok}");

    // carol: rpid NULL, so no AVP: nothing appended (-1) and not E.164.
    let ok = call(p.port, "carol", "pw");
    assert_eq!(hdr(&ok, "X-Saw-Rpid"), "", "{ok}");
    assert_eq!(
        hdr(&ok, "X-Saw-Codes"),
        "X-Codes: e164=-1 append=-1",
        "{ok}"
    );

    // A wrong password loads nothing and never reaches the callee.
    let r = uac(
        "opt_proxy_auth.xml",
        p.port,
        "u1",
        1,
        1,
        &["-s", "alice", "-au", "alice", "-ap", "nope", "-nr"],
    );
    assert_eq!(r.successful, 0, "{}", r.messages);
    assert_eq!(uas.counts(3), (3, 0), "{}", uas.errors());
    p.stop();
}

#[test]
fn bad_load_credentials_and_rpid_avp_are_refused_at_start() {
    let base = |auth: &str, auth_db: &str| {
        format!(
            r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  modules = {{ mi_fifo = false, auth = {{ {auth} }}, auth_db = {{ db_url = "{URL}", {auth_db} }} }},
}}
function route.main() sip.exit() end
"#
        )
    };
    let e = Proxy::try_start(&base("", r#"load_credentials = "$var(x)=rpid""#))
        .err()
        .expect("a $var is refused");
    assert!(
        e.contains("load_credentials") && e.contains("$var(x)"),
        "{e}"
    );
    let e = Proxy::try_start(&base("", r#"load_credentials = "rpid;drop table""#))
        .err()
        .expect("a column with a space is refused");
    assert!(e.contains("load_credentials"), "{e}");
    let e = Proxy::try_start(&base(r#"rpid_avp = "$hdr(x)""#, ""))
        .err()
        .expect("a non-AVP rpid_avp is refused");
    assert!(e.contains("rpid_avp"), "{e}");
}
