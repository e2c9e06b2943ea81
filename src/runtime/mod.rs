//! Threads, sockets, signals and shutdown: `lunasip run`.
//!
//! The script is loaded and checked before any socket is bound. Then every
//! socket is bound for every worker (SO_REUSEPORT), so a bind error stops
//! the daemon before it takes traffic. Each worker thread builds its own
//! Lua state and single-threaded runtime (`worker.rs`); the main thread
//! waits for signals.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::config::{Config, MiToken};
use crate::mi;
use crate::script::{check::check, Source};
use crate::supervisor::Heartbeats;
use crate::transport::tcp::TcpTable;
use crate::transport::Sockets;

pub mod pack;
mod worker;
use worker::{bind_all, worker_main, Bound};

/// Why the daemon could not start, or a reload was refused. Each names
/// what failed; the script's own errors carry file and line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The script or its config was refused.
    #[error("{0}")]
    Script(#[from] crate::script::ScriptError),
    /// The script file could not be read (a reload).
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// A listen socket could not be bound.
    #[error("cannot listen on {proto}:{addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// Module settings could not be loaded (lists, databases) or a
    /// module's `init` failed (`origin`: the script position).
    #[error("{0}")]
    Modules(crate::modules::SettingsError),
    /// The log level given is not one.
    #[error("{0}")]
    LogLevel(String),
    /// The MI could not start where the config asks for it explicitly.
    #[error("{0}")]
    Mi(String),
    /// A thread or a worker could not start.
    #[error("{0}")]
    Start(String),
    /// The script file was read again but could not be made a script (an
    /// opensips.cfg that no longer translates).
    #[error("{0}")]
    Translate(String),
}

/// Reads the script file again on a reload, when it is not plain Lua: an
/// opensips.cfg is translated again with the options it was started with.
pub type Reader = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// Lets the signal handler (and the MI) reload the routing script: the new
/// script is checked first; only a good one reaches the workers, each of
/// which swaps its Lua state between two messages.
pub struct Control {
    /// Where the script came from: a file to read again, or the embedded default.
    source: Source,
    from_file: bool,
    /// How to read the file again (None: as it is).
    reader: Option<Reader>,
    listen: Vec<crate::config::Listen>,
    /// The listeners came from the command line (`-l`): the script's
    /// `config.listen` is not looked at.
    listen_from_cli: bool,
    /// MI transport settings in force (they need a restart to change).
    mi: (Option<crate::config::MiHttp>, Option<crate::config::MiFifo>),
    tx: tokio::sync::watch::Sender<Arc<Source>>,
    /// One reload at a time (SIGHUP and MI), so check, commit and send
    /// of one are never interleaved with another's.
    reloading: std::sync::Mutex<()>,
    /// The modules' settings and state, committed into on each reload.
    modules: Arc<crate::state::Registry>,
}

impl mi::Reloader for Control {
    fn reload(&self) -> Result<(), String> {
        Control::reload(self).map_err(|e| e.to_string())
    }
}

impl Control {
    /// Re-reads and checks the script, then hands it to every worker.
    /// Errors (unreadable, bad script) leave the running script in place.
    pub fn reload(&self) -> Result<(), RunError> {
        crate::notify::reloading();
        let r = self.check_and_send();
        match &r {
            Ok(()) => crate::notify::reloaded("running; script reloaded"),
            Err(e) => crate::notify::reloaded(&format!("running; reload refused: {e}")),
        }
        r
    }

    fn check_and_send(&self) -> Result<(), RunError> {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let source = if self.from_file {
            let code = match &self.reader {
                Some(read) => read(&self.source.name).map_err(RunError::Translate)?,
                None => {
                    std::fs::read_to_string(&self.source.name).map_err(|source| RunError::Read {
                        path: self.source.name.clone(),
                        source,
                    })?
                }
            };
            Source {
                name: self.source.name.clone(),
                code,
            }
        } else {
            self.source.clone()
        };
        let checked = check(&source)?;
        // The whole script passed: apply its module settings (against the
        // sockets in force), then hand it to the workers.
        let cfg = checked
            .commit(&self.listen, &self.modules)
            .map_err(RunError::Modules)?;
        if cfg.listen != self.listen && !self.listen_from_cli {
            tracing::warn!("reload: config.listen changed; the new sockets need a restart");
        }
        if (&cfg.mi_http, &cfg.mi_fifo) != (&self.mi.0, &self.mi.1) {
            tracing::warn!("reload: config.modules.mi_http/mi_fifo changed; that needs a restart");
        }
        self.tx.send_replace(Arc::new(source));
        Ok(())
    }

    /// A receiver for workers: it changes when a new script is installed.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Source>> {
        self.tx.subscribe()
    }
}

/// Runs the daemon until SIGTERM or SIGINT. `level` overrides config.log_level.
pub fn run(source: Source, level: Option<&str>, from_default: bool) -> Result<(), RunError> {
    run_with(source, level, from_default, &[], None)
}

/// [`run`] with `lunasip run -l proto:ip:port` listeners (OpenSIPS's
/// `-l`: when given, they replace the script's `config.listen`) and the
/// function a reload reads the script file with (an opensips.cfg is
/// translated again).
pub fn run_with(
    source: Source,
    level: Option<&str>,
    from_default: bool,
    listen_cli: &[String],
    reader: Option<Reader>,
) -> Result<(), RunError> {
    let mut checked = check(&source)?;
    if !listen_cli.is_empty() {
        let mut listen = Vec::with_capacity(listen_cli.len());
        for l in listen_cli {
            listen.push(
                crate::config::parse_listen(l).map_err(|e| {
                    RunError::Script(crate::script::ScriptError::new("-l", None, e))
                })?,
            );
        }
        checked.config.listen = listen;
    }
    let lvl = crate::logging::parse_level(level.unwrap_or(&checked.config.log_level))
        .map_err(RunError::LogLevel)?;
    crate::logging::init(lvl);
    crate::logging::set_xlog_default(checked.config.xlog_level);
    crate::modules::dispatcher::flush_early_log();
    // The script passed: load the dispatcher sets (a database that is down
    // leaves its partition empty and is retried) before any traffic.
    let listen = checked.config.listen.clone();
    // The modules' settings and state for this daemon; this thread (init,
    // shutdown) and every thread below serve it.
    let modules = crate::state::Registry::new();
    let _in = crate::state::enter(modules.clone());
    let cfg = checked
        .commit(&listen, &modules)
        .map_err(RunError::Modules)?;
    crate::modules::register();
    // The core's events (E_CORE_*), reported by layers below `event`.
    crate::core_events::connect(crate::event::wanted, crate::event::raise_declared);
    crate::logging::set_log_event(cfg.log_event_level);
    if from_default {
        tracing::info!("no script given and /etc/lunasip/lunasip.lua does not exist: running the embedded default script");
    }
    let bound = bind_all(&cfg)?;
    // The first worker's UDP sockets, the first of each group to bind:
    // `udp_pack` steers the groups through them.
    let firsts: Vec<std::net::UdpSocket> = match bound.first() {
        Some(mine) if cfg.udp_pack && cfg.children > 1 => mine
            .iter()
            .filter_map(|b| match b {
                Bound::Udp(s) => s.try_clone().ok(),
                Bound::Tcp(_) => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let cfg = Arc::new(cfg);
    let sockets = Arc::new(Sockets::new(&cfg.listen, &cfg.aliases).with_mhomed(cfg.mhomed));
    let table = Arc::new(TcpTable::default());
    // Transactions: one table for all workers, one timer thread; fired
    // timers go to the worker queues.
    let tm = Arc::new(crate::proxy::tm::Tm::new(cfg.tm));
    let load = Arc::new(crate::proxy::overload::Load::default());
    let mut timer_queues = Vec::with_capacity(cfg.children);
    let mut timer_rx = Vec::with_capacity(cfg.children);
    for _ in 0..cfg.children {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        timer_queues.push(tx);
        timer_rx.push(rx);
    }
    tm.set_workers(timer_queues);
    tm.set_observers(crate::modules::tm_observers());
    let wheel_thread = {
        let tm = tm.clone();
        thread::Builder::new()
            .name("tm-timer".into())
            .spawn({
                let modules = modules.clone();
                move || {
                    let _in = crate::state::enter(modules);
                    tm.wheel.run(|ev| tm.dispatch(ev))
                }
            })
            .map_err(|e| RunError::Start(format!("cannot start the timer thread: {e}")))?
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let beats = cfg
        .worker_stall_timeout
        .map(|stall| Heartbeats::new(bound.len(), stall));
    let control = Arc::new(Control {
        source: source.clone(),
        from_file: !from_default,
        reader,
        listen: cfg.listen.clone(),
        listen_from_cli: !listen_cli.is_empty(),
        mi: (cfg.mi_http.clone(), cfg.mi_fifo.clone()),
        tx: tokio::sync::watch::channel(Arc::new(source.clone())).0,
        reloading: std::sync::Mutex::new(()),
        modules: modules.clone(),
    });
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let ctx = Arc::new(mi::Ctx {
        control: Some(control.clone()),
        tcp: Some(table.clone()),
        started: std::time::SystemTime::now(),
        args: std::env::args().collect(),
        procs: std::sync::Mutex::new(Vec::new()),
        shutdown: Some(shutdown.clone()),
        modules: modules.clone(),
    });
    ctx.add_current_thread("main", None);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut threads = Vec::new();
    for ((id, socks), timers) in bound.into_iter().enumerate().zip(timer_rx) {
        let tm = tm.clone();
        let load = load.clone();
        let reload = control.subscribe();
        let beats = beats.clone();
        let modules = modules.clone();
        let (source, cfg, sockets, table, stop, ready, ctx) = (
            source.clone(),
            cfg.clone(),
            sockets.clone(),
            table.clone(),
            stop_rx.clone(),
            ready_tx.clone(),
            ctx.clone(),
        );
        let t = thread::Builder::new()
            .name(format!("worker-{id}"))
            .spawn(move || {
                ctx.add_current_thread(&format!("SIP worker {id}"), Some(id));
                let _in = crate::state::enter(modules);
                worker_main(
                    id, source, cfg, sockets, table, socks, stop, ready, reload, tm, load, timers,
                    beats,
                )
            })
            .map_err(|e| RunError::Start(format!("cannot start worker {id}: {e}")))?;
        threads.push(t);
    }
    drop(ready_tx);
    let mut failure = None;
    for _ in 0..threads.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(RunError::Start(e)),
            Err(_) => failure = Some(RunError::Start("a worker exited while starting".into())),
        }
    }
    // Every worker that started has recorded its thread id.
    let mut ids: Vec<(usize, i64)> = ctx
        .procs()
        .iter()
        .filter_map(|p| p.worker.map(|w| (w, p.pid)))
        .collect();
    ids.sort_unstable();
    let tids: Vec<i64> = ids.into_iter().map(|(_, t)| t).collect();
    let mi = match failure {
        Some(e) => Err(e),
        None => start_mi(&cfg, ctx),
    };
    let _fifo = match mi {
        Ok(f) => f,
        Err(e) => {
            let _ = stop_tx.send(true);
            for t in threads {
                let _ = t.join();
            }
            return Err(e);
        }
    };
    let packer = pack::spawn(firsts, tids);
    let listen: Vec<String> = sockets.list.iter().map(|s| s.spec()).collect();
    tracing::info!(
        "lunasip {} ready: {} workers, listening on {}, script {}",
        env!("CARGO_PKG_VERSION"),
        cfg.children,
        listen.join(" "),
        source.name
    );
    crate::notify::ready(&format!(
        "{} workers, listening on {}",
        cfg.children,
        listen.join(" ")
    ));
    // With a stall bound the supervisor pings systemd only while every
    // worker beats; without one, the plain watchdog thread pings.
    let (supervisor, watchdog) = match &beats {
        Some(hb) => (
            Some(
                crate::supervisor::spawn(hb.clone())
                    .map_err(|e| RunError::Start(format!("cannot start the supervisor: {e}")))?,
            ),
            None,
        ),
        None => (None, crate::notify::spawn_watchdog()),
    };
    wait_for_signals(&control, &shutdown);
    crate::notify::stopping();
    if let Some(w) = watchdog {
        w.stop();
    }
    if let Some(s) = supervisor {
        s.stop();
    }
    if let Some(p) = packer {
        p.stop();
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    tm.wheel.stop();
    let _ = wheel_thread.join();
    tracing::info!("transactions in use at exit: {}", tm.in_use());
    join_within(threads, SHUTDOWN_GRACE);
    crate::modules::shutdown_all();
    tracing::info!("statistics: {}", crate::stats::summary());
    Ok(())
}

/// Starts the MI transports on their own thread and runtime, off the SIP
/// workers. A transport the script configured must start; a default one
/// that cannot (port taken by another lunasip, no /run/lunasip) only warns.
fn start_mi(cfg: &Config, ctx: Arc<mi::Ctx>) -> Result<Option<mi::fifo::FifoGuard>, RunError> {
    let mut fifo = None;
    if let Some(f) = &cfg.mi_fifo {
        match mi::fifo::start(f, ctx.clone()) {
            Ok(g) => {
                tracing::info!("mi_fifo: listening on {}", f.path.display());
                fifo = Some(g);
            }
            Err(e) if f.explicit => return Err(RunError::Mi(format!("mi_fifo: {e}"))),
            Err(e) => tracing::warn!("mi_fifo: not started: {e}"),
        }
    }
    let Some(h) = cfg.mi_http.clone() else {
        return Ok(fifo);
    };
    let listener = match std::net::TcpListener::bind(h.addr).and_then(|l| {
        l.set_nonblocking(true)?;
        Ok(l)
    }) {
        Ok(l) => l,
        Err(e) if h.explicit => {
            return Err(RunError::Mi(format!(
                "mi_http: cannot listen on {}: {e}",
                h.addr
            )))
        }
        Err(e) => {
            tracing::warn!("mi_http: not started, cannot listen on {}: {e}", h.addr);
            return Ok(fifo);
        }
    };
    // Only the instance that holds the port writes the token file, so the
    // file always names the token of the server on the port.
    let token = match &h.token {
        MiToken::Off => {
            tracing::warn!("mi_http: token = false: any local process may run MI commands");
            None
        }
        MiToken::Fixed(t) => Some(t.clone()),
        MiToken::Generated => Some(
            mi::token::generate()
                .map_err(|e| RunError::Mi(format!("mi_http: cannot make a token: {e}")))?,
        ),
    };
    if let Some(t) = &token {
        match mi::token::write(t, h.token_file.as_deref()) {
            Ok(p) => tracing::info!("mi_http: token in {}", p.display()),
            Err(e) if h.token_file.is_some() => {
                return Err(RunError::Mi(format!(
                    "mi_http: cannot write the token: {e}"
                )))
            }
            Err(e) => {
                tracing::warn!("mi_http: cannot write the token ({e}); `lunasip mi` needs --token")
            }
        }
    }
    let addr = h.addr;
    thread::Builder::new()
        .name("mi".into())
        .spawn(move || {
            ctx.add_current_thread("MI HTTP", None);
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(8)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("mi_http: cannot build runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => mi::http::serve(l, ctx, h, token).await,
                    Err(e) => tracing::error!("mi_http: {e}"),
                }
            });
        })
        .map_err(|e| RunError::Start(format!("cannot start the MI thread: {e}")))?;
    tracing::info!("mi_http: listening on http://{addr}/");
    Ok(fifo)
}

/// Waits for SIGTERM/SIGINT or the MI's `kill`; SIGHUP reloads the script meanwhile.
fn wait_for_signals(control: &Control, shutdown: &tokio::sync::Notify) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot build the signal runtime: {e}");
            return;
        }
    };
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = int.recv() => return,
                _ = shutdown.notified() => return,
                _ = hup.recv() => {
                    // logrotate's postrotate: flatstore files reopen too.
                    crate::event::flat::rotate(None);
                    match control.reload() {
                        Ok(()) => tracing::info!("SIGHUP: script reloaded"),
                        Err(e) => tracing::error!("SIGHUP: reload refused, the running script stays: {e}"),
                    }
                }
            }
        }
    });
}

/// How long shutdown waits for the workers; one stuck past it is left
/// behind (the process exits without it), so SIGTERM always ends lunasip
/// well within the unit's `TimeoutStopSec`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Joins the worker threads that end within `grace`; logs the others.
fn join_within(threads: Vec<thread::JoinHandle<()>>, grace: Duration) {
    let deadline = std::time::Instant::now() + grace;
    for t in threads {
        while !t.is_finished() && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            let name = t.thread().name().unwrap_or("a worker").to_string();
            tracing::error!(
                "{name} did not stop within {} s; exiting without it",
                grace.as_secs()
            );
        }
    }
}
