//! What the Lua benchmarks share: a worker's host loaded with a script,
//! the INVITE they run on, and where it came from.
#![allow(dead_code)]

use std::sync::Arc;

use lunasip::config::{parse_listen, Config};
use lunasip::proxy::context::Source;
use lunasip::script::{Env, Host};
use lunasip::transport::{Proto, Sockets};

/// A ~1 KB INVITE.
pub const INVITE: &[u8] = include_bytes!("../../tests/fixtures/sip/invite.sip");

/// A host (one worker's Lua state) on udp:127.0.0.1:5060 running `script`.
pub fn host(script: &str) -> std::rc::Rc<Host> {
    host_with(script, |_| {})
}

/// A host with the config changed by `f` first.
#[allow(dead_code)]
pub fn host_with(script: &str, f: impl FnOnce(&mut Config)) -> std::rc::Rc<Host> {
    let mut cfg = Config {
        listen: vec![parse_listen("udp:127.0.0.1:5060").expect("listen")],
        ..Config::default()
    };
    f(&mut cfg);
    let env = Env {
        worker: 0,
        sockets: Arc::new(Sockets::new(&cfg.listen, &cfg.aliases)),
        config: Arc::new(cfg),
        tm: Arc::new(lunasip::proxy::tm::Tm::new(Default::default())),
        modules: lunasip::state::current(),
        tcp: Default::default(),
        load: Default::default(),
    };
    Host::new(
        &lunasip::script::Source {
            name: "bench.lua".into(),
            code: script.into(),
        },
        env,
    )
    .expect("script loads")
}

/// The message's source: 127.0.0.1:5070 over UDP, socket 0.
pub fn src() -> Source {
    Source {
        addr: "127.0.0.1:5070".parse().expect("addr"),
        proto: Proto::Udp,
        socket: 0,
    }
}
