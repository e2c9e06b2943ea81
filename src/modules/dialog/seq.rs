//! What a dialog keeps of the messages it relays (OpenSIPS 3.4
//! dlg_handlers.c): the SDP each side sent and the one each was sent
//! (`in_sdp` / `out_sdp`, what a re-INVITE ping carries), and the CSeq
//! renumbering of requests towards a side this proxy already sent
//! requests to in the other side's name (`last_gen_cseq`): the copy
//! goes out with the next number, its replies come back with the one
//! the sender used.

use std::sync::{Arc, Mutex};

use super::machine::body_of;
use super::store::{lock, Dlg, DlgRef, CALLEE, CALLER};
use crate::proxy::context::Call;
use crate::proxy::tm::Txn;
use crate::sip::{HeaderKind, Message, Method};

/// A sequential request of a dialog, attached to its transaction.
#[derive(Clone)]
pub struct SeqTxn(pub Arc<Seq>);

pub struct Seq {
    pub dlg: DlgRef,
    /// The side that sent the request.
    pub src: usize,
    /// (number it came with, number its copies carry) once renumbered.
    renumbered: Mutex<Option<(u32, u32)>>,
    /// A re-INVITE's body as it went out, kept until its 2xx.
    out_sdp: Mutex<Option<String>>,
}

impl SeqTxn {
    pub fn new(dlg: DlgRef, src: usize) -> SeqTxn {
        SeqTxn(Arc::new(Seq {
            dlg,
            src,
            renumbered: Mutex::new(None),
            out_sdp: Mutex::new(None),
        }))
    }
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets the CSeq number of `m`, its method kept.
fn set_cseq(m: &mut Message, num: u32) {
    let Some(method) = m.cseq().map(|c| c.method.to_string()) else {
        return;
    };
    let i = m.headers().find(|h| h.kind == HeaderKind::CSeq).map(|h| h.index);
    if let Some(i) = i {
        m.set_header_value(i, &format!("{num} {method}"));
    }
}

/// OpenSIPS `dlg_update_out_sdp`: what went to a side is kept only when
/// it differs from what the other side sent (a body changed on the way).
fn keep_out(d: &mut Dlg, to: usize, body: String) {
    if body.is_empty() {
        return;
    }
    d.legs[to].out_sdp = if body == d.legs[1 - to].in_sdp {
        String::new()
    } else {
        body
    };
}

/// A copy of a sequential request leaves: renumbered when this proxy
/// sent requests to that side before (an ACK takes its INVITE's new
/// number); a re-INVITE's body is noted.
pub fn copy_out(call: &mut Call, s: &Seq) {
    let dst = 1 - s.src;
    let Some(m) = call.msg.as_mut() else { return };
    let Some(num) = m.cseq().map(|c| c.num) else {
        return;
    };
    let kind = m.method_kind();
    if kind == Method::Invite {
        *guard(&s.out_sdp) = Some(body_of(m));
    }
    let new = {
        let mut d = lock(&s.dlg);
        let leg = &mut d.legs[dst];
        if leg.last_gen_cseq == 0 {
            None
        } else if kind == Method::Ack {
            leg.inv_cseq_map.filter(|(o, _)| *o == num).map(|(_, n)| n)
        } else {
            let mut r = guard(&s.renumbered);
            let new = match *r {
                // Another branch of the same request: the same number.
                Some((_, n)) => n,
                None => {
                    leg.last_gen_cseq = leg.last_gen_cseq.saturating_add(1);
                    *r = Some((num, leg.last_gen_cseq));
                    leg.last_gen_cseq
                }
            };
            if kind == Method::Invite {
                leg.inv_cseq_map = Some((num, new));
            }
            Some(new)
        }
    };
    if let Some(n) = new.filter(|n| *n != num) {
        set_cseq(m, n);
    }
}

/// A reply to a relayed request arrived: a re-INVITE's 2xx settles both
/// sides' SDPs.
pub fn reply_in(t: &Txn, reply: &Message, s: &Seq) {
    let ok = reply.status().is_some_and(|c| (200..300).contains(&c));
    if !ok || t.request.method_kind() != Method::Invite {
        return;
    }
    let dst = 1 - s.src;
    let mut d = lock(&s.dlg);
    let offer = body_of(&t.request);
    if !offer.is_empty() {
        d.legs[s.src].in_sdp = offer;
    }
    let answer = body_of(reply);
    if !answer.is_empty() {
        d.legs[dst].in_sdp = answer;
    }
    if let Some(out) = guard(&s.out_sdp).take() {
        keep_out(&mut d, dst, out);
    }
    // db_mode 1: the new SDPs and CSeqs survive a restart.
    super::db::save(&d);
}

/// A reply goes back to the sender: with the CSeq number it used; a
/// re-INVITE's 2xx body is what the sender was sent.
pub fn reply_out(t: &Txn, reply: &mut Message, s: &Seq) {
    if let Some((orig, _)) = *guard(&s.renumbered) {
        set_cseq(reply, orig);
    }
    let ok = reply.status().is_some_and(|c| (200..300).contains(&c));
    if ok && t.request.method_kind() == Method::Invite {
        keep_out(&mut lock(&s.dlg), s.src, body_of(reply));
    }
}

/// The initial INVITE's copy leaves: its body is what the callee gets.
pub fn initial_copy_out(call: &Call, r: &DlgRef) {
    if let Some(m) = call.msg.as_ref() {
        keep_out(&mut lock(r), CALLEE, body_of(m));
    }
}

/// The initial INVITE's 2xx goes back: its body is what the caller gets.
pub fn initial_reply_out(reply: &Message, r: &DlgRef) {
    if reply.status().is_some_and(|c| (200..300).contains(&c)) {
        keep_out(&mut lock(r), CALLER, body_of(reply));
    }
}
