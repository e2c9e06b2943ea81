//! `lunasip translate` and opensips.cfg files run directly: the CLI, and
//! every config of the shared corpus (../shared/corpus/opensips-cfg, when
//! present) translated and checked by `lunasip check`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::translated::{final_reply, register_two_and_call, unregistered_user_gets_404};
use common::{free_port, uac, uas, Proxy};

fn lunasip(args: &[&str]) -> (i32, String, String) {
    // Configs templated on the environment (opensips-softswitch-ce's
    // `${OPENSIPS_IP}`) get the values a deployment would give them.
    let out = Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(args)
        .env("OPENSIPS_IP", "127.0.0.1")
        .env("HOST_IP", "127.0.0.1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const CFG: &str = r#"# a small proxy
listen=udp:127.0.0.1:5099
loadmodule "tm.so"
loadmodule "rtpengine.so"
modparam("tm", "fr_timeout", 3)

route {
    if (!mf_process_maxfwd_header(10)) {
        sl_send_reply(483, "Too Many Hops");
        exit;
    }
    rtpengine_offer();
    t_relay();
}
"#;

#[test]
fn translate_writes_lua_and_a_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("opensips.cfg");
    std::fs::write(&cfg, CFG).unwrap();
    let out = dir.path().join("out.lua");
    let (code, stdout, stderr) = lunasip(&[
        "translate",
        cfg.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--report",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let lua = std::fs::read_to_string(&out).unwrap();
    assert!(lua.contains("function route.main()"), "{lua}");
    assert!(lua.contains("fr_timeout = 3,"), "{lua}");
    assert!(
        lua.contains("unsupported(\"rtpengine: rtpengine_offer()\")"),
        "{lua}"
    );
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(j["complete"], false);
    let u = &j["unsupported"];
    assert!(
        u.as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "rtpengine_offer"
                && x["line"] == 12
                && x["module"] == "rtpengine"),
        "{u}"
    );
}

#[test]
fn check_refuses_unsupported_calls_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("opensips.cfg");
    std::fs::write(&cfg, CFG).unwrap();
    let c = cfg.to_str().unwrap();
    let (code, _, stderr) = lunasip(&["check", "-c", c]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("opensips.cfg:12: function rtpengine_offer (rtpengine)"),
        "{stderr}"
    );
    let (code, stdout, stderr) = lunasip(&["check", "-c", c, "--allow-missing", "--print-lua"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("sip.maxfwd.mf_process_maxfwd_header(10)"),
        "{stdout}"
    );
    assert!(stdout.ends_with(&format!("{c}: ok\n")), "{stdout}");
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.cfg");
    std::fs::write(&cfg, "route {\n    if (is_method(\"INVITE\") {\n    }\n}\n").unwrap();
    let (code, _, stderr) = lunasip(&["check", "-c", cfg.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("bad.cfg:2:29: expected ')', found '{'"),
        "{stderr}"
    );
}

/// The golden translations of compat/tests/golden load in lunasip.
#[test]
fn golden_translations_pass_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat/tests/golden");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "lua") {
            let (code, _, stderr) = lunasip(&["check", "-c", p.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {stderr}", p.display());
            n += 1;
        }
    }
    assert!(n >= 7);
}

fn corpus() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/opensips-cfg");
    d.is_dir().then_some(d)
}

/// Every corpus config translates and its Lua passes `lunasip check
/// --allow-missing`; those with nothing unsupported pass without it.
/// Prints the table: fully runnable / partly / not, and the functions
/// most often missing.
#[test]
fn corpus_configs_load_under_lunasip() {
    let Some(dir) = corpus() else {
        eprintln!("corpus not present, skipped");
        return;
    };
    let cfgs = compat::corpus::configs(&dir);
    let mut missing: BTreeMap<String, usize> = BTreeMap::new();
    let (mut full, mut partly, mut not) = (Vec::new(), Vec::new(), Vec::new());
    let mut failures = Vec::new();
    for cfg in &cfgs {
        let name = cfg.file_name().unwrap().to_string_lossy().into_owned();
        let opts = compat::corpus::options_for(&dir, cfg);
        let mut args: Vec<String> = vec!["check".into(), "-c".into(), cfg.display().to_string()];
        for d in &opts.include_dirs {
            args.extend(["-I".into(), d.display().to_string()]);
        }
        for m in &opts.m4_defs {
            args.extend(["--m4".into(), m.display().to_string()]);
        }
        let t = match compat::translate_file(cfg, &opts) {
            Ok(t) => t,
            Err(e) => {
                println!("{name}: not translated: {e}");
                not.push(name);
                continue;
            }
        };
        for (f, n) in t.report.calls_by_function() {
            *missing.entry(f).or_default() += n;
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = lunasip(&argv);
        let complete = t.report.raising() == 0;
        if complete {
            if code != 0 {
                failures.push(format!(
                    "{name}: complete translation fails check: {stderr}"
                ));
            }
            full.push(name.clone());
        } else {
            assert_ne!(code, 0, "{name}: check without --allow-missing passed");
            let mut with = argv.clone();
            with.push("--allow-missing");
            let (code, _, stderr) = lunasip(&with);
            // A list file named by the config that this machine lacks is
            // the environment's, not the translation's.
            if code != 0 && !stderr.contains("cannot read /etc/") {
                failures.push(format!("{name}: check --allow-missing: {stderr}"));
            }
            partly.push(name.clone());
        }
        println!("{}", compat::corpus::summary(&name, &t));
    }
    println!(
        "\nfully runnable {}: {}\npartly {}\nnot translated {}: {}",
        full.len(),
        full.join(", "),
        partly.len(),
        not.len(),
        not.join(", ")
    );
    let mut top: Vec<_> = missing.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("top missing functions (call sites):");
    for (f, n) in top.iter().take(20) {
        println!(
            "  {f} {n} ({})",
            compat::mapping::opensips_module_of(f).unwrap_or("?")
        );
    }
    assert_eq!(
        not.len(),
        2,
        "only lineblocs-proxy.cfg and openxcap-presence-2009.cfg fail to parse"
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// OpenSIPS 3.4's default script (etc/opensips.cfg), translated on load
/// and run with `--skip acc` (its only calls lunasip lacks are acc's):
/// two users register, one calls the other through the proxy, a call to
/// a user who is not registered gets the script's 404.
#[test]
fn os34_default_script_registers_and_calls() {
    let Some(dir) = corpus() else {
        eprintln!("corpus not present, skipped");
        return;
    };
    let orig = std::fs::read_to_string(dir.join("os34-etc-default.cfg")).unwrap();
    let port = free_port();
    let fifo_dir = tempfile::tempdir().unwrap();
    let fifo = fifo_dir.path().join("fifo");
    let cfg = orig
        .replace(
            "socket=udp:127.0.0.1:5060",
            &format!("socket=udp:127.0.0.1:{port}"),
        )
        .replace("/run/opensips/opensips_fifo", &fifo.display().to_string());
    assert_ne!(cfg, orig);
    assert!(cfg.contains(&fifo.display().to_string()));

    // Every function it calls is lunasip's: it passes check as it is,
    // accounting included (acc's log CDRs).
    let dir2 = tempfile::tempdir().unwrap();
    let p2 = dir2.path().join("opensips.cfg");
    std::fs::write(&p2, &cfg).unwrap();
    let (code, _, stderr) = lunasip(&["check", "-c", p2.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");

    let p = Proxy::try_start_file("opensips.cfg", &cfg, port, &[])
        .unwrap_or_else(|log| panic!("lunasip did not start:\n{log}"));
    register_two_and_call(port, &p);

    unregistered_user_gets_404(port, &p, "os34");
    let log = p.stop();
    assert!(!log.contains("not supported by lunasip"), "{log}");
}

/// OpenSIPS 3.4's menuconfig load balancer (USE_DISPATCHER=yes),
/// translated on load with `--skip acc`: INVITEs alternate over set 1
/// (`ds_select_dst(1, 4)`, round robin); a dead box's call times out into
/// failure_route[GW_FAILOVER], whose `t_check_status("(408)|([56][0-9][0-9])")`
/// matches. The config selects without the `f` flag, so OpenSIPS keeps no
/// failover list and `ds_next_dst()` fails: the caller gets the script's
/// "500 All GW are down", as from OpenSIPS. The live box takes the others.
/// (The test gives the set as a list file instead of the config's MySQL
/// URL and shortens fr_timeout; the routing logic is the config's.)
#[test]
fn os34_load_balancer_runs_its_failure_route_as_opensips() {
    let Some(dir) = corpus() else {
        eprintln!("corpus not present, skipped");
        return;
    };
    let orig =
        std::fs::read_to_string(dir.join("os34-menuconfig-loadbalancer-dispatcher.cfg")).unwrap();
    let (port, mi_port) = (free_port(), free_port());
    let live = uas("uas.xml", "u1");
    let dead = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("dispatcher.list");
    std::fs::write(
        &list,
        format!("1 sip:127.0.0.1:{dead}\n1 sip:127.0.0.1:{}\n", live.port),
    )
    .unwrap();
    let fifo = tmp.path().join("fifo");
    let cfg = orig
        .replace("socket=udp:127.0.0.1:5060", &format!("socket=udp:127.0.0.1:{port}"))
        .replace("socket=tcp:127.0.0.1:5060", &format!("socket=tcp:127.0.0.1:{port}"))
        .replace("modparam(\"httpd\", \"port\", 8888)", &format!("modparam(\"httpd\", \"port\", {mi_port})"))
        .replace("/tmp/opensips_fifo", &fifo.display().to_string())
        .replace("modparam(\"tm\", \"fr_timeout\", 5)", "modparam(\"tm\", \"fr_timeout\", 2)")
        .replace(
            "modparam(\"dispatcher\", \"db_url\",\n\t\"mysql://opensips:opensipsrw@localhost/opensips\")",
            &format!("modparam(\"dispatcher\", \"list_file\", \"{}\")", list.display()),
        );
    let wants = [
        format!(":{port}"),
        format!("{mi_port})"),
        "fr_timeout\", 2)".to_string(),
        "list_file".to_string(),
    ];
    for want in wants {
        assert!(cfg.contains(&want), "the test did not rewrite {want}");
    }
    let p = Proxy::try_start_file("opensips.cfg", &cfg, port, &["--skip", "acc"])
        .unwrap_or_else(|log| panic!("lunasip did not start:\n{log}"));
    let call = uac("uac.xml", port, "u1", 4, 1, &["-s", "service"]);
    assert_eq!(
        (call.successful, call.failed),
        (2, 2),
        "calls: {}\n{}",
        call.errors,
        p.log_text()
    );
    assert_eq!(
        call.errors.matches("SIP/2.0 500 All GW are down").count(),
        2,
        "{}",
        call.errors
    );
    assert_eq!(live.counts(2).0, 2, "{}", live.errors());
    let log = p.stop();
    assert!(log.contains("Failed trunk"), "the failure route ran: {log}");
}

/// An OPTIONS to the proxy: the status line of its answer.
fn options_status(port: u16) -> String {
    let msg = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bK-opt\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: reload-cfg\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    final_reply(port, msg)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// SIGHUP translates a running opensips.cfg again (with the options it
/// was started with): a changed route takes effect; a cfg that no longer
/// parses is refused with its line and the running one stays.
#[test]
fn sighup_translates_the_cfg_again() {
    let port = free_port();
    let cfg = |reason: &str| {
        format!(
            "listen=udp:127.0.0.1:{port}\nloadmodule \"acc.so\"\nroute {{\n    do_accounting(\"log\");\n    sl_send_reply(200, \"{reason}\");\n}}\n"
        )
    };
    let p = Proxy::try_start_file("opensips.cfg", &cfg("One"), port, &["--skip", "acc"])
        .unwrap_or_else(|log| panic!("lunasip did not start:\n{log}"));
    assert_eq!(options_status(port), "SIP/2.0 200 One", "{}", p.log_text());
    let hup = |p: &Proxy| {
        let pid = p.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
    };
    std::fs::write(&p.script, cfg("Two")).unwrap();
    hup(&p);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut got = options_status(port);
    while got != "SIP/2.0 200 Two" && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        got = options_status(port);
    }
    assert_eq!(got, "SIP/2.0 200 Two", "{}", p.log_text());

    std::fs::write(
        &p.script,
        "route {\n    sl_send_reply(200, \"Three\")\n    exit;\n}\n",
    )
    .unwrap();
    hup(&p);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !p.log_text().contains("refused") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = p.log_text();
    assert!(log.contains("opensips.cfg:3:5: expected ';'"), "{log}");
    assert_eq!(options_status(port), "SIP/2.0 200 Two");
}
