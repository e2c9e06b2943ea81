//! The link-state machine driven by time and by failed sends (OpenSIPS
//! 3.4 topology.c `heartbeats_timer` and its `do_action_trans_*` steps):
//! each enabled node is pinged, and its link moves to down, retrying or
//! up again as pongs come back or do not. The packet handlers that move
//! links on what arrives are in [`super::proto`].

use super::conf;
use super::proto::{lock, topology, Effects};
use super::topo::{now_us, Cluster, Ls, NodeSt, Out};

/// One heartbeat (topology.c `heartbeats_timer`): each enabled node's
/// link moves as its pings are answered or not.
pub fn heartbeat() {
    let c = conf();
    let (pt, pi, nt) = (
        i64::from(c.ping_timeout) * 1000,
        i64::from(c.ping_interval) * 1_000_000,
        i64::from(c.node_timeout) * 1_000_000,
    );
    let t = topology();
    let mut fx = Effects::default();
    {
        let mut clusters = lock(&t);
        for cl in clusters.iter_mut().filter(|c| c.enabled) {
            let ids: Vec<i32> = cl.nodes.iter().filter(|n| n.enabled).map(NodeSt::id).collect();
            for id in ids {
                heartbeat_node(cl, id, (pt, pi, nt), &mut fx.out);
            }
            fx.collect(cl);
        }
    }
    fx.apply(None);
}

fn heartbeat_node(cl: &mut Cluster, id: i32, (pt, pi, nt): (i64, i64, i64), out: &mut Vec<Out>) {
    let Some(n) = cl.node(id) else { return };
    let now = now_us();
    let reply_int = n.last_pong - n.last_ping;
    let last_ping_int = now - n.last_ping;
    let last_sent_int = now - n.last_sent;
    let (ls, retries, curr) = (n.ls, n.node.no_ping_retries, n.curr_no_retries);
    let no_reply = reply_int <= 0 || reply_int >= pt;
    let new = if ls == Ls::RestartPinging {
        // do_action_trans_0: restart the pinging sequence.
        cl.send_ping(id, true, out);
        Some(Ls::Restarted)
    } else if ls == Ls::RetrySendFail && last_ping_int >= pt {
        // do_action_trans_1: the last ping could not be sent.
        set_retries(cl, id, curr - 1);
        cl.send_ping(id, true, out);
        Some(Ls::Retrying)
    } else if (ls == Ls::Up || ls == Ls::Restarted)
        && no_reply
        && (ls == Ls::Restarted || last_sent_int >= pt)
        && last_ping_int >= pt
    {
        // do_action_trans_2: no pong in time.
        if retries == 0 {
            tracing::info!("clusterer: ping reply not received, node [{id}] is down");
            Some(Ls::Down)
        } else {
            tracing::info!("clusterer: ping reply not received, node [{id}] is possibly down, retrying");
            cl.send_ping(id, true, out);
            set_retries(cl, id, retries - 1);
            Some(Ls::Retrying)
        }
    } else if ls == Ls::Retrying && no_reply && last_ping_int >= pt {
        // do_action_trans_3.
        if curr > 0 {
            cl.send_ping(id, true, out);
            set_retries(cl, id, curr - 1);
            None
        } else {
            tracing::info!("clusterer: ping reply not received, node [{id}] is down");
            Some(Ls::Down)
        }
    } else if ls == Ls::Down && last_ping_int >= nt {
        // do_action_trans_4: try a failed node again after node_timeout.
        tracing::info!("clusterer: node timeout passed, restart pinging node [{id}]");
        cl.send_ping(id, true, out);
        Some(Ls::Restarted)
    } else if ls == Ls::Up && last_sent_int >= pi && last_ping_int >= pi {
        // do_action_trans_5: the regular ping.
        cl.send_ping(id, false, out);
        None
    } else {
        None
    };
    if let Some(new) = new {
        cl.set_link_w_neigh_adv(new, id, out);
    }
}

fn set_retries(cl: &mut Cluster, id: i32, v: i32) {
    if let Some(n) = cl.node_mut(id) {
        n.curr_no_retries = v;
    }
}

/// A packet to node `id` could not be written (OpenSIPS learns this
/// from `msg_send` at once; here the link's task reports it). A ping:
/// the retry states of topology.c; anything else: pinging restarts.
pub fn send_failed(cluster: i32, id: i32, ping: bool) {
    let t = topology();
    let mut fx = Effects::default();
    {
        let mut clusters = lock(&t);
        let Some(cl) = clusters.iter_mut().find(|c| c.id == cluster) else { return };
        let Some(n) = cl.node_mut(id) else { return };
        let (retries, curr, ls) = (n.node.no_ping_retries, n.curr_no_retries, n.ls);
        if ping {
            n.last_ping_ok = false;
            match ls {
                Ls::Up | Ls::Restarted if retries == 0 => cl.set_link_w_neigh_adv(Ls::Down, id, &mut fx.out),
                Ls::Up | Ls::Restarted => {
                    set_retries(cl, id, retries);
                    cl.set_link_w_neigh_adv(Ls::RetrySendFail, id, &mut fx.out);
                }
                Ls::Retrying if curr <= 0 => {
                    tracing::info!("clusterer: maximum number of retries reached, node [{id}] is down");
                    cl.set_link_w_neigh_adv(Ls::Down, id, &mut fx.out);
                }
                Ls::Retrying => cl.set_link_w_neigh_adv(Ls::RetrySendFail, id, &mut fx.out),
                _ => {}
            }
        } else if ls == Ls::Up {
            cl.set_link_w_neigh_adv(Ls::RestartPinging, id, &mut fx.out);
        }
        fx.collect(cl);
    }
    fx.apply(None);
}
