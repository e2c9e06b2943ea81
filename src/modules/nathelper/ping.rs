//! NAT keepalives (nathelper.c `nh_timer`, sip_pinger.h): every
//! `natping_interval` seconds each registered contact (with
//! `ping_nated_only`, each carrying usrloc's `nat_bflag`) gets either an
//! OPTIONS request (`sipping_method`, when it carries `sipping_bflag`) or
//! a 4-byte UDP keepalive, sent from the socket it registered through to
//! where it registered from (Path, else `received`, else its URI). The
//! contacts are spread over the interval: each second pings those whose
//! id falls on that second. A contact with `remove_on_timeout_bflag`
//! that leaves `max_pings_lost` pings in a row unanswered for
//! `ping_threshold` seconds is removed from usrloc. A contact with
//! `sipping_latency_flag` has each ping's latency kept in usrloc (µs;
//! `LATENCY_ON_TIMEOUT` for one unanswered past `ping_threshold`).
//!
//! The task runs on the first worker, between messages: OPTIONS pings are
//! local requests of the transaction layer (their replies are absorbed
//! by it on whichever worker gets them) and the database reads of
//! db_mode 3 suspend the task, never a route.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{conf, NhConf, NATHELPER};
use crate::mi::{opt, Command, Ctx, Kind, MiError, Params};
use crate::modules::usrloc::{self, store, Contact};
use crate::proxy::context::{Dest, OutKind, Outgoing};
use crate::proxy::phases::Phases;
use crate::proxy::tm::locate::{self, resolve};
use crate::proxy::tm::uac::{self, LocalRequest};
use crate::sip::{NameAddr, Uri};
use crate::transport::Proto;

/// MI `nh_enable_ping`: pinging on (the default) or off.
/// (The registry's long-lived state: a reload keeps it.)
struct Enabled(AtomicBool);

impl Default for Enabled {
    fn default() -> Enabled {
        Enabled(AtomicBool::new(true))
    }
}

/// A ping whose answer is awaited (nh_table.c `ping_cell`).
struct Cell {
    table: String,
    aor: String,
    sent: Instant,
    pending: bool,
    /// Pings in a row left unanswered.
    missed: u32,
    /// The contact carries `remove_on_timeout_bflag`.
    remove: bool,
    /// The contact carries `sipping_latency_flag`.
    latency: bool,
}

/// The latency kept for a ping left unanswered: 30 minutes in µs, as
/// OpenSIPS's nathelper.c reports it.
const LATENCY_ON_TIMEOUT: i32 = 1_800_000_000;

/// Keeps a contact's ping latency in usrloc (memory only).
fn set_latency(table: &str, aor: &str, id: u64, us: i32) {
    if let Ok(d) = store::domain(table) {
        d.set_latency(aor, id, us);
    }
}

/// The pings awaited (the registry's long-lived state: a reload keeps it).
#[derive(Default)]
struct Cells(Mutex<HashMap<u64, Cell>>);

fn cells() -> Arc<Cells> {
    crate::state::state::<Cells>()
}

impl Cells {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Cell>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn has(ct: &Contact, bit: Option<u32>) -> bool {
    bit.is_some_and(|b| ct.cflags & (1u64 << b) != 0)
}

/// Where a contact is pinged: the first Path hop, else `received`, else
/// its URI (usrloc `get_domain_ucontacts`' next hop).
fn next_hop(ct: &Contact) -> String {
    if let Some(first) = ct.path.as_deref().and_then(|p| p.split(',').next()) {
        if let Ok(na) = NameAddr::parse(first.trim()) {
            return na.uri.to_string();
        }
    }
    ct.received.clone().unwrap_or_else(|| ct.uri.clone())
}

/// The transport towards the hop: its `transport` parameter, else the
/// socket it registered through, else UDP.
fn hop_proto(hop: &str, ct: &Contact) -> Proto {
    let by_uri = Uri::parse(hop)
        .ok()
        .and_then(|u| u.param("transport").flatten().and_then(Proto::parse));
    let by_socket = ct
        .socket
        .as_deref()
        .and_then(|s| s.split(':').next())
        .and_then(Proto::parse);
    by_uri.or(by_socket).unwrap_or(Proto::Udp)
}

/// Whether a contact is pinged in second `tick` of the round.
fn due(ct: &Contact, tick: u64, interval: u64) -> bool {
    interval > 0 && ct.id % interval == tick % interval
}

/// The answer to an OPTIONS ping (any worker): a final reply that is not
/// in `sipping_ignore_rpl_codes` shows the contact alive.
fn answered(id: u64, code: u16) {
    if code == 408 || conf().ignore_codes.contains(&code) {
        return;
    }
    let Some(cell) = cells().lock().remove(&id) else {
        return;
    };
    if cell.latency && cell.pending {
        let us = cell.sent.elapsed().as_micros();
        let us = i32::try_from(us).unwrap_or(LATENCY_ON_TIMEOUT);
        set_latency(&cell.table, &cell.aor, id, us);
    }
}

/// Pings left unanswered past `ping_threshold`: counted, and a contact
/// that may be removed goes after `max_pings_lost` of them.
async fn check_timeouts(c: &NhConf) {
    let now = Instant::now();
    let threshold = Duration::from_secs(c.ping_threshold);
    let stale = Duration::from_secs(c.natping_interval.max(1) * 2) + threshold;
    let mut gone = Vec::new();
    let mut late = Vec::new();
    {
        let cells = cells();
        let mut map = cells.lock();
        map.retain(|id, cell| {
            if !cell.pending {
                // Not pinged again (the contact left): forgotten.
                return now.duration_since(cell.sent) < stale;
            }
            if now.duration_since(cell.sent) < threshold {
                return true;
            }
            if cell.latency {
                late.push((*id, cell.table.clone(), cell.aor.clone()));
            }
            if !cell.remove {
                return false;
            }
            cell.pending = false;
            cell.missed += 1;
            if cell.missed >= c.max_pings_lost {
                gone.push((*id, cell.table.clone(), cell.aor.clone()));
                return false;
            }
            true
        });
    }
    for (id, table, aor) in late {
        set_latency(&table, &aor, id, LATENCY_ON_TIMEOUT);
    }
    for (id, table, aor) in gone {
        let Ok(d) = store::domain(&table) else { continue };
        let r = d
            .update(&aor, true, |v| {
                let before = v.len();
                v.retain(|ct| ct.id != id);
                before != v.len()
            })
            .await;
        match r {
            Ok(true) => {
                NATHELPER.removed_contacts.inc();
                tracing::info!("nathelper: contact {id} of {aor} removed: {} pings unanswered", c.max_pings_lost);
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("nathelper: removing contact {id} of {aor}: {e}"),
        }
    }
}

/// One OPTIONS ping (sip_pinger.h `build_sipping`) through a local
/// transaction.
fn sip_ping(host: &dyn Phases, c: &NhConf, table: &str, aor: &str, ct: &Contact, hop: String) {
    let id = ct.id;
    let headers = match &ct.path {
        Some(p) => format!("Route: {p}\r\n"),
        None => String::new(),
    };
    let req = LocalRequest {
        method: c.sipping_method.clone(),
        ruri: ct.uri.clone(),
        from: c.sipping_from.clone(),
        to: ct.uri.clone(),
        headers,
        next_hop: Some(hop),
        socket: c.force_socket.clone().or_else(|| ct.socket.clone()),
        ..Default::default()
    };
    let done: uac::Done = Arc::new(move |code| answered(id, code));
    match uac::send(host, &req, Some(done)) {
        Ok(true) => {
            NATHELPER.sip_pings.inc();
            let cells = cells();
            let mut map = cells.lock();
            let cell = map.entry(id).or_insert_with(|| Cell {
                table: table.to_string(),
                aor: aor.to_string(),
                sent: Instant::now(),
                pending: false,
                missed: 0,
                remove: false,
                latency: false,
            });
            cell.sent = Instant::now();
            cell.pending = true;
            cell.remove = has(ct, c.rm_on_timeout_bflag);
            cell.latency = has(ct, c.sipping_latency_flag);
        }
        Ok(false) => {}
        Err(e) => tracing::debug!("nathelper: cannot ping {}: {e}", ct.uri),
    }
}

/// A 4-byte UDP keepalive (nathelper.c `sbuf`).
fn udp_ping(host: &dyn Phases, c: &NhConf, ct: &Contact, hop: &str) {
    let Ok(to) = resolve(hop, true).or_else(|_| resolve(hop, false)) else {
        tracing::debug!("nathelper: cannot locate {hop}");
        return;
    };
    let st = host.current();
    let sockets = &st.env.sockets;
    let spec = c.force_socket.as_deref().or(ct.socket.as_deref());
    let prefer = spec.and_then(|s| {
        sockets
            .list
            .iter()
            .find(|x| x.spec().eq_ignore_ascii_case(s))
            .map(|x| x.id)
    });
    let Some(sock) = sockets.pick(Proto::Udp, to.addr.ip(), prefer) else {
        return;
    };
    st.call.borrow_mut().outbox.push(Outgoing {
        bytes: bytes::Bytes::from_static(&[0, 0, 0, 0]),
        proto: Proto::Udp,
        dest: Dest::Addr(to.addr),
        socket: sock.id,
        kind: OutKind::LocalReply,
    });
    NATHELPER.udp_pings.inc();
}

/// Second `tick` of the round: the contacts due now are pinged.
async fn round(worker: &Rc<crate::proxy::worker::Worker>, c: &NhConf, tick: u64) {
    let nat_bflag = usrloc::conf().nat_bflag;
    for d in store::all() {
        let interval = c.natping_interval.max(1);
        let list = match d.scan(Some((interval, tick % interval))).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("nathelper: reading contacts of {}: {e}", d.name);
                continue;
            }
        };
        let due_now: Vec<_> = list
            .into_iter()
            .filter(|(_, ct)| {
                due(ct, tick, c.natping_interval) && (!c.ping_nated_only || has(ct, nat_bflag))
            })
            .map(|(aor, ct)| {
                let hop = next_hop(&ct);
                (aor, ct, hop)
            })
            .filter(|(_, ct, hop)| hop_proto(hop, ct) == Proto::Udp || c.natping_tcp)
            .collect();
        // Contacts given by host name: looked up first, never on the spot.
        let names = locate::uncached(due_now.iter().map(|(_, _, hop)| hop.clone()));
        locate::lookup_all(names).await;
        let host = worker.host();
        for (aor, ct, hop) in due_now {
            match has(&ct, c.sipping_bflag) {
                true => sip_ping(&*host, c, &d.name, &aor, &ct, hop),
                false => udp_ping(&*host, c, &ct, &hop),
            }
        }
        worker.flush().await;
    }
}

/// The pinging task of the first worker: one step a second (the interval
/// is read again each time, so a reload takes effect).
pub async fn run(worker: Rc<crate::proxy::worker::Worker>) {
    let mut tick = 0u64;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let c = conf();
        if c.natping_interval == 0 {
            continue;
        }
        tick += 1;
        check_timeouts(&c).await;
        if crate::state::state::<Enabled>().0.load(Ordering::Relaxed) {
            round(&worker, &c, tick).await;
        }
    }
}

fn nh_enable_ping(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    if conf().natping_interval == 0 {
        return Err(MiError::new(400, "NATping disabled from script"));
    }
    match p.int("status") {
        None => Ok(json!({ "Status": u8::from(crate::state::state::<Enabled>().0.load(Ordering::Relaxed)) })),
        Some(n) => {
            crate::state::state::<Enabled>().0.store(n != 0, Ordering::Relaxed);
            Ok(Value::String("OK".into()))
        }
    }
}

pub static COMMANDS: &[Command] = &[Command {
    name: "nh_enable_ping",
    help: "Without `status`: whether NAT pinging is on. With `status` 0 or 1: turns it off or on (400 when `natping_interval` is 0).",
    module: "nathelper",
    params: &[opt("status", Kind::Int)],
    result: "`{\"Status\": 1}`; `\"OK\"`",
    handler: nh_enable_ping,
}];

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(id: u64) -> Contact {
        Contact {
            id,
            uri: "sip:a@10.0.0.5:5060".into(),
            socket: Some("udp:127.0.0.1:5060".into()),
            ..Default::default()
        }
    }

    #[test]
    fn where_and_when_a_contact_is_pinged() {
        let mut c = ct(7);
        assert_eq!(next_hop(&c), "sip:a@10.0.0.5:5060");
        c.received = Some("sip:203.0.113.5:40000".into());
        assert_eq!(next_hop(&c), "sip:203.0.113.5:40000");
        c.path = Some("<sip:edge.example;lr>,<sip:core;lr>".into());
        assert_eq!(next_hop(&c), "sip:edge.example;lr");
        assert_eq!(hop_proto("sip:x;transport=tcp", &c), Proto::Tcp);
        assert_eq!(hop_proto("sip:x", &c), Proto::Udp);
        c.socket = Some("tcp:127.0.0.1:5060".into());
        assert_eq!(hop_proto("sip:x", &c), Proto::Tcp);
        // Spread: each contact once per interval.
        let hits = (1..=10).filter(|t| due(&ct(7), *t, 5)).count();
        assert_eq!(hits, 2);
        c.cflags = 1 << 40;
        assert!(has(&c, Some(40)));
        assert!(!has(&c, Some(3)));
        assert!(!has(&c, None));
    }
}
