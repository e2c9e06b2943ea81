//! clusterer topology, link states and sharing tags between three
//! lunasip nodes in a line, 1 – 2 – 3, with no link between 1 and 3
//! (each knows the other at an address nothing listens on, as behind a
//! firewall). OpenSIPS 3.4 modules/clusterer: topology.c (pings, link
//! states, LS and full topology updates, next hops), clusterer.c
//! (routing module packets through the next hop), sharing_tags.c.
//! Asserted through MI `clusterer_list`/`clusterer_list_shtags` and the
//! events the nodes' event routes log.

mod common;

use common::rpc::{mi_script, rpc};
use common::{free_port, Proxy};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// One node: its BIN port, the other nodes (id, BIN port), and a
/// sharing tag state at start.
fn script(id: i32, bin: u16, others: &[(i32, u16)], mi: u16, tag: &str) -> String {
    let neigh: Vec<String> = others
        .iter()
        .map(|(n, p)| format!("\"cluster_id=1,node_id={n},url=bin:127.0.0.1:{p}\""))
        .collect();
    let modules = format!(
        "clusterer = {{ db_mode = 0, my_node_id = {id}, ping_interval = 1, ping_timeout = 400, node_timeout = 2,\n      \
         my_node_info = \"cluster_id=1,url=bin:127.0.0.1:{bin}\",\n      \
         neighbor_node_info = {{ {} }},\n      sharing_tag = \"vip/1={tag}\" }},",
        neigh.join(", ")
    );
    let routes = format!(
        "function route.main()\n  \
           local ok, rc = sip.clusterer.cluster_send_req(1, 3, \"hello from {id}\", \"$var(tag)\")\n  \
           sip.sl.sl_send_reply(200, \"rc \" .. tostring(rc) .. \" \" .. tostring(sip.pv.get(\"$var(tag)\")))\n\
         end\n\
         function event_route.E_CLUSTERER_REQ_RECEIVED(ev)\n  \
           sip.xlog(\"L_INFO\", \"node {id} got req \" .. ev.msg .. \" from \" .. ev.src_id .. \"\\n\")\n  \
           sip.pv.set(\"$var(tag)\", ev.tag)\n  \
           sip.clusterer.cluster_send_rpl(ev.cluster_id, ev.src_id, \"re: \" .. ev.msg, \"$var(tag)\")\n\
         end\n\
         function event_route.E_CLUSTERER_RPL_RECEIVED(ev)\n  \
           sip.xlog(\"L_INFO\", \"node {id} got rpl \" .. ev.msg .. \" tag \" .. ev.tag .. \"\\n\")\n\
         end\n\
         function event_route.E_CLUSTERER_SHARING_TAG_CHANGED(ev)\n  \
           sip.xlog(\"L_INFO\", \"node {id} shtag \" .. ev.name .. \" \" .. ev.cluster .. \" \" .. ev.state .. \" (\" .. ev.reason .. \")\\n\")\n\
         end\n\
         function event_route.E_CLUSTERER_NODE_STATE_CHANGED(ev)\n  \
           sip.xlog(\"L_INFO\", \"node {id} sees node \" .. ev.node_id .. \" state \" .. ev.new_state .. \"\\n\")\n\
         end\n"
    );
    mi_script(mi, &modules, &routes)
}

/// Node `id` as `mi`'s node sees it: (link_state, next_hop).
fn seen(mi: u16, id: i64) -> (String, String) {
    let list = rpc(mi, "clusterer_list", json!({}));
    let nodes = list["result"]["Clusters"][0]["Nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    nodes
        .iter()
        .find(|n| n["node_id"] == id)
        .map(|n| {
            (
                n["link_state"].as_str().unwrap_or("").to_string(),
                n["next_hop"].as_str().unwrap_or("").to_string(),
            )
        })
        .unwrap_or_default()
}

/// Waits (up to `secs`) until `mi`'s node sees node `id` with
/// `next_hop`; returns how long it took.
fn wait_hop(mi: u16, id: i64, next_hop: &str, secs: u64, logs: &dyn Fn() -> String) -> Duration {
    let start = Instant::now();
    loop {
        let (ls, hop) = seen(mi, id);
        if hop == next_hop {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "node {id}: link {ls}, next hop {hop}, wanted {next_hop}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn shtag_state(mi: u16) -> Value {
    let v = rpc(mi, "clusterer_list_shtags", json!({}));
    v["result"][0]["State"].clone()
}

fn wait_log(p: &Proxy, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.log_text().contains(what) {
        assert!(
            Instant::now() < deadline,
            "no '{what}' in\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_line_of_three_nodes_routes_through_the_middle_and_follows_a_restart() {
    let (b1, b2, b3) = (free_port(), free_port(), free_port());
    // The "firewalled" addresses: nothing listens there.
    let (dead13, dead31) = (free_port(), free_port());
    let (mi1, mi2, mi3) = (free_port(), free_port(), free_port());
    let s3 = script(3, b3, &[(2, b2), (1, dead31)], mi3, "active");
    let n1 = Proxy::start(&script(1, b1, &[(2, b2), (3, dead13)], mi1, "backup"));
    let n2 = Proxy::start(&script(2, b2, &[(1, b1), (3, b3)], mi2, "backup"));
    let n3 = Proxy::start(&s3);
    let sip3 = n3.port;
    let logs = || format!("{}\n{}", n1.log_text(), n2.log_text());
    // 1 links to 2 directly, learns 3 through 2 (topology.c
    // send_full_top_update / handle_ls_update), its own link to 3 is down.
    wait_hop(mi1, 2, "2", 10, &logs);
    wait_hop(mi1, 3, "2", 10, &logs);
    wait_hop(mi3, 1, "2", 10, &logs);
    assert_eq!(seen(mi2, 1), ("Up".into(), "1".into()));
    assert_eq!(seen(mi2, 3), ("Up".into(), "3".into()));
    let (ls13, _) = seen(mi1, 3);
    assert_ne!(ls13, "Up");
    let topo = rpc(mi1, "clusterer_list_topology", json!({}));
    let nodes = &topo["result"]["Clusters"][0]["Nodes"];
    assert_eq!(nodes[0], json!({"node_id": 1, "Neighbours": [2]}), "{topo}");
    let two = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == 2)
        .unwrap();
    let mut n2_neigh: Vec<i64> = two["Neighbours"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    n2_neigh.sort();
    assert_eq!(n2_neigh, vec![1, 3], "{topo}");
    wait_log(&n1, "node 1 sees node 3 state 1");

    // A generic message from 1 to 3 and its answer, both through 2
    // (clusterer.c send_gen_msg, handle_cl_gen_msg).
    let reply = common::udp_exchange(
        &format!("127.0.0.1:{}", n1.port),
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKgen1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: genmsg\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(5),
    )
    .unwrap_or_default();
    assert!(reply.starts_with("SIP/2.0 200 rc 1 1-1-"), "{reply}");
    let tag = reply
        .lines()
        .next()
        .unwrap_or("")
        .rsplit(' ')
        .next()
        .unwrap_or("")
        .to_string();
    assert_eq!(tag.len(), "1-1-".len() + 24, "{reply}");
    wait_log(&n3, "node 3 got req hello from 1 from 1");
    wait_log(&n1, &format!("node 1 got rpl re: hello from 1 tag {tag}"));

    // Sharing tag: active on 3 only.
    assert_eq!(shtag_state(mi3), "active");
    assert_eq!(shtag_state(mi1), "backup");
    assert_eq!(shtag_state(mi2), "backup");
    // MI on node 1 moves it; 3 hears of it through 2 (clusterer-extra
    // SHTAG_ACTIVE routed via the next hop).
    let r = rpc(mi1, "clusterer_shtag_set_active", json!({"tag": "vip/1"}));
    assert_eq!(r["result"], "OK", "{r}");
    assert_eq!(shtag_state(mi1), "active");
    wait_log(&n1, "node 1 shtag vip 1 active (MI command)");
    wait_log(&n3, "node 3 shtag vip 1 backup (cluster broadcast from 1)");
    assert_eq!(shtag_state(mi3), "backup");
    assert_eq!(shtag_state(mi2), "backup");
    assert!(!n2.log_text().contains("node 2 shtag"), "{}", n2.log_text());
    // MI errors as sharing_tags.c shtag_mi_set_active.
    let bad = rpc(mi1, "clusterer_shtag_set_active", json!({"tag": "vip"}));
    assert_eq!(bad["error"]["code"], 400, "{bad}");
    let bad = rpc(mi1, "clusterer_shtag_set_active", json!({"tag": "vip/9"}));
    assert_eq!(bad["error"]["code"], 404, "{bad}");

    // Node 3 stops: 2's pings go unanswered, its link state update tells 1.
    let log3 = n3.stop();
    assert!(log3.contains("node 3 sees node 1 state 1"), "{log3}");
    let took = wait_hop(mi1, 3, "none", 15, &logs);
    wait_log(&n1, "node 1 sees node 3 state 0");
    eprintln!("node 3 seen unreachable by node 1 after {took:?}");
    // Restarted, it pings 2 again and 1 learns the route back.
    let n3 = Proxy::try_start_on(&s3, sip3).expect("node 3 restarts");
    let took = wait_hop(mi1, 3, "2", 15, &logs);
    eprintln!("node 3 seen reachable again by node 1 after {took:?}");
    // Node 3 came back active for the tag (its setting), and told the
    // others; node 1 is backup again, as OpenSIPS's nodes would be.
    wait_log(&n1, "node 1 shtag vip 1 backup (cluster broadcast from 3)");
    assert_eq!(shtag_state(mi3), "active");
    drop(n3);
}

/// `$cluster.sh_tag(name/cluster_id)` reads the state, and writing
/// `active` activates the tag (sharing_tags.c var_set_sh_tag);
/// `cluster_check_addr` matches the nodes' BIN addresses.
#[test]
fn sharing_tag_variable_and_check_addr() {
    let (b1, other, mi) = (free_port(), free_port(), free_port());
    let modules = format!(
        "clusterer = {{ db_mode = 0, my_node_id = 1, my_node_info = \"cluster_id=5,url=bin:127.0.0.1:{b1}\",\n      \
         neighbor_node_info = \"cluster_id=5,node_id=2,url=bin:127.0.0.2:{other},sip_addr=127.0.0.2:5060\",\n      \
         sharing_tag = {{ \"a/5=backup\" }} }},"
    );
    let routes = "function route.main()\n  \
        local before = sip.pv.get(\"$cluster.sh_tag(a/5)\")\n  \
        sip.pv.set(\"$cluster.sh_tag(a/5)\", \"active\")\n  \
        local bin = sip.clusterer.cluster_check_addr(5, \"127.0.0.2\", \"bin\")\n  \
        local sip_ok = sip.clusterer.cluster_check_addr(5, \"127.0.0.2\")\n  \
        local no = sip.clusterer.cluster_check_addr(5, \"127.0.0.3\", \"bin\")\n  \
        sip.sl.sl_send_reply(200, before .. \" \" .. sip.pv.get(\"$cluster.sh_tag(a/5)\") .. \" \" .. tostring(bin) .. \" \" .. tostring(sip_ok) .. \" \" .. tostring(no))\n\
        end\n";
    let p = Proxy::start(&mi_script(mi, &modules, routes));
    let reply = common::udp_exchange(
        &format!("127.0.0.1:{}", p.port),
        "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKshtag\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: shtagvar\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        Duration::from_secs(5),
    )
    .unwrap_or_default();
    assert!(
        reply.starts_with("SIP/2.0 200 backup active true true false"),
        "{reply}\n{}",
        p.log_text()
    );
    let tags = rpc(mi, "clusterer_list_shtags", json!({}));
    assert_eq!(
        tags["result"],
        json!([{"Tag": "a", "Cluster": 5, "State": "active"}])
    );
}

/// db_mode 1 (node_info.c load_db_info): two nodes read from OpenSIPS
/// 3.4's `clusterer` table, made by `lunasip db init`, link up; the
/// row id shows as `db_id`, a row of a cluster node 1 is not in is not
/// read.
#[test]
fn nodes_from_the_clusterer_table() {
    let db = common::mariadb::TestDb::new("lunasip_clusterer");
    assert!(db.init_output.contains("clusterer"), "{}", db.init_output);
    assert_eq!(
        db.sql("SELECT table_version FROM version WHERE table_name = 'clusterer'"),
        "4"
    );
    let (b1, b2, b9, mi1, mi2) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    db.sql(&format!(
        "INSERT INTO clusterer (id, cluster_id, node_id, url, description) VALUES \
         (10, 3, 1, 'bin:127.0.0.1:{b1}', 'first'), (20, 3, 2, 'bin:127.0.0.1:{b2}', 'second'), \
         (30, 4, 3, 'bin:127.0.0.1:{b9}', 'elsewhere')"
    ));
    let node = |id: i32, mi: u16| {
        mi_script(
            mi,
            &format!("clusterer = {{ db_mode = 1, db_url = \"{}\", my_node_id = {id}, ping_timeout = 400 }},", db.url),
            "function route.main() end\n",
        )
    };
    let n1 = Proxy::start(&node(1, mi1));
    let n2 = Proxy::start(&node(2, mi2));
    let logs = || format!("{}\n{}", n1.log_text(), n2.log_text());
    wait_hop(mi1, 2, "2", 10, &logs);
    wait_hop(mi2, 1, "1", 10, &logs);
    let list = rpc(mi1, "clusterer_list", json!({}));
    assert_eq!(
        list["result"],
        json!({"Clusters": [{"cluster_id": 3, "Nodes": [{
            "node_id": 2, "db_id": 20, "url": format!("bin:127.0.0.1:{b2}"),
            "link_state": "Up", "state": "enabled", "next_hop": "2", "description": "second"}]}]}),
        "{list}"
    );
}
