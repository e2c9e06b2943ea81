//! Translating the largest opensips.cfg of the shared corpus (target: under
//! 100 ms). Skips when ../shared/corpus is not present.

use criterion::{criterion_group, criterion_main, Criterion};
use std::path::Path;

fn largest() -> Option<(std::path::PathBuf, compat::Options)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/opensips-cfg");
    let mut cfgs: Vec<_> = compat::corpus::configs(&dir)
        .into_iter()
        .map(|p| {
            let o = compat::corpus::options_for(&dir, &p);
            (p, o)
        })
        // lineblocs-proxy.cfg (the largest) stops at its unbalanced quote.
        .filter(|(p, o)| compat::translate_file(p, o).is_ok())
        .collect();
    cfgs.sort_by_key(|(p, _)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    cfgs.pop()
}

fn bench(c: &mut Criterion) {
    let Some((cfg, opts)) = largest() else {
        eprintln!("corpus not present: nothing to measure");
        return;
    };
    let text = std::fs::read_to_string(&cfg).unwrap_or_default();
    let name = cfg.display().to_string();
    eprintln!("translating {} ({} bytes)", name, text.len());
    c.bench_function("translate largest corpus cfg", |b| {
        b.iter(|| compat::translate_str(&name, &text, &opts).map(|t| t.lua.len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
