//! The dialogs in memory, shared by every worker (OpenSIPS dialog's
//! `d_table`): each dialog under its id (`h_entry`, `h_id`, written as
//! the `did` Record-Route parameter) and found again by Call-ID and tags.
//! The state machine follows OpenSIPS 3.4's states (1 unconfirmed,
//! 2 early, 3 confirmed without ACK, 4 confirmed, 5 deleted).

use dashmap::DashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::proxy::context::Value;

pub const UNCONFIRMED: u8 = 1;
pub const EARLY: u8 = 2;
pub const CONFIRMED_NA: u8 = 3;
pub const CONFIRMED: u8 = 4;
pub const DELETED: u8 = 5;

/// create_dialog flags (OpenSIPS `DLG_FLAG_*` values).
pub const FLAG_BYE_ON_TIMEOUT: u32 = 1 << 3;
pub const FLAG_PING_CALLER: u32 = 1 << 5;
pub const FLAG_PING_CALLEE: u32 = 1 << 6;
pub const FLAG_REINVITE_PING_CALLER: u32 = 1 << 11;
pub const FLAG_REINVITE_PING_CALLEE: u32 = 1 << 12;
/// OpenSIPS `DLG_FLAG_SELF_EXTENDED_TIMEOUT`: a backup prolonged it once.
pub const FLAG_SELF_EXTENDED: u32 = 1 << 18;

/// Where a leg's last in-dialog ping stands (OpenSIPS dlg_hash.h
/// `DLG_PING_SUCCESS` / `_PENDING` / `_FAIL`): a ping goes out only
/// after the last one was answered; a failed one ends the dialog on the
/// timer's next pass.
pub const PING_OK: u8 = 0;
pub const PING_PENDING: u8 = 1;
pub const PING_FAIL: u8 = 2;

/// The two sides: the caller (leg 0) and the callee (leg 1).
pub const CALLER: usize = 0;
pub const CALLEE: usize = 1;

/// One side of a dialog as this proxy saw it.
#[derive(Debug, Clone, Default)]
pub struct Leg {
    pub tag: String,
    pub contact: String,
    /// The highest CSeq number of requests this side sent.
    pub cseq: u32,
    /// Route set towards this side (nearest hop first), without our entry.
    pub route_set: Vec<String>,
    /// The socket this side talks to (`proto:host:port`).
    pub bind: Option<String>,
    /// The Contact topology_hiding advertised to this side in the
    /// initial INVITE or its 2xx (OpenSIPS `adv_contact`; the header
    /// value, persisted as the dialog value `Cct` / `cct`).
    pub adv_contact: String,
    /// The last SDP this side sent (OpenSIPS `in_sdp`), and the last one
    /// sent to it when it differs from the other side's (`out_sdp`):
    /// what a re-INVITE ping carries.
    pub in_sdp: String,
    pub out_sdp: String,
    /// The CSeq of the last request this proxy generated towards this
    /// side (OpenSIPS `last_gen_cseq`, the `*_ping_cseq` columns); 0 when
    /// none: then relayed requests keep their CSeq.
    pub last_gen_cseq: u32,
    /// The CSeq a relayed INVITE towards this side got once renumbered
    /// (original, sent): its ACK is renumbered the same.
    pub inv_cseq_map: Option<(u32, u32)>,
    /// The last re-INVITE ping of this side ([`PING_OK`]…).
    pub reinvite: u8,
}

/// One dialog.
#[derive(Debug, Clone)]
pub struct Dlg {
    pub h_entry: u32,
    pub h_id: u32,
    pub callid: String,
    pub from_uri: String,
    pub to_uri: String,
    pub legs: [Leg; 2],
    pub state: u8,
    /// The INVITE's CSeq (the ACK of the 2xx carries it).
    pub inv_cseq: u32,
    /// Unix time of creation, and of the 2xx (`timestart`, `$DLG_lifetime`).
    pub created: i64,
    pub start_ts: i64,
    /// The 2xx's time in milliseconds (CDR `ms_duration`).
    pub start_ms: i64,
    /// Seconds the dialog may last once confirmed (`$DLG_timeout`).
    pub lifetime: u32,
    /// When it times out (set once confirmed).
    pub deadline: Option<Instant>,
    /// create_dialog flags (OpenSIPS `dlg->flags`, the `flags` column).
    pub flags: u32,
    /// Other modules' bits (OpenSIPS `mod_flags`, the `module_flags`
    /// column): topology_hiding's `TOPOH_*`.
    pub mod_flags: u32,
    /// `$DLG_flags` (dialog flags set by the script).
    pub user_flags: u64,
    pub vals: Vec<(String, Value)>,
    /// Profiles it belongs to: (name, value).
    pub profiles: Vec<(String, Option<String>)>,
    pub end_reason: Option<&'static str>,
    /// Unanswered in-dialog OPTIONS pings per leg.
    pub ping_pending: [bool; 2],
    /// When the next re-INVITE pings go out (flags `R`/`r`; set once the
    /// ACK confirms the dialog, or at restore).
    pub reinvite_at: Option<Instant>,
    /// The INVITE went out on a branch (tm took the dialog over).
    pub relayed: bool,
    /// Routes run on its events (`dlg_on_answer` and the like).
    pub routes: DlgRoutes,
    /// `set_dlg_sharing_tag`: the clusterer sharing tag that says whether
    /// this node is in charge of it.
    pub shtag: Option<String>,
}

/// The `route[name]`s a dialog runs on its events (OpenSIPS dialog.c
/// `dlg_on_answer`, `dlg_on_timeout`, `dlg_on_hangup`).
#[derive(Debug, Clone, Default)]
pub struct DlgRoutes {
    pub answer: Option<String>,
    pub timeout: Option<String>,
    pub hangup: Option<String>,
}

pub type DlgRef = Arc<Mutex<Dlg>>;

/// Locks a dialog (a poisoned lock still yields the data).
pub fn lock(d: &DlgRef) -> MutexGuard<'_, Dlg> {
    d.lock().unwrap_or_else(|e| e.into_inner())
}

/// OpenSIPS writes the two numbers of a dialog id as hex digits, least
/// significant first (`int2reverse_hex`), joined by a dot.
fn reverse_hex(mut n: u32, out: &mut String) {
    if n == 0 {
        out.push('0');
    }
    while n > 0 {
        let d = (n & 0xf) as u8;
        out.push(char::from(if d < 10 { b'0' + d } else { b'a' + d - 10 }));
        n >>= 4;
    }
}

/// `did` as OpenSIPS writes it.
pub fn did_of(h_entry: u32, h_id: u32) -> String {
    let mut s = String::with_capacity(12);
    reverse_hex(h_entry, &mut s);
    s.push('.');
    reverse_hex(h_id, &mut s);
    s
}

/// Reads a `did` back; None when it is not two reverse-hex numbers.
pub fn parse_did(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    let num = |t: &str| -> Option<u32> {
        if t.is_empty() || t.len() > 8 {
            return None;
        }
        let mut n: u32 = 0;
        for (i, c) in t.chars().enumerate() {
            n |= c.to_digit(16)? << (4 * i);
        }
        Some(n)
    };
    Some((num(a)?, num(b)?))
}

impl Dlg {
    /// A dialog with its id and Call-ID, everything else empty.
    pub fn new(h_entry: u32, h_id: u32, callid: String) -> Dlg {
        Dlg {
            h_entry,
            h_id,
            callid,
            from_uri: String::new(),
            to_uri: String::new(),
            legs: Default::default(),
            state: UNCONFIRMED,
            inv_cseq: 0,
            created: 0,
            start_ts: 0,
            start_ms: 0,
            lifetime: 0,
            deadline: None,
            flags: 0,
            mod_flags: 0,
            user_flags: 0,
            vals: Vec::new(),
            profiles: Vec::new(),
            end_reason: None,
            ping_pending: [false; 2],
            reinvite_at: None,
            relayed: false,
            routes: Default::default(),
            shtag: None,
        }
    }

    /// Whether the dialog pings a side by re-INVITE (`R` / `r`).
    pub fn reinvite_pings(&self) -> bool {
        self.flags & (FLAG_REINVITE_PING_CALLER | FLAG_REINVITE_PING_CALLEE) != 0
    }

    /// The CSeq of the next request this proxy sends to `dst` in the
    /// name of the other side, remembered as `dst`'s `last_gen_cseq`
    /// (OpenSIPS dlg_req_within.c `build_dialog_info`): one above the
    /// last generated, or above the other side's own at first (the
    /// callee's before it sent any: the INVITE's, as OpenSIPS seeds the
    /// caller leg). An ACK (`inc` false) takes the last one again.
    pub fn next_cseq(&mut self, dst: usize, inc: bool) -> u32 {
        let src = 1 - dst;
        let base = match self.legs[src].cseq {
            0 => self.inv_cseq,
            n => n,
        };
        let leg = &mut self.legs[dst];
        if leg.last_gen_cseq == 0 {
            leg.last_gen_cseq = base.saturating_add(1);
        } else if inc {
            leg.last_gen_cseq = leg.last_gen_cseq.saturating_add(1);
        }
        self.legs[dst].last_gen_cseq
    }

    pub fn did(&self) -> String {
        did_of(self.h_entry, self.h_id)
    }

    pub fn key(&self) -> u64 {
        key(self.h_entry, self.h_id)
    }

    /// Which leg a request with these tags comes from (OpenSIPS
    /// `match_dialog`): the caller when its From tag is the caller's (and
    /// its To tag the callee's, once known), the callee when reversed.
    pub fn source_leg(&self, callid: &str, ftag: &str, ttag: &str) -> Option<usize> {
        if callid != self.callid {
            return None;
        }
        let (caller, callee) = (&self.legs[CALLER].tag, &self.legs[CALLEE].tag);
        if ftag == caller && (callee.is_empty() || ttag == callee) {
            Some(CALLER)
        } else if !callee.is_empty() && ftag == callee && ttag == caller {
            Some(CALLEE)
        } else {
            None
        }
    }

    /// Seconds left before the timeout (`$DLG_timeout`): the lifetime
    /// before the 2xx, 0 once deleted.
    pub fn timeout_left(&self) -> i64 {
        match (self.state, self.deadline) {
            (DELETED, _) => 0,
            (s, Some(d)) if s >= CONFIRMED_NA => {
                d.saturating_duration_since(Instant::now()).as_secs() as i64
            }
            _ => i64::from(self.lifetime),
        }
    }

    /// Sets the lifetime; a confirmed dialog's deadline moves with it.
    pub fn set_lifetime(&mut self, secs: u32) {
        self.lifetime = secs;
        if self.state >= CONFIRMED_NA && self.state < DELETED {
            self.deadline = Some(Instant::now() + Duration::from_secs(u64::from(secs)));
        }
    }
}

pub fn key(h_entry: u32, h_id: u32) -> u64 {
    (u64::from(h_entry) << 32) | u64::from(h_id)
}

/// Every dialog in memory.
pub struct Table {
    pub dlgs: DashMap<u64, DlgRef>,
    by_callid: DashMap<String, Vec<u64>>,
    next_id: AtomicU32,
    pub hash_size: AtomicU32,
}

impl Default for Table {
    fn default() -> Table {
        Table {
            dlgs: DashMap::new(),
            by_callid: DashMap::new(),
            next_id: AtomicU32::new(1),
            hash_size: AtomicU32::new(4096),
        }
    }
}

/// The dialogs in memory: the registry's long-lived state (a reload
/// keeps them).
pub fn table() -> Arc<Table> {
    crate::state::state::<Table>()
}

fn hash_entry(callid: &str, size: u32) -> u32 {
    // FNV-1a: cheap, stable across restarts (a dialog restored from the
    // database keeps its id).
    let mut h: u32 = 0x811c_9dc5;
    for b in callid.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % size.max(1)
}

impl Table {
    /// Makes the id of a new dialog for `callid`.
    pub fn new_id(&self, callid: &str) -> (u32, u32) {
        let h_entry = hash_entry(callid, self.hash_size.load(Ordering::Relaxed));
        (h_entry, self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Keeps ids of restored dialogs from being handed out again.
    pub fn bump_id(&self, h_id: u32) {
        self.next_id.fetch_max(h_id.wrapping_add(1), Ordering::Relaxed);
    }

    pub fn insert(&self, d: Dlg) -> DlgRef {
        let k = d.key();
        let callid = d.callid.clone();
        let r = Arc::new(Mutex::new(d));
        self.dlgs.insert(k, r.clone());
        self.by_callid.entry(callid).or_default().push(k);
        r
    }

    pub fn remove(&self, d: &Dlg) {
        let k = d.key();
        self.dlgs.remove(&k);
        let empty = match self.by_callid.get_mut(&d.callid) {
            Some(mut v) => {
                v.retain(|x| *x != k);
                v.is_empty()
            }
            None => false,
        };
        if empty {
            self.by_callid.remove_if(&d.callid, |_, v| v.is_empty());
        }
    }

    pub fn by_did(&self, did: &str) -> Option<DlgRef> {
        let (e, i) = parse_did(did)?;
        self.dlgs.get(&key(e, i)).map(|r| r.clone())
    }

    /// The dialogs with this Call-ID.
    pub fn by_callid(&self, callid: &str) -> Vec<DlgRef> {
        let keys = match self.by_callid.get(callid) {
            Some(v) => v.clone(),
            None => return Vec::new(),
        };
        keys.iter()
            .filter_map(|k| self.dlgs.get(k).map(|r| r.clone()))
            .collect()
    }

    /// The dialog a request with these identifiers belongs to, and the
    /// leg it comes from (Call-ID/tags matching).
    pub fn by_tags(&self, callid: &str, ftag: &str, ttag: &str) -> Option<(DlgRef, usize)> {
        self.by_callid(callid).into_iter().find_map(|d| {
            let leg = lock(&d).source_leg(callid, ftag, ttag)?;
            Some((d, leg))
        })
    }

    /// A snapshot of every dialog reference.
    pub fn all(&self) -> Vec<DlgRef> {
        self.dlgs.iter().map(|r| r.value().clone()).collect()
    }

    /// Dialogs whose state passes `pred`. The map's shards are not held
    /// while a dialog is locked (`end` locks a dialog, then a shard).
    pub fn count_state(&self, pred: impl Fn(u8) -> bool) -> u64 {
        self.all().iter().filter(|r| pred(lock(r).state)).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_is_reverse_hex_and_reads_back() {
        assert_eq!(did_of(0x1a2, 0x30), "2a1.03");
        assert_eq!(parse_did("2a1.03"), Some((0x1a2, 0x30)));
        assert_eq!(did_of(0, 0), "0.0");
        for bad in ["", ".", "1.", "x.1", "1.2.3", "123456789.1", "1;2"] {
            assert_eq!(parse_did(bad), None, "{bad}");
        }
    }

    #[test]
    fn tags_tell_the_leg() {
        let t = Table {
            dlgs: DashMap::new(),
            by_callid: DashMap::new(),
            next_id: AtomicU32::new(1),
            hash_size: AtomicU32::new(16),
        };
        let mut d = Dlg::new(1, 2, "c".into());
        d.state = CONFIRMED;
        d.legs[CALLER].tag = "a".into();
        d.legs[CALLEE].tag = "b".into();
        let r = t.insert(d);
        assert_eq!(t.by_tags("c", "a", "b").map(|x| x.1), Some(CALLER));
        assert_eq!(t.by_tags("c", "b", "a").map(|x| x.1), Some(CALLEE));
        assert!(t.by_tags("c", "a", "x").is_none());
        assert!(t.by_tags("other", "a", "b").is_none());
        t.remove(&lock(&r));
        assert!(t.by_tags("c", "a", "b").is_none());
        assert!(t.by_callid.is_empty());
    }

    #[test]
    fn generated_cseqs_go_up_per_side_and_an_ack_repeats_its_invite() {
        // OpenSIPS dlg_req_within.c build_dialog_info.
        let mut d = Dlg::new(1, 2, "c".into());
        d.inv_cseq = 7;
        d.legs[CALLER].cseq = 7;
        assert_eq!(d.next_cseq(CALLEE, true), 8);
        assert_eq!(d.next_cseq(CALLEE, false), 8);
        assert_eq!(d.next_cseq(CALLEE, true), 9);
        // Towards the caller: above the INVITE's until the callee sent one.
        assert_eq!(d.next_cseq(CALLER, true), 8);
        let mut e = Dlg::new(1, 3, "c".into());
        e.legs[CALLEE].cseq = 40;
        assert_eq!(e.next_cseq(CALLER, true), 41);
        assert_eq!(e.legs[CALLEE].cseq, 40, "the side's own CSeq is not touched");
    }
}
