#!/usr/bin/env bash
# Overload with the proxy as the bottleneck. On a small machine SIPp (caller
# and callee) saturates before lunasip does, so the proxy is put in a CPU
# cgroup capped at QUOTA % of one core: its highest sustainable rate M is
# then well below SIPp's. The script
#   1. finds M with find_max.sh (the stateful script as shipped: shedding
#      on, `overload_queue_delay` at its default);
#   2. for each mode in MODES (off: `overload_queue_delay = 0`; on: the
#      default or -d DELAY): starts one capped proxy and runs, against that
#      same proxy, 30 s at 1.5 x M and right after 20 s at 0.5 x M;
#   3. prints, per phase, successful / failed calls, goodput (successful
#      calls per second over the phase) as a share of M, and the load
#      average.
#
#   bench/overload.sh [-q QUOTA_PCT] [-p PERIOD_US] [-d DELAY_MS] [-M MAX] [-m "on off"]
#   (defaults 25, 10000, the script's default, search, "off on")
#
# The CPU cap is QUOTA % of each PERIOD_US: a 10 ms period (rather than the
# kernel's default 100 ms) keeps the capped proxy from sleeping 75 ms at a
# time, which would look like a 75 ms queue at any load.
#
# Needs root (cgroup v1 cpu controller at /sys/fs/cgroup/cpu, or cgroup v2),
# sip-tester and a release build (LUNASIP=path). Not part of CI.
set -euo pipefail
QUOTA=25 PERIOD=10000 DELAY="" MAX="" MODES="off on"
while getopts "q:p:d:M:m:" o; do
  case $o in
    q) QUOTA=$OPTARG ;; p) PERIOD=$OPTARG ;; d) DELAY=$OPTARG ;; M) MAX=$OPTARG ;; m) MODES=$OPTARG ;;
    *) sed -n '2,24p' "$0"; exit 2 ;;
  esac
done
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export LUNASIP=${LUNASIP:-$here/../target/release/lunasip}
work=$(mktemp -d /tmp/lunasip-overload.XXXXXX)
log() { printf '%s overload: %s\n' "$(date +%T)" "$*" >&2; }

# The cgroup: v1 cpu controller, else v2.
if [ -d /sys/fs/cgroup/cpu ]; then
  CG=/sys/fs/cgroup/cpu/lunasip-overload
  mkdir -p "$CG"
  echo "$PERIOD" > "$CG/cpu.cfs_period_us"
  echo $((QUOTA * PERIOD / 100)) > "$CG/cpu.cfs_quota_us"
else
  CG=/sys/fs/cgroup/lunasip-overload
  mkdir -p "$CG"
  echo "$((QUOTA * PERIOD / 100)) $PERIOD" > "$CG/cpu.max"
fi
trap 'rmdir "$CG" 2>/dev/null || true' EXIT

# Scripts: the stateful bench script with shedding on (as shipped, or at
# -d DELAY) and off.
sed "s/^  children = 2,/  children = 2,\n  overload_queue_delay = 0,/" proxies/lunasip/stateful.lua > "$work/off.lua"
if [ -n "$DELAY" ]; then
  sed "s/^  children = 2,/  children = 2,\n  overload_queue_delay = $DELAY,/" proxies/lunasip/stateful.lua > "$work/on.lua"
else
  cp proxies/lunasip/stateful.lua "$work/on.lua"
fi
capped() { # capped SCRIPT: a proxy command for run.sh, in the cgroup
  echo "echo \$\$ > $CG/cgroup.procs && exec $LUNASIP run -c $1"
}

if [ -z "$MAX" ]; then
  log "finding the highest rate of the proxy capped at $QUOTA % of a core"
  MAX=$(./find_max.sh -n 1 -S 500 -P 5 "overload-max-q$QUOTA" "$(capped "$work/on.lua")" 2>&1 |
    tee "$work/find_max.log" | awk '/median/ {print $NF}' | tail -1)
  MAX=${MAX//[^0-9]/}
  [ -n "$MAX" ] || { log "find_max gave no rate: $work/find_max.log"; exit 2; }
fi
log "M = $MAX calls/s"

last() { awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i; next} {v=$k} END{print v}' "$1"; }
phase() { # phase NAME RATE SECS -> prints "ok failed goodput"
  local name=$1 rate=$2 secs=$3 t0 t1
  t0=$(date +%s.%N)
  sipp 127.0.0.1:5060 -sf scenarios/uac.xml -i 127.0.0.1 -p 5070 -r "$rate" -rp 1000 \
    -m $((rate * secs)) -l $((rate * 4)) -nostdin -buff_size 4194304 -recv_timeout 10000 \
    -timeout $((secs * 2 + 15))s -trace_stat -stf "$work/$name.csv" -fd 1 \
    -trace_err -error_file "$work/$name.err" > "$work/$name.out" 2>&1 < /dev/null || true
  t1=$(date +%s.%N)
  local ok failed
  ok=$(last "$work/$name.csv" 'SuccessfulCall(C)'); failed=$(last "$work/$name.csv" 'FailedCall(C)')
  awk -v ok="$ok" -v f="$failed" -v a="$t0" -v b="$t1" -v m="$MAX" -v n="$name" -v r="$rate" \
    -v la="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN{g=ok/(b-a); printf "%-12s offered %5d/s  successful %6d  failed %6d  goodput %6.0f/s = %5.1f %% of M  (load %s)\n", n, r, ok, f, g, 100*g/m, la}'
}

for mode in $MODES; do
  log "shedding $mode: one proxy, 30 s at 1.5 x M then 20 s at 0.5 x M"
  setsid bash -c "$(capped "$work/$mode.lua")" > "$work/proxy-$mode.log" 2>&1 < /dev/null &
  proxy=$!
  sipp -sf scenarios/uas.xml -i 127.0.0.1 -p 5080 -nostdin -buff_size 4194304 > /dev/null 2>&1 < /dev/null &
  uas=$!
  sleep 1
  phase "$mode-1.5x" $((MAX * 3 / 2)) 30
  phase "$mode-0.5x" $((MAX / 2)) 20
  kill "$uas" 2>/dev/null || true
  kill -- -"$proxy" 2>/dev/null || kill "$proxy" 2>/dev/null || true
  wait 2>/dev/null || true
  sleep 1
done
log "raw files in $work"
