//! Logging to the systemd journal in pure Rust (`tracing-journald`: the
//! journal's native protocol over its socket, no libsystemd link).
//!
//! Under systemd, stderr is a stream to journald and systemd says so in
//! `JOURNAL_STREAM=<dev>:<inode>`. When that names our stderr, events go
//! to the journal as structured entries instead: `PRIORITY` from the
//! level, `SYSLOG_IDENTIFIER=lunasip`, `CODE_FILE`/`CODE_LINE`, and every
//! event field as its own journal field, upper-cased without a prefix — a
//! `call_id`, `method` or `worker` field is `CALL_ID=`, `METHOD=`,
//! `WORKER=`, so `journalctl -u lunasip CALL_ID=abc@host` finds one call.
//!
//! `LUNASIP_LOG=stderr` in the environment (e.g. /etc/default/lunasip)
//! keeps plain stderr lines; `LUNASIP_LOG=journal` uses the journal even
//! when stderr is not the journal stream.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

/// The journald layer's type, for the logging setup.
pub type JournaldLayer = tracing_journald::Layer;

/// Parses `JOURNAL_STREAM` (`"<device>:<inode>"`, decimal).
pub fn parse_stream(v: &str) -> Option<(u64, u64)> {
    let (dev, ino) = v.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// Device and inode of our stderr.
fn stderr_id() -> Option<(u64, u64)> {
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// True when systemd connected our stderr to the journal (JOURNAL_STREAM
/// names stderr's device and inode; a child whose stderr was redirected
/// does not match, as sd_journal_stream_fd(3) recommends).
pub fn stderr_is_journal() -> bool {
    match std::env::var("JOURNAL_STREAM")
        .ok()
        .and_then(|v| parse_stream(&v))
    {
        Some(id) => stderr_id() == Some(id),
        None => false,
    }
}

/// Where `LUNASIP_LOG` and `JOURNAL_STREAM` say logs go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Stderr,
    Journal,
}

/// The decision, from `LUNASIP_LOG` (`stderr`, `journal`, or unset/`auto`)
/// and whether stderr is the journal stream.
pub fn choose(lunasip_log: Option<&str>, stderr_is_journal: bool) -> Target {
    match lunasip_log
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("stderr") => Target::Stderr,
        Some("journal") | Some("journald") => Target::Journal,
        _ if stderr_is_journal => Target::Journal,
        _ => Target::Stderr,
    }
}

/// The journald layer when lunasip runs under systemd (see the module doc),
/// else `None`: then log to stderr as before. Also `None` when the journal
/// socket cannot be reached, so logs never vanish.
pub fn journald_layer() -> Option<JournaldLayer> {
    let target = choose(
        std::env::var("LUNASIP_LOG").ok().as_deref(),
        stderr_is_journal(),
    );
    if target != Target::Journal {
        return None;
    }
    connect().ok()
}

/// A journald layer, whatever the environment (fails when journald's socket
/// is missing).
pub fn connect() -> std::io::Result<JournaldLayer> {
    Ok(tracing_journald::layer()?
        .with_field_prefix(None)
        .with_syslog_identifier("lunasip".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_journal_stream() {
        assert_eq!(parse_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_stream(" 64769:9\n"), Some((64769, 9)));
        assert_eq!(parse_stream("8"), None);
        assert_eq!(parse_stream("x:1"), None);
        assert_eq!(parse_stream(""), None);
    }

    #[test]
    fn chooses_target() {
        assert_eq!(choose(None, false), Target::Stderr);
        assert_eq!(choose(None, true), Target::Journal);
        assert_eq!(choose(Some("auto"), true), Target::Journal);
        assert_eq!(choose(Some("stderr"), true), Target::Stderr);
        assert_eq!(choose(Some("Journal"), false), Target::Journal);
    }

    #[test]
    fn stderr_identity_is_readable() {
        // The test harness's stderr is a pipe or a terminal, never the
        // journal stream we make up here.
        let (dev, ino) = stderr_id().expect("fstat stderr");
        let other = format!("{}:{}", dev, ino.wrapping_add(1));
        assert_eq!(parse_stream(&other), Some((dev, ino.wrapping_add(1))));
    }
}
