//! OpenSIPS's BIN packets (3.4 `bin_interface.c`, `bin_interface.h`),
//! sans I/O: `P4CK`, the whole packet's length (u32), the version (u16),
//! the capability (u16 length + name), the packet type (i32), then the
//! module's ints (i32) and strings (u16 length + bytes). The clusterer
//! appends its trailer (cluster id, source node, destination node) last
//! (clusterer.c `msg_add_trailer`). OpenSIPS writes host-order integers;
//! lunasip writes little endian, which is the same on x86 and ARM hosts.

use bytes::Bytes;

pub const MARKER: &[u8; 4] = b"P4CK";
/// Marker, length, version.
pub const HEADER_SIZE: usize = 4 + 4 + 2;
/// The largest packet taken from a peer (OpenSIPS: one TCP buffer).
pub const MAX_PACKET: usize = 1 << 20;

/// Why a packet was not built or not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinError {
    #[error("not a BIN packet (no P4CK marker)")]
    Marker,
    #[error("BIN packet length {0} out of bounds")]
    Length(usize),
    #[error("BIN packet ends inside its {0}")]
    Truncated(&'static str),
    #[error("string of {0} bytes does not fit a BIN packet field")]
    TooLong(usize),
}

/// A packet being built.
#[derive(Debug, Clone)]
pub struct Builder {
    buf: Vec<u8>,
}

impl Builder {
    /// OpenSIPS `bin_init`: the header, the capability and the type.
    pub fn new(capability: &str, ptype: i32, version: i16, hint: usize) -> Builder {
        let mut buf = Vec::with_capacity(HEADER_SIZE + 2 + capability.len() + 4 + hint + 12);
        buf.extend_from_slice(MARKER);
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&version.to_le_bytes());
        let cap = &capability.as_bytes()[..capability.len().min(u16::MAX as usize)];
        buf.extend_from_slice(&(cap.len() as u16).to_le_bytes());
        buf.extend_from_slice(cap);
        buf.extend_from_slice(&ptype.to_le_bytes());
        Builder { buf }
    }

    /// OpenSIPS `bin_push_int`.
    pub fn int(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// OpenSIPS `bin_push_str`: a 16-bit length, then the bytes.
    pub fn str(&mut self, s: &[u8]) -> Result<(), BinError> {
        let len = u16::try_from(s.len()).map_err(|_| BinError::TooLong(s.len()))?;
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(s);
        Ok(())
    }

    /// Appends bytes as they are (a received packet's fields, copied
    /// when it is flooded on).
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// The packet with no trailer (clusterer-internal packets carry the
    /// cluster and source ids first instead), its length written.
    pub fn finish(&self) -> Bytes {
        let mut out = self.buf.clone();
        let len = out.len() as u32;
        out[4..8].copy_from_slice(&len.to_le_bytes());
        Bytes::from(out)
    }

    /// The packet for one destination: the clusterer's trailer appended
    /// and the length written.
    pub fn with_trailer(&self, cluster: i32, src: i32, dst: i32) -> Bytes {
        let mut out = Vec::with_capacity(self.buf.len() + 12);
        out.extend_from_slice(&self.buf);
        for v in [cluster, src, dst] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let len = out.len() as u32;
        out[4..8].copy_from_slice(&len.to_le_bytes());
        Bytes::from(out)
    }
}

/// The length a packet header announces (the whole packet), checked.
pub fn announced_len(header: &[u8; 8]) -> Result<usize, BinError> {
    if &header[..4] != MARKER {
        return Err(BinError::Marker);
    }
    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if !(HEADER_SIZE + 2 + 4..=MAX_PACKET).contains(&len) {
        return Err(BinError::Length(len));
    }
    Ok(len)
}

/// A received packet: its capability, type and version, the clusterer
/// trailer (once [`Packet::pop_trailer`] took it), and a reader over the
/// module's fields.
#[derive(Debug, Clone)]
pub struct Packet {
    pub capability: String,
    pub ptype: i32,
    pub version: i16,
    pub cluster: i32,
    pub src: i32,
    pub dst: i32,
    /// The whole packet as received (routed on unchanged).
    pub frame: Bytes,
    body: Bytes,
    pos: usize,
}

fn le_i32(b: &[u8]) -> i32 {
    i32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl Packet {
    /// Reads a whole packet (as [`announced_len`] framed it); the fields
    /// after the type are read with [`Packet::int`] and [`Packet::str`].
    pub fn parse(frame: Bytes) -> Result<Packet, BinError> {
        if frame.len() < 8 {
            return Err(BinError::Truncated("header"));
        }
        let mut head = [0u8; 8];
        head.copy_from_slice(&frame[..8]);
        let len = announced_len(&head)?;
        if frame.len() != len {
            return Err(BinError::Length(frame.len()));
        }
        let version = i16::from_le_bytes([frame[8], frame[9]]);
        let cap_len = u16::from_le_bytes([frame[10], frame[11]]) as usize;
        let type_at = HEADER_SIZE + 2 + cap_len;
        if type_at + 4 > len {
            return Err(BinError::Truncated("capability"));
        }
        let capability = String::from_utf8_lossy(&frame[HEADER_SIZE + 2..type_at]).into_owned();
        let ptype = le_i32(&frame[type_at..]);
        Ok(Packet {
            capability,
            ptype,
            version,
            cluster: 0,
            src: 0,
            dst: 0,
            body: frame.slice(type_at + 4..),
            frame,
            pos: 0,
        })
    }

    /// Takes the clusterer's trailer (cluster, source, destination) from
    /// the end (clusterer.c `bin_rcv_mod_packets`, `bin_pop_back_int`).
    pub fn pop_trailer(&mut self) -> Result<(), BinError> {
        let n = self.body.len();
        if n < self.pos + 12 {
            return Err(BinError::Truncated("trailer"));
        }
        let t = n - 12;
        self.cluster = le_i32(&self.body[t..]);
        self.src = le_i32(&self.body[t + 4..]);
        self.dst = le_i32(&self.body[t + 8..]);
        self.body.truncate(t);
        Ok(())
    }

    /// Where the reader is in the fields (bytes after the type).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The fields' bytes up to `end` (to copy a packet that is flooded on).
    pub fn fields(&self, end: usize) -> &[u8] {
        &self.body[..end.min(self.body.len())]
    }

    /// OpenSIPS `bin_pop_int`.
    pub fn int(&mut self, what: &'static str) -> Result<i32, BinError> {
        let b = self
            .body
            .get(self.pos..self.pos + 4)
            .ok_or(BinError::Truncated(what))?;
        self.pos += 4;
        Ok(le_i32(b))
    }

    /// OpenSIPS `bin_pop_str`.
    pub fn str(&mut self, what: &'static str) -> Result<Bytes, BinError> {
        let l = self
            .body
            .get(self.pos..self.pos + 2)
            .ok_or(BinError::Truncated(what))?;
        let len = u16::from_le_bytes([l[0], l[1]]) as usize;
        let start = self.pos + 2;
        if start + len > self.body.len() {
            return Err(BinError::Truncated(what));
        }
        self.pos = start + len;
        Ok(self.body.slice(start..start + len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_reads_back_what_was_pushed() {
        let mut b = Builder::new("tm-repl", 3, 0, 16);
        b.int(1);
        b.str(b"127.0.0.1").unwrap();
        b.str(b"").unwrap();
        b.int(-7);
        let wire = b.with_trailer(1, 2, 1);
        // bin_interface.h: marker, length, version, capability length.
        assert_eq!(&wire[..4], b"P4CK");
        assert_eq!(u32::from_le_bytes([wire[4], wire[5], wire[6], wire[7]]) as usize, wire.len());
        assert_eq!(&wire[10..12], &7u16.to_le_bytes());
        let mut p = Packet::parse(wire).unwrap();
        p.pop_trailer().unwrap();
        assert_eq!((p.capability.as_str(), p.ptype, p.version), ("tm-repl", 3, 0));
        assert_eq!((p.cluster, p.src, p.dst), (1, 2, 1));
        assert_eq!(p.int("a").unwrap(), 1);
        assert_eq!(&p.str("b").unwrap()[..], b"127.0.0.1");
        assert!(p.str("c").unwrap().is_empty());
        assert_eq!(p.int("d").unwrap(), -7);
        assert_eq!(p.int("e"), Err(BinError::Truncated("e")));
    }

    #[test]
    fn hostile_packets_are_refused_without_panic() {
        assert_eq!(announced_len(b"XXXX\0\0\0\0"), Err(BinError::Marker));
        assert!(announced_len(b"P4CK\x05\0\0\0").is_err());
        assert!(announced_len(b"P4CK\xff\xff\xff\x7f").is_err());
        // A capability length past the end.
        let mut b = Builder::new("x", 1, 0, 0).with_trailer(1, 1, 1).to_vec();
        b[10] = 0xff;
        assert!(Packet::parse(Bytes::from(b)).is_err());
        // A string length past the end.
        let mut b = Builder::new("x", 1, 0, 0);
        b.int(0);
        let mut w = b.with_trailer(1, 1, 1).to_vec();
        let at = w.len() - 16;
        w[at..at + 4].copy_from_slice(&[0xff, 0xff, 0, 0]);
        let mut p = Packet::parse(Bytes::from(w)).unwrap();
        p.pop_trailer().unwrap();
        assert!(p.str("s").is_err());
        // An internal packet: no trailer, the ids first.
        let mut b = Builder::new("clusterer-internal", 0, 1, 0);
        b.int(1);
        b.int(2);
        let mut p = Packet::parse(b.finish()).unwrap();
        assert_eq!((p.int("c").unwrap(), p.int("s").unwrap()), (1, 2));
        assert!(p.pop_trailer().is_err());
        assert!(Builder::new("x", 1, 0, 0).str(&vec![0; 70_000]).is_err());
    }
}
