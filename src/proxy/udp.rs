//! Receiving on one UDP socket, with early load shedding: a worker that
//! has found its socket non-empty for `overload_streak` datagrams in a row
//! is behind, and refuses new INVITEs with 503 + Retry-After before
//! routing until it catches up (its socket runs empty once). Replies,
//! ACKs, CANCELs and in-dialog requests still run, so the calls already
//! up complete instead of being lost in the retransmissions an overloaded
//! proxy otherwise snowballs into.

use bytes::Bytes;
use std::io::ErrorKind;
use std::rc::Rc;
use tokio::net::UdpSocket;

use super::worker::Worker;
use crate::transport::{Incoming, Proto};

/// Receives datagrams on one socket until the task is dropped.
pub async fn udp_loop(w: Rc<Worker>, sock: Rc<UdpSocket>, id: usize) {
    let mut buf = vec![0u8; 65_536];
    let limit = w.overload_streak();
    // Datagrams read back to back without the socket running empty.
    let mut streak: u32 = 0;
    loop {
        let got = match sock.try_recv_from(&mut buf) {
            Ok(r) => {
                streak = streak.saturating_add(1);
                Ok(r)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                streak = 0;
                sock.recv_from(&mut buf).await
            }
            Err(e) => Err(e),
        };
        let behind = limit > 0 && streak >= limit;
        if behind != w.shedding.get() {
            w.shedding.set(behind);
            match behind {
                true => tracing::warn!(
                    "overload: {streak} datagrams queued back to back; new INVITEs get 503 until the socket drains"
                ),
                false => tracing::info!("overload over: taking new calls again"),
            }
        }
        match got {
            Ok((n, src)) => {
                let _ = w.handle(Incoming {
                    buf: Bytes::copy_from_slice(&buf[..n]),
                    src,
                    proto: Proto::Udp,
                    socket: id,
                });
                w.flush().await;
                // `try_recv_from` takes nothing from tokio's cooperative
                // budget: without this, a socket that never runs empty
                // would keep the worker's other tasks (timers, resumed
                // routes, the heartbeat) waiting for as long as it stays
                // full. Yields once the budget (128 units) is spent.
                tokio::task::coop::consume_budget().await;
            }
            // ICMP errors from earlier sends surface here; nothing to do.
            Err(e) => tracing::trace!("udp receive: {e}"),
        }
    }
}
