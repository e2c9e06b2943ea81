//! tm's `config.modules.tm` keys and statistics (OpenSIPS tm.c
//! `params` and `mod_stats`).

use crate::modules::{param, Param, ParamKind};
use crate::stats::{StatDecl, TM};

/// `config.modules.tm` (read by `script::config_table` into `Config::tm`).
pub(super) static PARAMS: &[Param] = &[
    param(
        "T1",
        ParamKind::Int,
        "500",
        "RFC 3261 T1 in milliseconds: first retransmission interval, RTT estimate (OpenSIPS `T1_timer`, also accepted, as is `t1`).",
    )
    .also(&["T1_timer", "t1"]),
    param(
        "T2",
        ParamKind::Int,
        "4000",
        "RFC 3261 T2 in milliseconds: largest retransmission interval for non-INVITE requests and INVITE replies (`T2_timer`, `t2`).",
    )
    .also(&["T2_timer", "t2"]),
    param(
        "T4",
        ParamKind::Int,
        "5000",
        "RFC 3261 T4 in milliseconds: how long a message may stay in the network (`T4_timer`, `t4`).",
    )
    .also(&["T4_timer", "t4"]),
    param(
        "fr_timeout",
        ParamKind::Int,
        "5",
        "Seconds without any reply before a branch times out (408).",
    ),
    param(
        "fr_inv_timeout",
        ParamKind::Int,
        "120",
        "Seconds an INVITE branch may ring without a final reply.",
    ),
    param(
        "wait_timer",
        ParamKind::Int,
        "5",
        "Seconds a finished transaction absorbs retransmissions.",
    ),
    param(
        "restart_fr_on_each_reply",
        ParamKind::Bool,
        "true",
        "Each provisional reply of an INVITE branch starts `fr_inv_timeout` again (RFC 3261 §16.8 Timer C); `false`: only the first one, or one of a higher 18x status.",
    ),
    param(
        "onreply_avp_mode",
        ParamKind::Bool,
        "false",
        "Whether reply routes see the transaction's AVPs and keep what they change (OpenSIPS tm `onreply_avp_mode` 1); off, as OpenSIPS's default 0, a reply route starts with no AVPs and its own are dropped when it ends. Branch AVPs (`$bavp`) are the branch's either way.",
    ),
    param(
        "tw_append",
        ParamKind::Str,
        "none",
        "Lines `t_write_req`/`t_write_unix` add when their `info` is `action/NAME`: `\"NAME: title=$pv; title2=$pv2; $rb\"` (`$rb`: write the body for any method), or a list of such strings. Each element writes `title: value` (nothing when the value is null) after the `P-MsgFlags` line.",
    ),
    param(
        "tm_replication_cluster",
        ParamKind::Int,
        "0",
        "The clusterer cluster (`config.modules.clusterer`) `t_anycast_replicate` sends requests to and takes them from; 0: none.",
    ),
    param(
        "cluster_param",
        ParamKind::Str,
        "cid",
        "Via parameter naming the node of a transaction: with `tm_replication_cluster`, each branch's Via carries `;cid=<my node id>`, and a reply that reaches another node of an anycast address is sent to the node it names.",
    ),
    param(
        "cluster_auto_cancel",
        ParamKind::Bool,
        "true",
        "A CANCEL with an RFC 3261 branch is replicated for the node holding its INVITE to handle without running its script (OpenSIPS's auto-CANCEL); `false`: replicated as any request, through the receiving node's `route.main`.",
    ),
];

pub(super) static STATS: &[StatDecl] = &[
    StatDecl::counter(
        "UAS_transactions",
        &TM.uas_transactions,
        "Server transactions created.",
    ),
    StatDecl::counter(
        "UAC_transactions",
        &TM.uac_transactions,
        "Client transactions created (one per branch, probes included).",
    ),
    StatDecl::counter(
        "2xx_transactions",
        &TM.r2xx_transactions,
        "Transactions completed with a 2xx final reply.",
    ),
    StatDecl::counter(
        "3xx_transactions",
        &TM.r3xx_transactions,
        "Transactions completed with a 3xx final reply.",
    ),
    StatDecl::counter(
        "4xx_transactions",
        &TM.r4xx_transactions,
        "Transactions completed with a 4xx final reply.",
    ),
    StatDecl::counter(
        "5xx_transactions",
        &TM.r5xx_transactions,
        "Transactions completed with a 5xx final reply.",
    ),
    StatDecl::counter(
        "6xx_transactions",
        &TM.r6xx_transactions,
        "Transactions completed with a 6xx final reply.",
    ),
    StatDecl::gauge(
        "inuse_transactions",
        &TM.inuse_transactions,
        "Transactions alive now.",
    ),
    StatDecl::counter(
        "cluster_reply_sent",
        &TM.cluster_reply_sent,
        "Replies that reached this node of an anycast address and were sent to the node their Via names (`cluster_param`).",
    ),
    StatDecl::counter(
        "cluster_request_sent",
        &TM.cluster_request_sent,
        "Requests (ACK, CANCEL) `t_anycast_replicate` sent to the cluster.",
    ),
    StatDecl::counter(
        "cluster_cancel_sent",
        &TM.cluster_cancel_sent,
        "CANCELs `t_anycast_replicate` sent to the cluster for the node holding the INVITE to handle itself (`cluster_auto_cancel`).",
    ),
    StatDecl::counter(
        "cluster_reply_recv",
        &TM.cluster_reply_recv,
        "Replies another node sent here for a transaction of this node.",
    ),
    StatDecl::counter(
        "cluster_request_recv",
        &TM.cluster_request_recv,
        "Requests another node replicated here (run through `route.main`).",
    ),
    StatDecl::counter(
        "cluster_cancel_recv",
        &TM.cluster_cancel_recv,
        "CANCELs another node replicated here for their INVITE's transaction.",
    ),
];


/// tm's `config.modules.tm` settings that need committing: `tw_append`
/// and the cluster's.
#[derive(Debug)]
pub struct Prepared(super::tw_append::Prepared, super::cluster::Prepared);

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    Ok(Prepared(
        super::tw_append::prepare(modules)?,
        super::cluster::prepare(modules)?,
    ))
}

impl Prepared {
    pub fn commit(self, staged: &mut crate::state::Staged) {
        self.0.commit(staged);
        self.1.commit(staged);
    }
}

crate::modules::staged_settings!(Prepared);
