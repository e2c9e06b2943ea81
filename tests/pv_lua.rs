//! The pseudo-variable surface from Lua, in process: a script and a SIP
//! message in, what the worker queued to send out. Writes through `sip.pv`
//! must show up on the wire; reads, transformations, `sip.tr`,
//! `sip.re_match`, `sip.avp`, `sip.var` and `sip.pv.assign` are checked by
//! copying their results into headers. Also `lunasip check` and `lunasip
//! eval` on literal specs.
#![allow(dead_code)]

use bytes::Bytes;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use lunasip::config::{parse_listen, Config};
use lunasip::proxy::worker::Worker;
use lunasip::script::call::{Dest, OutKind};
use lunasip::script::{Env, Host, Source};
use lunasip::transport::tcp::{TcpCtx, TcpTable};
use lunasip::transport::{Incoming, Proto, Sockets};

const HEAD: &str =
    "config = { listen = { \"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\" }, children = 1 }\n";

fn worker(routes: &str) -> Worker {
    let code = format!("{HEAD}{routes}");
    let cfg = lunasip::script::check::check(&Source {
        name: "t.lua".into(),
        code: code.clone(),
    })
    .expect("script checks");
    let cfg = Config {
        listen: vec![
            parse_listen("udp:127.0.0.1:5060").unwrap(),
            parse_listen("tcp:127.0.0.1:5060").unwrap(),
        ],
        ..cfg
    };
    let env = Env {
        worker: 0,
        sockets: Arc::new(Sockets::new(&cfg)),
        config: Arc::new(cfg),
        tm: Arc::new(lunasip::proxy::tm::Tm::new(Default::default())),
    };
    let host = Host::new(
        &Source {
            name: "t.lua".into(),
            code,
        },
        env,
    )
    .expect("loads");
    let tcp = Rc::new(TcpCtx {
        table: Arc::new(TcpTable::default()),
        idle: Duration::from_secs(5),
        max_msg: 65535,
        connect_timeout: Duration::from_secs(1),
    });
    Worker::new(host, vec![None, None], tcp)
}

const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@example.com>;tag=a1\r\n\
To: Bob <sip:bob@example.com>\r\n\
Call-ID: call-1@10.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@10.0.0.1:5062>\r\n\
X-Keep: yes\r\n\
Content-Length: 0\r\n\r\n";

/// Runs `msg` (from 10.0.0.9:5070 over `proto`) through the route; returns
/// (kind, destination, bytes) of everything queued.
fn run(w: &Worker, msg: &str, proto: Proto) -> Vec<(OutKind, Dest, String)> {
    let socket = if proto == Proto::Udp { 0 } else { 1 };
    w.handle(Incoming {
        buf: Bytes::from(msg.to_string()),
        src: "10.0.0.9:5070".parse().unwrap(),
        proto,
        socket,
    });
    let host = w.host();
    let mut call = host.state.call.borrow_mut();
    call.outbox
        .drain(..)
        .map(|o| {
            (
                o.kind,
                o.dest,
                String::from_utf8_lossy(&o.bytes).into_owned(),
            )
        })
        .collect()
}

fn addr(s: &str) -> Dest {
    Dest::Addr(s.parse().unwrap())
}

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
  sip.append_hf("X-E: " .. tostring(err):gsub("%$", "") .. "\r\n")
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
