//! `config.udp_pack` (src/runtime/pack.rs): with two workers, requests from
//! many source ports all reach the first worker while the load is light;
//! once that worker is busy the kernel spreads them over both, and after a
//! quiet second they are packed again. Without `udp_pack` the ports spread
//! from the start. Each reply's reason names the worker that answered it
//! (`$pp`, the worker thread's id, as MI `ps` lists it).

mod common;

use common::{stat, udp_exchange, Proxy};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn script(pack: bool) -> String {
    format!(
        r#"config = {{
  listen = {{ "udp:127.0.0.1:{{PORT}}" }},
  children = 2,
  udp_pack = {pack},
  log_level = "info",
}}
function route.main()
  if sip.pv.get("$rU") == "busy" then
    local t = os.clock()
    while os.clock() - t < 0.004 do end
  end
  sip.signaling.send_reply(200, "OK $pp")
end
"#
    )
}

/// Sends an OPTIONS to `user` from a fresh socket (a new source port) and
/// returns the id of the worker that answered.
fn ask(port: u16, user: &str, n: usize) -> Option<String> {
    let msg = format!("OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {{LOCAL}};branch=z9hG4bKpack{{LPORT}}x{n}\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: pack-{n}-{{LPORT}}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    let r = udp_exchange(&format!("127.0.0.1:{port}"), &msg, Duration::from_secs(3))?;
    let first = r.lines().next()?;
    first.strip_prefix("SIP/2.0 200 OK ").map(str::to_string)
}

/// The workers that answered `n` requests to `user`, each from its own port.
fn workers(port: u16, user: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|i| ask(port, user, i).unwrap_or_else(|| panic!("no answer to request {i}")))
        .collect()
}

#[test]
fn a_light_load_stays_on_one_worker_and_a_heavy_one_spreads() {
    let p = Proxy::start(&script(true));
    let port = p.port;
    let light = workers(port, "light", 40);
    assert_eq!(light.len(), 1, "40 source ports at a light load: {light:?}");

    // Four callers, each waiting for its answer before the next request:
    // the first worker, alone, would be busy all the time.
    let t = Instant::now();
    let busy: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                let mut seen = BTreeSet::new();
                let mut i = 0;
                while t.elapsed() < Duration::from_millis(1500) {
                    if let Some(w) = ask(port, "busy", c * 10_000 + i) {
                        seen.insert(w);
                    }
                    i += 1;
                }
                seen
            })
        })
        .collect();
    let mut heavy = BTreeSet::new();
    for b in busy {
        heavy.extend(b.join().expect("caller"));
    }
    assert_eq!(heavy.len(), 2, "a heavy load reached {heavy:?}");
    assert!(heavy.is_superset(&light));

    // A quiet second and more: packed again.
    std::thread::sleep(Duration::from_millis(1500));
    let again = workers(port, "light", 40);
    assert_eq!(again, light, "after the load");
    let log = p.stop();
    assert_eq!(stat(&log, "core:udp_packed"), 1, "{log}");
    assert!(stat(&log, "core:udp_spreads") >= 1, "{log}");
}

#[test]
fn without_packing_the_kernel_spreads_source_ports() {
    let p = Proxy::start(&script(false));
    let seen = workers(p.port, "light", 40);
    // 40 ports hashed over two sockets, all on one: 2^-39.
    assert_eq!(seen.len(), 2, "{seen:?}");
    let log = p.stop();
    assert_eq!(stat(&log, "core:udp_packed"), 0, "{log}");
}
