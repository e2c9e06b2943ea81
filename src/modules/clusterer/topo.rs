//! What this node knows of its clusters (OpenSIPS 3.4 clusterer
//! node_info.h, topology.c): every other node with the state of the
//! link to it, the links between the other nodes as their topology
//! updates describe them, and the next hop towards each node (the
//! search of topology.c `get_next_hop_2`). Sans I/O: what is to be sent
//! is pushed on an outbox the caller flushes once the lock is released.

use bytes::Bytes;
use std::sync::OnceLock;
use std::time::Instant;

use super::bin::Builder;
use super::nodes::Node;

/// clusterer.h `BIN_VERSION` and the capability of the module's own
/// packets.
pub const BIN_VERSION: i16 = 1;
pub const INTERNAL_CAP: &str = "clusterer-internal";
pub const EXTRA_CAP: &str = "clusterer-extra";
/// clusterer.h `UPDATE_MAX_PATH_LEN`, `SMALL_MSG`.
pub const MAX_PATH: i32 = 25;
const SMALL: usize = 300;

/// clusterer.h `clusterer_msg_type`.
pub mod msg {
    pub const PING: i32 = 0;
    pub const PONG: i32 = 1;
    pub const LS_UPDATE: i32 = 2;
    pub const FULL_TOP_UPDATE: i32 = 3;
    pub const UNKNOWN_ID: i32 = 4;
    pub const NODE_DESCRIPTION: i32 = 5;
    pub const REMOVE_NODE: i32 = 6;
    pub const GENERIC_MSG: i32 = 7;
    pub const MI_CMD: i32 = 8;
    pub const CAP_UPDATE: i32 = 9;
    pub const SHTAG_ACTIVE: i32 = 13;
}

/// clusterer.h `clusterer_link_state` (the numbers travel in LS updates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ls {
    Up = 0,
    Down = 1,
    RetrySendFail = 2,
    RestartPinging = 3,
    Restarted = 4,
    Retrying = 5,
    Temp = 6,
}

impl Ls {
    /// As MI `clusterer_list` prints it (clusterer_mod.c).
    pub fn name(self) -> &'static str {
        match self {
            Ls::Up => "Up",
            Ls::Down => "Down",
            _ => "Probe",
        }
    }
}

/// Microseconds on a monotonic clock; 0 is "never" and lies far in the
/// past, as OpenSIPS's zeroed `struct timeval`.
pub fn now_us() -> i64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    base.elapsed().as_micros() as i64 + 1_000_000_000_000
}

/// Seconds since the epoch (the `timestamp` of updates).
pub fn unix_now() -> i32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i32)
}

/// Another node of a cluster (node_info.h `struct node_info`).
#[derive(Debug, Clone)]
pub struct NodeSt {
    pub node: Node,
    /// The `clusterer` table's `id` (-1: not from a table).
    pub db_id: i32,
    pub description: Option<String>,
    pub enabled: bool,
    pub ls: Ls,
    pub curr_no_retries: i32,
    pub last_ping_ok: bool,
    pub last_ping: i64,
    pub last_pong: i64,
    pub last_sent: i64,
    pub last_recv: i64,
    /// The nodes it links to directly, as its updates say.
    pub neighbours: Vec<i32>,
    pub ls_seq: i32,
    pub ls_ts: i32,
    pub top_seq: i32,
    pub top_ts: i32,
    pub cap_seq: i32,
    pub cap_ts: i32,
    /// Its capabilities and whether each is in state OK.
    pub caps: Vec<(String, bool)>,
    /// Reachable when last looked at (node events are the changes).
    pub reachable: bool,
    /// Learned from another node's update, not from the settings.
    pub learned: bool,
}

impl NodeSt {
    pub fn new(node: Node, db_id: i32, description: Option<String>, enabled: bool) -> NodeSt {
        NodeSt {
            node,
            db_id,
            description,
            enabled,
            // node_info.c `add_node_info`: pinging starts with the timer.
            ls: Ls::RestartPinging,
            curr_no_retries: 0,
            last_ping_ok: false,
            last_ping: 0,
            last_pong: 0,
            last_sent: 0,
            last_recv: 0,
            neighbours: Vec::new(),
            // node_info.c `add_node_info`: -1, so a first update numbered
            // 0 is taken.
            ls_seq: -1,
            ls_ts: 0,
            top_seq: -1,
            top_ts: 0,
            cap_seq: -1,
            cap_ts: 0,
            caps: Vec::new(),
            reachable: false,
            learned: false,
        }
    }

    pub fn id(&self) -> i32 {
        self.node.node_id
    }
}

/// One packet to send: to node `node` of `cluster` over its link.
#[derive(Debug, Clone)]
pub struct Out {
    pub cluster: i32,
    pub node: i32,
    pub bytes: Bytes,
    pub ping: bool,
}

/// One cluster as this node sees it (node_info.h `struct cluster_info`).
#[derive(Debug, Clone)]
pub struct Cluster {
    pub id: i32,
    pub me: Node,
    pub enabled: bool,
    /// The nodes this node has an Up link with (the current node's
    /// adjacency list).
    pub my_neigh: Vec<i32>,
    pub my_ls_seq: i32,
    pub my_top_seq: i32,
    pub my_cap_seq: i32,
    pub nodes: Vec<NodeSt>,
    /// The capabilities registered here (name, state OK).
    pub caps: Vec<String>,
}

/// node_info.h `validate_update`: a sequence number (or, when it is 0,
/// a timestamp) not newer than the last one is refused.
pub fn fresh(seq: i32, msg_seq: i32, ts: i32, msg_ts: i32) -> bool {
    if msg_seq == 0 {
        !(seq == 0 && msg_ts <= ts)
    } else {
        msg_seq > seq
    }
}

fn add_unique(list: &mut Vec<i32>, id: i32) -> bool {
    if list.contains(&id) {
        false
    } else {
        list.insert(0, id);
        true
    }
}

fn remove(list: &mut Vec<i32>, id: i32) -> bool {
    let before = list.len();
    list.retain(|x| *x != id);
    before != list.len()
}

impl Cluster {
    pub fn new(me: Node) -> Cluster {
        Cluster {
            id: me.cluster,
            me,
            enabled: true,
            my_neigh: Vec::new(),
            my_ls_seq: -1,
            my_top_seq: -1,
            my_cap_seq: -1,
            nodes: Vec::new(),
            caps: Vec::new(),
        }
    }

    pub fn my_id(&self) -> i32 {
        self.me.node_id
    }

    pub fn node(&self, id: i32) -> Option<&NodeSt> {
        self.nodes.iter().find(|n| n.id() == id)
    }

    pub fn node_mut(&mut self, id: i32) -> Option<&mut NodeSt> {
        self.nodes.iter_mut().find(|n| n.id() == id)
    }

    fn neighbours_of(&self, id: i32) -> &[i32] {
        if id == self.my_id() {
            &self.my_neigh
        } else {
            self.node(id).map_or(&[], |n| &n.neighbours)
        }
    }

    fn prio(&self, id: i32) -> (i32, i32) {
        (self.node(id).map_or(i32::MAX, |n| n.node.priority), id)
    }

    /// topology.c `get_next_hop_2`: the neighbour through which `dest`
    /// is reached by a path of two links or more (the search queue is
    /// ordered by priority, then node id, as `prio_enqueue`).
    pub fn next_hop_2(&self, dest: i32) -> Option<i32> {
        let me = self.my_id();
        let mut parent: Vec<(i32, i32)> = Vec::new();
        let mut queue: Vec<i32> = vec![me];
        let parent_of = |p: &Vec<(i32, i32)>, id: i32| p.iter().find(|(c, _)| *c == id).map(|x| x.1);
        while !queue.is_empty() {
            let curr = queue.remove(0);
            if curr == dest {
                let mut c = curr;
                let first = parent_of(&parent, c)?;
                parent_of(&parent, first)?;
                loop {
                    let p = parent_of(&parent, c)?;
                    if p == me {
                        return Some(c);
                    }
                    c = p;
                }
            }
            for &nb in self.neighbours_of(curr) {
                if nb == me || parent_of(&parent, nb).is_some() {
                    continue;
                }
                parent.push((nb, curr));
                let key = self.prio(nb);
                let at = queue
                    .iter()
                    .position(|q| self.prio(*q) > key)
                    .unwrap_or(queue.len());
                queue.insert(at, nb);
            }
        }
        None
    }

    /// topology.c `get_next_hop`: the node itself when its link is up,
    /// else the first hop of a longer path; None: unreachable.
    pub fn next_hop(&self, dest: i32) -> Option<i32> {
        match self.node(dest) {
            Some(n) if n.ls == Ls::Up => Some(dest),
            Some(_) => self.next_hop_2(dest),
            None => None,
        }
    }

    /// The nodes whose reachability changed since last asked:
    /// (node id, now reachable) — OpenSIPS's NODE_EVENT_UP/DOWN flags.
    pub fn node_events(&mut self) -> Vec<(i32, bool)> {
        let now: Vec<(i32, bool)> = self
            .nodes
            .iter()
            .map(|n| (n.id(), n.enabled && self.next_hop(n.id()).is_some()))
            .collect();
        let mut ev = Vec::new();
        for (id, r) in now {
            if let Some(n) = self.node_mut(id) {
                if n.reachable != r {
                    n.reachable = r;
                    ev.push((id, r));
                }
            }
        }
        ev
    }

    /// A clusterer-internal packet of this cluster from this node.
    pub fn internal(&self, ptype: i32, hint: usize) -> Builder {
        let mut b = Builder::new(INTERNAL_CAP, ptype, BIN_VERSION, hint);
        b.int(self.id);
        b.int(self.my_id());
        b
    }

    fn out(&self, node: i32, bytes: Bytes, ping: bool, outbox: &mut Vec<Out>) {
        outbox.push(Out {
            cluster: self.id,
            node,
            bytes,
            ping,
        });
    }

    /// topology.c `send_ping`.
    pub fn send_ping(&mut self, id: i32, req_list: bool, outbox: &mut Vec<Out>) {
        let mut b = self.internal(msg::PING, SMALL);
        b.int(i32::from(req_list));
        self.out(id, b.finish(), true, outbox);
        if let Some(n) = self.node_mut(id) {
            n.last_ping_ok = true;
            n.last_ping = now_us();
        }
    }

    /// topology.c `set_link_w_neigh`: the link with a neighbour changes;
    /// the adjacency list follows whether it is Up.
    pub fn set_link_w_neigh(&mut self, new: Ls, id: i32) {
        let Some(n) = self.node(id) else { return };
        let old = n.ls;
        if new != Ls::Up && old == Ls::Up {
            remove(&mut self.my_neigh, id);
        } else if new == Ls::Up && old != Ls::Up {
            add_unique(&mut self.my_neigh, id);
        }
        if let Some(n) = self.node_mut(id) {
            n.ls = new;
        }
    }

    /// topology.c `set_link_w_neigh_adv`: as above, and a link that
    /// was Up going anything else is advertised Down to the others.
    pub fn set_link_w_neigh_adv(&mut self, new: Ls, id: i32, outbox: &mut Vec<Out>) {
        let Some(n) = self.node(id) else { return };
        if new != Ls::Up && n.ls == Ls::Up {
            self.set_link_w_neigh(new, id);
            self.send_ls_update(id, Ls::Down, outbox);
        } else if let Some(n) = self.node_mut(id) {
            n.ls = new;
        }
    }

    /// topology.c `set_link_w_neigh_up`: the link is Up; the others
    /// learn it, the neighbour gets the whole topology and the
    /// capabilities.
    pub fn set_link_w_neigh_up(&mut self, id: i32, known: &[i32], outbox: &mut Vec<Out>) {
        self.set_link_w_neigh(Ls::Up, id);
        self.send_ls_update(id, Ls::Up, outbox);
        self.send_full_top_update(id, known, outbox);
        self.send_cap_update(id, true, outbox);
    }

    /// topology.c `set_link`: a link between two other nodes.
    pub fn set_link(&mut self, new: Ls, a: i32, b: i32) {
        if let Some(n) = self.node_mut(a) {
            if new == Ls::Down {
                remove(&mut n.neighbours, b);
            } else {
                add_unique(&mut n.neighbours, b);
            }
        }
    }

    /// topology.c `send_ls_update`: the state of the link with `id`, to
    /// every other neighbour.
    pub fn send_ls_update(&mut self, id: i32, new: Ls, outbox: &mut Vec<Out>) {
        let dests: Vec<i32> = self.my_neigh.iter().copied().filter(|n| *n != id).collect();
        if dests.is_empty() {
            return;
        }
        self.my_ls_seq += 1;
        let mut b = self.internal(msg::LS_UPDATE, SMALL);
        b.int(self.my_ls_seq);
        b.int(unix_now());
        b.int(id);
        b.int(new as i32);
        b.int(1);
        b.int(self.my_id());
        let bytes = b.finish();
        for d in dests {
            self.out(d, bytes.clone(), false, outbox);
        }
    }

    fn push_description(b: &mut Builder, n: &Node) {
        let _ = b.str(n.url.as_bytes());
        let _ = b.str(n.sip_addr.as_deref().unwrap_or("").as_bytes());
        b.int(n.priority);
        b.int(n.no_ping_retries);
    }

    /// topology.c `send_full_top_update`: every adjacency list this node
    /// knows, with the description of the nodes `dest` did not list in
    /// its pong.
    pub fn send_full_top_update(&mut self, dest: i32, known: &[i32], outbox: &mut Vec<Out>) {
        self.my_top_seq += 1;
        let mut b = self.internal(msg::FULL_TOP_UPDATE, 0);
        b.int(self.my_top_seq);
        b.int(unix_now());
        // cluster_info `no_nodes` (the others): this node's entry and
        // every other but `dest`'s.
        b.int(self.nodes.len() as i32);
        b.int(self.my_id());
        b.int(0);
        b.int(self.my_ls_seq);
        b.int(0);
        b.int(self.my_neigh.len() as i32);
        for n in &self.my_neigh {
            b.int(*n);
        }
        for n in self.nodes.iter().filter(|n| n.id() != dest) {
            b.int(n.id());
            if known.contains(&n.id()) {
                b.int(0);
            } else {
                b.int(1);
                Self::push_description(&mut b, &n.node);
            }
            b.int(n.ls_seq);
            b.int(n.ls_ts);
            b.int(n.neighbours.len() as i32);
            for x in &n.neighbours {
                b.int(*x);
            }
        }
        b.int(1);
        b.int(self.my_id());
        self.out(dest, b.finish(), false, outbox);
    }

    /// clusterer.c `send_cap_update`: this node's capabilities and those
    /// it knows of the others.
    pub fn send_cap_update(&mut self, dest: i32, require_reply: bool, outbox: &mut Vec<Out>) {
        let others: Vec<&NodeSt> = self
            .nodes
            .iter()
            .filter(|n| !n.caps.is_empty() && n.id() != dest)
            .collect();
        let count = others.len() + usize::from(!self.caps.is_empty());
        if count == 0 {
            return;
        }
        let mut b = self.internal(msg::CAP_UPDATE, 0);
        b.int(self.my_cap_seq + 1);
        b.int(unix_now());
        b.int(count as i32);
        if !self.caps.is_empty() {
            b.int(self.my_id());
            b.int(self.caps.len() as i32);
            for c in &self.caps {
                let _ = b.str(c.as_bytes());
                b.int(1);
            }
        }
        for n in others {
            b.int(n.id());
            b.int(n.caps.len() as i32);
            for (c, ok) in &n.caps {
                let _ = b.str(c.as_bytes());
                b.int(i32::from(*ok));
            }
        }
        b.int(i32::from(require_reply));
        b.int(1);
        b.int(self.my_id());
        self.my_cap_seq += 1;
        self.out(dest, b.finish(), false, outbox);
    }

    /// topology.c `flood_message`: a received update goes on to every
    /// neighbour not on its path, this node added to the path. `p` is at
    /// the path length; `reset_reply`: the int before it (a capability
    /// update's "require reply") is sent as 0.
    pub fn flood(
        &self,
        p: &mut super::bin::Packet,
        reset_reply: bool,
        outbox: &mut Vec<Out>,
    ) -> Result<(), super::bin::BinError> {
        let at = p.pos();
        let path_len = p.int("path length")?;
        if !(0..=MAX_PATH).contains(&path_len) {
            tracing::info!("clusterer: too many hops for a message from node {}", self.id);
            return Ok(());
        }
        let mut path = Vec::with_capacity(path_len as usize);
        for _ in 0..path_len {
            path.push(p.int("path")?);
        }
        let dests: Vec<i32> = self
            .my_neigh
            .iter()
            .copied()
            .filter(|n| !path.contains(n))
            .collect();
        if dests.is_empty() {
            return Ok(());
        }
        let mut b = Builder::new(&p.capability, p.ptype, p.version, at + 4 * (path.len() + 2));
        if reset_reply && at >= 4 {
            b.raw(p.fields(at - 4));
            b.int(0);
        } else {
            b.raw(p.fields(at));
        }
        b.int(path_len + 1);
        for x in &path {
            b.int(*x);
        }
        b.int(self.my_id());
        let bytes = b.finish();
        for d in dests {
            self.out(d, bytes.clone(), false, outbox);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i32, prio: i32) -> NodeSt {
        let mut n = super::super::nodes::parse(
            &format!("cluster_id=1,node_id={id},url=bin:127.0.0.1:{}", 5000 + id),
            None,
        )
        .unwrap();
        n.priority = prio;
        NodeSt::new(n, -1, None, true)
    }

    fn cluster() -> Cluster {
        let me = super::super::nodes::parse("cluster_id=1,node_id=1,url=bin:127.0.0.1:5001", None).unwrap();
        let mut c = Cluster::new(me);
        c.nodes = vec![node(2, 50), node(3, 50), node(4, 10)];
        c
    }

    /// topology.c get_next_hop: a node linked only through another is
    /// reached through it; the lower priority wins among equal paths.
    #[test]
    fn next_hops_follow_the_known_links() {
        let mut c = cluster();
        assert_eq!(c.next_hop(3), None);
        c.set_link_w_neigh(Ls::Up, 2);
        c.set_link(Ls::Up, 2, 3);
        assert_eq!(c.next_hop(2), Some(2));
        assert_eq!(c.next_hop(3), Some(2));
        // 4 (priority 10) also links to 3: it is preferred to 2.
        c.set_link_w_neigh(Ls::Up, 4);
        c.set_link(Ls::Up, 4, 3);
        assert_eq!(c.next_hop(3), Some(4));
        // A direct link wins.
        c.set_link_w_neigh(Ls::Up, 3);
        assert_eq!(c.next_hop(3), Some(3));
        c.set_link_w_neigh(Ls::Down, 3);
        c.set_link(Ls::Down, 4, 3);
        c.set_link(Ls::Down, 2, 3);
        assert_eq!(c.next_hop(3), None);
        let ev = c.node_events();
        assert!(ev.contains(&(2, true)) && ev.contains(&(4, true)), "{ev:?}");
        assert!(c.node_events().is_empty());
    }

    #[test]
    fn updates_are_fresh_by_sequence_then_timestamp() {
        assert!(fresh(3, 4, 0, 0));
        assert!(!fresh(4, 4, 0, 0));
        assert!(fresh(0, 0, 10, 11));
        assert!(!fresh(0, 0, 10, 10));
        assert!(fresh(5, 0, 10, 1));
    }
}
