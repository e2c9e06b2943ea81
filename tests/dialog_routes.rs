//! dialog's script-side lookups and routes (OpenSIPS 3.4 dialog.c:
//! `get_dialogs_by_val`, `get_dialogs_by_profile`, `get_dialog_vals`,
//! `load_dialog_ctx`, `dlg_send_sequential`, `dlg_on_answer`,
//! `dlg_on_timeout`, `dlg_on_hangup`) between SIPp callers and callees.

mod common;

use common::ds::{dialogs, json, mi};
use common::*;
use std::time::{Duration, Instant};

/// A stateful dialog script: initial INVITEs get a dialog (flags and
/// timeout, and the `dlg_on_*` routes from `extra`), sequential requests
/// follow it; an OPTIONS to the proxy asks about the dialog whose Call-ID
/// it names in `X-Call` and answers what it found in headers, or with
/// `X-Hangup` sends BYE to both sides with `dlg_send_sequential`.
fn script(uas: u16, mi_port: u16, flags: &str, extra: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    tm = {{ fr_timeout = 2, fr_inv_timeout = 5 }},
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    dialog = {{ profiles_with_value = "caller", profiles_no_value = "all" }},
  }},
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
  if sip.is_method("OPTIONS") then
    route.ask()
    sip.exit()
  end
  if sip.is_method("INVITE") then
    {extra}
    sip.dialog.create_dialog("{flags}")
    sip.dialog.set_dlg_profile("caller", "$fU")
    sip.dialog.set_dlg_profile("all")
    sip.dialog.store_dlg_value("who", "$fU")
    sip.dialog.store_dlg_value("n", 7)
    sip.rr.record_route()
  end
  sip.pv.du = "sip:127.0.0.1:{uas}"
  if not sip.tm.t_relay() then sip.sl.sl_reply_error() end
end

function route.ask()
  if sip.pv.get("$hdr(X-Hangup)") then
    local loaded = sip.dialog.load_dialog_ctx("$hdr(X-Hangup)")
    local a = sip.dialog.dlg_send_sequential("BYE", "callee")
    local b = sip.dialog.dlg_send_sequential("BYE", "caller", nil, nil, "Reason: Q.850;cause=16")
    sip.dialog.unload_dialog_ctx()
    sip.sl.sl_send_reply(200, "loaded=" .. tostring(loaded) .. " sent=" .. tostring(a) .. "," .. tostring(b))
    return
  end
  local ok, n = sip.dialog.get_dialogs_by_val("who", "$fU", "$avp(j)", "$var(n)")
  local okp, np = sip.dialog.get_dialogs_by_profile("caller", "$fU", "$avp(p)", "$var(np)")
  local none = sip.dialog.get_dialogs_by_profile("caller", "nobody", "$avp(x)", "$var(nx)")
  local all = sip.dialog.get_dialogs_by_profile("all", nil, "$avp(x)", "$var(na)")
  local loaded = sip.dialog.load_dialog_ctx("$hdr(X-Call)")
  local status = sip.pv.get("$DLG_status")
  local who = sip.pv.get("$dlg_val(who)")
  local did = sip.pv.get("$DLG_did")
  local nested = sip.dialog.load_dialog_ctx("$hdr(X-Call)")
  local late = sip.dialog.dlg_on_answer("answered")
  local unloaded = sip.dialog.unload_dialog_ctx()
  local again = sip.dialog.unload_dialog_ctx()
  local by_did, who2 = false, nil
  if did then
    by_did = sip.dialog.load_dialog_ctx(did, "did")
    who2 = sip.pv.get("$dlg_val(who)")
    sip.dialog.unload_dialog_ctx()
  end
  local vals = sip.dialog.get_dialog_vals("$avp(names)", "$avp(vals)", "$hdr(X-Call)")
  sip.append_to_reply("X-Json: $avp(j)\r\nX-Json-P: $avp(p)\r\n")
  sip.append_to_reply("X-Names: $(avp(names)[0]),$(avp(names)[1])\r\nX-Vals: $(avp(vals)[0]),$(avp(vals)[1])\r\n")
  sip.sl.sl_send_reply(200, table.concat({{
    "n=" .. tostring(n), "v=$var(n)", "np=" .. tostring(np), "vp=$var(np)",
    "none=" .. tostring(none), "all=$var(na)", "loaded=" .. tostring(loaded),
    "status=" .. tostring(status), "who=" .. tostring(who), "nested=" .. tostring(nested),
    "late=" .. tostring(late), "unloaded=" .. tostring(unloaded), "again=" .. tostring(again),
    "bydid=" .. tostring(by_did) .. ":" .. tostring(who2), "vals=" .. tostring(vals),
  }}, " "))
end

function route.answered()
  sip.xlog("L_INFO", "on-answer who=$dlg_val(who)\n")
  sip.dialog.store_dlg_value("answered", "yes")
end

function route.expiring()
  if sip.pv.get("$dlg_val(ext)") == nil then
    sip.dialog.store_dlg_value("ext", "1")
    sip.pv.set("$DLG_timeout", 2)
    sip.xlog("L_INFO", "on-timeout extended\n")
  else
    sip.xlog("L_INFO", "on-timeout expired answered=$dlg_val(answered)\n")
  end
end

function route.hung()
  sip.xlog("L_INFO", "on-hangup reason=$DLG_end_reason who=$dlg_val(who)\n")
end
"#
    )
}

/// Waits until `dlg_list` shows one dialog in state 4 (answered, ACKed).
fn the_confirmed_dialog(mi_port: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = dialogs(mi_port);
        if list.len() == 1 && list[0]["state"] == 4 {
            return list[0].clone();
        }
        assert!(Instant::now() < deadline, "no confirmed dialog: {list:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An OPTIONS to the proxy from user `caller` with one extra header.
fn options(port: u16, header: &str) -> String {
    let msg = format!(
        "OPTIONS sip:ask@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKask{n}\r\n\
         From: <sip:caller@127.0.0.1>;tag=ask\r\n\
         To: <sip:ask@127.0.0.1>\r\n\
         Call-ID: ask-{n}@test\r\n\
         CSeq: 1 OPTIONS\r\n\
         {header}\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n",
        n = free_port(),
    );
    udp_exchange(&format!("127.0.0.1:{port}"), &msg, Duration::from_secs(3))
        .expect("an answer to the OPTIONS")
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

#[test]
fn lookups_by_value_profile_and_call_id_see_the_call_and_send_sequential_ends_it() {
    let callee = uas("uas.xml", "u1");
    let mi_port = free_port();
    let proxy = Proxy::start(&script(callee.port, mi_port, "", ""));
    let port = proxy.port;
    let caller = std::thread::spawn(move || uac("uac_wait_bye.xml", port, "u1", 1, 1, &[]));
    let listed = the_confirmed_dialog(mi_port);
    let callid = listed["callid"].as_str().expect("callid").to_string();

    let answer = options(port, &format!("X-Call: {callid}"));
    assert!(
        answer.starts_with("SIP/2.0 200 "),
        "{answer}\n{}",
        proxy.log_text()
    );
    let status_line = answer.lines().next().unwrap();
    for want in [
        "n=1 v=1",
        "np=1 vp=1",
        "none=false",
        "all=1",
        "loaded=true",
        "status=4",
        "who=caller",
        "nested=false",
        "late=false",
        "unloaded=true",
        "again=false",
        "bydid=true:caller",
        "vals=true",
    ] {
        assert!(status_line.contains(want), "{want} in {status_line}");
    }
    // The JSON is dialog.c's dlg_get_json_out with its context.
    for h in ["X-Json", "X-Json-P"] {
        let j = json(header(&answer, h));
        assert_eq!(j["callid"], callid.as_str(), "{j}");
        assert_eq!(j["state"], "4", "{j}");
        assert_eq!(
            j["caller"]["contact"]
                .as_str()
                .map(|c| c.contains("sip:caller@")),
            Some(true),
            "{j}"
        );
        assert_eq!(j["callees"].as_array().map(Vec::len), Some(1), "{j}");
        assert_eq!(j["values"]["who"], "caller", "{j}");
        assert_eq!(j["values"]["n"], 7, "{j}");
        assert_eq!(
            j["profiles"]["caller"],
            serde_json::json!(["caller"]),
            "{j}"
        );
        assert_eq!(j["profiles"]["all"], serde_json::json!([""]), "{j}");
        assert_eq!(j["ID"], listed["db_id"], "{j}");
    }
    // get_dialog_vals: each name in one AVP, its value at the same index
    // of the other.
    let names = header(&answer, "X-Names");
    let vals = header(&answer, "X-Vals");
    let mut pairs: Vec<(&str, &str)> = names.split(',').zip(vals.split(',')).collect();
    pairs.sort();
    assert_eq!(pairs, [("n", "7"), ("who", "caller")], "{names} / {vals}");

    // A Call-ID no dialog has.
    let answer = options(port, "X-Call: nobody");
    assert!(
        answer.contains("loaded=false") && answer.contains("n=1"),
        "{answer}"
    );

    // BYE to both sides from the script; both answer it.
    let answer = options(port, &format!("X-Hangup: {callid}"));
    assert!(answer.contains("loaded=true sent=true,true"), "{answer}");
    let run = caller.join().unwrap();
    assert_eq!(
        (run.successful, run.failed),
        (1, 0),
        "the caller got a BYE: {}",
        run.errors
    );
    assert_eq!(
        callee.counts(1),
        (1, 0),
        "the callee got a BYE: {}",
        callee.errors()
    );
}

/// The number of log lines containing `what`, waiting up to 3 s for `n`.
fn log_lines(proxy: &Proxy, what: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let got = proxy.log_text().matches(what).count();
        if got >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const ROUTES: &str = r#"sip.pv.set("$DLG_timeout", {T})
    sip.dialog.create_dialog("B")
    sip.dialog.dlg_on_answer("answered")
    sip.dialog.dlg_on_timeout("expiring")
    sip.dialog.dlg_on_hangup("hung")"#;

#[test]
fn on_timeout_route_extends_the_dialog_once_then_it_ends_with_byes() {
    let callee = uas("uas.xml", "u1");
    let mi_port = free_port();
    let proxy = Proxy::start(&script(
        callee.port,
        mi_port,
        "B",
        &ROUTES.replace("{T}", "2"),
    ));
    let started = Instant::now();
    let run = uac("uac_wait_bye.xml", proxy.port, "u1", 1, 1, &[]);
    let took = started.elapsed();
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    // 2 s, then 2 s more given by the on-timeout route.
    assert!(
        took >= Duration::from_millis(3800),
        "BYE after 2 + 2 s, not {took:?}"
    );
    assert_eq!(
        callee.counts(1),
        (1, 0),
        "the callee got its BYE: {}",
        callee.errors()
    );
    assert_eq!(
        log_lines(&proxy, "on-answer who=caller", 1),
        1,
        "{}",
        proxy.log_text()
    );
    assert_eq!(log_lines(&proxy, "on-timeout extended", 1), 1);
    assert_eq!(
        log_lines(&proxy, "on-timeout expired answered=yes", 1),
        1,
        "{}",
        proxy.log_text()
    );
    // A timeout is no hangup (OpenSIPS runs that route for a BYE only).
    assert_eq!(proxy.log_text().matches("on-hangup").count(), 0);
    let (ok, stats) = mi(mi_port, &["get_statistics", "dialog:"]);
    assert!(ok, "{stats}");
    assert_eq!(json(&stats)["dialog:expired_dialogs"], 1, "{stats}");
    assert!(dialogs(mi_port).is_empty());
}

#[test]
fn on_hangup_route_runs_for_the_bye_and_not_the_timeout_route() {
    let callee = uas("uas.xml", "u1");
    let mi_port = free_port();
    let extra = ROUTES.replace("{T}", "60");
    let proxy = Proxy::start(&script(callee.port, mi_port, "", &extra));
    let run = uac("uac_pause.xml", proxy.port, "u1", 1, 1, &[]);
    assert_eq!((run.successful, run.failed), (1, 0), "{}", run.errors);
    assert_eq!(
        log_lines(&proxy, "on-answer who=caller", 1),
        1,
        "{}",
        proxy.log_text()
    );
    assert_eq!(
        log_lines(&proxy, "on-hangup reason=Downstream BYE who=caller", 1),
        1,
        "{}",
        proxy.log_text()
    );
    assert_eq!(proxy.log_text().matches("on-timeout").count(), 0);
    assert!(dialogs(mi_port).is_empty());
}
