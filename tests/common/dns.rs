//! A real authoritative DNS server for the tests: Knot DNS (`knotd`,
//! Debian's `knot` package) serving one zone on a free 127.0.0.1 port.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The zone every test uses.
pub const ZONE: &str = "test.lunasip";

pub struct Knot {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Knot {
    /// Starts knotd with `records` (zone-file lines relative to the zone)
    /// and waits until it answers.
    pub fn start(records: &str) -> Knot {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = super::free_port();
        let zone = format!(
            "$ORIGIN {ZONE}.\n$TTL 60\n\
             @ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 60\n\
             @ IN NS ns\nns IN A 127.0.0.1\n{records}\n"
        );
        std::fs::write(dir.path().join("zone"), zone).expect("zone file");
        let d = dir.path().display();
        let conf = format!(
            "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}\"\n\
             database:\n    storage: \"{d}\"\n\
             log:\n  - target: stderr\n    any: warning\n\
             zone:\n  - domain: {ZONE}.\n    storage: \"{d}\"\n    file: zone\n"
        );
        std::fs::write(dir.path().join("knot.conf"), conf).expect("knot.conf");
        let log = std::fs::File::create(dir.path().join("knot.log")).expect("log");
        let child = Command::new("knotd")
            .arg("-c")
            .arg(dir.path().join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("knotd (apt-get install knot)");
        let k = Knot { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !k.answers() {
            assert!(
                Instant::now() < deadline,
                "knotd did not answer: {}",
                std::fs::read_to_string(k.dir.path().join("knot.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        k
    }

    /// One SOA query for the zone gets an answer.
    fn answers(&self) -> bool {
        let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ZONE.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 6, 0, 1]);
        if s.send_to(&q, ("127.0.0.1", self.port)).is_err() {
            return false;
        }
        let mut buf = [0u8; 512];
        matches!(s.recv_from(&mut buf), Ok((n, _)) if n >= 12 && buf[0] == 0x12 && buf[1] == 0x34)
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
