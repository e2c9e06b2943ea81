//! The validated daemon configuration, read from the script's `config` table.
//!
//! Only what the core itself needs is validated here; modules read their own
//! sub-tables of `config.modules`. Unknown top-level keys are kept for the
//! script (a route may read `config.upstream`).

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::transport::listen::{parse_listen, split_hostport, Listen};

/// Core settings with OpenSIPS's defaults where OpenSIPS has one.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<Listen>,
    /// Worker threads (OpenSIPS `children` / `udp_workers`).
    pub children: usize,
    pub log_level: String,
    /// OpenSIPS `xlog_level`: xlog messages above it are not printed
    /// (lunasip's default 4 = L_DBG filters nothing; OpenSIPS's is 2).
    pub xlog_level: i64,
    /// Extra names this proxy answers to (OpenSIPS `alias`), host or host:port.
    pub aliases: Vec<(String, Option<u16>)>,
    /// SO_RCVBUF for UDP sockets (OpenSIPS `maxbuffer`); the kernel caps it at rmem_max.
    pub udp_rcvbuf: usize,
    /// Idle TCP connections are closed after this (OpenSIPS `tcp_connection_lifetime`).
    pub tcp_idle_timeout: Duration,
    /// Largest message accepted on a stream; a connection past it is closed.
    pub tcp_max_msg_size: usize,
    /// A connection that started a message and did not complete it within
    /// this is closed (OpenSIPS `tcp_max_msg_time`, 4 s; lunasip
    /// `tcp_read_timeout`, ms), so a trickle cannot hold it open.
    pub tcp_read_timeout: Duration,
    /// Unparsable (or refused) messages in a row after which a TCP
    /// connection is closed (lunasip `tcp_max_bad_msgs`).
    pub tcp_max_bad_msgs: u32,
    /// Size caps on what peers send (`max_header_size`, `max_headers_size`,
    /// `max_uri_size`, `max_host_size`, bytes).
    pub limits: crate::sip::Limits,
    /// Connect timeout for outgoing TCP (OpenSIPS `tcp_connect_timeout`).
    pub tcp_connect_timeout: Duration,
    /// Transaction timers (`config.modules.tm`: T1, T2, T4 in ms,
    /// fr_timeout and fr_inv_timeout in seconds, as OpenSIPS takes them).
    pub tm: crate::transaction::Timers,
    /// Routes one worker may keep suspended on I/O; past it new requests
    /// get 503 (lunasip; OpenSIPS bounds async jobs by its reactor only).
    pub max_suspended: usize,
    /// How long a suspended route may wait for its answer before the call
    /// gets 500 and an error log.
    pub resume_timeout: Duration,
    /// Longest a route may run (waiting on I/O not counted) before it is
    /// stopped with an error; None: no bound (lunasip `route_timeout`, ms).
    pub route_timeout: Option<Duration>,
    /// A worker whose event loop shows no sign of life for this long is
    /// stuck: logged, and the systemd watchdog is no longer pinged (lunasip
    /// `worker_stall_timeout`, ms; None: not watched).
    pub worker_stall_timeout: Option<Duration>,
    /// Bytes one worker's Lua state may hold; 0: no bound (lunasip
    /// `script_memory_limit`, in MB).
    pub script_memory_limit: usize,
    /// A message whose handling took longer is logged and raises
    /// E_CORE_THRESHOLD (OpenSIPS `exec_msg_threshold`, µs); None: off.
    pub exec_msg_threshold: Option<Duration>,
    /// Log lines at this OpenSIPS level or more important raise E_CORE_LOG
    /// (`log_event_enabled` with `log_event_level_filter`); None: off.
    pub log_event_level: Option<i64>,
    /// A worker's script memory past this percent of
    /// `script_memory_limit` raises E_CORE_PKG_THRESHOLD (OpenSIPS
    /// `event_pkg_threshold`); 0: off.
    pub event_pkg_threshold: u8,
    /// The process's resident memory past this percent of `shm_memory`
    /// raises E_CORE_SHM_THRESHOLD (OpenSIPS `event_shm_threshold`); 0: off.
    pub event_shm_threshold: u8,
    /// Bytes E_CORE_SHM_THRESHOLD measures against (lunasip `shm_memory`,
    /// in MB, OpenSIPS's `-m`); 0: the machine's memory.
    pub shm_memory: u64,
    /// Queue delay past which the proxy is behind: once every datagram
    /// read for this long waited longer than this in its socket's queue,
    /// new INVITEs are taken at an adaptive rate and the rest get 503
    /// before routing (`proxy::overload`); zero: never (lunasip
    /// `overload_queue_delay`, ms).
    pub overload_queue_delay: Duration,
    /// OpenSIPS `mhomed`: a UDP copy leaves from the listener on the
    /// address the kernel routes its destination from.
    pub mhomed: bool,
    /// lunasip: every UDP datagram to the first worker while the load is
    /// light, spread over all workers by the kernel's hash once it is not
    /// (`runtime::pack`).
    pub udp_pack: bool,
    /// Server location (RFC 3263) settings.
    pub dns: crate::transport::dns::DnsConf,
    /// Destination blacklists (`config.blacklists`, OpenSIPS
    /// `dst_blacklist`), installed when the script is committed.
    pub blacklists: Vec<crate::transport::blacklist::Def>,
    /// MI over HTTP (`config.modules.mi_http`); None when turned off.
    pub mi_http: Option<MiHttp>,
    /// MI over a FIFO (`config.modules.mi_fifo`); None when turned off.
    pub mi_fifo: Option<MiFifo>,
}

/// `config.modules.mi_http = { ip = "127.0.0.1", port = 8888, root = "mi", token = "…", token_file = "…" }`
/// (OpenSIPS httpd `ip`/`port`, mi_http `root`); `false` turns it off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiHttp {
    pub addr: SocketAddr,
    /// Path of the JSON-RPC endpoint without slashes (`/mi`).
    pub root: String,
    /// What requests must carry as `Authorization: Bearer <token>`.
    pub token: MiToken,
    /// Where the token is written for `lunasip mi` (default: `mi.token`
    /// in the runtime directory, see `mi::token`).
    pub token_file: Option<std::path::PathBuf>,
    /// Set in the script: a bind error stops the daemon. The default one
    /// only warns (another lunasip may hold the port).
    pub explicit: bool,
}

/// The MI token: closed by default (a random one per start), a fixed one
/// from the script, or none at all (`token = false`, said explicitly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MiToken {
    Generated,
    Fixed(String),
    Off,
}

impl Default for MiHttp {
    fn default() -> Self {
        MiHttp {
            addr: SocketAddr::from(([127, 0, 0, 1], 8888)),
            root: "mi".into(),
            token: MiToken::Generated,
            token_file: None,
            explicit: false,
        }
    }
}

/// `config.modules.mi_fifo = { fifo_name = "/run/lunasip/lunasip_fifo", fifo_mode = 600, reply_dir = "/run/lunasip/" }`
/// (OpenSIPS mi_fifo names); `false` turns it off. The reply directory
/// defaults to the FIFO's own (OpenSIPS uses /tmp/, which the packaged
/// unit's PrivateTmp hides from clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiFifo {
    pub path: std::path::PathBuf,
    /// Permission bits of the FIFO (0o600 by default).
    pub mode: u32,
    /// Where reply FIFOs named in requests live (default: the FIFO's directory).
    pub reply_dir: std::path::PathBuf,
    /// Set in the script: a failure to create the FIFO stops the daemon.
    pub explicit: bool,
}

impl Default for MiFifo {
    fn default() -> Self {
        MiFifo {
            path: "/run/lunasip/lunasip_fifo".into(),
            mode: 0o600,
            reply_dir: "/run/lunasip/".into(),
            explicit: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Vec::new(),
            children: std::thread::available_parallelism().map_or(2, |n| n.get()),
            log_level: "info".into(),
            xlog_level: 4,
            aliases: Vec::new(),
            udp_rcvbuf: 4 * 1024 * 1024,
            tcp_idle_timeout: Duration::from_secs(120),
            tcp_max_msg_size: crate::sip::MAX_MESSAGE_SIZE,
            tcp_connect_timeout: Duration::from_millis(1000),
            tcp_read_timeout: Duration::from_secs(4),
            tcp_max_bad_msgs: 3,
            limits: crate::sip::Limits::default(),
            max_suspended: 1024,
            dns: Default::default(),
            mhomed: false,
            udp_pack: true,
            resume_timeout: Duration::from_secs(30),
            route_timeout: Some(Duration::from_secs(2)),
            script_memory_limit: 256 * 1024 * 1024,
            exec_msg_threshold: None,
            log_event_level: None,
            event_pkg_threshold: 0,
            event_shm_threshold: 0,
            shm_memory: 0,
            overload_queue_delay: Duration::from_millis(100),
            worker_stall_timeout: Some(Duration::from_secs(10)),
            blacklists: Vec::new(),
            mi_http: Some(MiHttp::default()),
            mi_fifo: Some(MiFifo::default()),
            tm: crate::transaction::Timers::default(),
        }
    }
}
