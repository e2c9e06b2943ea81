use super::*;

/// Changing the table and `ds_reload` while calls run: no call fails, and
/// the new destinations take the calls from then on.
#[test]
fn reload_under_load_loses_no_call() {
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    let c = uas("uas.xml", "u1");
    let db = Db::new();
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "1", 0);
    let mi_port = free_port();
    let proxy = Proxy::start(&script(mi_port, &db.source(), "f"));
    let dir = tempfile::tempdir().expect("tmp");
    let inf = plain(&dir, 1, 4);

    let port = proxy.port;
    let inf2 = inf.clone();
    let load = std::thread::spawn(move || {
        uac("uac_ds_fields.xml", port, "u1", 500, 100, &["-inf", &inf2])
    });
    std::thread::sleep(Duration::from_millis(1500));
    // a leaves, c joins, in one reload.
    db.exec("DELETE FROM dispatcher WHERE id = 1");
    db.add(3, 1, c.port, "1", 0);
    let (ok, out) = mi(mi_port, &["ds_reload"]);
    assert!(ok, "ds_reload: {out}");
    let run = load.join().expect("caller thread");
    assert_eq!(
        (run.successful, run.failed),
        (500, 0),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );
    let n = settled(&[&a, &b, &c], 500);
    assert_eq!(n.iter().sum::<u64>(), 500, "{n:?}");
    assert!(n[0] > 0 && n[0] < 250, "a only before the reload: {n:?}");
    assert!(n[2] > 0, "c after the reload: {n:?}");
    assert_eq!(
        ds_list(mi_port).get(&1),
        Some(&vec![uri(b.port), uri(c.port)]),
        "ds_list after reload"
    );

    // From now on: b and c alternate, a gets nothing.
    let run = uac(
        "uac_ds_fields.xml",
        proxy.port,
        "u1",
        20,
        50,
        &["-inf", &inf],
    );
    assert_eq!(run.successful, 20, "{}", run.errors);
    let m = settled(&[&a, &b, &c], 520);
    assert_eq!(m[0], n[0], "no call for the removed box");
    assert_eq!((m[1] - n[1], m[2] - n[2]), (10, 10), "{n:?} → {m:?}");
}

/// Malformed rows are skipped, named by id in the log and counted in
/// `dispatcher:bad_rows`; the good rows carry the calls.
#[test]
fn bad_rows_are_skipped_named_and_counted() {
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    let db = Db::new();
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "1", 0);
    db.exec(
        "INSERT INTO dispatcher (id, setid, destination, weight, socket) VALUES \
         (13, 1, 'no uri here', '1', NULL), \
         (14, 2, 'sip:127.0.0.1:5999', 'heavy', NULL), \
         (15, 1, 'sip:127.0.0.1:5998', '1', 'udp:10.9.9.9:5060'), \
         (16, 1, 'sip:127.0.0.1:5997', '1', 'udp:not-an-address')",
    );
    let mi_port = free_port();
    let proxy = Proxy::start(&script(mi_port, &db.source(), "f"));
    let log = proxy.log_text();
    for id in 13..=16 {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("row id {id}")))
            .unwrap_or_else(|| panic!("row id {id} not in the log:\n{log}"));
        assert!(line.contains("skipped") && line.contains("ERROR"), "{line}");
    }
    assert!(log.contains("weight 'heavy' is not a number"), "{log}");
    assert!(log.contains("not one of config.listen"), "{log}");
    let sets = ds_list(mi_port);
    assert_eq!(
        sets.get(&1),
        Some(&vec![uri(a.port), uri(b.port)]),
        "{sets:?}"
    );
    assert!(!sets.contains_key(&2), "{sets:?}");
    let bad = |mi_port| {
        let (ok, out) = mi(mi_port, &["get_statistics", "dispatcher:bad_rows"]);
        assert!(ok, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["dispatcher:bad_rows"].as_u64().unwrap_or(u64::MAX)
    };
    assert_eq!(bad(mi_port), 4);

    let dir = tempfile::tempdir().expect("tmp");
    let run = uac(
        "uac_ds_fields.xml",
        proxy.port,
        "u1",
        10,
        50,
        &["-inf", &plain(&dir, 1, 4)],
    );
    assert_eq!(run.successful, 10, "{}", run.errors);
    assert_eq!(settled(&[&a, &b], 10), vec![5, 5]);

    // Fix two rows, reload: they load, the count follows.
    db.exec("UPDATE dispatcher SET weight = '2' WHERE id = 14");
    db.exec("DELETE FROM dispatcher WHERE id = 13");
    let (ok, out) = mi(mi_port, &["ds_reload"]);
    assert!(ok, "{out}");
    assert_eq!(bad(mi_port), 2);
    assert_eq!(
        ds_list(mi_port).get(&2),
        Some(&vec!["sip:127.0.0.1:5999".to_string()])
    );
}

/// The database is not there when the proxy starts: it starts anyway with
/// an empty partition and a clear error, loads by itself once the
/// database exists, and keeps what it has when a later reload fails.
#[test]
fn database_down_at_start_then_loaded_by_retry() {
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    let db = Db::unborn();
    let mi_port = free_port();
    let proxy = Proxy::start(&script(mi_port, &db.source(), "f"));
    let log = proxy.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("partition stays empty"))
        .unwrap_or_else(|| panic!("no error about the database:\n{log}"));
    assert!(line.contains("ERROR") && line.contains(&db.name), "{line}");
    assert!(ds_list(mi_port).is_empty());
    let (ok, out) = mi(mi_port, &["ds_reload"]);
    assert!(!ok, "ds_reload with no database must fail: {out}");

    db.create();
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "1", 0);
    let deadline = Instant::now() + Duration::from_secs(6);
    while ds_list(mi_port).get(&1).map_or(0, Vec::len) < 2 {
        assert!(
            Instant::now() < deadline,
            "not loaded by retry:\n{}",
            proxy.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(proxy.log_text().contains("database reachable again"));
    let dir = tempfile::tempdir().expect("tmp");
    let inf = plain(&dir, 1, 4);
    let run = uac(
        "uac_ds_fields.xml",
        proxy.port,
        "u1",
        10,
        50,
        &["-inf", &inf],
    );
    assert_eq!(run.successful, 10, "{}", run.errors);

    // The table goes away: ds_reload fails, the sets stay, calls go on.
    db.exec("RENAME TABLE dispatcher TO dispatcher_away");
    let (ok, out) = mi(mi_port, &["ds_reload"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("dispatcher_away") || out.contains("doesn't exist"),
        "{out}"
    );
    assert_eq!(ds_list(mi_port).get(&1).map_or(0, Vec::len), 2);
    let run = uac(
        "uac_ds_fields.xml",
        proxy.port,
        "u1",
        10,
        50,
        &["-inf", &inf],
    );
    assert_eq!(run.successful, 10, "{}", run.errors);
    assert_eq!(settled(&[&a, &b], 20), vec![10, 10]);
}

/// Probing with the destinations in the table: a stopped box is taken out
/// and brought back with exactly its keys (the classic deployment).
#[test]
fn probing_with_the_table_takes_a_box_out_and_back() {
    let db = Db::new();
    ds::probing_round_trip(&|a, b| {
        db.add(1, 1, a, "1", 0);
        db.add(2, 1, b, "1", 0);
        db.source()
    });
}
