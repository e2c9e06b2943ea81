#!/usr/bin/env bash
# Coverage-guided fuzzing of lunasip's parsers with libFuzzer, on the stable
# toolchain: libfuzzer-sys builds libFuzzer from source, and the SanitizerCoverage
# flags below are what cargo-fuzz passes (no nightly, no cargo-fuzz install).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#   fuzz/run.sh build          (only builds the targets)
#
# Runs each target SECONDS (default 60) on its corpus (fuzz/corpus/<target>,
# seeded from tests/fixtures/sip, the RFC 4475 torture set in
# tests/fixtures/sip-torture, the translator's golden opensips.cfg files in
# compat/tests/golden, and the seeds in fuzz/seeds/<target>).
# A crash leaves its input in fuzz/artifacts/<target>/ and the script exits 1;
# replay one with `fuzz/target/<triple>/release/<target> <file>`.
# Targets: sip_message sip_values pv_spec mi_jsonrpc opensips_cfg.
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(sip_message sip_values pv_spec mi_jsonrpc opensips_cfg)
HOST=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/target}
# An explicit --target keeps these flags off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
cargo build --release --target "$HOST" --bins
[ "$SECS" = build ] && exit 0
BIN=$CARGO_TARGET_DIR/$HOST/release

seed() { # seed <target> <files...>: copy seeds into the corpus once
  local dir=corpus/$1; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp -n "$f" "$dir/" 2>/dev/null || true; done
}
seed sip_message ../tests/fixtures/sip/*.sip ../tests/fixtures/sip-torture/*.dat
seed sip_values seeds/sip_values/*
seed pv_spec seeds/pv_spec/*
seed mi_jsonrpc seeds/mi_jsonrpc/*
seed opensips_cfg ../compat/tests/golden/*.cfg

status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "artifacts/$t"
  echo "== $t: ${SECS}s" >&2
  if ! "$BIN/$t" -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1 "corpus/$t" 2> "artifacts/$t.log"; then
    echo "!! $t failed: see fuzz/artifacts/$t.log and fuzz/artifacts/$t/" >&2
    tail -30 "artifacts/$t.log" >&2
    status=1
  fi
  grep -E "^stat::(number_of_executed_units|new_units_added)|^#[0-9]+.*DONE" "artifacts/$t.log" >&2 || true
done
exit $status
