//! Dispatcher selection in process (no sockets): the 2.x list forms of
//! `ds_select_dst` and the failover list across sets. One test in its own
//! binary, since the dispatcher's sets are process-wide.

#[path = "common/worker.rs"]
mod worker;

use worker::*;

#[test]
fn several_sets_in_one_call_fail_over_across_sets() {
    let w = worker(
        r#"
config.modules = { dispatcher = {
  sets = {
    [1] = { { uri = "sip:192.0.2.1:5060", state = "i" } },
    [2] = { "sip:192.0.2.2:5060", "sip:192.0.2.3:5060" },
    [3] = { { uri = "sip:10.0.0.9:5070", attrs = "box=src" } },
  },
  dst_avp = "$avp(ds_list)", cnt_avp = "$avp(ds_n)",
  setid_pvar = "$var(ds_set)", attrs_avp = "$avp(ds_attrs)",
} }
function route.main()
  if sip.pv.rU == "none" then
    if not sip.dispatcher.ds_select_dst(7, 4) then sip.sl.sl_send_reply(503, "No Set") end
    return
  end
  -- Set 1 has nothing active: set 2 answers, set 3 follows in the list.
  if not sip.dispatcher.ds_select_dst("1,2,3", "4,8,0", "f") then
    sip.sl.sl_send_reply(503, "none")
    return
  end
  sip.append_hf("X-Count: " .. sip.pv.get("$avp(ds_n)") .. "\r\n")
  sip.append_hf("X-Last: " .. sip.pv.get("$(avp(ds_list)[-1])") .. "\r\n")
  -- The source (10.0.0.9:5070) is set 3's box.
  if sip.dispatcher.ds_is_in_list(sip.pv.si, sip.pv.sp) then
    sip.append_hf("X-From-Set: " .. sip.pv.get("$var(ds_set)") .. " " .. sip.pv.get("$avp(ds_attrs)") .. "\r\n")
  end
  if sip.pv.rU == "next" then
    sip.dispatcher.ds_next_dst()
    sip.dispatcher.ds_next_dst()
  end
  sip.forward()
end
"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].1, addr("192.0.2.2:5060"), "{}", out[0].2);
    // Set 2's two and set 3's one: three to try.
    assert!(out[0].2.contains("X-Count: 3\r\n"), "{}", out[0].2);
    // dst_avp / cnt_avp named in the config hold the list.
    assert!(
        out[0].2.contains("X-Last: sip:10.0.0.9:5070\r\n"),
        "{}",
        out[0].2
    );
    // ds_is_in_list without a set fills setid_pvar and attrs_avp.
    assert!(
        out[0].2.contains("X-From-Set: 3 box=src\r\n"),
        "{}",
        out[0].2
    );

    let next = INVITE.replacen("INVITE sip:bob@", "INVITE sip:next@", 1);
    let out = run(&w, &next, Proto::Udp);
    assert_eq!(out[0].1, addr("10.0.0.9:5070"), "{}", out[0].2);

    // A set that does not exist is false, not a script error.
    let none = INVITE.replacen("INVITE sip:bob@", "INVITE sip:none@", 1);
    let out = run(&w, &none, Proto::Udp);
    assert!(out[0].2.starts_with("SIP/2.0 503 No Set"), "{}", out[0].2);
}
