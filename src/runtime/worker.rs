//! One SIP worker thread: the sockets bound for it before any starts,
//! then its own single-threaded runtime with the Lua state, the socket
//! loops, the reload watcher, the timer and event queues and (in the
//! first worker) the startup, timer and event routes.

use std::rc::Rc;
use std::sync::Arc;

use super::RunError;
use crate::config::Config;
use crate::proxy::detached::run_startup;
use crate::proxy::udp::udp_loop;
use crate::proxy::worker::Worker;
use crate::script::{Env, Host, Source};
use crate::supervisor::Heartbeats;
use crate::transport::tcp::{accept_loop, TcpCtx, TcpTable};
use crate::transport::{udp, Proto, Sockets};

/// Sockets bound for one worker, in listen order.
pub(crate) enum Bound {
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpListener),
}

/// Binds every listen socket once per worker (SO_REUSEPORT): a bind error
/// stops the daemon before any worker takes traffic.
pub(super) fn bind_all(cfg: &Config) -> Result<Vec<Vec<Bound>>, RunError> {
    let mut all = Vec::with_capacity(cfg.children);
    for _ in 0..cfg.children {
        let mut mine = Vec::with_capacity(cfg.listen.len());
        for l in &cfg.listen {
            let b = match l.proto {
                Proto::Udp => udp::bind(l.addr, cfg.udp_rcvbuf).map(Bound::Udp),
                Proto::Tcp => udp::bind_tcp(l.addr).map(Bound::Tcp),
            }
            .map_err(|source| RunError::Bind {
                proto: l.proto.as_str(),
                addr: l.addr,
                source,
            })?;
            mine.push(b);
        }
        all.push(mine);
    }
    Ok(all)
}

/// The body of worker thread `id`: reports on `ready` once its sockets
/// listen (or why it could not start), then serves until `stop`.
#[allow(clippy::too_many_arguments)]
pub(super) fn worker_main(
    id: usize,
    source: Source,
    cfg: Arc<Config>,
    sockets: Arc<Sockets>,
    table: Arc<TcpTable>,
    socks: Vec<Bound>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    mut reload: tokio::sync::watch::Receiver<Arc<Source>>,
    tm: Arc<crate::proxy::tm::Tm>,
    load: Arc<crate::proxy::overload::Load>,
    mut timers: tokio::sync::mpsc::UnboundedReceiver<crate::proxy::tm::wheel::TimerEvent>,
    beats: Option<Arc<Heartbeats>>,
) {
    // event_route handlers run in the first worker, from a bounded queue
    // (a full one drops the event, counted in evi:dropped).
    let mut events = (id == 0).then(|| {
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        crate::event::set_route_queue(tx);
        rx
    });
    crate::stats::bind_thread(id);
    crate::logging::bind_worker(id);
    // Queries awaited here run on this worker's own connections.
    crate::db::bind_thread();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("worker {id}: cannot build runtime: {e}")));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        // The resolver is made inside the runtime it will run on.
        if let Err(e) = crate::transport::dns::install(&cfg.dns) {
            let _ = ready.send(Err(format!("worker {id}: dns: {e}")));
            return;
        }
        let env = Env {
            worker: id,
            sockets,
            config: cfg.clone(),
            tm,
            modules: crate::state::current(),
            tcp: table.clone(),
            load,
        };
        let host = match Host::new(&source, env.clone()) {
            Ok(h) => h,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        if id == 0 {
            crate::event::set_route_names(host.event_route_names());
        }
        let tcp = Rc::new(TcpCtx {
            table,
            idle: cfg.tcp_idle_timeout,
            max_msg: cfg.tcp_max_msg_size,
            read_timeout: cfg.tcp_read_timeout,
            max_bad: cfg.tcp_max_bad_msgs,
            connect_timeout: cfg.tcp_connect_timeout,
        });
        let mut udp = Vec::with_capacity(socks.len());
        let mut listeners = Vec::new();
        for (i, b) in socks.into_iter().enumerate() {
            match b {
                Bound::Udp(s) => match crate::transport::udp::UdpSock::new(s) {
                    Ok(s) => udp.push(Some(Rc::new(s))),
                    Err(e) => {
                        let _ = ready.send(Err(format!("worker {id}: {e}")));
                        return;
                    }
                },
                Bound::Tcp(l) => {
                    udp.push(None);
                    match tokio::net::TcpListener::from_std(l) {
                        Ok(l) => listeners.push((i, l)),
                        Err(e) => {
                            let _ = ready.send(Err(format!("worker {id}: {e}")));
                            return;
                        }
                    }
                }
            }
        }
        let worker = Rc::new(Worker::new(host, udp.clone(), tcp.clone()));
        for (i, s) in udp.iter().enumerate() {
            if let Some(s) = s {
                tokio::task::spawn_local(udp_loop(worker.clone(), s.clone(), i));
            }
        }
        for (i, l) in listeners {
            tokio::task::spawn_local(accept_loop(l, i, tcp.clone(), worker.clone()));
        }
        let w = worker.clone();
        reload.mark_unchanged();
        tokio::task::spawn_local(async move {
            while reload.changed().await.is_ok() {
                let src = reload.borrow_and_update().clone();
                match Host::new(&src, env.clone()) {
                    Ok(h) => {
                        if id == 0 {
                            crate::event::set_route_names(h.event_route_names());
                        }
                        w.swap_host(h)
                    }
                    Err(e) => {
                        tracing::error!("worker {id}: reload failed, keeping the old script: {e}")
                    }
                }
            }
        });
        // startup_route.main runs once, in the first worker, before traffic;
        // timer routes run in the first worker too.
        if id == 0 {
            let host = worker.host();
            if run_startup(&*host) {
                worker.flush().await;
            }
            if let Some(mut rx) = events.take() {
                let w = worker.clone();
                tokio::task::spawn_local(async move {
                    while let Some((name, params)) = rx.recv().await {
                        if w.run_event(&name, &params) {
                            w.flush().await;
                        }
                    }
                });
            }
            crate::core_events::watch_shm(cfg.event_shm_threshold, cfg.shm_memory);
            for (name, every) in host.timers() {
                let w = worker.clone();
                tokio::task::spawn_local(async move {
                    let mut tick =
                        tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                    // A run that waited past the next tick does not make
                    // the missed ones run back to back.
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        // The route as the script has it now: a reload may
                        // have replaced it.
                        w.run_timer(&name).await;
                    }
                });
            }
        }
        crate::modules::child_init_all(id, &worker);
        let w = worker.clone();
        tokio::task::spawn_local(async move {
            while let Some(ev) = timers.recv().await {
                let host = w.host();
                if let Some(r) = crate::proxy::tm::response::on_timer(&*host, ev) {
                    w.park_then(host, r);
                }
                w.flush().await;
            }
        });
        if let Some(hb) = beats {
            // The heartbeat runs on this worker's own loop: it stops when
            // the loop does, whatever holds the thread.
            tokio::task::spawn_local(async move {
                let every = hb.every();
                loop {
                    hb.beat(id);
                    tokio::time::sleep(every).await;
                }
            });
        }
        let _ = ready.send(Ok(()));
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    });
}
