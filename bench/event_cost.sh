#!/usr/bin/env bash
# What one event per call costs the proxy, counted rather than timed (the
# bench machine is shared): lunasip runs proxies/lunasip/<SCRIPT>.lua,
# SIPp sends CALLS calls at RATE calls/s (INVITE … BYE through the proxy),
# and the script prints, for the proxy process and all its threads:
# CPU-s (utime+stime), context switches (voluntary + involuntary, summed
# over /proc/PID/task/*) and, with CALLGRIND=1, the instructions valgrind's
# callgrind counted (user space, deterministic; the proxy runs ~50x slower,
# so keep RATE low). Run it for `stateful` and `stateful_events` and take
# the difference per call: that is the cost of one event. CG_OUT=FILE
# keeps callgrind's output for `callgrind_annotate --inclusive=yes FILE`.
# Usage (from bench/): LUNASIP=/path/to/lunasip ./event_cost.sh SCRIPT [CALLS] [RATE]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${LUNASIP:-$here/../target/release/lunasip}"
script="${1:?usage: event_cost.sh stateful|stateful_events [CALLS] [RATE]}"
calls="${2:-2000}" rate="${3:-200}"
out="$(mktemp -d)"
if [ "${CALLGRIND:-0}" = 1 ]; then
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" \
    "$bin" run -c "$here/proxies/lunasip/$script.lua" 2>"$out/vg.log" &
else
  "$bin" run -c "$here/proxies/lunasip/$script.lua" &
fi
pid=$!
sipp -sf "$here/scenarios/uas.xml" -i 127.0.0.1 -p 5080 -nostdin >/dev/null 2>&1 </dev/null &
uas=$!
trap 'kill $pid $uas 2>/dev/null || true' EXIT
for _ in $(seq 300); do ss -Hlun "sport = :5060" | grep -q . && break; sleep 0.1; done
sleep 2
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
csw() { cat /proc/$pid/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }
c0=$(cpu) s0=$(csw)
sipp 127.0.0.1:5060 -sf "$here/scenarios/uac.xml" -i 127.0.0.1 -p 5070 -r "$rate" -m "$calls" \
  -nostdin -recv_timeout 10000 -timeout 300s -timeout_error >"$out/uac.txt" 2>&1 && ok=all || ok="NOT all"
sleep 1
c1=$(cpu) s1=$(csw)
kill -TERM $pid; wait $pid 2>/dev/null || true
ir=""
if [ "${CALLGRIND:-0}" = 1 ]; then
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$out/cg.out")
  if [ -n "${CG_OUT:-}" ]; then cp "$out/cg.out" "$CG_OUT"; fi
fi
hz=$(getconf CLK_TCK)
awk -v s="$script" -v n="$calls" -v ok="${ok:-?}" -v c="$((c1 - c0))" -v hz="$hz" -v w="$((s1 - s0))" -v ir="$ir" 'BEGIN {
  printf "%s: %d calls (%s successful): CPU %.2f s = %.4f CPU-s/1000 calls; %.2f context switches per call", s, n, ok, c / hz, c / hz / n * 1000, w / n
  if (ir != "") printf "; %.0f instructions per call (whole run, startup included)", ir / n
  printf "\n" }'
rm -rf "$out"
