//! Re-INVITE pinging (create_dialog flags `R` caller, `r` callee;
//! OpenSIPS 3.4 dlg_timer.c `dlg_reinvite_routine`, dlg_req_within.c
//! `send_leg_msg`). Every `reinvite_ping_interval` seconds after the ACK
//! confirmed the dialog, a pinged side whose last ping was answered gets
//! an in-dialog INVITE in the other side's name: our Contact as
//! advertised to it (topology hiding) or the other side's, and the SDP
//! it was last sent (`out_sdp`, else what the other side last sent). A
//! 2xx gets an ACK with the INVITE's CSeq; a 408 (or no answer) or a 481
//! marks the side failed, and the next pass ends the dialog with BYEs
//! both ways (`$DLG_end_reason` "Caller ReINVITE Ping Timeout" or
//! "Callee ReINVITE Ping Timeout"). Other answers count as alive.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::store::{self, lock, DlgRef, CALLEE, CALLER, PING_FAIL, PING_OK, PING_PENDING};
use super::timer::{end_with_byes, push, request, Job};
use crate::proxy::tm::uac;
use crate::proxy::worker::Worker;

/// `reinvite_ping_interval` in force.
pub fn reinvite_interval() -> Duration {
    Duration::from_secs(u64::from(super::conf().reinvite_ping_interval))
}

/// The flag that pings `leg`.
fn flag(leg: usize) -> u32 {
    if leg == CALLER {
        store::FLAG_REINVITE_PING_CALLER
    } else {
        store::FLAG_REINVITE_PING_CALLEE
    }
}

/// One timer pass for dialog `r`: a failed side ends it; else, when its
/// time came, the sides whose last ping was answered are pinged again.
pub fn reinvite_due(w: &Rc<Worker>, r: &DlgRef, now: Instant) {
    let (failed, due) = {
        let d = lock(r);
        if d.state != store::CONFIRMED || !d.reinvite_pings() {
            return;
        }
        // dlg_timer.c `dlg_reinvite_routine`: a backup node of the
        // dialog's sharing tag does not ping.
        if super::timer::is_backup(&d) {
            return;
        }
        let failed = [CALLER, CALLEE]
            .into_iter()
            .find(|l| d.flags & flag(*l) != 0 && d.legs[*l].reinvite == PING_FAIL);
        (failed, d.reinvite_at.is_some_and(|t| t <= now))
    };
    if let Some(leg) = failed {
        let reason = if leg == CALLER {
            "Caller ReINVITE Ping Timeout"
        } else {
            "Callee ReINVITE Ping Timeout"
        };
        tracing::info!("dialog: {reason}, ending the dialog with BYEs");
        end_with_byes(w, r, reason, true);
        return;
    }
    if !due {
        return;
    }
    lock(r).reinvite_at = Some(now + reinvite_interval());
    for leg in [CALLER, CALLEE] {
        let ready = {
            let d = lock(r);
            d.flags & flag(leg) != 0 && d.legs[leg].reinvite == PING_OK
        };
        if ready {
            send_reinvite(w, r, leg);
        }
    }
}

/// The re-INVITE to `leg`.
fn send_reinvite(w: &Rc<Worker>, r: &DlgRef, leg: usize) {
    let other = 1 - leg;
    let req = {
        let mut d = lock(r);
        let contact = if d.legs[leg].adv_contact.is_empty() {
            format!("<{}>", d.legs[other].contact)
        } else {
            d.legs[leg].adv_contact.clone()
        };
        let body = if d.legs[leg].out_sdp.is_empty() {
            d.legs[other].in_sdp.clone()
        } else {
            d.legs[leg].out_sdp.clone()
        };
        let mut req = request(&mut d, leg, "INVITE");
        req.headers
            .push_str(&format!("Contact: {contact}\r\nContent-Type: application/sdp\r\n"));
        req.body = body;
        d.legs[leg].reinvite = PING_PENDING;
        req
    };
    let weak = Arc::downgrade(r);
    let done: uac::Done = Arc::new(move |code| {
        let Some(r) = weak.upgrade() else { return };
        answered(&r, leg, code);
    });
    let ruri = req.ruri.clone();
    if let Err(e) = uac::send_located(w, req, Some(done)) {
        tracing::warn!("dialog: cannot send the re-INVITE ping to {ruri}: {e}");
        lock(r).legs[leg].reinvite = PING_OK;
    }
}

/// The final answer of a re-INVITE ping to `leg` (OpenSIPS
/// dlg_timer.c `dlg_handle_seq_reply`): 408 (a timeout too) and 481
/// fail the side; a 2xx is ACKed (from the timer task: this runs on
/// whichever worker took the reply).
fn answered(r: &DlgRef, leg: usize, code: u16) {
    let mut d = lock(r);
    if code == 408 || code == 481 {
        tracing::info!(
            "dialog {}: re-INVITE ping of the {} answered {code}",
            d.did(),
            if leg == CALLER { "caller" } else { "callee" }
        );
        d.legs[leg].reinvite = PING_FAIL;
        return;
    }
    d.legs[leg].reinvite = PING_OK;
    if (200..300).contains(&code) && d.state < store::DELETED {
        drop(d);
        push(Job::Ack(r.clone(), leg));
    }
}

/// The ACK of a re-INVITE ping's 2xx: the INVITE's CSeq, sent once.
pub fn send_ack(w: &Rc<Worker>, r: &DlgRef, leg: usize) {
    let req = {
        let mut d = lock(r);
        if d.state == store::DELETED {
            return;
        }
        request(&mut d, leg, "ACK")
    };
    let ruri = req.ruri.clone();
    if let Err(e) = uac::send_located(w, req, None) {
        tracing::warn!("dialog: cannot send the ACK of a re-INVITE ping to {ruri}: {e}");
    }
}
