//! Logging: tracing to stderr, with levels named as OpenSIPS names them
//! (`log_level` numbers -3..4 and xlog's `L_ERR`, `L_INFO`, …).

use tracing::Level;
use tracing_subscriber::{filter::LevelFilter, reload, Registry};

/// Handle to change the level at run time (MI `log_level`, reload).
pub type LevelHandle = reload::Handle<LevelFilter, Registry>;

/// Parses `error|warn|notice|info|debug|trace` or an OpenSIPS number.
pub fn parse_level(s: &str) -> Result<LevelFilter, String> {
    if let Ok(n) = s.trim().parse::<i64>() {
        return parse_level(opensips_level_name(n));
    }
    match s.trim().to_ascii_lowercase().as_str() {
        "alert" | "crit" | "critical" | "err" | "error" => Ok(LevelFilter::ERROR),
        "warn" | "warning" => Ok(LevelFilter::WARN),
        "notice" | "info" => Ok(LevelFilter::INFO),
        "dbg" | "debug" => Ok(LevelFilter::DEBUG),
        "trace" => Ok(LevelFilter::TRACE),
        "off" | "none" => Ok(LevelFilter::OFF),
        other => Err(format!(
            "unknown log level '{other}' (use error, warn, notice, info, debug)"
        )),
    }
}

/// OpenSIPS numeric log levels to names.
pub fn opensips_level_name(n: i64) -> &'static str {
    match n {
        i64::MIN..=-3 => "alert",
        -2 => "crit",
        -1 => "error",
        0 | 1 => "warn",
        2 => "notice",
        3 => "info",
        _ => "debug",
    }
}

/// An xlog level (`L_ERR`, `L_INFO`, "err", a number) to a tracing level.
pub fn xlog_level(s: &str) -> Option<Level> {
    let t = s.trim();
    let t = t.strip_prefix("L_").unwrap_or(t);
    let lf = parse_level(t).ok()?;
    lf.into_level()
}

/// Installs the stderr subscriber; returns the handle to change its level.
pub fn init(level: LevelFilter) -> LevelHandle {
    use tracing_subscriber::prelude::*;
    let (filter, handle) = reload::Layer::new(level);
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init();
    handle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_level("info").unwrap(), LevelFilter::INFO);
        assert_eq!(parse_level("-1").unwrap(), LevelFilter::ERROR);
        assert_eq!(parse_level("4").unwrap(), LevelFilter::DEBUG);
        assert!(parse_level("loud").is_err());
        assert_eq!(xlog_level("L_ERR"), Some(Level::ERROR));
        assert_eq!(xlog_level("L_DBG"), Some(Level::DEBUG));
        assert_eq!(xlog_level("L_NOTICE"), Some(Level::INFO));
        assert_eq!(xlog_level("bogus"), None);
    }
}
