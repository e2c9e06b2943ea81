//! Dispatcher over a MariaDB `dispatcher` table, end to end: the built
//! binary in front of SIPp callees playing media servers, destinations in a
//! table of a database made for each test (packaging/sql/dispatcher-mysql.sql),
//! calls from a SIPp caller. What is asserted is what an operator sees:
//! calls counted by each callee, `ds_list`, `get_statistics`, the log.
//!
//! Needs MariaDB (or MySQL) at 127.0.0.1:3306, user root without password,
//! and its command-line client (`.ci/run` installs and starts both).

mod common;

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

/// For each key (as `key` reads it off an INVITE of algorithm `alg`), the
/// callees that received it.
fn boxes_by_key(
    boxes: &[(&str, &BTreeSet<Invite>)],
    alg: &str,
    key: impl Fn(&Invite) -> String,
) -> BTreeMap<String, (BTreeSet<String>, usize)> {
    let mut m: BTreeMap<String, (BTreeSet<String>, usize)> = BTreeMap::new();
    for (name, invs) in boxes {
        for i in invs.iter().filter(|i| i.alg == alg) {
            let e = m.entry(key(i)).or_default();
            e.0.insert(name.to_string());
            e.1 += 1;
        }
    }
    m
}

// ------------------------------------------------------------------- tests

/// Reads the key an algorithm hashes off an INVITE.
type KeyOf = fn(&Invite) -> String;

/// Algorithms 0–3: every call with the same Call-ID / From / To / R-URI
/// reaches the same callee, and the keys spread over both.
#[test]
fn hash_algorithms_send_each_key_to_one_box() {
    let a = TracedUas::start();
    let b = TracedUas::start();
    let db = Db::new();
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "1", 0);
    let mi_port = free_port();
    let proxy = Proxy::start(&script(mi_port, &db.source(), "f"));

    // Algorithms 1, 2, 3: twelve keys each, every key three times.
    let dir = tempfile::tempdir().expect("tmp");
    let mut lines = Vec::new();
    for alg in 1..=3 {
        for _ in 0..3 {
            for k in 0..12 {
                lines.push(format!("from{k};to{k};ruri{k};1;{alg}"));
            }
        }
    }
    let inf = keys_file(&dir, "keys.csv", &lines);
    let n = lines.len() as u32;
    let run = uac(
        "uac_ds_fields.xml",
        proxy.port,
        "u1",
        n,
        100,
        &["-inf", &inf],
    );
    assert_eq!(
        run.successful,
        u64::from(n),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );

    // Algorithm 0: the same ten Call-IDs three times over (SIPp numbers
    // the calls of each run from 1).
    let inf0 = plain(&dir, 1, 0);
    for round in 0..3 {
        if round > 0 {
            std::thread::sleep(Duration::from_millis(1300));
        }
        let run = uac(
            "uac_ds_fields.xml",
            proxy.port,
            "u1",
            10,
            50,
            &["-inf", &inf0, "-cid_str", "ds-alg0-%u@lunasip"],
        );
        assert_eq!(
            run.successful,
            10,
            "round {round}: {}\n{}",
            run.errors,
            a.errors()
        );
    }

    let (ia, ib) = (a.invites(), b.invites());
    assert_eq!(
        ia.len() + ib.len(),
        n as usize + 30,
        "{}{}",
        a.errors(),
        b.errors()
    );
    let boxes = [("a", &ia), ("b", &ib)];
    let checks: [(&str, usize, usize, KeyOf); 4] = [
        ("0", 10, 3, |i| i.call_id.clone()),
        ("1", 12, 3, |i| i.from_user.clone()),
        ("2", 12, 3, |i| i.to_user.clone()),
        ("3", 12, 3, |i| i.ruri_user.clone()),
    ];
    for (alg, keys, times, key) in checks {
        let m = boxes_by_key(&boxes, alg, key);
        assert_eq!(m.len(), keys, "algorithm {alg}: {m:?}");
        for (k, (where_, count)) in &m {
            assert_eq!(*count, times, "algorithm {alg}: key {k} seen {count} times");
            assert_eq!(
                where_.len(),
                1,
                "algorithm {alg}: key {k} went to {where_:?}"
            );
        }
        let used: BTreeSet<&String> = m.values().flat_map(|(w, _)| w.iter()).collect();
        assert_eq!(
            used.len(),
            2,
            "algorithm {alg}: every key on one box: {m:?}"
        );
    }
}

/// Algorithms 4 (round-robin, also weighted 1:3), 8 (first) and 6 (random)
/// over three callees.
#[test]
fn round_robin_weights_first_and_random() {
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    let c = uas("uas.xml", "u1");
    let db = Db::new();
    // Set 1: a then b (priority). Set 2: a and b weighted 1:3. Set 3: all.
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "1", 1);
    db.add(3, 2, a.port, "1", 0);
    db.add(4, 2, b.port, "3", 0);
    db.add(5, 3, a.port, "1", 0);
    db.add(6, 3, b.port, "1", 0);
    db.add(7, 3, c.port, "1", 0);
    let mi_port = free_port();
    let proxy = Proxy::start(&script(mi_port, &db.source(), "f"));
    let dir = tempfile::tempdir().expect("tmp");
    let boxes = [&a, &b, &c];
    let mut total = 0u64;
    let mut before = vec![0u64; 3];
    let mut step = |set: u32, alg: u32, calls: u32, rate: u32| -> Vec<u64> {
        let run = uac(
            "uac_ds_fields.xml",
            proxy.port,
            "u1",
            calls,
            rate,
            &["-inf", &plain(&dir, set, alg)],
        );
        assert_eq!(
            (run.successful, run.failed),
            (u64::from(calls), 0),
            "set {set} alg {alg}: {}",
            run.errors
        );
        total += u64::from(calls);
        let now = settled(&boxes, total);
        let delta: Vec<u64> = now.iter().zip(&before).map(|(n, b)| n - b).collect();
        before = now;
        delta
    };

    let rr = step(1, 4, 20, 50);
    assert_eq!(rr[0] + rr[1], 20, "{rr:?}");
    assert!(rr[0].abs_diff(rr[1]) <= 1, "round-robin: {rr:?}");

    let first = step(1, 8, 10, 50);
    assert_eq!(first, vec![10, 0, 0], "first");

    // 800 calls at 200/s: enough for the 1:3 share, gentle enough for a
    // loaded CI machine (2000 at 400/s timed calls out there).
    let w = step(2, 4, 800, 200);
    assert_eq!(w[0] + w[1], 800, "{w:?}");
    let share = w[0] as f64 / 800.0;
    assert!(
        (0.22..=0.28).contains(&share),
        "weight 1 of 1:3 took {:.1} % ({w:?})",
        share * 100.0
    );

    // Random over three: each expects 200 of 600 (sd ≈ 11.5); ±60 is over
    // five standard deviations.
    let r = step(3, 6, 600, 300);
    assert_eq!(r.iter().sum::<u64>(), 600, "{r:?}");
    for (i, n) in r.iter().enumerate() {
        assert!(
            (140..=260).contains(n),
            "random: box {i} got {n} of 600 ({r:?})"
        );
    }
    eprintln!("round-robin {rr:?}, first {first:?}, weights 1:3 {w:?}, random {r:?}");
}

/// Changing the table and `ds_reload` while calls run: no call fails, and
/// the new destinations take the calls from then on.
#[test]
fn reload_under_load_loses_no_call() {
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    let c = uas("uas.xml", "u1");
    let db = Db::new();
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "1", 0);
    let mi_port = free_port();
    let proxy = Proxy::start(&script(mi_port, &db.source(), "f"));
    let dir = tempfile::tempdir().expect("tmp");
    let inf = plain(&dir, 1, 4);

    let port = proxy.port;
    let inf2 = inf.clone();
    let load = std::thread::spawn(move || {
        uac("uac_ds_fields.xml", port, "u1", 500, 100, &["-inf", &inf2])
    });
    std::thread::sleep(Duration::from_millis(1500));
    // a leaves, c joins, in one reload.
    db.exec("DELETE FROM dispatcher WHERE id = 1");
    db.add(3, 1, c.port, "1", 0);
    let (ok, out) = mi(mi_port, &["ds_reload"]);
    assert!(ok, "ds_reload: {out}");
    let run = load.join().expect("caller thread");
    assert_eq!(
        (run.successful, run.failed),
        (500, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    let n = settled(&[&a, &b, &c], 500);
    assert_eq!(n.iter().sum::<u64>(), 500, "{n:?}");
    assert!(n[0] > 0 && n[0] < 250, "a only before the reload: {n:?}");
    assert!(n[2] > 0, "c after the reload: {n:?}");
    assert_eq!(
        ds_list(mi_port).get(&1),
        Some(&vec![uri(b.port), uri(c.port)]),
        "ds_list after reload"
    );

    // From now on: b and c alternate, a gets nothing.
    let run = uac(
        "uac_ds_fields.xml",
        proxy.port,
        "u1",
        20,
        50,
        &["-inf", &inf],
    );
    assert_eq!(run.successful, 20, "{}", run.errors);
    let m = settled(&[&a, &b, &c], 520);
    assert_eq!(m[0], n[0], "no call for the removed box");
    assert_eq!((m[1] - n[1], m[2] - n[2]), (10, 10), "{n:?} → {m:?}");
}

/// The same script with the destinations in the config table instead of
/// the database sends every call to the same callee.
#[test]
fn embedded_source_distributes_the_same() {
    let a = TracedUas::start();
    let b = TracedUas::start();
    let db = Db::new();
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "3", 0);
    let embedded = format!(
        "sets = {{ [1] = {{ {{ uri = \"{}\", weight = 1 }}, {{ uri = \"{}\", weight = 3 }} }} }}",
        uri(a.port),
        uri(b.port)
    );
    let dir = tempfile::tempdir().expect("tmp");
    // Call-ID hash, From user hash ("u": the caller's port differs between
    // runs), and weighted round-robin.
    let mut lines = Vec::new();
    for k in 0..16 {
        lines.push(format!("c{k};x;x;1;0"));
    }
    for k in 0..16 {
        lines.push(format!("user{k};x;x;1;1"));
    }
    for k in 0..8 {
        lines.push(format!("r{k};x;x;1;4"));
    }
    let inf = keys_file(&dir, "keys.csv", &lines);
    let n = lines.len();

    let mut placement: Vec<BTreeMap<String, String>> = Vec::new();
    let mut seen: BTreeSet<Invite> = BTreeSet::new();
    for (i, source) in [db.source(), embedded].iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(1300));
        }
        let mi_port = free_port();
        let proxy = Proxy::start(&script(mi_port, source, "fu"));
        let run = uac(
            "uac_ds_fields.xml",
            proxy.port,
            "u1",
            n as u32,
            40,
            &["-inf", &inf, "-cid_str", "ds-same-%u@lunasip"],
        );
        assert_eq!(
            run.successful,
            n as u64,
            "{}\n{}",
            run.errors,
            proxy.log_text()
        );
        let mut this = BTreeMap::new();
        for (name, u) in [("a", &a), ("b", &b)] {
            for inv in u.invites() {
                if seen.insert(inv.clone()) {
                    let key = match inv.alg.as_str() {
                        "1" => inv.from_user.clone(),
                        "4" => format!("rr {}", inv.from_user),
                        _ => inv.call_id.clone(),
                    };
                    this.insert(key, name.to_string());
                }
            }
        }
        assert_eq!(this.len(), n, "{this:?}");
        placement.push(this);
    }
    assert_eq!(placement[0], placement[1], "database vs embedded");
    let rr_a = placement[0]
        .iter()
        .filter(|(k, v)| k.starts_with("rr ") && v.as_str() == "a")
        .count();
    assert_eq!(
        rr_a, 2,
        "weights 1:3 over 8 round-robin calls: {placement:?}"
    );
    let on_a = placement[0].values().filter(|v| v.as_str() == "a").count();
    assert!(on_a > 0 && on_a < n, "{placement:?}");
}

/// Malformed rows are skipped, named by id in the log and counted in
/// `dispatcher:bad_rows`; the good rows carry the calls.
#[test]
fn bad_rows_are_skipped_named_and_counted() {
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    let db = Db::new();
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "1", 0);
    db.exec(
        "INSERT INTO dispatcher (id, setid, destination, weight, socket) VALUES \
         (13, 1, 'no uri here', '1', NULL), \
         (14, 2, 'sip:127.0.0.1:5999', 'heavy', NULL), \
         (15, 1, 'sip:127.0.0.1:5998', '1', 'udp:10.9.9.9:5060'), \
         (16, 1, 'sip:127.0.0.1:5997', '1', 'udp:not-an-address')",
    );
    let mi_port = free_port();
    let proxy = Proxy::start(&script(mi_port, &db.source(), "f"));
    let log = proxy.log_text();
    for id in 13..=16 {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("row id {id}")))
            .unwrap_or_else(|| panic!("row id {id} not in the log:\n{log}"));
        assert!(line.contains("skipped") && line.contains("ERROR"), "{line}");
    }
    assert!(log.contains("weight 'heavy' is not a number"), "{log}");
    assert!(log.contains("not one of config.listen"), "{log}");
    let sets = ds_list(mi_port);
    assert_eq!(
        sets.get(&1),
        Some(&vec![uri(a.port), uri(b.port)]),
        "{sets:?}"
    );
    assert!(!sets.contains_key(&2), "{sets:?}");
    let bad = |mi_port| {
        let (ok, out) = mi(mi_port, &["get_statistics", "dispatcher:bad_rows"]);
        assert!(ok, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["dispatcher:bad_rows"].as_u64().unwrap_or(u64::MAX)
    };
    assert_eq!(bad(mi_port), 4);

    let dir = tempfile::tempdir().expect("tmp");
    let run = uac(
        "uac_ds_fields.xml",
        proxy.port,
        "u1",
        10,
        50,
        &["-inf", &plain(&dir, 1, 4)],
    );
    assert_eq!(run.successful, 10, "{}", run.errors);
    assert_eq!(settled(&[&a, &b], 10), vec![5, 5]);

    // Fix two rows, reload: they load, the count follows.
    db.exec("UPDATE dispatcher SET weight = '2' WHERE id = 14");
    db.exec("DELETE FROM dispatcher WHERE id = 13");
    let (ok, out) = mi(mi_port, &["ds_reload"]);
    assert!(ok, "{out}");
    assert_eq!(bad(mi_port), 2);
    assert_eq!(
        ds_list(mi_port).get(&2),
        Some(&vec!["sip:127.0.0.1:5999".to_string()])
    );
}

/// The database is not there when the proxy starts: it starts anyway with
/// an empty partition and a clear error, loads by itself once the
/// database exists, and keeps what it has when a later reload fails.
#[test]
fn database_down_at_start_then_loaded_by_retry() {
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    let db = Db::unborn();
    let mi_port = free_port();
    let proxy = Proxy::start(&script(mi_port, &db.source(), "f"));
    let log = proxy.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("partition stays empty"))
        .unwrap_or_else(|| panic!("no error about the database:\n{log}"));
    assert!(line.contains("ERROR") && line.contains(&db.name), "{line}");
    assert!(ds_list(mi_port).is_empty());
    let (ok, out) = mi(mi_port, &["ds_reload"]);
    assert!(!ok, "ds_reload with no database must fail: {out}");

    db.create();
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "1", 0);
    let deadline = Instant::now() + Duration::from_secs(6);
    while ds_list(mi_port).get(&1).map_or(0, Vec::len) < 2 {
        assert!(
            Instant::now() < deadline,
            "not loaded by retry:\n{}",
            proxy.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(proxy.log_text().contains("database reachable again"));
    let dir = tempfile::tempdir().expect("tmp");
    let inf = plain(&dir, 1, 4);
    let run = uac(
        "uac_ds_fields.xml",
        proxy.port,
        "u1",
        10,
        50,
        &["-inf", &inf],
    );
    assert_eq!(run.successful, 10, "{}", run.errors);

    // The table goes away: ds_reload fails, the sets stay, calls go on.
    db.exec("RENAME TABLE dispatcher TO dispatcher_away");
    let (ok, out) = mi(mi_port, &["ds_reload"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("dispatcher_away") || out.contains("doesn't exist"),
        "{out}"
    );
    assert_eq!(ds_list(mi_port).get(&1).map_or(0, Vec::len), 2);
    let run = uac(
        "uac_ds_fields.xml",
        proxy.port,
        "u1",
        10,
        50,
        &["-inf", &inf],
    );
    assert_eq!(run.successful, 10, "{}", run.errors);
    assert_eq!(settled(&[&a, &b], 20), vec![10, 10]);
}

/// Probing with the destinations in the table: a stopped box is taken out
/// and brought back with exactly its keys (the classic deployment).
#[test]
fn probing_with_the_table_takes_a_box_out_and_back() {
    let db = Db::new();
    ds::probing_round_trip(&|a, b| {
        db.add(1, 1, a, "1", 0);
        db.add(2, 1, b, "1", 0);
        db.source()
    });
}
