//! avpops (OpenSIPS 3.4 modules/avpops: avpops.c, avpops_impl.c,
//! avpops_db.c). In process: the AVP operations with the argument forms
//! of the corpus (../shared/corpus/opensips-cfg), judged by what the next
//! hop receives. On MariaDB: `avp_db_load` + `avp_pushto` route a call to
//! the SIPp callee the `usr_preferences` table names, `avp_db_store` and
//! `avp_db_delete` change its rows, and `avp_db_query` keeps
//! pseudo-variables data (bound parameters), rows becoming AVP values.
#![allow(dead_code)]

mod common;

use common::mysql::{sql, Tables, URL};
use common::worker::*;
use common::{free_port, uac, uas, udp_exchange, Proxy};
use std::time::Duration;

/// The requests the route sent, start line first.
fn sent(w: &std::rc::Rc<Worker>, msg: &str) -> Vec<String> {
    run(w, msg, Proto::Udp)
        .into_iter()
        .map(|o| o.2)
        .filter(|m| !m.starts_with("SIP/2.0"))
        .collect()
}

/// The value of header `name` in `msg`.
fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in\n{msg}"))
        .trim()
}

#[test]
fn avp_check_with_the_corpus_forms() {
    // opensips-cfg: fm/presence*/i on $hdr(Event), re/…/g on $si,
    // eq/message-summary/i; an integer never equals a string.
    let w = worker(
        r#"function route.main()
  local r = {}
  local function c(p, v) local _, rc = sip.avpops.avp_check(p, v); r[#r + 1] = rc end
  c("$hdr(Event)", "fm/presence*/i")
  c("$hdr(Event)", "fm/presence*")
  c("$hdr(Event)", "eq/PRESENCE.winfo/i")
  c("$hdr(Event)", "eq/PRESENCE.winfo")
  c("$si", "re/10.0./g")
  c("$si", "re/^192\\.168\\./g")
  sip.pv.set("$avp(n)", 7)
  sip.pv.set("$avp(n)", 12)
  c("$avp(n)", "gt/10")
  c("$avp(n)", "lt/10")
  c("$avp(n)", "lt/10/g")
  c("$avp(n)", "eq/s:12")
  c("$avp(n)", "and/4")
  sip.pv.set("$avp(lim)", 7)
  c("$avp(n)", "le/$avp(lim)/g")
  c("$rU", "ne/bob")
  c("$rU", "ge/BOB")
  sip.append_hf("X-R: " .. table.concat(r, ",") .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let msg = INVITE.replace("X-Keep: yes\r\n", "Event: Presence.winfo\r\n");
    let out = sent(&w, &msg);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(header(&out[0], "X-R"), "1,-1,1,-1,1,-1,1,-1,1,-1,1,1,-1,1");
    // A check that does not parse fails at once, naming the function.
    let w = worker(
        r#"function route.main()
  local ok, err = pcall(sip.avpops.avp_check, "$rU", "zz/1")
  sip.append_hf("X-E: " .. tostring(err):gsub("\r?\n.*", "") .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, INVITE);
    assert!(
        header(&out[0], "X-E").contains("avp_check: unknown operation 'zz'"),
        "{}",
        out[0]
    );
}

#[test]
fn copy_op_subst_delete_and_is_avp_set() {
    let w = worker(
        r#"function route.main()
  local r = {}
  local function p(...) for i = 1, select('#', ...) do r[#r + 1] = tostring((select(i, ...))) end end
  local function rc(f, ...) local _, c = f(...); return c end
  local a = sip.avpops
  sip.pv.set("$avp(x)", "1")
  sip.pv.set("$avp(x)", "2")
  p(rc(a.avp_copy, "$avp(x)", "$avp(y)/g"), sip.pv.get("$(avp(y)[0])"), sip.pv.get("$(avp(y)[1])"))
  p(rc(a.avp_copy, "$avp(x)", "$avp(z)/n"), type(sip.pv.get("$avp(z)")))
  p(rc(a.avp_copy, "$avp(none)", "$avp(z)"))
  -- avp_op: the newest integer, or every one with g; d deletes the source.
  sip.pv.set("$avp(i)", 5)
  sip.pv.set("$avp(i)", 10)
  p(rc(a.avp_op, "$avp(i)/$avp(o)", "add/3"), sip.pv.get("$avp(o)"))
  p(rc(a.avp_op, "$avp(i)", "mul/$avp(z)/gd"), sip.pv.get("$(avp(i)[0])"), sip.pv.get("$(avp(i)[1])"), sip.pv.get("$(avp(i)[2])"))
  p(rc(a.avp_op, "$avp(x)", "add/1"))
  -- avp_subst (opensips-cfg: rewrite the URI inside a saved From).
  sip.pv.set("$avp(hdrfrom)", "Alice <sip:old@host>")
  p(rc(a.avp_subst, "$avp(hdrfrom)", "/<.*>/<sip:$fU@$td>/"), sip.pv.get("$avp(hdrfrom)"))
  p(rc(a.avp_subst, "$avp(hdrfrom)/$avp(copy)", "/Alice/Carol/"), sip.pv.get("$avp(copy)"), sip.pv.get("$avp(hdrfrom)"))
  p(rc(a.avp_subst, "$avp(hdrfrom)", "/nomatch/x/"))
  -- is_avp_set and its flags.
  sip.pv.set("$avp(e)", "")
  p(rc(a.is_avp_set, "$avp(e)"), rc(a.is_avp_set, "$avp(e)/e"), rc(a.is_avp_set, "$avp(e)/n"),
    rc(a.is_avp_set, "$avp(o)/n"), rc(a.is_avp_set, "$avp(o)/s"), rc(a.is_avp_set, "$avp(nope)"),
    rc(a.is_avp_set, "$(avp(y)[1])"), rc(a.is_avp_set, "$(avp(y)[5])"))
  -- avp_delete: the newest, all with g, every AVP with *.
  p(rc(a.avp_delete, "$avp(y)"), sip.pv.get("$(avp(y)[1])"))
  p(rc(a.avp_delete, "$avp(x)/g"), sip.pv.get("$avp(x)"), rc(a.avp_delete, "$avp(x)"))
  p(rc(a.avp_print))
  p(rc(a.avp_delete, "*"), sip.pv.get("$avp(o)"), rc(a.avp_delete, "*"))
  sip.append_hf("X-R: " .. table.concat(r, ",") .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = sent(&w, INVITE);
    assert_eq!(
        header(&out[0], "X-R"),
        "1,1,2,1,number,-1,\
         1,13,\
         1,10,20,nil,\
         -1,\
         1,Alice <sip:alice@example.com>,\
         1,Carol <sip:alice@example.com>,Alice <sip:alice@example.com>,\
         -1,\
         1,1,-1,1,-1,-1,1,-1,\
         1,nil,\
         1,nil,-1,\
         1,\
         1,nil,-1"
    );
}

#[test]
fn shuffle_keeps_the_values_and_pushto_forks() {
    // avp_pushto with g into $ru: the first value rewrites the R-URI, each
    // next one moves the R-URI so far into a branch; t_relay forks to all.
    let w = worker(
        r#"function route.main()
  for i = 1, 6 do sip.pv.set("$avp(s)", "v" .. i) end
  sip.avpops.avp_shuffle("$avp(s)")
  local seen = {}
  for i = 0, 5 do seen[#seen + 1] = sip.pv.get(string.format("$(avp(s)[%d])", i)) end
  table.sort(seen)
  sip.append_hf("X-S: " .. table.concat(seen, ",") .. "\r\n")
  sip.pv.set("$avp(dst)", "sip:one@192.0.2.1")
  sip.pv.set("$avp(dst)", "sip:two@192.0.2.2")
  local _, c1 = sip.avpops.avp_pushto("$ru", "$avp(dst)/g")
  local _, c2 = sip.avpops.avp_pushto("$ru/username", "$avp(none)")
  sip.append_hf("X-P: " .. c1 .. "," .. c2 .. "\r\n")
  sip.tm.t_relay()
end"#,
    );
    let out = sent(&w, INVITE);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(header(&out[0], "X-S"), "v1,v2,v3,v4,v5,v6");
    assert_eq!(header(&out[0], "X-P"), "1,-1");
    let mut ruris: Vec<&str> = out.iter().map(|m| m.lines().next().unwrap()).collect();
    ruris.sort();
    assert_eq!(
        ruris,
        [
            "INVITE sip:one@192.0.2.1 SIP/2.0",
            "INVITE sip:two@192.0.2.2 SIP/2.0"
        ]
    );
    // Into the user part and $du.
    let w = worker(
        r#"function route.main()
  sip.pv.set("$avp(u)", "carol")
  sip.pv.set("$avp(d)", "sip:192.0.2.9:5099")
  sip.avpops.avp_pushto("$ru/username", "$avp(u)")
  sip.avpops.avp_pushto("$du", "$avp(d)")
  sip.forward()
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].1, addr("192.0.2.9:5099"));
    assert!(
        out[0].2.starts_with("INVITE sip:carol@example.com SIP/2.0"),
        "{}",
        out[0].2
    );
}

fn options(port: u16, user: &str) -> String {
    let msg = format!(
        "OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bK-av{n}\r\n\
         From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: av-{n}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        n = user.len() * 7919 + user.bytes().map(|b| b as usize).sum::<usize>()
    );
    let r = udp_exchange(&format!("127.0.0.1:{port}"), &msg, Duration::from_secs(4))
        .unwrap_or_default();
    r.lines().next().unwrap_or("").to_string()
}

#[test]
fn preferences_loaded_and_pushed_reach_the_callee() {
    let t = Tables::new("avp");
    let p = &t.usr_preferences;
    let callee = uas("avp_uas.xml", "u1");
    sql(&format!(
        "INSERT INTO {p} (uuid, username, domain, attribute, type, value) VALUES \
         ('', 'alice', '127.0.0.1', 'fwd', 0, 'sip:voicemail@127.0.0.1:{cp}'), \
         ('', 'alice', '127.0.0.1', 'lang', 0, 'de'), \
         ('', 'alice', 'other.org', 'lang', 0, 'fr'), \
         ('', 'alice', '127.0.0.1', 'max', 1, '42'), \
         ('u-77', '', '', 'lang', 0, 'it')",
        cp = callee.port
    ));
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{ avpops = {{ db_url = "{URL}", avp_table = "{p}", use_domain = 1 }} }},
}}

function route.main()
  local a = sip.avpops
  if sip.is_method("OPTIONS") then
    local r = {{}}
    local function rc(f, ...) local _, c = f(...); r[#r + 1] = c end
    rc(a.avp_db_load, "$ru", "*", nil, "p_")
    r[#r + 1] = tostring(sip.pv.get("$avp(p_lang)")) .. "/" .. type(sip.pv.get("$avp(p_max)"))
    rc(a.avp_db_load, "$ru/username", "$avp(lang)")
    r[#r + 1] = tostring(sip.pv.get("$(avp(lang)[0])")) .. "+" .. tostring(sip.pv.get("$(avp(lang)[1])"))
    rc(a.avp_db_load, "u-77", "$avp(lang)")
    r[#r + 1] = tostring(sip.pv.get("$avp(lang)"))
    rc(a.avp_db_load, "$fu", "$avp(lang)")
    sip.sl.sl_send_reply(200, table.concat(r, " "))
    sip.exit()
  end
  if sip.has_totag() then sip.tm.t_relay(); sip.exit() end
  if not a.avp_db_load("$ru", "$avp(fwd)") then
    sip.sl.sl_send_reply(404, "No Preferences")
    sip.exit()
  end
  a.avp_db_load("$ru", "$avp(lang)")
  a.avp_pushto("$ru", "$avp(fwd)")
  sip.append_hf("X-Lang: " .. sip.pv.get("$avp(lang)") .. "\r\n")
  sip.tm.t_relay()
end
"#
    );
    let px = Proxy::start(&script);
    let call = uac("uac.xml", px.port, "u1", 1, 1, &["-s", "alice"]);
    assert_eq!(call.successful, 1, "{}\n{}", call.errors, px.log_text());
    assert_eq!(callee.counts(1), (1, 0), "{}", callee.errors());
    let none = uac("uac.xml", px.port, "u1", 1, 1, &["-s", "nobody"]);
    assert_eq!(none.successful, 0);
    assert!(
        none.messages.contains("404 No Preferences"),
        "{}",
        none.messages
    );

    // `*` with a prefix names AVPs after the attribute; type 1 makes an
    // integer; without use_domain's domain (/username) both rows of
    // alice's "lang" load; a constant is a uuid; no rows → -1.
    let r = options(px.port, "alice");
    assert_eq!(
        r,
        "SIP/2.0 200 1 de/number 1 fr+de 1 it -1",
        "{}",
        px.log_text()
    );
}

#[test]
fn store_and_delete_write_usr_preferences_rows() {
    let t = Tables::new("avps");
    let p = &t.usr_preferences;
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{ avpops = {{ db_url = {{ [3] = "{URL}" }}, avp_table = "{p}" }} }},
}}

function route.main()
  local a = sip.avpops
  local r = {{}}
  local function rc(f, ...) local _, c = f(...); r[#r + 1] = c end
  if sip.pv.rU == "store" then
    sip.pv.set("$avp(pref)", "first")
    sip.pv.set("$avp(pref)", 7)
    sip.pv.set("$avp(other)", "o'clock")
    rc(a.avp_db_store, "$ru", "$avp(pref)", 3)
    rc(a.avp_db_store, "$tu/uuid", "*", 3)
    rc(a.avp_db_store, "$ru", "$avp(empty)", 3)
  elseif sip.pv.rU == "delete" then
    rc(a.avp_db_delete, "$tu/uuid", "$avp(other)", 3)
  end
  sip.sl.sl_send_reply(200, table.concat(r, " "))
end
"#
    );
    let px = Proxy::start(&script);
    assert_eq!(
        options(px.port, "store"),
        "SIP/2.0 200 1 1 -1",
        "{}",
        px.log_text()
    );
    let rows = sql(&format!(
        "SELECT uuid, username, domain, attribute, type, value FROM {p} ORDER BY uuid, attribute, value"
    ));
    assert_eq!(
        rows,
        "store\t\tpref\t1\t7\n\
         \tstore\t\tpref\t0\tfirst\n\
         sip:store@127.0.0.1\t\t\tother\t0\to'clock\n\
         sip:store@127.0.0.1\t\t\tpref\t1\t7\n\
         sip:store@127.0.0.1\t\t\tpref\t0\tfirst",
        "{rows}"
    );
    // Delete by uuid and attribute; other rows stay. (The To URI is the
    // uuid here, so "delete" names the rows of sip:delete@…: none; the
    // rows of "store" stay too.)
    assert_eq!(options(px.port, "delete"), "SIP/2.0 200 1");
    let n = sql(&format!("SELECT COUNT(*) FROM {p}"));
    assert_eq!(n.trim(), "5");
    sql(&format!(
        "UPDATE {p} SET uuid = 'sip:delete@127.0.0.1' WHERE uuid <> ''"
    ));
    assert_eq!(options(px.port, "delete"), "SIP/2.0 200 1");
    let left = sql(&format!(
        "SELECT uuid, attribute FROM {p} WHERE uuid <> '' ORDER BY attribute"
    ));
    assert_eq!(
        left.trim(),
        "sip:delete@127.0.0.1\tpref\nsip:delete@127.0.0.1\tpref",
        "{left}"
    );
}

#[test]
fn avp_db_query_keeps_pseudo_variables_data() {
    let id = format!("{}_{}", std::process::id(), free_port());
    let q = format!("avq_{id}");
    sql(&format!(
        "CREATE TABLE {q} (name VARCHAR(64) NOT NULL, n INT NULL, note VARCHAR(64) NULL)"
    ));
    sql(&format!(
        "INSERT INTO {q} VALUES ('o''brien', 1, 'irish'), ('o''brien-2', 2, NULL), ('zed', 3, 'z')"
    ));
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{ avpops = {{ db_url = "{URL}" }} }},
}}

function route.main()
  local a = sip.avpops
  local r = {{}}
  local function rc(...) local _, c = a.avp_db_query(...); r[#r + 1] = c end
  -- opensips-cfg form: a quoted variable, results into named AVPs.
  rc("SELECT n, note FROM {q} WHERE name LIKE '$rU%' ORDER BY n;", "$avp(n);$avp(note)")
  r[#r + 1] = tostring(sip.pv.get("$(avp(n)[0])")) .. "|" .. tostring(sip.pv.get("$(avp(note)[0])"))
      .. "|" .. tostring(sip.pv.get("$(avp(n)[1])")) .. "|" .. tostring(sip.pv.get("$(avp(note)[1])"))
  -- A bare variable is bound with its value; no dest: $avp(1), $avp(2).
  sip.pv.set("$var(k)", 3)
  rc("select name, n from {q} where n = $var(k)")
  r[#r + 1] = tostring(sip.pv.get("$avp(1)")) .. "|" .. tostring(sip.pv.get("$avp(2)"))
  -- A statement without rows (opensips-cfg: INSERT with the db id): -2.
  rc("INSERT INTO {q} (name, n) VALUES ('$rU', 99)", "", 0)
  rc("SELECT n FROM {q} WHERE name = 'nobody'", "$avp(x)")
  rc("SELECT n FROM no_such_table_{id}", "$avp(x)")
  sip.sl.sl_send_reply(200, table.concat(r, " "))
end
"#
    );
    let px = Proxy::start(&script);
    let r = options(px.port, "o'brien");
    assert_eq!(
        r,
        "SIP/2.0 200 1 1|irish|2|<null> 1 zed|3 -2 -2 -1",
        "{}",
        px.log_text()
    );
    // SQL in the user stays data: no row matches it, nothing is broken,
    // and the INSERT wrote it as it was.
    let evil = "x'or'1'='1";
    let r = options(px.port, evil);
    assert!(
        r.starts_with("SIP/2.0 200 -2 nil|nil|nil|nil 1 zed|3 -2 -2 -1"),
        "{r}"
    );
    let names = sql(&format!("SELECT name FROM {q} WHERE n = 99 ORDER BY name"));
    assert_eq!(names.trim(), "o'brien\nx'or'1'='1", "{names}");
    sql(&format!("DROP TABLE {q}"));
}

#[test]
fn preferences_round_trip_on_sqlite() {
    // The embedded default: `lunasip db init sqlite:///…` makes
    // usr_preferences; what one request stores the next one loads.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/prefs.db", dir.path().display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["db", "init", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 1,
  modules = {{ avpops = {{ db_url = "{url}" }} }},
}}

function route.main()
  local a = sip.avpops
  local _, l = a.avp_db_load("$ru", "*")
  local r = {{ l, tostring(sip.pv.get("$avp(color)")), type(sip.pv.get("$avp(n)")) }}
  if l < 0 then
    sip.pv.set("$avp(color)", "blue")
    sip.pv.set("$avp(n)", 5)
    local _, s = a.avp_db_store("$ru", "*")
    r[#r + 1] = s
  else
    local _, q = a.avp_db_query("SELECT value FROM usr_preferences WHERE username = '$rU' ORDER BY value", "$avp(v)")
    r[#r + 1] = q .. ":" .. tostring(sip.pv.get("$(avp(v)[0])")) .. "," .. tostring(sip.pv.get("$(avp(v)[1])"))
  end
  sip.sl.sl_send_reply(200, table.concat(r, " "))
end
"#
    );
    let px = Proxy::start(&script);
    assert_eq!(
        options(px.port, "carol"),
        "SIP/2.0 200 -1 nil nil 1",
        "{}",
        px.log_text()
    );
    assert_eq!(
        options(px.port, "carol"),
        "SIP/2.0 200 1 blue number 1:5,blue",
        "{}",
        px.log_text()
    );
}
