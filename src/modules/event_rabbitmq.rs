//! event_rabbitmq (OpenSIPS 3.4 module of the same name): the settings of
//! `rabbitmq:` subscriber sockets; the publishing is
//! `crate::event::rabbit`.

use std::time::Duration;

use crate::event::rabbit::{self, SocketSettings};
use crate::modules::{cfg, param, Module, ParamKind};

const M: &str = "event_rabbitmq";

/// Reads `config.modules.event_rabbitmq` (checked, not applied).
pub fn prepare(modules: &mlua::Table) -> Result<SocketSettings, String> {
    let mut s = SocketSettings::default();
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(s);
    };
    if let Some(h) = cfg::int(&t, M, "heartbeat")? {
        // OpenSIPS turns heartbeats off for values outside 1..65535.
        s.heartbeat = u16::try_from(h).unwrap_or(0);
    }
    if let Some(ms) = cfg::int(&t, M, "connect_timeout")? {
        s.connect_timeout = Duration::from_millis(u64::try_from(ms).unwrap_or(0).max(1));
    }
    if cfg::int(&t, M, "use_tls")?.unwrap_or(0) != 0 {
        return Err(format!("config.modules.{M}.use_tls: TLS to the broker is not supported"));
    }
    Ok(s)
}

pub static MODULE: Module = Module {
    name: M,
    table: None,
    doc: "Event subscribers on RabbitMQ (OpenSIPS event_rabbitmq): `rabbitmq:[user[:password]@]host[:port]/[exchange=NAME;persistent?]routing_key` sockets publish each event, off the workers; the broker confirms each message before `evi:sent` counts it.",
    params: &[
        param("heartbeat", ParamKind::Int, "0", "Seconds between AMQP heartbeats; 0 (or out of 1..65535): off."),
        param("connect_timeout", ParamKind::Int, "500", "Milliseconds a connection to the broker may take."),
        param("use_tls", ParamKind::Int, "0", "Must stay 0: TLS to the broker (amqps) is not supported."),
    ],
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};

impl crate::modules::Settings for SocketSettings {
    fn commit(
        self: Box<Self>,
        _: &[crate::config::Listen],
        _: &mut crate::state::Staged,
    ) -> Result<(), crate::modules::SettingsError> {
        rabbit::configure_sockets(*self);
        Ok(())
    }
}
