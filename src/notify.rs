//! systemd service notifications (sd_notify(3)) in pure Rust, through the
//! `sd-notify` crate: no libsystemd link.
//!
//! The unit is `Type=notify`: lunasip says `READY=1` (with a one-line
//! `STATUS=`) once the script is loaded and every socket is bound, wraps a
//! reload in `RELOADING=1` … `READY=1`, says `STOPPING=1` on shutdown and,
//! when the unit sets `WatchdogSec=`, pings `WATCHDOG=1` at half that
//! interval. Every function here is a no-op when `NOTIFY_SOCKET` is unset
//! (not started by systemd), so callers never need to check.

use sd_notify::NotifyState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// True when the service manager asked for notifications (`NOTIFY_SOCKET`).
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Sends one notification datagram; failures are logged, never fatal.
fn send(states: &[NotifyState]) -> bool {
    if !enabled() {
        return false;
    }
    match sd_notify::notify(false, states) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("sd_notify: {e}");
            false
        }
    }
}

/// STATUS= is one line: newlines would start new assignments.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// `READY=1` and `STATUS=<status>`: call once the script is loaded and every
/// socket is bound (systemd then considers the unit started), and again
/// after a reload (ends the `reloading` state).
pub fn ready(status: &str) {
    let status = one_line(status);
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// `STATUS=<status>` alone (shown by `systemctl status lunasip`).
pub fn status(status: &str) {
    let status = one_line(status);
    send(&[NotifyState::Status(&status)]);
}

/// `RELOADING=1` (with `MONOTONIC_USEC=`, as systemd 253+ wants): call when
/// SIGHUP arrives, before checking the new script; follow with
/// [`reloaded`] (or [`ready`]) whether the reload worked or was refused.
pub fn reloading() {
    let status = NotifyState::Status("reloading the script");
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, status]),
        Err(_) => send(&[NotifyState::Reloading, status]),
    };
}

/// `READY=1` after a reload, with the new status line.
pub fn reloaded(status: &str) {
    ready(status)
}

/// `STOPPING=1`: call when SIGTERM/SIGINT arrives, before the workers stop.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The interval at which to ping the watchdog: half of `WATCHDOG_USEC`, when
/// it is set and `WATCHDOG_PID` (if set) names this process.
pub fn watchdog_interval() -> Option<Duration> {
    if !enabled() {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// One `WATCHDOG=1` (the supervisor decides when).
pub fn watchdog_ping() {
    send(&[NotifyState::Watchdog]);
}

/// A running watchdog thread (see [`spawn_watchdog`]). Dropping it leaves
/// the thread running; [`Watchdog::stop`] ends it.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Watchdog {
    /// Stops the pings and waits for the thread.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.thread().unpark();
        let _ = self.handle.join();
    }
}

/// Starts a thread that sends `WATCHDOG=1` every [`watchdog_interval`];
/// `None` (and no thread) when the unit has no `WatchdogSec=`.
pub fn spawn_watchdog() -> Option<Watchdog> {
    spawn_watchdog_with(|| true)
}

/// Like [`spawn_watchdog`], but pings only while `alive()` is true (e.g.
/// "every worker answered its last heartbeat"); a false skips the ping, so
/// systemd restarts a wedged proxy after `WatchdogSec`.
pub fn spawn_watchdog_with(alive: impl Fn() -> bool + Send + 'static) -> Option<Watchdog> {
    let every = watchdog_interval()?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name("sd-watchdog".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if alive() {
                    send(&[NotifyState::Watchdog]);
                } else {
                    tracing::warn!("watchdog: not alive, skipping the ping");
                }
                std::thread::park_timeout(every);
            }
        })
        .ok()?;
    Some(Watchdog { stop, handle })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::sync::Mutex;

    /// Tests here change process-wide environment variables.
    static ENV: Mutex<()> = Mutex::new(());

    struct Sock {
        sock: UnixDatagram,
        _dir: tempfile::TempDir,
    }

    /// Binds a notify socket and points NOTIFY_SOCKET at it.
    fn bind() -> Sock {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        Sock { sock, _dir: dir }
    }

    /// The next datagram containing `marker` (others may come from other code).
    fn recv_with(s: &Sock, marker: &str) -> String {
        let mut buf = [0u8; 4096];
        loop {
            let n = s.sock.recv(&mut buf).expect("no notification");
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.contains(marker) {
                return msg;
            }
        }
    }

    fn clear() {
        for v in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(v);
        }
    }

    #[test]
    fn ready_status_reload_stop() {
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let s = bind();
        ready("lunasip test: 2 workers,\nudp:127.0.0.1:5060");
        assert_eq!(
            recv_with(&s, "2 workers"),
            "READY=1\nSTATUS=lunasip test: 2 workers, udp:127.0.0.1:5060\n"
        );
        reloading();
        let m = recv_with(&s, "RELOADING=1");
        assert!(m.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{m}");
        assert!(m.ends_with("STATUS=reloading the script\n"), "{m}");
        reloaded("reloaded-marker");
        assert_eq!(
            recv_with(&s, "reloaded-marker"),
            "READY=1\nSTATUS=reloaded-marker\n"
        );
        status("status-marker");
        assert_eq!(recv_with(&s, "status-marker"), "STATUS=status-marker\n");
        stopping();
        assert_eq!(recv_with(&s, "STOPPING"), "STOPPING=1\nSTATUS=stopping\n");
        clear();
    }

    #[test]
    fn watchdog_pings_at_half_the_interval() {
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let s = bind();
        std::env::set_var("WATCHDOG_USEC", "40000");
        std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
        assert_eq!(watchdog_interval(), Some(Duration::from_millis(20)));
        let wd = spawn_watchdog().expect("watchdog thread");
        for _ in 0..3 {
            assert_eq!(recv_with(&s, "WATCHDOG"), "WATCHDOG=1\n");
        }
        wd.stop();
        // Another process's watchdog is not ours.
        std::env::set_var("WATCHDOG_PID", "1");
        assert_eq!(watchdog_interval(), None);
        clear();
    }

    #[test]
    fn no_socket_no_op() {
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        clear();
        assert!(!enabled());
        ready("nobody listens");
        reloading();
        std::env::set_var("WATCHDOG_USEC", "40000");
        assert!(spawn_watchdog().is_none());
        clear();
    }
}
