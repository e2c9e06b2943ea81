//! UDP sockets: one per worker and listen address, bound with SO_REUSEPORT
//! so the kernel spreads datagrams over the workers without a shared lock.

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Binds a non-blocking UDP socket for one worker. `rcvbuf` is a wish; the
/// kernel caps it at `net.core.rmem_max`.
pub fn bind(addr: SocketAddr, rcvbuf: usize) -> io::Result<std::net::UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    // A failed buffer resize is not fatal: the default still works.
    let _ = s.set_recv_buffer_size(rcvbuf);
    let _ = s.set_send_buffer_size(rcvbuf);
    // The kernel stamps each datagram as it arrives, so the worker reading
    // it knows how long it waited in the queue ([`recv_stamped`]). Without
    // it (an old kernel) the age is unknown and no overload is seen.
    if let Err(e) = setsockopt(&s, sockopt::ReceiveTimestampns, &true) {
        tracing::warn!("udp {addr}: no receive timestamps ({e}): overload cannot be seen");
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Reads one datagram from a non-blocking UDP socket with its age: how
/// long it waited in the socket's queue (now minus the kernel's receive
/// stamp, `SO_TIMESTAMPNS`); None when the kernel gave no stamp.
/// `WouldBlock` when the socket is empty. `ctrl` is the caller's buffer
/// for the stamp ([`stamp_buffer`]), kept from one read to the next.
pub fn recv_stamped(
    fd: RawFd,
    buf: &mut [u8],
    ctrl: &mut Vec<u8>,
) -> io::Result<(usize, SocketAddr, Option<Duration>)> {
    recv_flags(fd, buf, ctrl, MsgFlags::empty())
}

/// How long the oldest datagram queued on `s` has waited; None when the
/// queue is empty or the kernel gave no stamp. The datagram stays queued
/// for the worker that reads the socket.
pub fn peek_age(s: &std::net::UdpSocket, ctrl: &mut Vec<u8>) -> Option<Duration> {
    let mut byte = [0u8; 1];
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC;
    recv_flags(s.as_raw_fd(), &mut byte, ctrl, flags)
        .ok()
        .and_then(|(_, _, age)| age)
}

fn recv_flags(
    fd: RawFd,
    buf: &mut [u8],
    ctrl: &mut Vec<u8>,
    flags: MsgFlags,
) -> io::Result<(usize, SocketAddr, Option<Duration>)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg =
        recvmsg::<SockaddrStorage>(fd, &mut iov, Some(ctrl), flags).map_err(io::Error::from)?;
    let mut stamp = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                stamp = Some(Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32));
            }
        }
    }
    let addr = msg
        .address
        .as_ref()
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::V4((*v4).into()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into())))
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram from no IP address"))?;
    Ok((msg.bytes, addr, stamp.map(age)))
}

/// A control buffer with room for one receive stamp.
pub fn stamp_buffer() -> Vec<u8> {
    nix::cmsg_space!(nix::sys::time::TimeSpec)
}

/// Time since `then` (since the epoch, on the real-time clock the kernel
/// stamps with); zero when the clock went back.
fn age(then: Duration) -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(Duration::ZERO, |now| now.saturating_sub(then))
}

/// A worker's UDP socket in its reactor, watched for reads only.
/// tokio's `UdpSocket` also asks for write readiness, and Linux reports a
/// UDP socket writable again each time a datagram it sent is freed, so
/// every send woke the worker once more for nothing. Sends go straight to
/// the non-blocking socket instead.
pub struct UdpSock(AsyncFd<std::net::UdpSocket>);

/// How often a send that found the socket's send buffer full is tried
/// again, [`SEND_PAUSE`] apart, before the datagram is given up (a blocking
/// socket, as OpenSIPS and Kamailio use, would wait for room instead).
const SEND_TRIES: u32 = 20;
const SEND_PAUSE: Duration = Duration::from_millis(1);

impl UdpSock {
    /// Registers `s` with the current tokio reactor.
    pub fn new(s: std::net::UdpSocket) -> io::Result<UdpSock> {
        s.set_nonblocking(true)?;
        // Deprecated because a type's `as_raw_fd` could hand out another
        // or a closed descriptor; a std socket owns its descriptor and
        // returns that one for as long as it lives, which the AsyncFd
        // (owning the socket) outlives not.
        #[allow(deprecated)]
        AsyncFd::with_interest(s, Interest::READABLE).map(UdpSock)
    }

    /// [`recv_stamped`] when a datagram is queued; `WouldBlock` (and the
    /// readiness cleared) when the socket is empty.
    pub fn try_recv(
        &self,
        buf: &mut [u8],
        ctrl: &mut Vec<u8>,
    ) -> io::Result<(usize, SocketAddr, Option<Duration>)> {
        self.0.try_io(Interest::READABLE, |s| {
            recv_stamped(s.as_raw_fd(), buf, ctrl)
        })
    }

    /// Waits until a datagram may be queued.
    pub async fn readable(&self) -> io::Result<()> {
        self.0.readable().await.map(|_| ())
    }

    /// Sends one datagram.
    pub async fn send_to(&self, b: &[u8], to: SocketAddr) -> io::Result<()> {
        let mut tries = 0;
        loop {
            match self.0.get_ref().send_to(b, to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries < SEND_TRIES => {
                    tries += 1;
                    tokio::time::sleep(SEND_PAUSE).await;
                }
                r => return r.map(|_| ()),
            }
        }
    }
}

/// Binds a TCP listener for one worker (SO_REUSEPORT, as for UDP).
pub fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.set_nodelay(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}
