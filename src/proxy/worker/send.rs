//! Sending what routes queued: UDP from the entry's socket, TCP on a
//! known connection at once or connecting off the receive path, names
//! located first (RFC 3263), each counted as forwarded or dropped.

use bytes::Bytes;
use std::io;
use std::rc::Rc;

use super::Worker;
use crate::proxy::context::{Dest, OutKind, Outgoing};
use crate::stats::CORE;
use crate::transport::tcp;
use crate::transport::Proto;

impl Worker {
    /// Sends everything the last route queued.
    pub async fn flush(self: &Rc<Self>) {
        self.park_launched(&self.host());
        let mut out = {
            let host = self.host();
            let mut call = host.current().call.borrow_mut();
            if call.outbox.is_empty() {
                return;
            }
            let spare = std::mem::take(&mut *self.spare.borrow_mut());
            std::mem::replace(&mut call.outbox, spare)
        };
        for o in out.drain(..) {
            self.send(o).await;
        }
        *self.spare.borrow_mut() = out;
    }

    pub(super) async fn send(self: &Rc<Self>, o: Outgoing) {
        let addr = match &o.dest {
            Dest::Addr(a) => *a,
            Dest::Name(..) => {
                tokio::task::spawn_local(resolve_and_send(self.clone(), o));
                return;
            }
        };
        let r = match o.proto {
            Proto::Udp => match self.udp.get(o.socket).and_then(Option::as_ref) {
                Some(sock) => sock.send_to(&o.bytes, addr).await,
                None => Err(io::Error::new(io::ErrorKind::NotFound, "no udp socket")),
            },
            Proto::Tcp => {
                if tcp::is_connected(&self.tcp, &addr) {
                    self.send_tcp(addr, o.socket, o.bytes.clone()).await
                } else {
                    // Connecting may take a while: not on the receive path.
                    let w = self.clone();
                    let kind = o.kind;
                    tokio::task::spawn_local(async move {
                        let r = w.send_tcp(addr, o.socket, o.bytes).await;
                        count(kind, r.is_ok());
                        if let Err(e) = r {
                            tracing::info!("tcp send to {addr} failed: {e}");
                        }
                    });
                    return;
                }
            }
        };
        count(o.kind, r.is_ok());
        if let Err(e) = r {
            tracing::debug!("send to {addr} failed: {e}");
        }
    }

    async fn send_tcp(
        self: &Rc<Self>,
        addr: std::net::SocketAddr,
        socket: usize,
        bytes: Bytes,
    ) -> io::Result<()> {
        let local = self
            .sockets
            .list
            .get(socket)
            .map(|s| s.addr)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no socket"))?;
        tcp::send(&self.tcp, self, addr, local, socket, bytes).await
    }
}

fn count(kind: OutKind, ok: bool) {
    match (kind, ok) {
        (OutKind::Request, true) => CORE.fwd_requests.inc(),
        (OutKind::Reply, true) => CORE.fwd_replies.inc(),
        (OutKind::Request, false) => CORE.drop_requests.inc(),
        (OutKind::Reply, false) => CORE.drop_replies.inc(),
        (OutKind::LocalReply, _) => {}
    }
}

/// Locates a name off the receive path (RFC 3263 through the worker's
/// resolver, or the system's outside a worker), then sends to the first
/// address of the socket's family and the copy's transport.
async fn resolve_and_send(w: Rc<Worker>, mut o: Outgoing) {
    let Dest::Name(hop) = &o.dest else {
        return;
    };
    let want_v4 = w
        .sockets
        .list
        .get(o.socket)
        .is_none_or(|s| s.addr.is_ipv4());
    let found = match crate::transport::dns::current() {
        Some(dns) => match dns.locate(hop).await {
            Ok(ts) => ts
                .iter()
                .find(|t| t.addr.is_ipv4() == want_v4 && t.proto == o.proto)
                .map(|t| t.addr),
            Err(e) => {
                tracing::info!("cannot resolve {}: {e}", hop.host);
                None
            }
        },
        None => {
            match tokio::net::lookup_host((hop.host.as_str(), hop.port.unwrap_or(5060))).await {
                Ok(mut addrs) => addrs.find(|a| a.is_ipv4() == want_v4),
                Err(e) => {
                    tracing::info!("cannot resolve {}: {e}", hop.host);
                    None
                }
            }
        }
    };
    match found {
        Some(a) => {
            o.dest = Dest::Addr(a);
            Box::pin(w.send(o)).await;
        }
        None => count(o.kind, false),
    }
}
