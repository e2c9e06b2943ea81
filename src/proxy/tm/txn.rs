//! A proxied transaction (RFC 3261 §16): the server transaction towards
//! the caller, the client transactions of its branches, and the script's
//! per-transaction state (routes armed with t_on_*, flags).

use bytes::Bytes;
use std::net::SocketAddr;

use crate::proxy::context::{route_name, Call, Source};
use crate::sip::Message;
use crate::transaction::{ClientTxn, ServerTxn, Timer, TxnKey};
use crate::transport::Proto;
use vocab::route::RouteType;

/// One branch: a copy of the request sent to one destination.
#[derive(Debug)]
pub struct Branch {
    pub client: ClientTxn,
    /// Method of the branch request (INVITE, BYE, …).
    pub method: Box<str>,
    /// The request as sent (retransmitted as is).
    pub request: Bytes,
    /// Our Via branch parameter.
    pub branch_id: String,
    pub uri: String,
    pub dest: SocketAddr,
    /// Further addresses of the destination for DNS failover (RFC 3263 §4.3).
    pub alts: Vec<SocketAddr>,
    pub proto: Proto,
    pub socket: usize,
    /// Final response received (code and message), or 408 on timeout.
    pub final_code: Option<u16>,
    /// The negative final kept for the best-response choice (boxed: most
    /// branches never hold one, and a Branch stays small without it).
    pub response: Option<Box<Message>>,
    pub got_provisional: bool,
    pub cancel_sent: bool,
    /// The final response was made here (408 on timeout), not received.
    pub local_final: bool,
    /// `$bavp`s of this branch.
    pub avps: std::collections::HashMap<String, Vec<crate::proxy::context::Value>>,
    /// Branch flags (`setbflag`, `$bf`) this branch was sent with; its
    /// reply routes may change them, its failure route sees them.
    pub bflags: u64,
    /// Generation per timer: bumped when (re)armed or stopped.
    pub gens: TimerGens,
}

impl Branch {
    /// A branch just sent: `request` (with our Via `branch_id`) to `dest`.
    #[allow(clippy::too_many_arguments)]
    pub fn sent(
        client: ClientTxn,
        method: Box<str>,
        request: Bytes,
        branch_id: String,
        uri: String,
        dest: SocketAddr,
        proto: Proto,
        socket: usize,
    ) -> Branch {
        Branch {
            client,
            method,
            request,
            branch_id,
            uri,
            dest,
            alts: Vec::new(),
            proto,
            socket,
            final_code: None,
            response: None,
            got_provisional: false,
            cancel_sent: false,
            local_final: false,
            avps: Default::default(),
            bflags: 0,
            gens: Default::default(),
        }
    }

    pub fn method(&self) -> &str {
        &self.method
    }
}

/// Generation counters of the timers of one state machine.
#[derive(Debug, Default, Clone)]
pub struct TimerGens([u32; 13]);

impl TimerGens {
    fn slot(t: Timer) -> usize {
        t as usize
    }

    /// Bumps and returns the generation for a newly armed timer.
    pub fn arm(&mut self, t: Timer) -> u64 {
        let s = &mut self.0[Self::slot(t)];
        *s = s.wrapping_add(1);
        u64::from(*s)
    }

    pub fn stop(&mut self, t: Timer) {
        let s = &mut self.0[Self::slot(t)];
        *s = s.wrapping_add(1);
    }

    pub fn current(&self, t: Timer) -> u64 {
        u64::from(self.0[Self::slot(t)])
    }
}

/// Routes the script armed for this transaction.
#[derive(Debug, Default, Clone)]
pub struct Armed {
    pub on_failure: Option<String>,
    pub on_reply: Option<String>,
    pub on_branch: Option<String>,
}

/// A proxied transaction.
#[derive(Debug)]
pub struct Txn {
    pub id: u64,
    pub key: TxnKey,
    pub server: ServerTxn,
    pub server_gens: TimerGens,
    /// The request as the route left it when t_relay ran: failure routes
    /// and new branches start from it.
    pub request: Message,
    /// `$du` when t_relay ran: the failure route sees it again.
    pub du: Option<String>,
    pub src: Source,
    /// Where responses go (RFC 3261 §18.2.2), fixed when the txn is made.
    pub reply_to: SocketAddr,
    pub last_response: Option<Bytes>,
    pub branches: Vec<Branch>,
    pub armed: Armed,
    /// Message flags at t_relay time, restored in failure routes.
    pub flags: u64,
    pub cancelled: bool,
    /// A failure route is running or ran for the current set of branches.
    pub in_failure: bool,
    /// The failure route suspended (DNS, a database): the best response
    /// waits for it to end.
    pub failure_waiting: bool,
    /// `t_wait_for_new_branches` (OpenSIPS's phony branch): the
    /// transaction waits for branches injected later, so the negative
    /// answers of the ones sent so far do not end it yet.
    pub wait_branches: bool,
    /// With `t_wait_for_new_branches(n)`: the branch count at which the
    /// wait ends by itself.
    pub wait_limit: Option<usize>,
    /// The script answered from a failure route (t_reply).
    pub replied_locally: bool,
    /// Winning reply code for $T_reply_code.
    pub reply_code: u16,
    /// `$avp`s belong to the transaction: failure and reply routes see them again.
    pub avps: std::collections::HashMap<String, Vec<crate::proxy::context::Value>>,
    /// Timer values of this transaction (config, or `$T_fr_*` from the script).
    pub timers: crate::transaction::Timers,
    /// The Record-Route the request route asked for: branches relayed from a
    /// failure route get it too.
    pub rr: Option<crate::proxy::rr::PendingRr>,
    /// The branch that got a final response last (`t_local_replied("branch")`).
    pub last_branch: Option<usize>,
    /// The last response sent to the caller was made here.
    pub last_local: bool,
    /// A request lunasip originated (no caller): its completion callback.
    pub local: Option<super::uac::Local>,
    /// `t_add_hdrs`: header lines every CANCEL built here carries.
    pub extra_hdrs: Option<String>,
    /// The Reason line of the CANCELs being sent now (OpenSIPS
    /// `set_cancel_extra_hdrs`): the CANCEL's own, 480 on a timeout.
    pub cancel_reason: Option<String>,
    /// `t_relay` flags (OpenSIPS 3.4 tm.c `t_relay_flag_names`).
    pub relay_flags: RelayFlags,
    /// What modules attached to the request ([`super::hooks::TxnData`]).
    pub data: super::hooks::TxnData,
}

/// `t_relay`'s named flags, kept on the transaction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayFlags {
    /// 2.x/1.x numeric 0x01: no 100 Trying for the INVITE.
    pub no_100: bool,
    /// `no-auto-477`: no stateful error reply when relaying fails.
    pub no_auto_error: bool,
    /// `no-dns-failover`: a 503 or a timeout does not try the next address.
    pub no_dns_failover: bool,
    /// `pass-reason-hdr`: the CANCEL's Reason goes on to the branches.
    pub pass_reason: bool,
    /// `allow-no-cancel`: a 2xx does not cancel the other branches.
    pub no_cancel_on_2xx: bool,
    /// `t_replicate` (OpenSIPS T_IS_LOCAL_FLAG): the branches' replies
    /// stay here, none goes to the caller.
    pub replicate: bool,
}

impl RelayFlags {
    /// Both sets of flags.
    pub fn or(self, o: RelayFlags) -> RelayFlags {
        RelayFlags {
            no_100: self.no_100 || o.no_100,
            no_auto_error: self.no_auto_error || o.no_auto_error,
            no_dns_failover: self.no_dns_failover || o.no_dns_failover,
            pass_reason: self.pass_reason || o.pass_reason,
            no_cancel_on_2xx: self.no_cancel_on_2xx || o.no_cancel_on_2xx,
            replicate: self.replicate || o.replicate,
        }
    }

    /// OpenSIPS 2.x's numeric form (`"0x04"`, `"12"`; tm README of 2.4:
    /// 0x02 no error reply, 0x04 no DNS failover, 0x08 pass the CANCEL's
    /// Reason, 0x10 no CANCEL on 2xx; 0x01, deprecated there, is 1.x's
    /// "no 100 Trying"). None when `s` is not a number.
    pub fn numeric(s: &str) -> Option<RelayFlags> {
        let s = s.trim();
        let n = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(h) => u32::from_str_radix(h, 16).ok()?,
            None => s.parse().ok()?,
        };
        Some(RelayFlags {
            no_100: n & 0x01 != 0,
            no_auto_error: n & 0x02 != 0,
            no_dns_failover: n & 0x04 != 0,
            pass_reason: n & 0x08 != 0,
            no_cancel_on_2xx: n & 0x10 != 0,
            replicate: false,
        })
    }

    /// Parses OpenSIPS's `"no-dns-failover|pass-reason-hdr"` form (also
    /// `,` between names); an unknown name is an error.
    pub fn parse(s: &str) -> Result<RelayFlags, String> {
        let mut f = RelayFlags::default();
        for name in s.split(['|', ',']).map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "no-auto-477" => f.no_auto_error = true,
                "no-dns-failover" => f.no_dns_failover = true,
                "pass-reason-hdr" => f.pass_reason = true,
                "allow-no-cancel" => f.no_cancel_on_2xx = true,
                other => {
                    return Err(format!(
                        "unknown flag '{other}' (no-auto-477, no-dns-failover, pass-reason-hdr, allow-no-cancel)"
                    ))
                }
            }
        }
        Ok(f)
    }
}

impl Txn {
    /// A transaction for `request` from `src`, answered at `reply_to`,
    /// with no branch yet and nothing of the route captured.
    pub fn new(
        id: u64,
        key: TxnKey,
        server: ServerTxn,
        request: Message,
        src: Source,
        reply_to: SocketAddr,
        timers: crate::transaction::Timers,
    ) -> Txn {
        Txn {
            id,
            key,
            server,
            server_gens: Default::default(),
            request,
            du: None,
            src,
            reply_to,
            last_response: None,
            branches: Vec::new(),
            armed: Default::default(),
            flags: 0,
            cancelled: false,
            in_failure: false,
            failure_waiting: false,
            wait_branches: false,
            wait_limit: None,
            replied_locally: false,
            reply_code: 0,
            avps: Default::default(),
            timers,
            rr: None,
            last_branch: None,
            last_local: false,
            local: None,
            extra_hdrs: None,
            cancel_reason: None,
            relay_flags: RelayFlags::default(),
            data: Default::default(),
        }
    }

    /// Keeps what the route set up for this request (`$du`, flags, AVPs,
    /// Record-Route, armed routes): failure routes and the branches they
    /// relay start from it again. The request itself is kept apart.
    pub fn capture(&mut self, call: &Call) {
        self.du = call.du.clone();
        self.flags = call.flags;
        self.avps = call.avps.clone();
        self.rr = call.rr.clone();
        if !call.tm.data.is_empty() {
            self.data = call.tm.data.clone();
        }
        let armed = &call.tm.armed;
        if armed.on_failure.is_some() {
            self.armed.on_failure = armed.on_failure.clone();
        }
        if armed.on_reply.is_some() {
            self.armed.on_reply = armed.on_reply.clone();
        }
        if armed.on_branch.is_some() {
            self.armed.on_branch = armed.on_branch.clone();
        }
    }

    /// Puts the request back in `call` as [`Txn::capture`] kept it, for
    /// `failure_route[name]`, with the winning branch's `$bavp`s.
    pub fn restore(&self, call: &mut Call, txn: &super::TxnRef, name: &str, best: usize) {
        call.reset(self.request.clone(), self.src, RouteType::Failure);
        call.du = self.du.clone();
        call.route_name = route_name(name);
        call.flags = self.flags;
        call.maxfwd_done = true;
        call.via_fixed = true;
        call.tm.txn = Some(txn.clone());
        call.tm.reply_code = Some(self.reply_code);
        call.avps = self.avps.clone();
        call.rr = self.rr.clone();
        call.tm.data = self.data.clone();
        call.tm.bavps = self
            .branches
            .get(best)
            .map(|b| b.avps.clone())
            .unwrap_or_default();
        // OpenSIPS t_reply.c: the failure route sees the winning branch's flags.
        call.bflags = self.branches.get(best).map_or(0, |b| b.bflags);
    }

    /// Branches still waiting for a final response.
    pub fn pending(&self) -> impl Iterator<Item = (usize, &Branch)> {
        self.branches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.final_code.is_none())
    }

    pub fn all_answered(&self) -> bool {
        self.pending().next().is_none() && !self.wait_branches
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A transaction with no branches, for tests of the tables and timers.
    pub fn sample() -> Txn {
        let text = "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKs\r\n\
                    From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: s\r\n\
                    CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let addr: SocketAddr = ([127, 0, 0, 1], 5070).into();
        Txn::new(
            1,
            TxnKey::Legacy(1),
            ServerTxn::new(
                crate::transaction::client::Kind::NonInvite,
                true,
                Default::default(),
            ),
            Message::parse(Bytes::from_static(text.as_bytes())).expect("parses"),
            Source {
                addr,
                proto: Proto::Udp,
                socket: 0,
            },
            addr,
            Default::default(),
        )
    }

    #[test]
    fn the_shared_part_of_a_transaction_stays_small() {
        // What a lapsed timer's Weak keeps allocated: the Arc, not the Txn.
        assert!(std::mem::size_of::<std::sync::Mutex<Box<Txn>>>() <= 16);
        let _ = sample();
    }
}
