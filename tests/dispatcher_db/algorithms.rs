use super::*;

/// For each key (as `key` reads it off an INVITE of algorithm `alg`), the
/// callees that received it.
fn boxes_by_key(
    boxes: &[(&str, &BTreeSet<Invite>)],
    alg: &str,
    key: impl Fn(&Invite) -> String,
) -> BTreeMap<String, (BTreeSet<String>, usize)> {
    let mut m: BTreeMap<String, (BTreeSet<String>, usize)> = BTreeMap::new();
    for (name, invs) in boxes {
        for i in invs.iter().filter(|i| i.alg == alg) {
            let e = m.entry(key(i)).or_default();
            e.0.insert(name.to_string());
            e.1 += 1;
        }
    }
    m
}

/// Algorithms 0–3: every call with the same Call-ID / From / To / R-URI
/// reaches the same callee, and the keys spread over both.
#[test]
fn hash_algorithms_send_each_key_to_one_box() {
    let a = TracedUas::start();
    let b = TracedUas::start();
    let db = Db::new();
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "1", 0);
    let mi_port = free_port();
    let proxy = Proxy::start(&script(mi_port, &db.source(), "f"));

    // Algorithms 1, 2, 3: twelve keys each, every key three times.
    let dir = tempfile::tempdir().expect("tmp");
    let mut lines = Vec::new();
    for alg in 1..=3 {
        for _ in 0..3 {
            for k in 0..12 {
                lines.push(format!("from{k};to{k};ruri{k};1;{alg}"));
            }
        }
    }
    let inf = keys_file(&dir, "keys.csv", &lines);
    let n = lines.len() as u32;
    let run = uac(
        "uac_ds_fields.xml",
        proxy.port,
        "u1",
        n,
        100,
        &["-inf", &inf],
    );
    assert_eq!(
        run.successful,
        u64::from(n),
        "{}\n{}",
        run.errors,
        proxy.log_text()
    );

    // Algorithm 0: the same ten Call-IDs three times over (SIPp numbers
    // the calls of each run from 1).
    let inf0 = plain(&dir, 1, 0);
    for round in 0..3 {
        if round > 0 {
            std::thread::sleep(Duration::from_millis(1300));
        }
        let run = uac(
            "uac_ds_fields.xml",
            proxy.port,
            "u1",
            10,
            50,
            &["-inf", &inf0, "-cid_str", "ds-alg0-%u@lunasip"],
        );
        assert_eq!(
            run.successful,
            10,
            "round {round}: {}\n{}",
            run.errors,
            a.errors()
        );
    }

    let (ia, ib) = (a.invites(), b.invites());
    assert_eq!(
        ia.len() + ib.len(),
        n as usize + 30,
        "{}{}",
        a.errors(),
        b.errors()
    );
    let boxes = [("a", &ia), ("b", &ib)];
    let checks: [(&str, usize, usize, KeyOf); 4] = [
        ("0", 10, 3, |i| i.call_id.clone()),
        ("1", 12, 3, |i| i.from_user.clone()),
        ("2", 12, 3, |i| i.to_user.clone()),
        ("3", 12, 3, |i| i.ruri_user.clone()),
    ];
    for (alg, keys, times, key) in checks {
        let m = boxes_by_key(&boxes, alg, key);
        assert_eq!(m.len(), keys, "algorithm {alg}: {m:?}");
        for (k, (where_, count)) in &m {
            assert_eq!(*count, times, "algorithm {alg}: key {k} seen {count} times");
            assert_eq!(
                where_.len(),
                1,
                "algorithm {alg}: key {k} went to {where_:?}"
            );
        }
        let used: BTreeSet<&String> = m.values().flat_map(|(w, _)| w.iter()).collect();
        assert_eq!(
            used.len(),
            2,
            "algorithm {alg}: every key on one box: {m:?}"
        );
    }
}

/// Algorithms 4 (round-robin, also weighted 1:3), 8 (first) and 6 (random)
/// over three callees.
#[test]
fn round_robin_weights_first_and_random() {
    let a = uas("uas.xml", "u1");
    let b = uas("uas.xml", "u1");
    let c = uas("uas.xml", "u1");
    let db = Db::new();
    // Set 1: a then b (priority). Set 2: a and b weighted 1:3. Set 3: all.
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "1", 1);
    db.add(3, 2, a.port, "1", 0);
    db.add(4, 2, b.port, "3", 0);
    db.add(5, 3, a.port, "1", 0);
    db.add(6, 3, b.port, "1", 0);
    db.add(7, 3, c.port, "1", 0);
    let mi_port = free_port();
    let proxy = Proxy::start(&script(mi_port, &db.source(), "f"));
    let dir = tempfile::tempdir().expect("tmp");
    let boxes = [&a, &b, &c];
    let mut total = 0u64;
    let mut before = vec![0u64; 3];
    let mut step = |set: u32, alg: u32, calls: u32, rate: u32| -> Vec<u64> {
        let run = uac(
            "uac_ds_fields.xml",
            proxy.port,
            "u1",
            calls,
            rate,
            &["-inf", &plain(&dir, set, alg)],
        );
        assert_eq!(
            (run.successful, run.failed),
            (u64::from(calls), 0),
            "set {set} alg {alg}: {}",
            run.errors
        );
        total += u64::from(calls);
        let now = settled(&boxes, total);
        let delta: Vec<u64> = now.iter().zip(&before).map(|(n, b)| n - b).collect();
        before = now;
        delta
    };

    let rr = step(1, 4, 20, 50);
    assert_eq!(rr[0] + rr[1], 20, "{rr:?}");
    assert!(rr[0].abs_diff(rr[1]) <= 1, "round-robin: {rr:?}");

    let first = step(1, 8, 10, 50);
    assert_eq!(first, vec![10, 0, 0], "first");

    // 800 calls at 200/s: enough for the 1:3 share, gentle enough for a
    // loaded CI machine (2000 at 400/s timed calls out there).
    let w = step(2, 4, 800, 200);
    assert_eq!(w[0] + w[1], 800, "{w:?}");
    let share = w[0] as f64 / 800.0;
    assert!(
        (0.22..=0.28).contains(&share),
        "weight 1 of 1:3 took {:.1} % ({w:?})",
        share * 100.0
    );

    // Random over three: each expects 200 of 600 (sd ≈ 11.5); ±60 is over
    // five standard deviations.
    let r = step(3, 6, 600, 300);
    assert_eq!(r.iter().sum::<u64>(), 600, "{r:?}");
    for (i, n) in r.iter().enumerate() {
        assert!(
            (140..=260).contains(n),
            "random: box {i} got {n} of 600 ({r:?})"
        );
    }
    eprintln!("round-robin {rr:?}, first {first:?}, weights 1:3 {w:?}, random {r:?}");
}

/// The same script with the destinations in the config table instead of
/// the database sends every call to the same callee.
#[test]
fn embedded_source_distributes_the_same() {
    let a = TracedUas::start();
    let b = TracedUas::start();
    let db = Db::new();
    db.add(1, 1, a.port, "1", 0);
    db.add(2, 1, b.port, "3", 0);
    let embedded = format!(
        "sets = {{ [1] = {{ {{ uri = \"{}\", weight = 1 }}, {{ uri = \"{}\", weight = 3 }} }} }}",
        uri(a.port),
        uri(b.port)
    );
    let dir = tempfile::tempdir().expect("tmp");
    // Call-ID hash, From user hash ("u": the caller's port differs between
    // runs), and weighted round-robin.
    let mut lines = Vec::new();
    for k in 0..16 {
        lines.push(format!("c{k};x;x;1;0"));
    }
    for k in 0..16 {
        lines.push(format!("user{k};x;x;1;1"));
    }
    for k in 0..8 {
        lines.push(format!("r{k};x;x;1;4"));
    }
    let inf = keys_file(&dir, "keys.csv", &lines);
    let n = lines.len();

    let mut placement: Vec<BTreeMap<String, String>> = Vec::new();
    let mut seen: BTreeSet<Invite> = BTreeSet::new();
    for (i, source) in [db.source(), embedded].iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(1300));
        }
        let mi_port = free_port();
        let proxy = Proxy::start(&script(mi_port, source, "fu"));
        let run = uac(
            "uac_ds_fields.xml",
            proxy.port,
            "u1",
            n as u32,
            40,
            &["-inf", &inf, "-cid_str", "ds-same-%u@lunasip"],
        );
        assert_eq!(
            run.successful,
            n as u64,
            "{}\n{}",
            run.errors,
            proxy.log_text()
        );
        let mut this = BTreeMap::new();
        for (name, u) in [("a", &a), ("b", &b)] {
            for inv in u.invites() {
                if seen.insert(inv.clone()) {
                    let key = match inv.alg.as_str() {
                        "1" => inv.from_user.clone(),
                        "4" => format!("rr {}", inv.from_user),
                        _ => inv.call_id.clone(),
                    };
                    this.insert(key, name.to_string());
                }
            }
        }
        assert_eq!(this.len(), n, "{this:?}");
        placement.push(this);
    }
    assert_eq!(placement[0], placement[1], "database vs embedded");
    let rr_a = placement[0]
        .iter()
        .filter(|(k, v)| k.starts_with("rr ") && v.as_str() == "a")
        .count();
    assert_eq!(
        rr_a, 2,
        "weights 1:3 over 8 round-robin calls: {placement:?}"
    );
    let on_a = placement[0].values().filter(|v| v.as_str() == "a").count();
    assert!(on_a > 0 && on_a < n, "{placement:?}");
}
