//! Which socket of a Linux SO_REUSEPORT group receives a datagram.
//!
//! The kernel picks a socket of the group by a hash of the datagram's
//! addresses and ports, unless the group carries a classic BPF program
//! (`SO_ATTACH_REUSEPORT_CBPF`, Linux 4.5): the program's result is the
//! index of the socket, in the order the sockets joined the group, and a
//! result past the last socket falls back to the hash. lunasip attaches one
//! of two one-instruction programs: [`Steer::First`] (every datagram to the
//! first socket) or [`Steer::Hash`] (the kernel's own choice). Attaching to
//! any socket of the group replaces the program for the whole group, at
//! once, with nothing queued lost.
//!
//! This is the only `unsafe` lunasip has: `setsockopt` takes the program
//! by pointer, and neither socket2 nor nix nor rustix offers this option.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Where the group sends each datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steer {
    /// The first socket that joined the group.
    First,
    /// The kernel's hash of source and destination (as with no program).
    Hash,
}

/// `BPF_RET | BPF_K`: return the constant.
const RET_K: u16 = 0x06;

impl Steer {
    /// The socket index the program returns: 0, or one past any group.
    fn index(self) -> u32 {
        match self {
            Steer::First => 0,
            Steer::Hash => u32::MAX,
        }
    }
}

/// Attaches `steer`'s program to the group `fd` belongs to.
pub fn steer(fd: BorrowedFd<'_>, steer: Steer) -> io::Result<()> {
    let mut prog = [libc::sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: steer.index(),
    }];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, one valid instruction, both alive
    // for the call; the kernel copies the program and keeps no pointer.
    // The length passed is the size of `fprog` itself.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;
    use std::time::Duration;

    /// Binds `n` sockets of one group on a free loopback port.
    fn group(n: usize) -> Vec<UdpSocket> {
        for _ in 0..50 {
            let Ok(port) = UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()) else {
                continue;
            };
            let socks: Vec<UdpSocket> = (0..n).filter_map(|_| reuse_bind(port).ok()).collect();
            if socks.len() == n {
                return socks;
            }
        }
        panic!("no free port for a reuseport group");
    }

    fn reuse_bind(addr: std::net::SocketAddr) -> io::Result<UdpSocket> {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
        s.set_reuse_port(true)?;
        s.bind(&addr.into())?;
        Ok(s.into())
    }

    /// Sends one datagram from each of `n` fresh sockets (so `n` source
    /// ports) and counts what each member of the group received.
    fn spread(socks: &[UdpSocket], n: usize) -> Vec<usize> {
        let to = socks[0].local_addr().expect("bound");
        for _ in 0..n {
            let c = UdpSocket::bind("127.0.0.1:0").expect("client");
            c.send_to(b"x", to).expect("send");
        }
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = [0u8; 16];
        socks
            .iter()
            .map(|s| {
                s.set_nonblocking(true).expect("nonblocking");
                let mut got = 0;
                while s.recv_from(&mut buf).is_ok() {
                    got += 1;
                }
                got
            })
            .collect()
    }

    #[test]
    fn first_takes_everything_and_hash_spreads_again() {
        let socks = group(2);
        steer(socks[1].as_fd(), Steer::First).expect("attach");
        assert_eq!(spread(&socks, 64), vec![64, 0]);
        steer(socks[0].as_fd(), Steer::Hash).expect("attach");
        let got = spread(&socks, 64);
        assert_eq!(got.iter().sum::<usize>(), 64);
        // 64 source ports hashed over two sockets all landing on one: 2^-63.
        assert!(got[0] > 0 && got[1] > 0, "{got:?}");
    }
}
