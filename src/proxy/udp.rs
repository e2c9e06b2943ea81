//! Receiving on one UDP socket. Each datagram comes with how long it
//! waited in the socket's queue; the socket's [`Gauge`] turns those delays
//! into the process's overload state (`proxy::overload`), under which new
//! INVITEs are taken only at the rate the proxy finishes calls.

use bytes::Bytes;
use std::io::ErrorKind;
use std::rc::Rc;

use super::overload::Gauge;
use super::worker::Worker;
use crate::transport::udp::{stamp_buffer, UdpSock};
use crate::transport::{Incoming, Proto};

/// Receives datagrams on one socket until the task is dropped.
pub async fn udp_loop(w: Rc<Worker>, sock: Rc<UdpSock>, id: usize) {
    let mut buf = vec![0u8; 65_536];
    let mut ctrl = stamp_buffer();
    let load = w.load();
    let mut gauge = Gauge::new(&load, w.overload_queue_delay());
    loop {
        let got = match sock.try_recv(&mut buf, &mut ctrl) {
            Ok(r) => Ok(r),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // Caught up: no queue. A reload may have changed the target.
                gauge.empty();
                gauge.set_target(w.overload_queue_delay());
                match sock.readable().await {
                    Ok(()) => continue,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match got {
            Ok((n, src, age)) => {
                if let Some(age) = age {
                    gauge.waited(age);
                }
                let _ = w.handle(Incoming {
                    buf: Bytes::copy_from_slice(&buf[..n]),
                    src,
                    proto: Proto::Udp,
                    socket: id,
                });
                w.flush().await;
                // Reading a socket that is not empty takes nothing from
                // tokio's cooperative budget: without this, a socket that
                // never runs empty would keep the worker's other tasks
                // (timers, resumed routes, the heartbeat) waiting for as
                // long as it stays full. Yields once the budget (128 units)
                // is spent.
                tokio::task::coop::consume_budget().await;
            }
            // ICMP errors from earlier sends surface here; nothing to do.
            Err(e) => tracing::trace!("udp receive: {e}"),
        }
    }
}
