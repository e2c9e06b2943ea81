//! Dispatcher over a MariaDB `dispatcher` table, end to end: the built
//! binary in front of SIPp callees playing media servers, destinations in a
//! table of a database made for each test (packaging/sql/dispatcher-mysql.sql),
//! calls from a SIPp caller. What is asserted is what an operator sees:
//! calls counted by each callee, `ds_list`, `get_statistics`, the log.
//!
//! Needs MariaDB (or MySQL) at 127.0.0.1:3306, user root without password,
//! and its command-line client (`.ci/run` installs and starts both).

mod algorithms;
#[path = "../common/mod.rs"]
mod common;
mod robustness;

use common::ds::{self, mi};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- database

/// Runs SQL through the MariaDB client (in `db` when given).
fn sql(db: Option<&str>, stmt: &str) {
    let mut last = String::new();
    for client in ["mariadb", "mysql"] {
        let mut cmd = Command::new(client);
        cmd.args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            "--batch",
            "-e",
            stmt,
        ]);
        if let Some(d) = db {
            cmd.arg(d);
        }
        match cmd.output() {
            Ok(out) if out.status.success() => return,
            Ok(out) => panic!(
                "SQL failed (is MariaDB up at 127.0.0.1:3306? see .ci/run): {stmt}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => last = e.to_string(),
        }
    }
    panic!("no MariaDB client (apt-get install mariadb-client): {last}");
}

/// A database made for one test, dropped at the end.
struct Db {
    name: String,
}

impl Db {
    /// A name only: the database does not exist until [`Db::create`].
    fn unborn() -> Db {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "lunasip_ds_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        sql(None, &format!("DROP DATABASE IF EXISTS {name}"));
        Db { name }
    }

    /// A database with our dispatcher table in it.
    fn new() -> Db {
        let db = Db::unborn();
        db.create();
        db
    }

    fn create(&self) {
        sql(None, &format!("CREATE DATABASE {}", self.name));
        let schema = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/sql/dispatcher-mysql.sql"),
        )
        .expect("schema file");
        self.exec(&schema);
    }

    fn exec(&self, stmt: &str) {
        sql(Some(&self.name), stmt);
    }

    /// Adds a destination row.
    fn add(&self, id: u32, setid: u32, port: u16, weight: &str, priority: i32) {
        self.exec(&format!(
            "INSERT INTO dispatcher (id, setid, destination, weight, priority, description) \
             VALUES ({id}, {setid}, 'sip:127.0.0.1:{port}', '{weight}', {priority}, 'box {port}')"
        ));
    }

    /// The partition keys of a script for this database.
    fn source(&self) -> String {
        format!(
            "db_url = \"mysql://root@127.0.0.1:3306/{}\", db_retry_interval = 1",
            self.name
        )
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS {}", self.name))
            .output();
    }
}

// ------------------------------------------------------------------- proxy

/// A stateful balancer whose set and algorithm come from the caller's
/// X-DS-Set / X-DS-Alg headers, so one proxy serves several checks.
fn script(mi_port: u16, source: &str, flags: &str) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    tm = {{ fr_timeout = 2, fr_inv_timeout = 3 }},
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    dispatcher = {{ {source} }},
  }},
}}

function route.main()
  if sip.has_totag() then
    sip.rr.loose_route()
    sip.tm.t_relay()
    sip.exit()
  end
  if sip.is_method("CANCEL") then
    if sip.tm.t_check_trans() then sip.tm.t_relay() end
    sip.exit()
  end
  sip.tm.t_check_trans()
  sip.rr.record_route()
  local set = tonumber(sip.pv.get("$hdr(X-DS-Set)")) or 1
  local alg = tonumber(sip.pv.get("$hdr(X-DS-Alg)")) or 4
  if not sip.dispatcher.ds_select_dst(set, alg, "{flags}") then
    sip.sl.sl_send_reply(503, "No Destination")
    sip.exit()
  end
  sip.tm.t_relay()
end
"#
    )
}

/// URIs `ds_list` shows, by set id.
fn ds_list(mi_port: u16) -> BTreeMap<i64, Vec<String>> {
    let (ok, out) = mi(mi_port, &["ds_list"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let mut sets = BTreeMap::new();
    for p in v["PARTITIONS"].as_array().into_iter().flatten() {
        for s in p["SETS"].as_array().into_iter().flatten() {
            let uris = s["Destinations"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["URI"].as_str().map(str::to_string))
                .collect();
            sets.insert(s["id"].as_i64().unwrap_or(-1), uris);
        }
    }
    sets
}

fn uri(port: u16) -> String {
    format!("sip:127.0.0.1:{port}")
}

/// An injection file for uac_ds_fields.xml: from;to;ruri;set;alg lines.
fn keys_file(dir: &tempfile::TempDir, name: &str, lines: &[String]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("SEQUENTIAL\n{}\n", lines.join("\n"))).expect("inf");
    path.display().to_string()
}

/// One line repeated for every call: set and algorithm only.
fn plain(dir: &tempfile::TempDir, set: u32, alg: u32) -> String {
    keys_file(
        dir,
        &format!("s{set}a{alg}.csv"),
        &[format!("caller;callee;callee;{set};{alg}")],
    )
}

/// Successful calls of each callee once they add up to `total` (SIPp writes
/// its statistics once a second).
fn settled(boxes: &[&Uas], total: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let c: Vec<u64> = boxes.iter().map(|b| b.counts(0).0).collect();
        if c.iter().sum::<u64>() >= total || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ----------------------------------------------------- callees with traces

/// A SIPp callee that keeps the messages it received, so a test can tell
/// which calls (Call-ID, From, To, R-URI) reached it.
struct TracedUas {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// One INVITE as a callee saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Invite {
    call_id: String,
    from_tag: String,
    from_user: String,
    to_user: String,
    ruri_user: String,
    alg: String,
}

impl TracedUas {
    fn start() -> TracedUas {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tmp");
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(scenario("uas.xml"))
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", "u1"])
            // -deadcall_wait: a Call-ID may come back 1 s after its call
            // ended (the scenario's timewait), as the Call-ID checks need.
            .args(["-nostdin", "-aa", "-deadcall_wait", "1"])
            .args(["-buff_size", "4194304", "-trace_msg", "-message_file"])
            .arg(dir.path().join("msg.log"))
            .args(["-trace_err", "-error_file"])
            .arg(dir.path().join("err.log"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp (apt-get install sip-tester)");
        wait_bound(port, "u1");
        TracedUas { child, port, dir }
    }

    /// The INVITEs received, once each (retransmissions folded).
    fn invites(&self) -> BTreeSet<Invite> {
        let text = std::fs::read_to_string(self.dir.path().join("msg.log")).unwrap_or_default();
        let mut out = BTreeSet::new();
        for part in text.split("message received") {
            let body = part.split_once("\n\n").map_or("", |(_, b)| b);
            let mut lines = body.lines();
            let Some(start) = lines.next() else { continue };
            let Some(ruri) = start.strip_prefix("INVITE ") else {
                continue;
            };
            let user = |s: &str| {
                s.split_once("sip:")
                    .and_then(|(_, r)| r.split_once('@'))
                    .map(|(u, _)| u.to_string())
                    .unwrap_or_default()
            };
            let mut inv = Invite {
                call_id: String::new(),
                from_tag: String::new(),
                from_user: String::new(),
                to_user: String::new(),
                ruri_user: user(ruri),
                alg: String::new(),
            };
            for l in lines.take_while(|l| !l.trim().is_empty()) {
                let (name, value) = l.split_once(':').unwrap_or((l, ""));
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "call-id" => inv.call_id = value.to_string(),
                    "from" => {
                        inv.from_user = user(value);
                        inv.from_tag = value.split_once("tag=").map_or("", |(_, t)| t).to_string();
                    }
                    "to" => inv.to_user = user(value),
                    "x-ds-alg" => inv.alg = value.to_string(),
                    _ => {}
                }
            }
            out.insert(inv);
        }
        out
    }

    fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("err.log")).unwrap_or_default()
    }
}

impl Drop for TracedUas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------- tests

/// Reads the key an algorithm hashes off an INVITE.
type KeyOf = fn(&Invite) -> String;
