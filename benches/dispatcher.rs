//! Dispatcher selection per call, without Lua: take the shared sets, find
//! the set, compute the key (Call-ID hash for 0, the shared cursor for 4,
//! loads for 9), choose with the failover list (`f`) and copy the chosen URI.
//! 2, 16 and 256 destinations.

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use lunasip::modules::dispatcher::select::{self, Key, Opts};
use lunasip::modules::dispatcher::sets::{Row, Source};
use lunasip::modules::dispatcher::{install, load, PartitionConf};

fn sets_of(n: usize) {
    let rows = (0..n)
        .map(|i| Row {
            setid: 1,
            uri: format!("sip:10.0.{}.{}:5060", i / 250, i % 250 + 1),
            weight: 1,
            ..Row::default()
        })
        .collect();
    let s = load(&[PartitionConf {
        name: "default".into(),
        source: Source::Rows(rows),
        hash_pvar: None,
        pvar_algo_pattern: None,
        algo_route: None,
        attrs_avp: None,
        names: Default::default(),
    }])
    .expect("load");
    install(s, false);
}

fn bench(c: &mut Criterion) {
    for n in [2usize, 16, 256] {
        sets_of(n);
        let ids: Vec<String> = (0..1024).map(|i| format!("{i}-call@10.0.0.1")).collect();
        let loads: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % 100).collect();
        for alg in [0, 4, 9] {
            let mut i = 0u64;
            c.bench_function(&format!("ds_select alg {alg}, {n} destinations"), |b| {
                b.iter(|| {
                    i += 1;
                    let sets = lunasip::modules::dispatcher::current();
                    let set = sets.partition(None).and_then(|p| p.set(1)).expect("set");
                    let key = match alg {
                        0 => Key::Hash(select::hash(&ids[(i % 1024) as usize])),
                        4 => Key::RoundRobin,
                        _ => Key::Load(loads.clone()),
                    };
                    let order = select::select(set, &key, Opts::default());
                    black_box(set.dests[order[0]].uri.clone())
                })
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
