//! Route types other than request and reply: startup_route, timer_route,
//! error_route, and the "not allowed here" check.

mod common;

use common::*;
use std::time::Duration;

const SCRIPT: &str = r#"config = { listen = { "udp:127.0.0.1:{PORT}" }, children = 2 }

function startup_route.main()
  sip.xlog("L_INFO", "startup ran\n")
end

local ticks = 0
timer_route.tick = { interval = 0.2, fn = function()
  ticks = ticks + 1
  sip.xlog("L_INFO", "tick " .. ticks .. "\n")
  if ticks == 2 then sip.forward() end
end }

function error_route.main(err)
  sip.xlog("L_INFO", "error route: " .. err.class .. " " .. err.reason .. "\n")
  sip.xlog("L_INFO", "err pv: $err.class $err.info $err.rcode\n")
  sip.sl.sl_send_reply(400, "Custom " .. err.class)
end

function route.main()
  sip.sl.sl_send_reply(200, "OK")
end
"#;

#[test]
fn startup_timer_and_error_routes_run() {
    let proxy = Proxy::start(SCRIPT);
    let bad = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL};branch=z9hG4bKe1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: err1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: many\r\nContent-Length: 0\r\n\r\n";
    let r = udp_exchange(
        &format!("127.0.0.1:{}", proxy.port),
        bad,
        Duration::from_secs(3),
    )
    .expect("a reply");
    assert!(r.starts_with("SIP/2.0 400 Custom parser\r\n"), "{r}");
    std::thread::sleep(Duration::from_millis(1100));
    let log = proxy.stop();
    assert_eq!(log.matches("startup ran").count(), 1, "{log}");
    assert!(log.matches("tick ").count() >= 3, "{log}");
    assert!(log.contains("error route: parser"), "{log}");
    assert!(
        log.contains("err pv: 1 bad max-forwards 400")
            || log.contains("err pv: 1 bad header max-forwards 400"),
        "{log}"
    );
    // forward() in a timer route is refused, naming the function and route type.
    assert!(
        log.contains("sip.forward: not allowed in timer_route"),
        "{log}"
    );
}

#[test]
fn a_bad_timer_route_is_refused_at_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.lua");
    std::fs::write(&path, "config = { listen = { \"udp:127.0.0.1:5999\" } }\nfunction route.main() end\ntimer_route.x = { interval = 0, fn = function() end }\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("t.lua:3: timer_route.x: interval"), "{err}");
}
