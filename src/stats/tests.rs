use super::*;

/// The module groups, as the daemon registers them at start.
fn registered() {
    crate::modules::register();
}

#[test]
fn counters_sum_over_shards() {
    registered();
    let c = Counter::new();
    bind_thread(1);
    c.inc();
    bind_thread(2);
    c.add(2);
    assert_eq!(c.get(), 3);
    c.reset();
    assert_eq!(c.get(), 0);
}

#[test]
fn lookup_by_name() {
    registered();
    assert!(get("core:rcv_requests").is_some());
    assert!(get("rcv_requests").is_some());
    assert!(get("sl:4xx_replies").is_some());
    assert!(get("sl:rcv_requests").is_none());
    assert!(get("nope").is_none());
}

#[test]
fn script_stats_are_created_updated_and_reset() {
    registered();
    assert_eq!(update("mi_test_calls", 2).unwrap(), 2);
    assert_eq!(update("dynamic:mi_test_calls", 3).unwrap(), 5);
    assert_eq!(get("dynamic:mi_test_calls"), Some(5));
    assert_eq!(update("mygrp:mi_test_active", -1).unwrap(), 0);
    assert!(update("core:rcv_requests", 1).is_err());
    assert!(update("bad name", 1).is_err());
    assert!(update("a:b:c", 1).is_err());
    assert!(reset("mi_test_calls"));
    assert_eq!(get("mi_test_calls"), Some(0));
    assert!(!reset("nope_not_there"));
}

#[test]
fn tm_names_and_inuse_gauge() {
    registered();
    assert!(get("tm:UAS_transactions").is_some());
    assert!(get("tm:2xx_transactions").is_some());
    let c = Counter::new();
    bind_thread(1);
    c.inc();
    c.inc();
    bind_thread(2);
    c.sub(1);
    assert_eq!(c.get(), 1);
    let mut kind = None;
    each_stat(|s| {
        if s.name == "inuse_transactions" {
            kind = Some(s.kind)
        }
    });
    assert_eq!(kind, Some(StatKind::Gauge));
    assert!(!reset("tm:inuse_transactions"));
}

#[test]
fn process_gauges() {
    registered();
    assert!(get("memory:rss_size").unwrap() > 0);
    assert!(!reset("memory:rss_size"));
    let mut kinds = vec![];
    each_stat(|s| {
        if s.group == "memory" {
            kinds.push(s.kind)
        }
    });
    assert!(kinds.iter().all(|k| *k == StatKind::Gauge) && kinds.len() == 2);
    assert!(groups().contains(&"memory"));
}

#[test]
fn sl_names_are_opensips_names() {
    registered();
    let mut names = vec![];
    each(|g, n, _| names.push(format!("{g}:{n}")));
    assert!(names.contains(&"sl:1xx_replies".to_string()));
    assert!(names.contains(&"core:rcv_requests".to_string()));
    assert!(names.contains(&"sl:sent_replies".to_string()));
}

/// Every counter of a hot-path struct is declared exactly once, in field
/// order, in the group of the same name.
#[test]
fn every_counter_is_declared_once() {
    registered();
    fn check(group: &str, fields: Vec<*const Counter>) {
        let g = declared().find(|g| g.name == group).expect(group);
        let decl: Vec<*const Counter> = g
            .stats
            .iter()
            .filter_map(|d| match d.value {
                StatValue::Counter(c) | StatValue::Gauge(c) => Some(c as *const Counter),
                StatValue::Computed(_) => None,
            })
            .collect();
        assert_eq!(decl, fields, "{group}");
    }
    fn ptrs(each: impl FnOnce(&mut dyn FnMut(&'static Counter))) -> Vec<*const Counter> {
        let mut v = Vec::new();
        each(&mut |c| v.push(c as *const Counter));
        v
    }
    check("core", ptrs(|f| CORE.each(|_, c| f(c))));
    check("sl", ptrs(|f| SL.each(|_, c| f(c))));
    check("tm", ptrs(|f| TM.each(|_, c| f(c))));
    let ds = &crate::modules::dispatcher::exports::DISPATCHER;
    check("dispatcher", ptrs(|f| ds.each(|_, c| f(c))));
}

#[test]
fn declared_groups_in_order_and_unique() {
    registered();
    let names: Vec<&str> = declared().map(|g| g.name).collect();
    assert_eq!(
        names,
        [
            "core",
            "sl",
            "tm",
            "dispatcher",
            "usrloc",
            "registrar",
            "evi",
            "dialog",
            "acc",
            "memory"
        ]
    );
    let mut all: Vec<String> = Vec::new();
    for g in declared() {
        for d in g.stats {
            let full = format!("{}:{}", g.name, d.name);
            assert!(!all.contains(&full), "{full} declared twice");
            assert!(split_name(&full, "x").is_ok(), "{full}");
            all.push(full);
        }
    }
    assert!(register_counter("dispatcher", "bad_rows").is_err());
    assert!(!reset("dispatcher:bad_rows"));
}
