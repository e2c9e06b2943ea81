//! event_flatstore (OpenSIPS 3.4 module of the same name): `flatstore:`
//! subscriber sockets append one line per event to a file (the writing is
//! `crate::event::flat`); `evi_flat_rotate` reopens a file after
//! logrotate moved it (SIGHUP reopens every file too).

use serde_json::Value;

use crate::event::flat::{self, Settings};
use crate::mi::{req, Command, Ctx, Kind, MiError, Params};
use crate::modules::{cfg, param, Module, ParamKind};

const M: &str = "event_flatstore";

/// Reads `config.modules.event_flatstore` (checked, not applied).
pub fn prepare(modules: &mlua::Table) -> Result<Settings, String> {
    let mut s = Settings::default();
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(s);
    };
    if let Some(d) = cfg::str(&t, M, "delimiter")? {
        if d.is_empty() {
            return Err(format!("config.modules.{M}.delimiter must not be empty"));
        }
        s.delimiter = d;
    }
    if let Some(p) = cfg::str(&t, M, "file_permissions")? {
        s.mode = u32::from_str_radix(p.trim(), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                format!("config.modules.{M}.file_permissions must be octal, like \"644\", not {p:?}")
            })?;
    }
    if let Some(n) = cfg::int(&t, M, "max_open_sockets")? {
        s.max_files = usize::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("config.modules.{M}.max_open_sockets must be > 0"))?;
    }
    if let Some(b) = cfg::bool(&t, M, "suppress_event_name")? {
        s.suppress_event_name = b;
    }
    Ok(s)
}

/// `evi_flat_rotate(path_to_file)`: the file is reopened before its next
/// line; an error when no subscription writes that file.
fn mi_rotate(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let path = p.str("path_to_file").unwrap_or_default();
    if flat::rotate(Some(path)) {
        Ok(Value::from("OK"))
    } else {
        Err(MiError::new(400, format!("no flatstore subscriber writes {path}")))
    }
}

pub static MODULE: Module = Module {
    name: M,
    table: None,
    doc: "Event subscribers that are files (OpenSIPS event_flatstore): `flatstore:/path/file` gets one line per event, the event's name and its values separated by `delimiter`.",
    mi: &[Command {
        name: "evi_flat_rotate",
        help: "Reopens the flatstore file `path_to_file` before its next line (after logrotate moved it). SIGHUP reopens every flatstore file.",
        module: M,
        params: &[req("path_to_file", Kind::Str)],
        result: "`\"OK\"`",
        handler: mi_rotate,
    }],
    params: &[
        param("delimiter", ParamKind::Str, ",", "Text between the fields of a line."),
        param("file_permissions", ParamKind::Str, "644", "Mode (octal) of the files it creates."),
        param("max_open_sockets", ParamKind::Int, "100", "Files open at once; a subscription to one more file is refused."),
        param("suppress_event_name", ParamKind::Int, "0", "1: lines start with the first value, not the event's name."),
    ],
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};

impl crate::modules::Settings for Settings {
    fn commit(
        self: Box<Self>,
        _: &[crate::config::Listen],
        _: &mut crate::state::Staged,
    ) -> Result<(), crate::modules::SettingsError> {
        flat::configure(*self);
        Ok(())
    }
}
