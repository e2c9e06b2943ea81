//! A relay to MariaDB that makes a write's fate unknown on demand. It
//! reads the client/server protocol's packets (3-byte length, sequence
//! id, payload), learns from each connection's COM_STMT_PREPARE and its
//! answer which statement ids are INSERTs into the chosen table, and for
//! the next `times` COM_STMT_EXECUTEs of them loses either the server's
//! answer (forwarded, committed, the OK thrown away) or the execute
//! itself (nothing ran), then closes both sides. It also counts the
//! executes of the writer's look-up (`SELECT COUNT(*) AS n FROM table`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;

/// What a cut loses.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The server's answer: the statement ran, the client cannot know.
    Answer,
    /// The execute: the statement never reached the server.
    Request,
}

#[derive(Default)]
struct Counts {
    /// Cuts still to make.
    left: AtomicUsize,
    /// Cuts made.
    cuts: AtomicUsize,
    /// Executes of the look-up.
    probes: AtomicUsize,
    /// New connections are closed at once (a server that is down).
    refuse: AtomicBool,
    stop: AtomicBool,
}

pub struct MysqlCut {
    pub port: u16,
    counts: Arc<Counts>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

/// What a statement id is, per connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stmt {
    Insert,
    Probe,
    Other,
}

#[derive(Default)]
struct Conn {
    /// The kind of the prepare awaiting its answer.
    preparing: Option<Stmt>,
    stmts: HashMap<u32, Stmt>,
    /// Throw the next answer away and close.
    lose_answer: bool,
}

impl MysqlCut {
    /// Listens on a free port of 127.0.0.1, relays to MariaDB on 3306 and
    /// cuts the next `times` INSERTs into `table` as `loss` says.
    pub fn start(table: &str, loss: Loss, times: usize) -> MysqlCut {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cut listener");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let counts = Arc::new(Counts::default());
        counts.left.store(times, Ordering::Relaxed);
        let cut = MysqlCut {
            port,
            counts: counts.clone(),
            open: Arc::default(),
        };
        let open = cut.open.clone();
        let kinds = Arc::new((
            format!("INSERT INTO {table} ("),
            format!("SELECT COUNT(*) AS n FROM {table} "),
        ));
        std::thread::spawn(move || {
            while !counts.stop.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if counts.refuse.load(Ordering::Relaxed) {
                    continue; // dropped: closed before anything is sent
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect("127.0.0.1:3306") else {
                    continue;
                };
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        open.lock().expect("open").push(c);
                    }
                }
                let conn = Arc::new(Mutex::new(Conn::default()));
                let ctx = (counts.clone(), conn, kinds.clone());
                relay(&client, &server, ctx.clone(), true, loss);
                relay(&server, &client, ctx, false, loss);
            }
        });
        cut
    }

    /// While on, new connections are closed at once.
    pub fn refuse(&self, on: bool) {
        self.counts.refuse.store(on, Ordering::Relaxed);
    }

    pub fn cuts(&self) -> usize {
        self.counts.cuts.load(Ordering::Relaxed)
    }

    pub fn probes(&self) -> usize {
        self.counts.probes.load(Ordering::Relaxed)
    }
}

impl Drop for MysqlCut {
    fn drop(&mut self) {
        self.counts.stop.store(true, Ordering::Relaxed);
        for s in self.open.lock().expect("open").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

type Ctx = (Arc<Counts>, Arc<Mutex<Conn>>, Arc<(String, String)>);

/// One packet: its 4-byte header and payload; None at the end.
fn packet(r: &mut TcpStream) -> Option<Vec<u8>> {
    let mut p = vec![0u8; 4];
    r.read_exact(&mut p).ok()?;
    let len = usize::from(p[0]) | usize::from(p[1]) << 8 | usize::from(p[2]) << 16;
    p.resize(4 + len, 0);
    r.read_exact(&mut p[4..]).ok()?;
    Some(p)
}

/// Copies packets `from` → `to` on a thread, watching statements
/// (`up`: client to server).
fn relay(from: &TcpStream, to: &TcpStream, (counts, conn, kinds): Ctx, up: bool, loss: Loss) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        while let Some(p) = packet(&mut from) {
            let (seq, cmd) = (p[3], p.get(4).copied());
            let mut c = conn.lock().expect("conn");
            if up && seq == 0 && cmd == Some(COM_STMT_PREPARE) {
                let sql = &p[5..];
                c.preparing = Some(if sql.starts_with(kinds.0.as_bytes()) {
                    Stmt::Insert
                } else if sql.starts_with(kinds.1.as_bytes()) {
                    Stmt::Probe
                } else {
                    Stmt::Other
                });
            } else if up && seq == 0 && cmd == Some(COM_STMT_EXECUTE) && p.len() >= 9 {
                let id = u32::from_le_bytes([p[5], p[6], p[7], p[8]]);
                match c.stmts.get(&id) {
                    Some(Stmt::Probe) => {
                        counts.probes.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Stmt::Insert) if take(&counts.left) => match loss {
                        Loss::Answer => c.lose_answer = true,
                        Loss::Request => {
                            counts.cuts.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    },
                    _ => {}
                }
            } else if !up && c.lose_answer {
                counts.cuts.fetch_add(1, Ordering::Relaxed);
                break;
            } else if !up {
                // The prepare's answer: COM_STMT_PREPARE_OK and the id.
                if let (Some(kind), 1, Some(0)) = (c.preparing.take(), seq, cmd) {
                    if p.len() >= 9 {
                        c.stmts
                            .insert(u32::from_le_bytes([p[5], p[6], p[7], p[8]]), kind);
                    }
                }
            }
            drop(c);
            if to.write_all(&p).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Takes one from `n` if any is left.
fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
        .is_ok()
}
