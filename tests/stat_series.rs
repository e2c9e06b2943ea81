//! Statistic series as an operator sees them (OpenSIPS 3.4
//! `modules/statistics/statistics.c` `stat_series_profile`,
//! `update_stat_series`): routes feed series, MI `get_statistics` reads
//! their window as a sum, a mean or a percentage.

mod common;

use common::rpc::{mi_script, rpc};
use common::*;
use serde_json::json;
use std::time::Duration;

const PROFILES: &str = r#"statistics = { stat_series_profile = {
      "acc",
      "avg_10m: algorithm=average window=600 slots=10",
      "asr: algorithm=percentage window=3600 slots=6 percentage_factor=1000 group=calls",
    } },"#;

const ROUTES: &str = r#"function route.main()
  if sip.pv.rU == "unknown" then sip.update_stat_series("nope", "x", 1) end
  local v = tonumber(sip.pv.rU:match("%-?%d+$"))
  local ok1, rc1 = sip.update_stat_series("acc", "bytes", v)
  sip.update_stat_series("avg_10m", "pdd", v)
  sip.update_stat_series("ASR", "asr", v > 0 and 1 or -1)
  -- a name another statistic already has
  sip.update_stat("dynamic:taken", 1)
  local ok2, rc2 = sip.update_stat_series("acc", "taken", 1)
  sip.append_to_reply("X-Series: " .. tostring(ok1) .. "/" .. rc1 .. "/" .. tostring(ok2) .. "/" .. rc2 .. "\r\n")
  sip.sl.sl_send_reply(200, "OK")
end"#;

fn options(user: &str) -> String {
    format!(
        "OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKss{user}\r\n\
         From: <sip:a@127.0.0.1>;tag=ss\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: ss-{user}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn series_over_mi_get_statistics() {
    let mi = free_port();
    let p = Proxy::start(&mi_script(mi, PROFILES, ROUTES));
    let to = format!("127.0.0.1:{}", p.port);
    let mut replies = Vec::new();
    for user in ["u100", "u200", "u-60", "u400", "u-40"] {
        replies.push(udp_exchange(&to, &options(user), Duration::from_secs(2)));
    }
    let unknown = udp_exchange(&to, &options("unknown"), Duration::from_secs(2));
    let stats = rpc(
        mi,
        "get_statistics",
        json!({"statistics": ["dynamic:bytes", "avg_10m:", "calls:"]}),
    );
    let reset = rpc(
        mi,
        "reset_statistics",
        json!({"statistics": ["dynamic:bytes"]}),
    );
    let after = rpc(
        mi,
        "get_statistics",
        json!({"statistics": ["dynamic:bytes"]}),
    );
    let log = p.stop();
    for r in &replies {
        let r = r.as_deref().unwrap_or_else(|| panic!("no reply\n{log}"));
        assert!(
            r.contains("\r\nX-Series: true/1/false/-1\r\n"),
            "{r}\n{log}"
        );
    }
    assert_eq!(
        stats["result"],
        json!({
            // 100 + 200 - 60 + 400 - 40; the acc module has group `acc`,
            // so the profile's series go to `dynamic` (statistics.c mod_init)
            "dynamic:bytes": 600,
            // 600 / 5
            "avg_10m:pdd": 120,
            // 3 of 5 positive, factor 1000
            "calls:asr": 600,
        }),
        "{stats}\n{log}"
    );
    // Series are not reset (OpenSIPS registers them STAT_NO_RESET).
    assert_eq!(
        after["result"]["dynamic:bytes"],
        json!(600),
        "{reset} {after}"
    );
    // An unknown profile is a script error: 500 and the script line.
    let unknown = unknown.unwrap_or_else(|| panic!("no reply\n{log}"));
    assert!(unknown.starts_with("SIP/2.0 500"), "{unknown}");
    assert!(log.contains("unknown stat_series_profile 'nope'"), "{log}");
}

#[test]
fn a_bad_profile_is_refused_at_start() {
    let mi = free_port();
    let bad = mi_script(
        mi,
        r#"statistics = { stat_series_profile = "x: algorithm=median" },"#,
        ROUTES,
    );
    let err = Proxy::try_start(&bad).err().expect("refused");
    assert!(
        err.contains("stat_series_profile 'x': unknown algorithm 'median'"),
        "{err}"
    );
}
