//! tm's part in a cluster that the proxy applies (OpenSIPS 3.4 tm
//! cluster.c `tm_cid`, `tm_reply_replicate`): the Via parameter naming
//! this node on every branch, and a reply that reached this node of an
//! anycast address but names another node going to that node. The tm
//! module installs [`ClusterVia`] (and the function that sends).

use crate::proxy::context::{Current, Source};
use crate::sip::Message;
use crate::transport::myself::SocketInfo;

/// Sends a reply for node `n` to it (the tm module's, over clusterer).
pub type ReplicateReply = fn(&Message, &Source, &SocketInfo, i32);

/// The settings in force (default: no cluster).
#[derive(Debug, Clone, Default)]
pub struct ClusterVia {
    /// `;cid=1`, written into the Via of each branch (empty: none).
    pub via_param: String,
    /// The parameter's name (`cid`, tm's `cluster_param`).
    pub name: String,
    /// This node's id.
    pub node: i32,
    pub replicate: Option<ReplicateReply>,
}

/// The Via parameter of this node's branches ("" without a cluster).
pub fn via_param() -> std::sync::Arc<ClusterVia> {
    crate::state::module::<ClusterVia>()
}

/// A reply received on an anycast socket whose top Via names another
/// node is sent there; true when it was (the caller then drops it).
pub fn replicate_reply(st: &Current, msg: &Message, src: &Source) -> bool {
    let Some(sock) = st.env.sockets.list.get(src.socket).filter(|s| s.anycast) else {
        return false;
    };
    let c = via_param();
    let Some(send) = c.replicate.filter(|_| !c.name.is_empty()) else {
        return false;
    };
    // OpenSIPS tm_get_cid: no parameter, or a bad value: handled here.
    let node = match msg.top_via().and_then(|v| v.param(&c.name)) {
        Some(Some(v)) => v.trim().parse::<i32>().ok(),
        _ => None,
    };
    match node {
        Some(n) if n != c.node => {
            send(msg, src, sock, n);
            true
        }
        _ => false,
    }
}
