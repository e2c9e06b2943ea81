//! Declared statistics: what a statistic is (counter, gauge, computed),
//! the declaration every module gives once, and the core's and memory's
//! declarations.

use super::{Counter, CORE};

/// How a statistic behaves, as `list_statistics` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// Only goes up (until reset): OpenSIPS "incremental".
    Counter,
    /// Goes up and down, or is computed on read: OpenSIPS "non-incremental".
    Gauge,
}

impl StatKind {
    /// The word OpenSIPS's `list_statistics` prints.
    pub fn opensips_name(self) -> &'static str {
        match self {
            StatKind::Counter => "incremental",
            StatKind::Gauge => "non-incremental",
        }
    }
}

/// Where a declared statistic's value is.
#[derive(Clone, Copy)]
pub enum StatValue {
    /// A counter that only goes up (resettable).
    Counter(&'static Counter),
    /// A counter that goes up and down (not resettable).
    Gauge(&'static Counter),
    /// Computed on every read (table sizes, memory; not resettable).
    Computed(fn() -> u64),
}

/// One statistic, declared once: its public name within its group, what
/// it counts (docs/statistics.md) and where its value is.
#[derive(Clone, Copy)]
pub struct StatDecl {
    pub name: &'static str,
    pub doc: &'static str,
    pub value: StatValue,
}

impl StatDecl {
    pub const fn counter(name: &'static str, c: &'static Counter, doc: &'static str) -> Self {
        StatDecl {
            name,
            doc,
            value: StatValue::Counter(c),
        }
    }

    pub const fn gauge(name: &'static str, c: &'static Counter, doc: &'static str) -> Self {
        StatDecl {
            name,
            doc,
            value: StatValue::Gauge(c),
        }
    }

    pub const fn computed(name: &'static str, f: fn() -> u64, doc: &'static str) -> Self {
        StatDecl {
            name,
            doc,
            value: StatValue::Computed(f),
        }
    }

    pub fn kind(&self) -> StatKind {
        match self.value {
            StatValue::Counter(_) => StatKind::Counter,
            _ => StatKind::Gauge,
        }
    }

    pub fn get(&self) -> u64 {
        match self.value {
            StatValue::Counter(c) | StatValue::Gauge(c) => c.get(),
            StatValue::Computed(f) => f(),
        }
    }

    /// Zeroes a counter; false for gauges and computed values.
    pub(super) fn reset(&self) -> bool {
        match self.value {
            StatValue::Counter(c) => {
                c.reset();
                true
            }
            _ => false,
        }
    }
}

/// A group of declared statistics: the core's, or a module's (named
/// after the module, as in OpenSIPS).
#[derive(Clone, Copy)]
pub struct StatGroup {
    pub name: &'static str,
    pub stats: &'static [StatDecl],
}

/// The core's counters.
pub static CORE_STATS: &[StatDecl] = &[
    StatDecl::counter(
        "rcv_requests",
        &CORE.rcv_requests,
        "Requests received and parsed.",
    ),
    StatDecl::counter(
        "rcv_replies",
        &CORE.rcv_replies,
        "Replies received and parsed.",
    ),
    StatDecl::counter(
        "fwd_requests",
        &CORE.fwd_requests,
        "Requests forwarded (stateless).",
    ),
    StatDecl::counter("fwd_replies", &CORE.fwd_replies, "Replies forwarded."),
    StatDecl::counter(
        "drop_requests",
        &CORE.drop_requests,
        "Requests dropped by the script or for lack of a destination.",
    ),
    StatDecl::counter(
        "drop_replies",
        &CORE.drop_replies,
        "Replies dropped (not for us, or by the script).",
    ),
    StatDecl::counter(
        "err_requests",
        &CORE.err_requests,
        "Requests that failed processing (bad headers, script error).",
    ),
    StatDecl::counter(
        "err_replies",
        &CORE.err_replies,
        "Replies that failed processing.",
    ),
    StatDecl::counter(
        "bad_URIs_rcvd",
        &CORE.bad_uris_rcvd,
        "Requests whose Request-URI did not parse (OpenSIPS counts each failed URI parse).",
    ),
    StatDecl::counter(
        "bad_msg_hdr",
        &CORE.bad_msg_hdr,
        "Messages whose headers did not parse.",
    ),
    StatDecl::counter(
        "oversize_msgs",
        &CORE.oversize_msgs,
        "Datagrams or stream frames over the size limit.",
    ),
    StatDecl::counter(
        "dropped_msgs",
        &CORE.dropped_msgs,
        "Messages dropped unanswered before routing: unparsable, or over a size limit in a header a 400 would copy back.",
    ),
    StatDecl::counter(
        "bad_tcp_conns",
        &CORE.bad_tcp_conns,
        "TCP connections closed for bad framing, `tcp_max_bad_msgs` unparsable messages in a row, or no whole message within `tcp_read_timeout`.",
    ),
    StatDecl::gauge(
        "suspended_routes",
        &CORE.suspended_routes,
        "Routes suspended on I/O now.",
    ),
    StatDecl::counter(
        "suspend_overflows",
        &CORE.suspend_overflows,
        "Requests answered 503 because their worker had `max_suspended` routes suspended.",
    ),
    StatDecl::counter(
        "resume_timeouts",
        &CORE.resume_timeouts,
        "Suspended routes that waited past `resume_timeout` (the call got 500).",
    ),
    StatDecl::counter(
        "slow_messages",
        &CORE.slow_messages,
        "Messages whose handling took longer than `exec_msg_threshold`.",
    ),
    StatDecl::counter(
        "shed_requests",
        &CORE.shed_requests,
        "New INVITEs answered 503 before routing: over the rate the proxy takes while its socket queues stand past `overload_queue_delay`.",
    ),
    StatDecl::gauge(
        "overload_admitted_rate",
        &CORE.overload_admitted_rate,
        "New INVITEs per second the proxy takes while overloaded (lunasip's admission controller); 0 while every new INVITE is taken.",
    ),
    StatDecl::counter(
        "overload_episodes",
        &CORE.overload_episodes,
        "Times a socket fell behind: its datagrams waited longer than `overload_queue_delay` for that long (lunasip).",
    ),
    StatDecl::gauge(
        "udp_packed",
        &CORE.udp_packed,
        "1 while every UDP datagram goes to the first worker (`udp_pack`, a light load), 0 while the kernel spreads them over all workers (lunasip).",
    ),
    StatDecl::counter(
        "udp_spreads",
        &CORE.udp_spreads,
        "Times the load made `udp_pack` spread UDP datagrams over all workers again (lunasip).",
    ),
];

/// The process's memory, from /proc/self/statm.
pub static MEMORY_STATS: &[StatDecl] = &[
    StatDecl::computed(
        "rss_size",
        || statm().map_or(0, |(_, rss)| rss),
        "Resident memory in bytes.",
    ),
    StatDecl::computed(
        "virtual_size",
        || statm().map_or(0, |(vm, _)| vm),
        "Virtual memory in bytes.",
    ),
];

/// (virtual, resident) bytes of this process.
fn statm() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (vm, rss) = (it.next()??, it.next()??);
    let page = rustix::param::page_size() as u64;
    Some((vm * page, rss * page))
}
