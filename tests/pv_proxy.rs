//! Pseudo-variable writes on the wire, end to end: the built binary between
//! SIPp peers. The script rewrites the R-URI through `sip.pv` and adds a
//! header built from transformations; the SIPp callee answers only if it
//! sees both (tests/scenarios/pv_uas.xml).

mod common;

use common::*;

#[test]
fn rewritten_ruri_and_header_reach_the_callee() {
    let callee = uas("pv_uas.xml", "u1");
    let script = format!(
        r#"config = {{ listen = {{ "udp:127.0.0.1:{{PORT}}" }} }}
function route.main()
  if sip.pv.rm ~= "OPTIONS" then sip.drop() end
  sip.pv.rU = "carol"
  sip.pv.set("$rp", {port})
  sip.pv.ru = sip.pv.ru .. ";pv=1"
  sip.append_hf("X-Pv: $fU/$(ci{{s.md5}})/$(tU{{s.len}})/$(tU{{s.toupper}})\r\n")
  sip.forward()
end
"#,
        port = callee.port
    );
    let proxy = Proxy::start(&script);
    let run = uac("options_fwd.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "{}\n{}\n{}",
        run.errors,
        run.messages,
        proxy.log_text()
    );
}
