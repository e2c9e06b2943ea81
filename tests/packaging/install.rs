use super::*;

/// A port free on 127.0.0.1 for UDP and TCP within `range`.
fn free_port(range: std::ops::Range<u16>) -> u16 {
    for port in range {
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port");
}

/// Sends an OPTIONS to the proxy itself; the status line of the answer.
fn options(port: u16) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let me = s.local_addr().unwrap().port();
    let msg = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-pkg-{me}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:test@127.0.0.1>;tag=pkg\r\n\
         To: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: pkg-{me}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    );
    s.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().map(str::to_string)
}

/// The daemon started as the unit starts it, with stderr to a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, what: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.log().contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn signal(&self, sig: &str) {
        ok(Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string()));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The unit's ExecStart= words, with `-c FILE` pointed at `config` and
/// `$LUNASIP_OPTS` expanded to nothing (as with the shipped defaults).
fn exec_start(unit: &str, config: &Path) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))
        .expect("no ExecStart=");
    line.split_whitespace()
        .filter(|w| *w != "$LUNASIP_OPTS")
        .map(|w| {
            if w == "/etc/lunasip/lunasip.lua" {
                config.display().to_string()
            } else {
                w.to_string()
            }
        })
        .collect()
}

/// Starts ExecStart as the unit would: as user/group lunasip, with only
/// CAP_NET_BIND_SERVICE (ambient), no new privileges.
/// With `notify`, NOTIFY_SOCKET names it and WATCHDOG_USEC asks for pings
/// every 0.2 s, as systemd would with Type=notify and WatchdogSec=.
fn start_as_lunasip(unit: &str, config: &Path, log: &Path, notify: Option<&Path>) -> Daemon {
    let argv = exec_start(unit, config);
    let logf = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new("setpriv");
    if let Some(sock) = notify {
        cmd.env("NOTIFY_SOCKET", sock)
            .env("WATCHDOG_USEC", "400000");
    } else {
        cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC");
    }
    let child = cmd
        .args([
            "--reuid=lunasip",
            "--regid=lunasip",
            "--init-groups",
            "--inh-caps=-all,+net_bind_service",
            "--ambient-caps=-all,+net_bind_service",
            "--bounding-set=-all,+net_bind_service",
            "--no-new-privs",
            "--",
        ])
        .args(&argv)
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .expect("setpriv");
    Daemon {
        child,
        log: log.to_path_buf(),
    }
}

/// The next sd_notify datagram that contains `what` (watchdog pings and
/// others in between are skipped).
fn next_notification(sock: &UnixDatagram, what: &str) -> String {
    let mut buf = [0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {what} notification: {e}"));
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.lines().any(|l| l == what) {
            return msg;
        }
    }
}

fn user_exists(name: &str) -> bool {
    run(Command::new("getent").args(["passwd", name])).0
}

fn group_exists(name: &str) -> bool {
    run(Command::new("getent").args(["group", name])).0
}

/// A world-readable directory the lunasip user can read scripts from.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("lunasip-pkg-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn write_readable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Install, run, reload, remove and purge the .deb on this machine; then
/// install and erase the .rpm.
#[test]
fn install_run_reload_purge() {
    if !gated("install_run_reload_purge") {
        return;
    }
    let started = Instant::now();
    let p = packages();
    let _turn = daemon_turn();
    // A clean slate (an earlier failed run may have left it installed).
    let _ = run(Command::new("dpkg").args(["--purge", "lunasip"]));
    if user_exists("lunasip") {
        let _ = run(Command::new("userdel").arg("lunasip"));
    }
    if group_exists("lunasip") {
        let _ = run(Command::new("groupdel").arg("lunasip"));
    }
    assert!(
        !user_exists("lunasip"),
        "a lunasip user exists before install"
    );

    ok(Command::new("dpkg").arg("-i").arg(&p.deb));
    let installed = ok(Command::new("dpkg").args(["-L", "lunasip"]));
    for f in [
        "/usr/sbin/lunasip",
        "/etc/lunasip/lunasip.lua",
        "/etc/default/lunasip",
        "/lib/systemd/system/lunasip.service",
        "/usr/share/lunasip/lua/default.lua",
        "/usr/share/doc/lunasip/README.md",
        "/usr/share/doc/lunasip/examples/lunasip.lua",
        "/usr/share/doc/lunasip/examples/freeswitch-lb.lua",
        "/usr/share/lunasip/sql/dispatcher-mysql.sql",
    ] {
        assert!(Path::new(f).exists(), "{f} not installed");
        assert!(installed.lines().any(|l| l == f), "{f} not in dpkg -L");
    }
    assert!(user_exists("lunasip") && group_exists("lunasip"));
    let pw = ok(Command::new("getent").args(["passwd", "lunasip"]));
    assert!(pw.trim_end().ends_with("nologin"), "{pw}");

    // The installed default script passes the check.
    let out =
        ok(Command::new("/usr/sbin/lunasip").args(["check", "-c", "/etc/lunasip/lunasip.lua"]));
    assert!(out.contains("ok"), "{out}");

    // An edited conffile survives a reinstall (as an upgrade keeps it).
    let shipped = std::fs::read_to_string("/etc/lunasip/lunasip.lua").unwrap();
    let edited = format!("{shipped}\n-- edited by the operator\n");
    std::fs::write("/etc/lunasip/lunasip.lua", &edited).unwrap();
    ok(Command::new("dpkg")
        .args(["-i", "--force-confold"])
        .arg(&p.deb)
        .stdin(Stdio::null()));
    assert_eq!(
        std::fs::read_to_string("/etc/lunasip/lunasip.lua").unwrap(),
        edited,
        "reinstall replaced the edited config"
    );
    std::fs::write("/etc/lunasip/lunasip.lua", &shipped).unwrap();

    // The installed unit verifies (its binary now exists).
    if have("systemd-analyze") {
        let (success, out, err) =
            run(Command::new("systemd-analyze")
                .args(["verify", "/lib/systemd/system/lunasip.service"]));
        assert!(
            success && err.trim().is_empty(),
            "systemd-analyze verify:\n{out}\n{err}"
        );
    }

    // Run the installed daemon as the unit does, on a privileged test port
    // (CAP_NET_BIND_SERVICE is all it has), with the default script.
    let unit = std::fs::read_to_string("/lib/systemd/system/lunasip.service").unwrap();
    let port = free_port(900..1024);
    let dir = shared_dir();
    let config = dir.path().join("lunasip.lua");
    let default = std::fs::read_to_string("/etc/lunasip/lunasip.lua").unwrap();
    let listen = format!("127.0.0.1:{port}");
    let script = default.replace("0.0.0.0:5060", &listen);
    assert_ne!(script, default, "the default script's listen line changed?");
    write_readable(&config, &script);
    let log = dir.path().join("lunasip.log");
    // What RuntimeDirectory=lunasip does: /run/lunasip owned by the user.
    let had_run_dir = Path::new("/run/lunasip").exists();
    ok(Command::new("install").args([
        "-d",
        "-o",
        "lunasip",
        "-g",
        "lunasip",
        "-m",
        "0750",
        "/run/lunasip",
    ]));
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let d = start_as_lunasip(&unit, &config, &log, Some(&notify_path));
    // Type=notify: READY=1 with a status line once the sockets are bound.
    let ready = next_notification(&notify, "READY=1");
    assert!(
        ready.contains("STATUS=") && ready.contains(&listen),
        "READY without the status: {ready:?}"
    );
    assert!(
        d.log().contains(" ready: "),
        "READY=1 before ready:\n{}",
        d.log()
    );
    // WatchdogSec=: pings.
    assert_eq!(next_notification(&notify, "WATCHDOG=1"), "WATCHDOG=1\n");
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let uid = ok(Command::new("id").args(["-u", "lunasip"]));
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(uid.trim())),
        "not running as lunasip:\n{status}"
    );
    assert_eq!(
        options(port).as_deref(),
        Some("SIP/2.0 200 OK"),
        "{}",
        d.log()
    );

    // SIGHUP with a changed script: the new behaviour.
    let changed = format!(
        "config = {{ listen = {{ \"udp:{listen}\", \"tcp:{listen}\" }} }}\n\
         function route.main()\n  sip.sl.sl_send_reply(200, \"Reloaded\")\nend\n"
    );
    write_readable(&config, &changed);
    d.signal("HUP");
    next_notification(&notify, "RELOADING=1");
    next_notification(&notify, "READY=1");
    assert!(d.wait_log("reloaded", 10), "no reload:\n{}", d.log());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answer = options(port);
    while answer.as_deref() != Some("SIP/2.0 200 Reloaded") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        answer = options(port);
    }
    assert_eq!(
        answer.as_deref(),
        Some("SIP/2.0 200 Reloaded"),
        "{}",
        d.log()
    );

    // SIGHUP with a broken script: refused with file:line, the old one stays.
    write_readable(
        &config,
        &format!("{changed}\nfunction route.broken(\n  this is not lua\n"),
    );
    d.signal("HUP");
    assert!(d.wait_log("refused", 10), "no refusal:\n{}", d.log());
    let text = d.log();
    let line = text.lines().find(|l| l.contains("refused")).unwrap();
    assert!(
        line.contains(&format!("{}:", config.display())),
        "no file:line in {line:?}"
    );
    assert_eq!(options(port).as_deref(), Some("SIP/2.0 200 Reloaded"));

    // SIGTERM stops it cleanly, saying STOPPING=1 first.
    d.signal("TERM");
    next_notification(&notify, "STOPPING=1");
    let mut d = d;
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "exit {code:?}:\n{}", d.log());
    drop(d);

    // A broken config at start: non-zero exit with file:line, never half-started.
    write_readable(&config, "config = {\n  listen = { 'udp:127.0.0.1:1' \n");
    let d = start_as_lunasip(&unit, &config, &log, None);
    let mut d = d;
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "a broken script did not stop it");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!code.success());
    assert!(
        d.log().contains(&format!("{}:", config.display())),
        "no file:line:\n{}",
        d.log()
    );
    assert!(!d.log().contains(" ready: "), "{}", d.log());
    drop(d);

    // Remove keeps the conffiles and the user; purge removes everything.
    ok(Command::new("dpkg").args(["--remove", "lunasip"]));
    assert!(!Path::new("/usr/sbin/lunasip").exists());
    assert!(!Path::new("/lib/systemd/system/lunasip.service").exists());
    assert!(
        Path::new("/etc/lunasip/lunasip.lua").exists(),
        "remove took the conffile"
    );
    ok(Command::new("dpkg").args(["--purge", "lunasip"]));
    for f in installed.lines().filter(|l| l.starts_with('/')) {
        let keep = [
            "/.",
            "/etc",
            "/lib",
            "/usr",
            "/usr/sbin",
            "/usr/share",
            "/usr/share/doc",
            "/lib/systemd",
            "/lib/systemd/system",
            "/etc/default",
        ];
        if keep.contains(&f) {
            continue;
        }
        assert!(!Path::new(f).exists(), "{f} left after purge");
    }
    assert!(
        !Path::new("/etc/lunasip").exists(),
        "/etc/lunasip left after purge"
    );
    assert!(!user_exists("lunasip"), "user lunasip left after purge");
    assert!(!group_exists("lunasip"), "group lunasip left after purge");
    let (known, _, _) = run(Command::new("dpkg").args(["-s", "lunasip"]));
    assert!(!known, "dpkg still knows lunasip");
    if had_run_dir {
        let _ = run(Command::new("chown").args(["root:root", "/run/lunasip"]));
    } else {
        let _ = std::fs::remove_dir_all("/run/lunasip");
    }

    // The .rpm's scriptlets, run by rpm itself (with a private database;
    // --nodeps: this is not an RPM system): install creates the user, erase
    // removes it and every file.
    if have("rpm") {
        let db = tempfile::tempdir().unwrap();
        let dbpath = db.path().to_str().unwrap();
        let had_sysconfig = Path::new("/etc/sysconfig").exists();
        ok(Command::new("rpm").args(["--initdb", "--dbpath", dbpath]));
        ok(Command::new("rpm")
            .args(["-i", "--nodeps", "--dbpath", dbpath])
            .arg(&p.rpm));
        assert!(
            user_exists("lunasip") && group_exists("lunasip"),
            "rpm %pre made no user"
        );
        for f in [
            "/usr/sbin/lunasip",
            "/etc/lunasip/lunasip.lua",
            "/etc/sysconfig/lunasip",
            "/usr/lib/systemd/system/lunasip.service",
        ] {
            assert!(Path::new(f).exists(), "rpm did not install {f}");
        }
        ok(Command::new("/usr/sbin/lunasip").args(["check", "-c", "/etc/lunasip/lunasip.lua"]));
        ok(Command::new("rpm").args(["-e", "--dbpath", dbpath, "lunasip"]));
        assert!(
            !user_exists("lunasip") && !group_exists("lunasip"),
            "rpm -e left the user"
        );
        for f in [
            "/usr/sbin/lunasip",
            "/etc/lunasip",
            "/etc/sysconfig/lunasip",
            "/usr/lib/systemd/system/lunasip.service",
            "/usr/share/lunasip",
            "/usr/share/doc/lunasip",
        ] {
            assert!(!Path::new(f).exists(), "{f} left after rpm -e");
        }
        if !had_sysconfig {
            let _ = std::fs::remove_dir("/etc/sysconfig");
        }
    }
    eprintln!("install_run_reload_purge took {:?}", started.elapsed());
}
