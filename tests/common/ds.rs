//! Dispatcher scenarios shared by the config-source and database-source
//! tests, and the MI client they read `ds_list` with.

use super::*;
use std::process::Command;

/// `lunasip mi --url … ARGS`: (success, printed result).
pub fn mi(port: u16, args: &[&str]) -> (bool, String) {
    let url = format!("http://127.0.0.1:{port}/mi");
    let out = Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["mi", "--url", &url])
        .args(args)
        .output()
        .expect("lunasip mi");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Text as JSON (an MI answer), or a panic showing it.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The dialogs MI `dlg_list` shows.
pub fn dialogs(mi_port: u16) -> Vec<serde_json::Value> {
    let (ok, out) = mi(mi_port, &["dlg_list"]);
    assert!(ok, "{out}");
    json(&out)["Dialogs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A balancer hashing the From user (algorithm 1, flag u) with probing on: mode 1,
/// every second, two failures to take a box out. The failure route only
/// moves on (`ds_next_dst`), so what takes a box out is probing alone.
fn probing_script(source: &str, mi_port: u16) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  modules = {{
    tm = {{ fr_timeout = 1, fr_inv_timeout = 2 }},
    mi_http = {{ ip = "127.0.0.1", port = {mi_port}, token = false }},
    mi_fifo = false,
    dispatcher = {{
      {source},
      ds_ping_interval = 1, ds_probing_threshold = 2, ds_probing_mode = 1,
      ds_ping_from = "sip:prober@lb.test",
    }},
  }},
}}

function route.main()
  if sip.has_totag() then
    sip.rr.loose_route()
    sip.tm.t_relay()
    sip.exit()
  end
  sip.rr.record_route()
  if not sip.dispatcher.ds_select_dst(1, 1, "fu") then
    sip.sl.sl_send_reply(503, "No Destination")
    sip.exit()
  end
  sip.xlog("L_INFO", "pick $fU -> $du\n")
  sip.tm.t_on_failure("next")
  sip.tm.t_relay()
end

function failure_route.next()
  if sip.dispatcher.ds_next_dst() then
    sip.xlog("L_INFO", "failover $fU -> $du\n")
    sip.tm.t_relay()
  end
end

function local_route.main()
  sip.append_hf("X-Probe: lunasip\r\n")
  sip.xlog("L_INFO", "local $rm to $ru from $fu\n")
end
"#
    )
}

/// `pick KEY -> DU` lines of the log, in order, from `from` on.
fn picks(log: &str, from: usize) -> Vec<(String, String)> {
    log[from..]
        .lines()
        .filter_map(|l| l.split_once("pick ").map(|(_, r)| r))
        .filter_map(|r| r.split_once(" -> "))
        .map(|(c, d)| {
            let du = d.split_whitespace().next().unwrap_or("");
            (c.trim().to_string(), du.to_string())
        })
        .collect()
}

fn wait_for(mi_port: u16, what: &str, secs: u64) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(secs) {
        let (_, out) = mi(mi_port, &["ds_list"]);
        if out.contains(what) {
            return Some(start.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

/// Two boxes behind a balancer whose set `source(a, b)` declares (config
/// rows or a database): stop one, probing takes it out and calls fail over;
/// start it again, probing brings it back and it gets exactly its keys.
pub fn probing_round_trip(source: &dyn Fn(u16, u16) -> String) {
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    let (a_port, mi_port) = (a.port, free_port());
    let proxy = Proxy::start(&probing_script(&source(a.port, b.port), mi_port));

    // Both up: 20 keys (From users) spread over both boxes.
    let run = uac("uac_keys.xml", proxy.port, "u1", 20, 20, &[]);
    assert_eq!(run.successful, 20, "{}\n{}", run.errors, proxy.log_text());
    let first = picks(&proxy.log_text(), 0);
    assert_eq!(first.len(), 20, "{first:?}");
    let on_a = first
        .iter()
        .filter(|(_, d)| d.ends_with(&format!(":{a_port}")))
        .count() as u64;
    assert!(on_a > 0 && on_a < 20, "hash used both boxes: {first:?}");
    assert_eq!(a.counts(on_a).0, on_a, "{}", a.errors());

    // Probes went out through local_route.
    let log = proxy.log_text();
    assert!(
        log.contains(&format!(
            "local OPTIONS to sip:127.0.0.1:{a_port} from sip:prober@lb.test"
        )),
        "{log}"
    );

    // Stop A. Calls that still hash to it fail over and complete.
    drop(a);
    let mark = proxy.log_text().len();
    let run = uac("uac_keys.xml", proxy.port, "u1", 20, 20, &[]);
    assert_eq!(run.successful, 20, "{}\n{}", run.errors, proxy.log_text());
    // Probing took it out within interval × threshold (+1 interval, +1 s
    // for the probe timeout) of the stop; the 20 calls took ≥ 2 s of that.
    let took = wait_for(mi_port, "Probing", 5).expect("A marked probing");
    let log = proxy.log_text();
    assert!(log.contains("is now Probing"), "{log}");
    // No new call goes there now.
    let mark2 = log.len();
    let run = uac("uac_keys.xml", proxy.port, "u1", 20, 20, &[]);
    assert_eq!(run.successful, 20, "{}", run.errors);
    let log = proxy.log_text();
    let down = picks(&log, mark2);
    assert!(
        down.iter()
            .all(|(_, d)| !d.ends_with(&format!(":{a_port}"))),
        "{down:?}"
    );
    assert!(log[mark..].contains("failover key-"), "{}", &log[mark..]);

    // Start A again: probing brings it back, and it gets exactly its keys.
    let a2 = uas_on("uas.xml", "u1", a_port);
    wait_for(
        mi_port,
        &format!("sip:127.0.0.1:{a_port}\",\"state\":\"Active"),
        4,
    )
    .or_else(|| {
        let (_, out) = mi(mi_port, &["ds_list"]);
        (!out.contains("Probing")).then_some(std::time::Duration::ZERO)
    })
    .expect("A active again");
    let mark3 = proxy.log_text().len();
    let run = uac("uac_keys.xml", proxy.port, "u1", 20, 20, &[]);
    assert_eq!(run.successful, 20, "{}", run.errors);
    let again = picks(&proxy.log_text(), mark3);
    assert_eq!(again, first, "same key, same box as before the outage");
    assert_eq!(a2.counts(on_a).0, on_a, "{}", a2.errors());
    eprintln!("probing marked the stopped box after {took:?} (plus the 20 calls' run)");
}
