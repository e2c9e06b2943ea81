#!/usr/bin/env bash
# glibc malloc vs jemalloc vs mimalloc on the stateful bench, alternating
# runs in one session (bench/RESULTS.md "Allocator").
#
#   alloc.sh [ROUNDS] [RATE]
#
# Needs the binaries (from the repository root; jemalloc is the default):
#   cargo build --release --features system-alloc && cp target/release/lunasip target/lunasip-none
#   cargo build --release && cp target/release/lunasip target/lunasip-jemalloc
#   cargo build --release --features mimalloc && cp target/release/lunasip target/lunasip-mimalloc
# (ALLOC_BINS=DIR if they are elsewhere; ALLOCS="none jemalloc" to compare
# only some of them). Per round and allocator: one
# run.sh run (CPU-s per 1000 calls) and one memory.sh burst of 6000 INVITE
# transactions held together, then drained (RSS after the drain).
set -uo pipefail
cd "$(dirname "$0")"
ROUNDS=${1:-2} RATE=${2:-1000}
BINS=${ALLOC_BINS:-../target}
for r in $(seq 1 "$ROUNDS"); do
  for a in ${ALLOCS:-none jemalloc mimalloc}; do
    bin=$BINS/lunasip-$a
    [ -x "$bin" ] || { echo "missing $bin" >&2; exit 2; }
    cpu=$(LUNASIP=$bin ./run.sh -q -r "$RATE" -m $((RATE * 10)) "alloc-$a" "proxies/lunasip.sh stateful" \
      | awk -F'\t' '{print $14 " (" $5 " ok, " $6 " failed, " $22 ")"}')
    LUNASIP=$bin ./memory.sh -r "$RATE" -m 6000 -p 8000 -w 10 "alloc-$a" "proxies/lunasip.sh memory" >/dev/null 2>&1
    mem=$(tail -n 1 results/memory.tsv | awk -F'\t' '{print "rss_kb base " $9 ", plateau " $11 " (" $10 " in flight), after drain " $18 " (" $19 " in flight), ok " $6 " failed " $7}')
    printf 'round %s\t%s\tcpu_s_per_1k %s\tmemory %s\n' "$r" "$a" "$cpu" "$mem"
  done
done
