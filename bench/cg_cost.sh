#!/usr/bin/env bash
# Instructions per call, counted by valgrind's callgrind (deterministic:
# the bench machine is shared, CPU-seconds are not). The proxy runs under
# callgrind (Kamailio with --trace-children=yes: every process it forks is
# counted and summed); once it listens, the counters of every process are
# zeroed (callgrind_control -z), SIPp sends CALLS calls at RATE calls/s
# (INVITE/100/180/200/ACK/BYE/200 through the proxy), the counters are
# dumped; then the proxy idles IDLE seconds and is dumped again, so the
# cost of its timers while idle is known and can be taken out. Prints:
#   label calls ok gross_instr_per_call idle_instr_per_s net_instr_per_call
# net = (gross total - idle_per_s * seconds of the SIPp run) / calls.
# Usage (from bench/): ./cg_cost.sh lunasip|kamailio SCRIPT [CALLS (500)] [RATE (20)] [IDLE (10)]
#   SCRIPT: proxies/lunasip/SCRIPT.lua or proxies/kamailio/SCRIPT.cfg.
# Env: LUNASIP (binary), KAM_EXTRA (e.g. "-x tlsf -X tlsf"), CG_OUT (a
#      directory to keep callgrind's files in, for callgrind_annotate),
#      KAM_SHM_MB, KAM_PKG_MB (as proxies/kamailio.sh), LABEL (default PROXY-SCRIPT). Ports 5060/5070/5080: run it in a
#      network namespace of its own on a shared machine (bench/README.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proxy="${1:?usage: cg_cost.sh lunasip|kamailio SCRIPT [CALLS] [RATE] [IDLE]}"
script="${2:?script}"
calls="${3:-500}" rate="${4:-20}" idle="${5:-10}"
label="${LABEL:-$proxy-$script}"
out="${CG_OUT:-$(mktemp -d)}"
mkdir -p "$out"
rm -f "$out"/cg.out.*
case "$proxy" in
  lunasip)
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.out.%p" \
      "${LUNASIP:-$here/../target/release/lunasip}" run -c "$here/proxies/lunasip/$script.lua" \
      >"$out/proxy.log" 2>&1 &
    ;;
  kamailio)
    (cd "$here/proxies/kamailio" && rundir=$(mktemp -d) &&
      exec valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out/cg.out.%p" \
        kamailio -DD -E -f "$script.cfg" -m "${KAM_SHM_MB:-2048}" -M "${KAM_PKG_MB:-16}" -Y "$rundir" -w "$here/proxies/kamailio" \
        ${KAM_EXTRA:-}) >"$out/proxy.log" 2>&1 &
    ;;
  *) echo "unknown proxy $proxy" >&2; exit 2 ;;
esac
pid=$!
sipp -sf "$here/scenarios/uas.xml" -i 127.0.0.1 -p 5080 -nostdin >/dev/null 2>&1 </dev/null &
uas=$!
# The proxy and all its descendants (Kamailio forks its workers).
tree() {
  local p=$1
  echo "$p"
  for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree "$c"; done
}
cleanup() { kill $uas 2>/dev/null || true; for p in $(tree $pid | sort -rn); do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in $(seq 600); do ss -Hlun "sport = :5060" | grep -q . && break; sleep 0.1; done
sleep 5 # Kamailio's children start after the socket is bound
ctl() { for p in $(tree $pid); do callgrind_control "$1" "$p" >/dev/null 2>&1 || true; done; }
sum() { # total Ir of the dump files matching $1
  local t=0 f n
  for f in $1; do
    [ -e "$f" ] || continue
    n=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
    t=$((t + ${n:-0}))
  done
  echo $t
}
ctl -z
t0=$(date +%s.%N)
sipp 127.0.0.1:5060 -sf "$here/scenarios/uac.xml" -i 127.0.0.1 -p 5070 -r "$rate" -m "$calls" \
  -nostdin -recv_timeout 20000 -timeout 600s -timeout_error >"$out/uac.txt" 2>&1 && ok=all || ok="NOT-all"
t1=$(date +%s.%N)
sleep 1
ctl -d
sleep 2
busy=$(sum "$out/cg.out.*.1")
t2=$(date +%s.%N)
sleep "$idle"
ctl -d
sleep 2
t3=$(date +%s.%N)
quiet=$(sum "$out/cg.out.*.2")
awk -v l="$label" -v n="$calls" -v ok="$ok" -v b="$busy" -v q="$quiet" \
  -v run="$(echo "$t2 - $t0" | bc)" -v idl="$(echo "$t3 - $t2" | bc)" 'BEGIN {
  ips = q / idl
  printf "%s calls=%d ok=%s gross=%.0f idle_per_s=%.0f net=%.0f run_s=%.1f\n", l, n, ok, b / n, ips, (b - ips * run) / n, run }'
if [ -z "${CG_OUT:-}" ]; then rm -rf "$out"; fi
