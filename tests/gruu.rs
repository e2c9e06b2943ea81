//! GRUU (RFC 5627) in the registrar, as OpenSIPS 3.4 does it
//! (modules/registrar/reply.c build_contact, lib/reg/sip_msg.c
//! extract_aor, lib/reg/lookup.c select_contacts): two SIPp callees
//! register one AoR from different `+sip.instance`s into a MariaDB
//! location table (db_mode 3); the 200 gives each its pub-gruu and
//! temp-gruu; a call to one instance's GRUU reaches only that callee.

mod common;

use common::mysql::{sql, Tables, URL};
use common::*;

fn script(t: &Tables) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    mi_fifo = false,
    usrloc = {{ db_mode = 3, db_url = "{URL}" }},
    registrar = {{ disable_gruu = 0, gruu_secret = "t0p-s3cret" }},
  }},
}}

function route.main()
  if sip.is_method("REGISTER") then
    sip.registrar.save("{loc}")
    sip.exit()
  end
  if sip.has_totag() then
    sip.tm.t_relay()
    sip.exit()
  end
  local ok, rc = sip.registrar.lookup("{loc}")
  if not ok then
    sip.sl.sl_send_reply(404, "Lookup " .. rc)
    sip.exit()
  end
  sip.tm.t_relay()
end
"#,
        loc = t.location
    )
}

const INST_A: &str = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
const INST_B: &str = "urn:uuid:0c0ffee0-0000-4000-8000-00000000000b";

/// SIPp registering bob's contact at `contact_port` from `instance`; the
/// 200 as logged.
fn register(proxy: u16, contact_port: u16, instance: &str) -> String {
    let r = uac(
        "reg_gruu.xml",
        proxy,
        "u1",
        1,
        1,
        &[
            "-s",
            "bob",
            "-key",
            "contact_port",
            &contact_port.to_string(),
            "-key",
            "instance",
            instance,
        ],
    );
    assert_eq!(r.successful, 1, "{}\n{}", r.errors, r.messages);
    let i = r.messages.rfind("SIP/2.0 200").expect("a 200");
    r.messages[i..].to_string()
}

/// The value of `name="…"` on the Contact line of the 200 that binds
/// `contact_port`.
fn gruu_param(ok: &str, contact_port: u16, name: &str) -> String {
    let line = ok
        .lines()
        .find(|l| l.starts_with("Contact:") && l.contains(&format!("127.0.0.1:{contact_port};")))
        .unwrap_or_else(|| panic!("no Contact for {contact_port}:\n{ok}"));
    let key = format!(";{name}=\"");
    let i = line
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + key.len();
    line[i..].split('"').next().unwrap_or("").to_string()
}

fn call(proxy: u16, ruri: &str) -> SippRun {
    uac("uac_ruri.xml", proxy, "u1", 1, 1, &["-key", "ruri", ruri])
}

#[test]
fn a_call_to_one_instances_gruu_reaches_only_it() {
    let t = Tables::new("gr");
    let p = Proxy::start(&script(&t));
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    register(p.port, a.port, INST_A);
    let ok = register(p.port, b.port, INST_B);

    // RFC 5627 §6: both bindings, each with its GRUUs and instance.
    let pub_a = gruu_param(&ok, a.port, "pub-gruu");
    let pub_b = gruu_param(&ok, b.port, "pub-gruu");
    assert_eq!(
        pub_a,
        format!("sip:bob@127.0.0.1:{};gr={INST_A}", p.port),
        "{ok}"
    );
    assert_eq!(
        pub_b,
        format!("sip:bob@127.0.0.1:{};gr={INST_B}", p.port),
        "{ok}"
    );
    assert_eq!(
        gruu_param(&ok, b.port, "+sip.instance"),
        format!("<{INST_B}>")
    );
    let temp_a = gruu_param(&ok, a.port, "temp-gruu");
    assert!(
        temp_a.starts_with("sip:tgruu.") && temp_a.ends_with(&format!("@127.0.0.1:{};gr", p.port)),
        "{temp_a}"
    );
    // The temporary GRUU does not show the AoR or the instance.
    assert!(
        !temp_a.contains("bob") && !temp_a.contains("f81d4fae"),
        "{temp_a}"
    );
    // The instance is stored as OpenSIPS stores it.
    assert_eq!(
        sql(&format!(
            "SELECT sip_instance FROM {} WHERE contact LIKE '%:{};%'",
            t.location, b.port
        )),
        format!("<{INST_B}>")
    );

    // The public GRUU of B reaches B only.
    let r = call(p.port, &pub_b);
    assert_eq!(r.successful, 1, "{}\n{}", r.errors, p.log_text());
    assert_eq!(b.counts(1), (1, 0), "{}", b.errors());
    // A's temporary GRUU reaches A only.
    let r = call(p.port, &temp_a);
    assert_eq!(r.successful, 1, "{}\n{}", r.errors, p.log_text());
    assert_eq!(a.counts(1), (1, 0), "{}", a.errors());
    assert_eq!(b.counts(1), (1, 0), "B got A's call: {}", b.errors());

    // A GRUU of an instance nobody registered, and a forged temporary
    // GRUU: -1 and -3.
    let r = call(
        p.port,
        &format!("sip:bob@127.0.0.1:{};gr=urn:uuid:nobody", p.port),
    );
    assert_eq!(r.successful, 0);
    assert!(r.messages.contains("404 Lookup -1"), "{}", r.messages);
    let r = call(p.port, &format!("sip:tgruu.!!@127.0.0.1:{};gr", p.port));
    assert!(r.messages.contains("404 Lookup -3"), "{}", r.messages);

    // A registers again from another Call-ID: its old temporary GRUU is
    // gone (lookup.c: the Call-ID no longer matches), the public one stays.
    let ok = register(p.port, a.port, INST_A);
    let temp_a2 = gruu_param(&ok, a.port, "temp-gruu");
    assert_ne!(temp_a2, temp_a);
    let r = call(p.port, &temp_a);
    assert!(r.messages.contains("404 Lookup -1"), "{}", r.messages);
    let r = call(p.port, &temp_a2);
    assert_eq!(r.successful, 1, "{}\n{}", r.errors, p.log_text());
    assert_eq!(a.counts(2), (2, 0), "{}", a.errors());
    assert_eq!(b.counts(1), (1, 0), "{}", b.errors());
    p.stop();
}

#[test]
fn no_gruu_in_the_200_when_disabled_but_lookup_reads_gr() {
    let t = Tables::new("gq");
    // OpenSIPS 3.4's default: disable_gruu = 1.
    let s = script(&t).replace("disable_gruu = 0, ", "");
    let p = Proxy::start(&s);
    let a = uas("uas.xml", "u1");
    let ok = register(p.port, a.port, INST_A);
    assert!(ok.contains(&format!("127.0.0.1:{};", a.port)), "{ok}");
    assert!(!ok.contains("gruu"), "{ok}");
    // lookup still honours a public GRUU (extract_aor reads `gr` always).
    let r = call(p.port, &format!("sip:bob@127.0.0.1:{};gr={INST_A}", p.port));
    assert_eq!(r.successful, 1, "{}\n{}", r.errors, p.log_text());
    p.stop();
}
