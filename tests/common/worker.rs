//! In-process route runs shared by the tests: a worker built from a Lua
//! script (checked as `lunasip check` does), a SIP message handed to it,
//! and what it queued to send. No sockets.

use bytes::Bytes;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

pub use lunasip::proxy::context::{Dest, OutKind};
pub use lunasip::proxy::worker::Worker;
pub use lunasip::transport::Proto;

use lunasip::config::{parse_listen, Config};
use lunasip::script::{Env, Host, Source};
use lunasip::transport::tcp::{TcpCtx, TcpTable};
use lunasip::transport::{Incoming, Sockets};

pub const HEAD: &str =
    "config = { listen = { \"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\" }, children = 1 }\n";

pub fn worker(routes: &str) -> Rc<Worker> {
    let code = format!("{HEAD}{routes}");
    let checked = lunasip::script::check::check(&Source {
        name: "t.lua".into(),
        code: code.clone(),
    })
    .expect("script checks");
    let listen = checked.config.listen.clone();
    // The test thread serves the registry the settings go to.
    let modules = lunasip::state::current();
    let cfg = checked.commit(&listen, &modules).expect("modules load");
    let cfg = Config {
        listen: vec![
            parse_listen("udp:127.0.0.1:5060").unwrap(),
            parse_listen("tcp:127.0.0.1:5060").unwrap(),
        ],
        ..cfg
    };
    let env = Env {
        worker: 0,
        sockets: Arc::new(Sockets::new(&cfg.listen, &cfg.aliases)),
        config: Arc::new(cfg),
        tm: Arc::new(lunasip::proxy::tm::Tm::new(Default::default())),
        modules,
        tcp: Default::default(),
        load: Default::default(),
    };
    let host = Host::new(
        &Source {
            name: "t.lua".into(),
            code,
        },
        env,
    )
    .expect("loads");
    let tcp = Rc::new(TcpCtx {
        table: Arc::new(TcpTable::default()),
        idle: Duration::from_secs(5),
        max_msg: 65535,
        read_timeout: Duration::from_secs(4),
        max_bad: 3,
        connect_timeout: Duration::from_secs(1),
    });
    Rc::new(Worker::new(host, vec![None, None], tcp))
}

pub const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKabc;rport\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@example.com>;tag=a1\r\n\
To: Bob <sip:bob@example.com>\r\n\
Call-ID: call-1@10.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@10.0.0.1:5062>\r\n\
X-Keep: yes\r\n\
Content-Length: 0\r\n\r\n";

/// Runs `msg` (from 10.0.0.9:5070 over `proto`) through the route; returns
/// (kind, destination, bytes) of everything queued.
pub fn run(w: &Rc<Worker>, msg: &str, proto: Proto) -> Vec<(OutKind, Dest, String)> {
    let socket = if proto == Proto::Udp { 0 } else { 1 };
    w.handle(Incoming {
        buf: Bytes::from(msg.to_string()),
        src: "10.0.0.9:5070".parse().unwrap(),
        proto,
        socket,
    });
    let host = w.host();
    let mut call = host.current().call.borrow_mut();
    call.outbox
        .drain(..)
        .map(|o| {
            (
                o.kind,
                o.dest,
                String::from_utf8_lossy(&o.bytes).into_owned(),
            )
        })
        .collect()
}

pub fn addr(s: &str) -> Dest {
    Dest::Addr(s.parse().unwrap())
}
