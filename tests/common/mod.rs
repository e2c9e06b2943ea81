//! Test harness: start the built `lunasip` binary with a script on ports
//! chosen per test, run SIPp as caller and callee, read what they saw.
#![allow(dead_code)]

pub mod dns;
pub mod ds;
pub mod link;
pub mod mariadb;
pub mod mysql;
pub mod mysql_cut;
pub mod netns;
pub mod olddb;
pub mod rabbit;
pub mod rpc;
pub mod translated;

pub mod worker;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The start of a stateful `route.main` for SIPp calls: in-dialog
/// requests follow their Route set.
#[allow(dead_code)]
pub const IN_DIALOG: &str = "  if sip.has_totag() then
    sip.rr.loose_route()
    sip.tm.t_relay()
    sip.exit()
  end
";

/// A UDP socket on 127.0.0.1 for events and datagrams to arrive at (8 s
/// read timeout), and its port.
pub fn udp_listener() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    let port = s.local_addr().expect("addr").port();
    (s, port)
}

/// A port free for both UDP and TCP on 127.0.0.1 (and ::1 when asked).
pub fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("::1", port)).is_ok()
        {
            return port;
        }
    }
}

/// Directory of SIPp scenarios carried by the tests.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

/// A running lunasip with its log file.
pub struct Proxy {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub log: PathBuf,
    pub script: PathBuf,
}

impl Proxy {
    /// Writes `script` (with `{PORT}` replaced) and starts the daemon on it;
    /// waits until it logs that it is ready.
    pub fn start(script: &str) -> Proxy {
        Self::try_start(script).unwrap_or_else(|log| panic!("lunasip did not become ready:\n{log}"))
    }

    pub fn try_start(script: &str) -> Result<Proxy, String> {
        let port = free_port();
        Self::try_start_on(script, port)
    }

    pub fn try_start_on(script: &str, port: u16) -> Result<Proxy, String> {
        Self::try_start_with("script.lua", script, port, &[], &[], &[])
    }

    /// [`Proxy::try_start_on`] with more `lunasip run` arguments.
    pub fn try_start_args(script: &str, port: u16, extra: &[&str]) -> Result<Proxy, String> {
        Self::try_start_with("script.lua", script, port, extra, &[], &[])
    }

    /// [`Proxy::try_start_on`] with extra environment variables.
    pub fn try_start_env(script: &str, port: u16, env: &[(&str, &str)]) -> Result<Proxy, String> {
        Self::try_start_with("script.lua", script, port, &[], env, &[])
    }

    /// Writes `text` (with `{PORT}` replaced) as `file_name` (an
    /// `opensips.cfg` is translated on load) and runs `lunasip run -c` on
    /// it with `args`; waits until it logs that it is ready.
    pub fn try_start_file(
        file_name: &str,
        text: &str,
        port: u16,
        args: &[&str],
    ) -> Result<Proxy, String> {
        Self::try_start_with(file_name, text, port, args, &[], &[])
    }

    /// [`Proxy::try_start_file`] with `beside` (name, text) written in the
    /// script's directory first; lunasip runs in another working directory
    /// (an empty one of its own), so a file found is found beside the script.
    pub fn try_start_beside(
        file_name: &str,
        text: &str,
        port: u16,
        beside: &[(&str, &str)],
    ) -> Result<Proxy, String> {
        Self::try_start_with(file_name, text, port, &[], &[], beside)
    }

    fn try_start_with(
        file_name: &str,
        text: &str,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
        beside: &[(&str, &str)],
    ) -> Result<Proxy, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(file_name);
        std::fs::write(&path, text.replace("{PORT}", &port.to_string())).expect("write script");
        for (name, body) in beside {
            std::fs::write(dir.path().join(name), body).expect("write file");
        }
        let cwd = dir.path().join("elsewhere");
        std::fs::create_dir(&cwd).expect("working directory");
        let log = dir.path().join("lunasip.log");
        let logf = std::fs::File::create(&log).expect("log file");
        // The MI token file goes beside the script, not to /run/lunasip.
        let child = Command::new(env!("CARGO_BIN_EXE_lunasip"))
            .args(["run", "-c"])
            .arg(&path)
            .args(args)
            .env("LUNASIP_RUNTIME_DIR", dir.path())
            .envs(env.iter().copied())
            .current_dir(if beside.is_empty() {
                Path::new(".")
            } else {
                cwd.as_path()
            })
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start lunasip");
        let mut p = Proxy {
            child: Some(child),
            dir,
            port,
            log,
            script: path,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = p.log_text();
            if text.contains(" ready: ") {
                return Ok(p);
            }
            if let Some(c) = p.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    return Err(text);
                }
            }
            if Instant::now() > deadline {
                return Err(text);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, wait, and return the whole log (with the statistics line).
    pub fn stop(mut self) -> String {
        self.terminate();
        self.log_text()
    }

    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Value of `group:name=N` in the shutdown statistics line.
pub fn stat(log: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("statistics:"))
        .unwrap_or("");
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What a SIPp run ended with.
#[derive(Debug)]
pub struct SippRun {
    pub status: i32,
    pub successful: u64,
    pub failed: u64,
    pub errors: String,
    pub messages: String,
}

/// A SIPp callee running in the background until dropped.
pub struct Uas {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Uas {
    /// Why calls failed, from SIPp's error file.
    pub fn errors(&self) -> String {
        let mut e = std::fs::read_to_string(self.dir.path().join("err.log")).unwrap_or_default();
        e.truncate(e.char_indices().nth(3000).map_or(e.len(), |(i, _)| i));
        e
    }

    /// (successful, failed) calls once `total` calls ended (or 6 s passed),
    /// from SIPp's statistics file, which it writes once a second.
    pub fn counts(&self, total: u64) -> (u64, u64) {
        let deadline = Instant::now() + Duration::from_secs(6);
        loop {
            let c = parse_stats(
                &std::fs::read_to_string(self.dir.path().join("stat.csv")).unwrap_or_default(),
            );
            if c.0 + c.1 >= total || Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Uas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a SIPp UAS with `scen` on a free port (`transport`: "u1" or "t1").
pub fn uas(scen: &str, transport: &str) -> Uas {
    uas_on(scen, transport, free_port())
}

/// Starts a SIPp UAS on `port` (e.g. again where a stopped one was).
pub fn uas_on(scen: &str, transport: &str, port: u16) -> Uas {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(scenario(scen))
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            transport,
            "-nostdin",
            "-aa",
            "-buff_size",
            "4194304",
        ])
        .args(["-trace_err", "-error_file"])
        .arg(dir.path().join("err.log"))
        .args(["-trace_stat", "-fd", "1", "-stf"])
        .arg(dir.path().join("stat.csv"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (apt-get install sip-tester)");
    // Calls may arrive once SIPp holds its port: a datagram or a
    // connection then waits in the socket for SIPp to read it.
    wait_bound(port, transport);
    Uas { child, port, dir }
}

/// Waits (3 s at most) until a socket is bound to 127.0.0.1:`port` (UDP,
/// or a TCP listener for "t1"), read from /proc/net without touching
/// the port, so SIPp's own bind never races with a probe.
pub fn wait_bound(port: u16, transport: &str) {
    let (table, state) = if transport.starts_with('t') {
        ("/proc/net/tcp", "0A")
    } else {
        ("/proc/net/udp", "07")
    };
    let local = format!("0100007F:{port:04X}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        let bound = text.lines().skip(1).any(|l| {
            let mut f = l.split_whitespace().skip(1);
            f.next() == Some(local.as_str()) && f.nth(1) == Some(state)
        });
        if bound {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a SIPp UAC with `scen` against the proxy at 127.0.0.1:`proxy_port`:
/// `calls` calls at `rate` per second; returns counts and error log.
pub fn uac(
    scen: &str,
    proxy_port: u16,
    transport: &str,
    calls: u32,
    rate: u32,
    extra: &[&str],
) -> SippRun {
    uac_to(
        &format!("127.0.0.1:{proxy_port}"),
        scen,
        transport,
        calls,
        rate,
        extra,
    )
}

/// [`uac`] towards any `ip:port` of the proxy.
pub fn uac_to(
    remote: &str,
    scen: &str,
    transport: &str,
    calls: u32,
    rate: u32,
    extra: &[&str],
) -> SippRun {
    let dir = tempfile::tempdir().unwrap();
    let stf = dir.path().join("stat.csv");
    let err = dir.path().join("err.log");
    let msg = dir.path().join("msg.log");
    let local = free_port();
    // SIPp places call n at n/rate seconds: a lone call at rate 1 would
    // wait a second for nothing. One call goes at once (no concurrency
    // to keep); several keep the spacing the test asked for.
    let rate = if calls == 1 { 1000 } else { rate };
    let mut cmd = Command::new("sipp");
    cmd.arg(remote)
        .arg("-sf")
        .arg(scenario(scen))
        .args(["-i", "127.0.0.1", "-p", &local.to_string(), "-t", transport])
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
            "-l",
            "500",
            "-nostdin",
            "-buff_size",
            "4194304",
        ])
        .args(["-timeout", "30s", "-timeout_error", "-recv_timeout", "5000"])
        .args(["-trace_stat", "-fd", "1", "-stf"])
        .arg(&stf)
        .args(["-trace_err", "-error_file"])
        .arg(&err)
        .args(["-trace_msg", "-message_file"])
        .arg(&msg)
        .args(extra)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let status = cmd
        .status()
        .expect("sipp (apt-get install sip-tester)")
        .code()
        .unwrap_or(-1);
    // The stat file is written once a second; the final line lands at exit.
    let stats = std::fs::read_to_string(&stf).unwrap_or_default();
    let (successful, failed) = parse_stats(&stats);
    let mut errors = String::new();
    if let Ok(mut f) = std::fs::File::open(&err) {
        let _ = f.read_to_string(&mut errors);
    }
    let messages = std::fs::read_to_string(&msg).unwrap_or_default();
    errors.truncate(
        errors
            .char_indices()
            .nth(3000)
            .map_or(errors.len(), |(i, _)| i),
    );
    SippRun {
        status,
        successful,
        failed,
        errors,
        messages,
    }
}

fn parse_stats(csv: &str) -> (u64, u64) {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return (0, 0);
    };
    let cols: Vec<&str> = header.split(';').collect();
    let idx = |name: &str| cols.iter().position(|c| *c == name);
    let Some(last) = lines.next_back() else {
        return (0, 0);
    };
    let vals: Vec<&str> = last.split(';').collect();
    let get = |name: &str| {
        idx(name)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("SuccessfulCall(C)"), get("FailedCall(C)"))
}

/// Sends one datagram and waits for one answer (for single-message checks).
pub fn udp_exchange(to: &str, msg: &str, wait: Duration) -> Option<String> {
    let bind = if to.starts_with('[') {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let s = UdpSocket::bind(bind).ok()?;
    s.set_read_timeout(Some(wait)).ok()?;
    let local = s.local_addr().ok()?;
    let msg = msg
        .replace("{LOCAL}", &local.to_string())
        .replace("{LPORT}", &local.port().to_string());
    s.send_to(msg.as_bytes(), to).ok()?;
    let mut buf = [0u8; 65536];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

const IN_NETNS: &str = "LUNASIP_TEST_IN_NETNS";

/// Runs test `name` of the current test binary again inside a new network
/// namespace with only loopback up, after the shell commands `setup`
/// (e.g. `ip addr add …`); true when the caller is that run (then it does
/// the work), false in the outer run once the inner one passed.
pub fn in_netns(name: &str, setup: &str) -> bool {
    if std::env::var_os(IN_NETNS).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let script = format!("ip link set lo up && {setup} exec \"$0\" \"$@\"");
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(IN_NETNS, "1")
        .output()
        .expect("unshare (util-linux) runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "in the namespace:\n{text}");
    assert!(text.contains("1 passed"), "the test did not run:\n{text}");
    false
}

/// Waits until `f` holds (log lines land asynchronously); panics naming
/// `what` after 5 s.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// A `code` reply (`"486 Busy Here"`) to request `req`: its Via, From,
/// To (tagged), Call-ID and CSeq.
pub fn reply_to(req: &str, code: &str) -> String {
    let mut out = format!("SIP/2.0 {code}\r\n");
    for l in req.lines() {
        let name = l.split(':').next().unwrap_or("");
        if ["Via", "From", "To", "Call-ID", "CSeq"].contains(&name) {
            out.push_str(l);
            if name == "To" && !l.contains("tag=") {
                out.push_str(";tag=ua");
            }
            out.push_str("\r\n");
        }
    }
    out + "Content-Length: 0\r\n\r\n"
}
