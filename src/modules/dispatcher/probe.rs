//! Probing (OpenSIPS dispatcher `ds_ping_*`): every `ds_ping_interval`
//! seconds an OPTIONS (or `ds_ping_method`) goes to each destination that
//! needs one — those in probing state, or every destination not disabled
//! with `ds_probing_mode = 1`. A 200 (or a code in `options_reply_codes`)
//! brings a destination back to active; with `ds_probing_mode = 1`, a
//! timeout or another code counts a failure, and `ds_probing_threshold`
//! failures in a row put an active destination into probing.
//!
//! Probes are local requests of the transaction layer (`local_route` sees
//! them); they are sent from a task of the first worker and their replies
//! are handled by whichever worker receives them, so no worker waits.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mlua::{Table, Value};

use super::sets::{self, ACTIVE, INACTIVE, PROBING};
use crate::proxy::phases::Phases;
use crate::proxy::tm::uac::{self, LocalRequest};

/// The probing parameters (module-wide, as in OpenSIPS).
#[derive(Debug, Clone)]
pub struct ProbeConf {
    /// 0: probing off.
    pub interval: Duration,
    pub method: String,
    pub from: String,
    pub maxfwd: Option<u32>,
    pub sock: Option<String>,
    pub threshold: u32,
    /// 0: probe only destinations in probing state; 1: all but inactive.
    pub mode: u8,
    /// Only these sets (empty: all).
    pub list: Vec<i64>,
    /// Codes besides 200 that count as alive.
    pub reply_codes: Vec<u16>,
}

impl Default for ProbeConf {
    fn default() -> Self {
        ProbeConf {
            interval: Duration::ZERO,
            method: "OPTIONS".into(),
            from: "sip:dispatcher@localhost".into(),
            maxfwd: None,
            sock: None,
            threshold: 3,
            mode: 0,
            list: Vec::new(),
            reply_codes: Vec::new(),
        }
    }
}

/// The probing parameters in force (the registry of this thread's
/// environment).
pub fn conf() -> Arc<ProbeConf> {
    crate::state::module::<ProbeConf>()
}

fn get<T: mlua::FromLua>(t: &Table, key: &str) -> Result<Option<T>, String> {
    match t.get::<Value>(key).map_err(|e| e.to_string())? {
        Value::Nil => Ok(None),
        _ => t
            .get::<T>(key)
            .map(Some)
            .map_err(|e| format!("config.modules.dispatcher.{key}: {e}")),
    }
}

/// `1,2, 3` → numbers; the error names the key.
fn number_list<T: std::str::FromStr>(key: &str, s: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| {
            x.parse()
                .map_err(|_| format!("config.modules.dispatcher.{key}: '{x}' is not a number"))
        })
        .collect()
}

/// Reads the `ds_ping_*` / `ds_probing_*` / `options_reply_codes` keys of
/// `config.modules.dispatcher`.
pub fn parse(t: &Table) -> Result<ProbeConf, String> {
    let mut c = ProbeConf::default();
    if let Some(n) = get::<i64>(t, "ds_ping_interval")? {
        c.interval = Duration::from_secs(n.max(0) as u64);
    }
    if let Some(m) = get::<String>(t, "ds_ping_method")? {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!(
                "config.modules.dispatcher.ds_ping_method: '{m}' is not a method"
            ));
        }
        c.method = m.to_ascii_uppercase();
    }
    if let Some(f) = get::<String>(t, "ds_ping_from")? {
        if crate::sip::uri::Uri::parse(&f).is_err() {
            return Err(format!(
                "config.modules.dispatcher.ds_ping_from: '{f}' is not a URI"
            ));
        }
        c.from = f;
    }
    if let Some(n) = get::<i64>(t, "ds_ping_maxfwd")? {
        c.maxfwd = Some(n.clamp(0, 255) as u32);
    }
    if let Some(s) = get::<String>(t, "ds_probing_sock")? {
        crate::config::parse_listen(&s)
            .map_err(|e| format!("config.modules.dispatcher.ds_probing_sock: {e}"))?;
        c.sock = Some(s);
    }
    if let Some(n) = get::<i64>(t, "ds_probing_threshold")? {
        c.threshold = n.max(1) as u32;
    }
    if let Some(n) = get::<i64>(t, "ds_probing_mode")? {
        if !(0..=1).contains(&n) {
            return Err("config.modules.dispatcher.ds_probing_mode must be 0 or 1".into());
        }
        c.mode = n as u8;
    }
    match t
        .get::<Value>("ds_probing_list")
        .map_err(|e| e.to_string())?
    {
        Value::Nil => {}
        Value::Integer(i) => c.list = vec![i],
        Value::Table(l) => {
            for v in l.sequence_values::<i64>() {
                c.list.push(
                    v.map_err(|e| format!("config.modules.dispatcher.ds_probing_list: {e}"))?,
                );
            }
        }
        v => {
            let s = string_of("ds_probing_list", v)?;
            c.list = number_list("ds_probing_list", &s)?;
        }
    }
    match t
        .get::<Value>("options_reply_codes")
        .map_err(|e| e.to_string())?
    {
        Value::Nil => {}
        Value::Integer(i) => c.reply_codes = vec![i.clamp(100, 699) as u16],
        Value::Table(l) => {
            for v in l.sequence_values::<u16>() {
                c.reply_codes.push(
                    v.map_err(|e| format!("config.modules.dispatcher.options_reply_codes: {e}"))?,
                );
            }
        }
        v => {
            let s = string_of("options_reply_codes", v)?;
            c.reply_codes = number_list("options_reply_codes", &s)?;
        }
    }
    Ok(c)
}

fn string_of(key: &str, v: Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.to_str().map_err(|e| e.to_string())?.to_string()),
        other => Err(format!(
            "config.modules.dispatcher.{key}: expected a string, not {}",
            other.type_name()
        )),
    }
}

/// Whether a destination in `state` gets a probe.
pub fn wants_probe(c: &ProbeConf, setid: i64, state: u8) -> bool {
    state != INACTIVE
        && (c.mode == 1 || state == PROBING)
        && (c.list.is_empty() || c.list.contains(&setid))
}

/// What a probe's final code does to a destination (OpenSIPS semantics).
pub fn on_result(c: &ProbeConf, partition: &str, setid: i64, d: &sets::Dest, code: u16) {
    let state = d.state();
    if state == INACTIVE {
        // Disabled by an operator meanwhile: probes do not override that.
        return;
    }
    if code == 200 || c.reply_codes.contains(&code) {
        d.failures.store(0, Ordering::Relaxed);
        if state != ACTIVE {
            super::set_state(partition, setid, d, ACTIVE);
        }
    } else if state == ACTIVE && c.mode == 1 {
        let n = d.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= c.threshold {
            d.failures.store(c.threshold, Ordering::Relaxed);
            super::set_state(partition, setid, d, PROBING);
        }
    }
}

/// The URIs the next round probes.
fn probe_uris() -> Vec<String> {
    let c = conf();
    let all = super::current();
    let mut out = Vec::new();
    for p in &all.partitions {
        for set in p.sets.iter() {
            for d in set.dests.iter().filter(|d| wants_probe(&c, set.id, d.state())) {
                out.push(d.uri.clone());
            }
        }
    }
    out
}

/// Sends one round of probes.
pub fn probe_round(host: &dyn Phases) {
    let c = conf();
    let all = super::current();
    for p in &all.partitions {
        for set in p.sets.iter() {
            for d in &set.dests {
                if !wants_probe(&c, set.id, d.state()) {
                    continue;
                }
                let (part, setid, uri) = (p.name.clone(), set.id, d.uri.clone());
                let cc = c.clone();
                let done: uac::Done = Arc::new(move |code| {
                    let cur = super::current();
                    let found = cur
                        .partition(Some(&part))
                        .and_then(|p| p.set(setid))
                        .and_then(|s| s.dests.iter().find(|d| d.uri == uri));
                    match found {
                        Some(d) => on_result(&cc, &part, setid, d, code),
                        None => tracing::debug!(
                            "dispatcher: probe of {uri} ended {code}; destination gone"
                        ),
                    }
                });
                let req = LocalRequest {
                    method: c.method.clone(),
                    ruri: d.uri.clone(),
                    from: c.from.clone(),
                    to: d.uri.clone(),
                    socket: d.socket.clone().or(c.sock.clone()),
                    max_forwards: c.maxfwd,
                    ..Default::default()
                };
                match uac::send(host, &req, Some(done)) {
                    Ok(true) => super::exports::DISPATCHER.probes_sent.inc(),
                    // local_route dropped it: no probe, no verdict.
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!("dispatcher: cannot probe {}: {e}", d.uri);
                        // An unreachable destination fails its probe at once.
                        on_result(&c, &p.name, set.id, d, 408);
                    }
                }
            }
        }
    }
}

/// The probing task of the first worker: a round every `ds_ping_interval`
/// (re-read each second, so a reload that changes it takes effect).
pub async fn run(worker: std::rc::Rc<crate::proxy::worker::Worker>) {
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let every = conf().interval;
        if every.is_zero() || last.elapsed() < every {
            continue;
        }
        last = tokio::time::Instant::now();
        // Destinations given by name are located first (RFC 3263, off the
        // worker's thread of control: this task waits, the worker serves).
        crate::proxy::tm::locate::lookup_all(crate::proxy::tm::locate::uncached(probe_uris())).await;
        probe_round(&*worker.host());
        worker.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<ProbeConf, String> {
        let lua = mlua::Lua::new();
        let t: Table = lua.load(text).eval().map_err(|e| e.to_string())?;
        parse(&t)
    }

    #[test]
    fn parameters_parse_with_opensips_defaults() {
        let c = parsed("return {}").expect("ok");
        assert_eq!(c.interval, Duration::ZERO);
        assert_eq!((c.method.as_str(), c.threshold, c.mode), ("OPTIONS", 3, 0));
        let c = parsed(
            r#"return { ds_ping_interval = 10, ds_ping_method = "info", ds_probing_threshold = 2,
                ds_probing_mode = 1, ds_probing_list = "1, 3", options_reply_codes = "501,403",
                ds_ping_from = "sip:probe@lb.example" }"#,
        )
        .expect("ok");
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!(c.method, "INFO");
        assert_eq!(c.list, vec![1, 3]);
        assert_eq!(c.reply_codes, vec![501, 403]);
        assert_eq!(c.from, "sip:probe@lb.example");
        assert!(parsed("return { ds_probing_mode = 2 }").is_err());
        assert!(parsed("return { options_reply_codes = '5o1' }").is_err());
        assert!(parsed("return { ds_ping_from = 'not a uri' }").is_err());
    }

    #[test]
    fn which_destinations_get_probes() {
        let mut c = ProbeConf::default();
        assert!(!wants_probe(&c, 1, ACTIVE));
        assert!(wants_probe(&c, 1, PROBING));
        assert!(!wants_probe(&c, 1, INACTIVE));
        c.mode = 1;
        assert!(wants_probe(&c, 1, ACTIVE));
        assert!(!wants_probe(&c, 1, INACTIVE));
        c.list = vec![2];
        assert!(!wants_probe(&c, 1, ACTIVE));
        assert!(wants_probe(&c, 2, ACTIVE));
    }

    #[test]
    fn threshold_failures_then_one_success() {
        let row = sets::Row {
            setid: 1,
            uri: "sip:10.0.0.1".into(),
            weight: 1,
            ..Default::default()
        };
        let d = sets::build_dest(&row, &[]).expect("dest");
        let c = ProbeConf {
            mode: 1,
            threshold: 2,
            ..Default::default()
        };
        on_result(&c, "default", 1, &d, 408);
        assert_eq!(d.state(), ACTIVE);
        on_result(&c, "default", 1, &d, 503);
        assert_eq!(d.state(), PROBING);
        on_result(&c, "default", 1, &d, 200);
        assert_eq!(d.state(), ACTIVE);
        // Mode 0: failures never take an active destination down.
        let c0 = ProbeConf::default();
        for _ in 0..5 {
            on_result(&c0, "default", 1, &d, 408);
        }
        assert_eq!(d.state(), ACTIVE);
        // An operator's inactive stays inactive whatever the probe says.
        d.set_state(INACTIVE);
        on_result(&c, "default", 1, &d, 200);
        assert_eq!(d.state(), INACTIVE);
    }
}
