//! The pseudo-variable surface from Lua, in process: a script and a SIP
//! message in, what the worker queued to send out. Writes through `sip.pv`
//! must show up on the wire; reads, transformations, `sip.tr`,
//! `sip.re_match`, `sip.avp`, `sip.var` and `sip.pv.assign` are checked by
//! copying their results into headers. Also `lunasip check` and `lunasip
//! eval` on literal specs.
#![allow(dead_code)]

mod common;

use common::worker::*;
use lunasip::script::Source;

#[test]
fn writes_through_sip_pv_reach_the_wire() {
    let w = worker(
        r#"function route.main()
  sip.pv.rU = "carol"
  sip.pv.set("$rd", "192.0.2.8")
  sip.pv.rp = 5090
  sip.pv.du = "sip:192.0.2.50:5999"
  sip.forward()
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].1, addr("192.0.2.50:5999"));
    assert!(
        out[0]
            .2
            .starts_with("INVITE sip:carol@192.0.2.8:5090 SIP/2.0\r\n"),
        "{}",
        out[0].2
    );
}

#[test]
fn reads_transformations_and_script_operations() {
    let w = worker(
        r#"function route.main()
  local u = sip.pv.get("$(ru{uri.user}{s.toupper})")
  local br = sip.pv.get("$(hdr(Via)[0]{via.branch})")
  local n = sip.pv.get("$(ru{s.len})")
  assert(math.type == nil or math.type(n) == "integer")
  local h = sip.tr("sip:alice@a.example.com;transport=tcp", "{uri.param,transport}")
  local cnt = sip.tr("a,b,c", "{csv.count}")
  sip.var.hname = "X-Keep"
  local keep = sip.pv.get("$hdr($var(hname))")
  sip.avp.route = "first"
  sip.avp.route = "second"
  sip.pv.assign("$var(count)", "=", 1)
  sip.pv.assign("$var(count)", "+=", 41)
  local re = sip.re_match(sip.pv.ru, "^SIP:BOB@", "i")
  local nre = sip.re_match(sip.pv.ru, "^SIP:BOB@")
  local nilre = sip.re_match(nil, ".*")
  sip.append_hf("X-U: " .. u .. "\r\n")
  sip.append_hf("X-Br: " .. br .. "\r\n")
  sip.append_hf("X-Len: " .. n .. "\r\n")
  sip.append_hf("X-Tr: " .. h .. " " .. cnt .. "\r\n")
  sip.append_hf("X-Keep2: " .. keep .. "\r\n")
  sip.append_hf("X-Avp: $avp(route) $(avp(route)[1]) " .. sip.avp.route .. "\r\n")
  sip.append_hf("X-Count: $var(count)\r\n")
  sip.append_hf("X-Re: " .. tostring(re) .. " " .. tostring(nre) .. " " .. tostring(nilre) .. "\r\n")
  sip.append_hf(sip.pv.fmt("X-Fmt: $rm $(fu{uri.host}) $(tt{s.len})\r\n"))
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 1, "{out:?}");
    let text = &out[0].2;
    for want in [
        "\r\nX-U: BOB\r\n",
        "\r\nX-Br: z9hG4bKabc\r\n",
        "\r\nX-Len: 19\r\n",
        "\r\nX-Tr: tcp 3\r\n",
        "\r\nX-Keep2: yes\r\n",
        "\r\nX-Avp: second first second\r\n",
        "\r\nX-Count: 42\r\n",
        "\r\nX-Re: true false false\r\n",
        "\r\nX-Fmt: INVITE example.com <null>\r\n",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
}

#[test]
fn runtime_errors_name_the_spec_or_give_nil() {
    let w = worker(
        r#"function route.main()
  -- A failing transformation logs and reads as nil; the route goes on.
  sip.var.x = "not a uri"
  local v = sip.pv.get("$(var(x){uri.user})")
  sip.append_hf("X-Nil: " .. tostring(v) .. "\r\n")
  -- (append_hf expands pseudo-variables: the '$' are taken out.)
  -- An unknown variable built at run time is a Lua error naming it.
  local ok, err = pcall(sip.pv.get, "$" .. "nope")
  sip.append_hf("X-Err: " .. tostring(ok) .. " " .. tostring(err):gsub("\r?\n.*", ""):gsub("%$", "") .. "\r\n")
  local ok2, err2 = pcall(sip.pv.set, "$fu", "sip:x@y")
  sip.append_hf("X-Ro: " .. tostring(ok2) .. " " .. tostring(err2):gsub("\r?\n.*", ""):gsub("%$", "") .. "\r\n")
  local ok3, err3 = pcall(sip.tr, "x", "{s.bogus}")
  sip.append_hf("X-Tr: " .. tostring(ok3) .. " " .. tostring(err3):gsub("\r?\n.*", "") .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 1, "{out:?}");
    let text = &out[0].2;
    assert!(text.contains("\r\nX-Nil: nil\r\n"), "{text}");
    assert!(
        text.contains("X-Err: false") && text.contains("unknown pseudo-variable nope"),
        "{text}"
    );
    assert!(
        text.contains("X-Ro: false") && text.contains("fu is read-only"),
        "{text}"
    );
    assert!(
        text.contains("X-Tr: false") && text.contains("unknown transformation {s.bogus}"),
        "{text}"
    );
}

#[test]
fn avps_are_per_message_vars_per_worker() {
    let w = worker(
        r#"function route.main()
  sip.append_hf("X-Seen: " .. tostring(sip.avp.a) .. " " .. tostring(sip.var.v) .. "\r\n")
  sip.avp.a = 1
  sip.var.v = (sip.var.v or 0) + 1
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let first = run(&w, INVITE, Proto::Udp);
    assert!(
        first[0].2.contains("\r\nX-Seen: nil nil\r\n"),
        "{}",
        first[0].2
    );
    let second = run(&w, INVITE, Proto::Udp);
    assert!(
        second[0].2.contains("\r\nX-Seen: nil 1\r\n"),
        "{}",
        second[0].2
    );
}

#[test]
fn check_reports_malformed_literal_specs_with_line() {
    for (body, want) in [
        (
            "  local u = sip.pv.get(\"$(ru{uri.usr})\")",
            "unknown transformation {uri.usr}",
        ),
        ("  local u = sip.pv.rX", "unknown pseudo-variable $rX"),
        (
            "  sip.xlog(\"L_INFO\", \"$(hdr(Via)[x])\")",
            "bad index [x]",
        ),
        (
            "  local n = sip.tr(\"a\", \"{s.substr,1}\")",
            "takes 2 arguments",
        ),
    ] {
        let code = format!("{HEAD}function route.main()\n{body}\nend\n");
        let e = lunasip::script::check::check(&Source {
            name: "t.lua".into(),
            code,
        })
        .err()
        .unwrap_or_else(|| panic!("{body} passed"))
        .0;
        assert!(e.starts_with("t.lua:3: ") && e.contains(want), "{e}");
    }
}

#[test]
fn eval_command_prints_one_line_per_spec() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sip");
    // Bare LF line ends, as an editor saves the file.
    std::fs::write(&path, INVITE.replace("\r\n", "\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["eval", "--message"])
        .arg(&path)
        .args(["--source", "192.0.2.7:5062", "--set", "$var(h)=X-Keep"])
        .args([
            "$ru",
            "$(ru{uri.user}{s.len})",
            "$(hdr(Via)[0]{via.branch})",
            "$hdr($var(h))",
            "$rm from $si:$sp",
            "$tt",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sip:bob@example.com\n3\nz9hG4bKabc\nyes\nINVITE from 192.0.2.7:5062\n<null>\n"
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["eval", "--message"])
        .arg(&path)
        .arg("$(ru{uri.nope})")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("'$(ru{uri.nope})': unknown transformation {uri.nope} (at offset 5)"),
        "{err}"
    );
}

#[test]
fn unknown_sugar_name_is_located_at_the_script_line() {
    let w = worker(
        r#"function route.main()
  local ok, err = pcall(function()
    return sip.pv["no" .. "such"]
  end)
  sip.append_hf("X-E: " .. tostring(err):gsub("\r?\n.*", ""):gsub("%$", "") .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    let text = &out[0].2;
    assert!(
        text.contains("t.lua:4: sip.pv: 'nosuch': unknown pseudo-variable nosuch (at offset 1)"),
        "{text}"
    );
}

/// `$cfg_line` / `$cfg_file` name the Lua line reading them, however the
/// read is made (get, sugar, fmt, a function expanding a format, through
/// pcall); `$route.name` names the running route.
#[test]
fn script_position_and_route_name() {
    let w = worker(
        r#"function route.main()
  local line, file = sip.pv.get("$cfg_line"), sip.pv.cfg_file
  local ok, via_pcall = pcall(sip.pv.get, "$cfg_line")
  sip.append_hf("X-Pos: " .. file .. ":" .. line .. " " .. tostring(via_pcall) .. "\r\n")
  sip.append_hf(sip.pv.fmt("X-Fmt: $cfg_line\r\n"))
  sip.append_hf("X-Hf: $cfg_file:$cfg_line $route.type/$route.name\r\n")
  route.relay()
end
function route.relay()
  sip.append_hf("X-Sub: $route.name $cfg_line\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 1, "{out:?}");
    let text = &out[0].2;
    // HEAD is line 1: route.main starts on line 2.
    for want in [
        "\r\nX-Pos: t.lua:3 4\r\n",
        "\r\nX-Fmt: 6\r\n",
        "\r\nX-Hf: t.lua:7 route/main\r\n",
        // A sub-route is on $route's stack.
        "\r\nX-Sub: relay 11\r\n",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}

/// OpenSIPS 3.4 pvar.c `pv_get_route*`: sub-routes called from a route
/// (directly, through a local helper, by pcall) are the stack `$route`
/// indexes: `[0]` the running one, `[-1]` the entry route, `[*]` all;
/// once a sub-route returned it is off the stack.
#[test]
fn route_stack_of_sub_routes() {
    let w = worker(
        r#"function route.main()
  route.a()
  sip.append_hf("X-Back: $(route[*]) $route.name $(route.name[1])\r\n")
  sip.forward("sip:192.0.2.5")
end
local function helper() route.b() end
function route.a()
  helper()
end
function route.b()
  pcall(route.c, "x")
end
function route.c(x)
  sip.append_hf("X-Stack: $(route[*])|$route|$route.name|$(route.name[1])|$(route.name[-1])|$(route.type[0])|$(route.type[-1])|$(route.name[4])|$(route[-2])\r\n")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    assert_eq!(out.len(), 1, "{out:?}");
    let text = &out[0].2;
    for want in [
        "\r\nX-Stack: route > route[a] > route[b] > route[c]|route[c]|c|b|main|route|route|<null>|route[a]\r\n",
        "\r\nX-Back: route main <null>\r\n",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}

/// Branch, reply and failure routes see their own names in `$route.name`.
#[test]
fn tm_routes_know_their_names() {
    let w = worker(
        r#"function route.main()
  sip.tm.t_on_branch("br")
  sip.tm.t_on_reply("rep")
  sip.tm.t_on_failure("busy")
  sip.pv.du = "sip:192.0.2.5:5060"
  sip.tm.t_relay()
end
function branch_route.br()
  sip.append_hf("X-Br: $route.type/$route.name\r\n")
end
function onreply_route.rep()
  sip.var.seen = sip.pv.fmt("$route.type/$route.name")
end
function failure_route.busy()
  sip.tm.t_reply(480, sip.pv.fmt("$route.type/$route.name after $var(seen)"))
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    let relayed = out
        .iter()
        .find(|o| o.0 == OutKind::Request)
        .map(|o| o.2.clone())
        .unwrap_or_else(|| panic!("no relayed INVITE: {out:?}"));
    assert!(
        relayed.contains("\r\nX-Br: branch_route/br\r\n"),
        "{relayed}"
    );
    // A 486 for that branch: its Vias, From, To with a tag, Call-ID, CSeq.
    let mut reply = String::from("SIP/2.0 486 Busy Here\r\n");
    for l in relayed.split("\r\n") {
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("via:")
            || lower.starts_with("from:")
            || lower.starts_with("call-id:")
            || lower.starts_with("cseq:")
        {
            reply.push_str(l);
            reply.push_str("\r\n");
        } else if lower.starts_with("to:") {
            reply.push_str(l);
            reply.push_str(";tag=b9\r\n");
        }
    }
    reply.push_str("Content-Length: 0\r\n\r\n");
    let out = run(&w, &reply, Proto::Udp);
    let answer = out
        .iter()
        .find(|o| o.2.starts_with("SIP/2.0 480 "))
        .map(|o| o.2.clone())
        .unwrap_or_else(|| panic!("no 480 to the caller: {out:?}"));
    assert!(
        answer.starts_with("SIP/2.0 480 failure_route/busy after onreply_route/rep\r\n"),
        "{answer}"
    );
}

/// `-o name=value` reaches `$argv(name)`; `$time` and `$Tf` are local
/// time (`TZ`); outside Lua `$cfg_line` is null.
#[test]
fn eval_options_local_time_and_no_script_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sip");
    std::fs::write(&path, INVITE).unwrap();
    let eval = |tz: &str, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lunasip"))
            .env("TZ", tz)
            .args(["eval", "--message"])
            .arg(&path)
            .args(args)
            .output()
            .unwrap()
    };
    let out = eval(
        "ABC-05:30",
        &[
            "-o",
            "foo=0",
            "--option",
            "url=sip:a@b;x=1",
            "-o",
            "foo=1",
            "$argv(foo)",
            "$argv(url)",
            "$argv(none)",
            "$time(%z %Z)",
            "$cfg_line",
            "$cfg_file",
            "$param(1)",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\nsip:a@b;x=1\n<null>\n+0530 ABC\n<null>\n<null>\n<null>\n"
    );
    // $Tf is ctime's local time: the same as $time with ctime's format (a
    // second may tick between the two; try again then).
    let same = (0..3).any(|_| {
        let out = eval(
            "XYZ+03",
            &["$Tf", "$time(%a %b %e %H:%M:%S %Y)", "$time(%z)"],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        lines.len() == 3 && lines[0] == lines[1] && lines[2] == "-0300"
    });
    assert!(same, "$Tf and $time disagree");
    let bad = eval("UTC", &["-o", "novalue", "$ru"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("-o 'novalue': expected name=value"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Specs built at run time: each distinct text gets a reader; past the
/// cache's bound the readers are dropped and made again, and every read
/// still gives its own value. Errors from a read name the script line,
/// also through pcall.
#[test]
fn many_dynamic_specs_and_located_errors() {
    let w = worker(
        r#"function route.main()
  local sum = 0
  for i = 1, 5000 do
    sip.var["v" .. i] = i
    sum = sum + sip.pv.get(string.format("$var(v%d)", i))
  end
  for i = 4990, 5000 do sum = sum + sip.pv.get(string.format("$var(v%d)", i)) end
  local bad = "$" .. "no" .. "such"
  local ok, err = pcall(sip.pv.get, bad)
  sip.append_hf("X-Sum: " .. sum .. "\r\n")
  sip.append_hf("X-E: " .. tostring(err):gsub("\r?\n.*", ""):gsub("%$", "") .. "\r\n")
  sip.forward("sip:192.0.2.5")
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    let text = &out[0].2;
    let want = 5000 * 5001 / 2 + (4990..=5000).sum::<i64>();
    assert!(text.contains(&format!("\r\nX-Sum: {want}\r\n")), "{text}");
    assert!(
        text.contains("t.lua:10: sip.pv: 'nosuch': unknown pseudo-variable nosuch"),
        "{text}"
    );
}

/// OpenSIPS 3.4 pvar.c's long names read (and write) what the short ones do.
#[test]
fn long_names_are_the_short_ones() {
    let w = worker(
        r#"function route.main()
  sip.pv.set("$ruri.user", "carol")
  sip.pv.set("$duri", "sip:127.0.0.1:5099")
  local specs = { "$ruri", "$ruri.user", "$ruri.domain", "$duri", "$ouri", "$from", "$from.user",
    "$from.domain", "$to", "$to.user", "$to.domain", "$src_ip" }
  local out = {}
  for _, n in ipairs(specs) do out[#out + 1] = n:sub(2) .. "=" .. tostring(sip.pv.get(n)) end
  sip.sl.sl_send_reply(200, table.concat(out, " "))
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    let first = out[0].2.lines().next().unwrap_or("").to_string();
    assert_eq!(
        first,
        "SIP/2.0 200 ruri=sip:carol@example.com ruri.user=carol ruri.domain=example.com \
         duri=sip:127.0.0.1:5099 ouri=sip:bob@example.com from=sip:alice@example.com \
         from.user=alice from.domain=example.com to=sip:bob@example.com to.user=bob \
         to.domain=example.com src_ip=10.0.0.9"
    );
}

/// OpenSIPS pvar.c `pv_set_dsturi_host`/`_port`: `$dd` and `$dp` edit
/// `$du` (which must be set); an empty port drops it.
#[test]
fn dd_and_dp_write_the_destination_uri() {
    let w = worker(
        r#"function route.main()
  local before = tostring(pcall(sip.pv.set, "$dd", "x.example.com"))
  sip.pv.du = "sip:gw@10.0.0.5:5080;transport=tcp"
  sip.pv.set("$dd", "10.0.0.6")
  local a = sip.pv.du
  sip.pv.set("$dp", 5090)
  local b = sip.pv.du
  sip.pv.set("$dp", "")
  local c = sip.pv.du
  local bad = tostring(pcall(sip.pv.set, "$dp", "99999"))
  sip.sl.sl_send_reply(200, before .. " " .. a .. " " .. b .. " " .. c .. " " .. bad)
end"#,
    );
    let out = run(&w, INVITE, Proto::Udp);
    let first = out[0].2.lines().next().unwrap_or("").to_string();
    assert_eq!(
        first,
        "SIP/2.0 200 false sip:gw@10.0.0.6:5080;transport=tcp sip:gw@10.0.0.6:5090;transport=tcp \
         sip:gw@10.0.0.6;transport=tcp false"
    );
}
