#!/usr/bin/env bash
# Proxy memory with many INVITE transactions in flight at once.
#
#   memory.sh [options] <label> <proxy-start-command>
#
# The UAS (scenarios/uas-hold.xml) answers each INVITE with 100 and 180 and
# then holds it HOLD ms before the 200; the UAC (scenarios/uac.xml) starts
# CALLS calls at RATE calls/s. With HOLD > CALLS/RATE seconds, all CALLS
# INVITE transactions are open in the proxy together (the plateau). The
# proxy's memory is sampled every 0.5 s from before the load until WAIT s
# after the last call ended (past the proxy's wait timer):
#   rss_kb / hwm_kb  VmRSS / VmHWM of the process-group leader (the proxy
#                    itself when the start command execs it),
#   pss_kb           sum of Pss (smaps_rollup) over the whole process group
#                    (Kamailio's several processes share shm: Pss counts a
#                    shared page once),
#   phase            baseline / load / hold (every call started, none
#                    answered yet: the plateau) / after / final,
#   inflight         transactions the proxy reports (-k lunasip: MI
#                    get_statistics tm:inuse_transactions; -k kamailio:
#                    kamcmd tm.stats current, and core.shmmem used as shm_kb).
# Options:
#   -r RATE  (1000)   -m CALLS (10000)   -p HOLD_MS (15000)   -w WAIT_S (10)
#   -D               dialogs instead of transactions: the UAS
#                     (scenarios/uas.xml) answers at once and the UAC holds
#                     each call HOLD ms between ACK and BYE, so the plateau
#                     is CALLS confirmed dialogs with no transaction open;
#                     "inflight" is then active dialogs (lunasip: MI
#                     get_statistics dialog:active_dialogs; kamailio:
#                     kamcmd dlg.stats_active "all"). Use a script that
#                     creates dialogs (proxies/lunasip/dialog_memory.lua,
#                     proxies/kamailio/dialog_acc.cfg).
#   -n ROUNDS (1)     repeat the load in the same proxy process: memory that
#                     the first round's transactions left behind is reused by
#                     the next (allocator retention) or grows again (a leak)
#   -k lunasip|kamailio|none  how to read in-flight transactions (lunasip)
#   -u URL   lunasip MI url (http://127.0.0.1:8888/mi)
#   -o DIR   raw output (results/raw/<label>-memory-<time>)
# Env: LUNASIP (binary for `lunasip mi`, default ../target/release/lunasip),
#      KAM_CTL (kamcmd socket for -k kamailio; memory.sh passes it to
#      proxies/kamailio.sh through KAM_EXTRA), SIPP.
# For lunasip use a script with mi_http on (proxies/lunasip/memory.lua):
#   ./memory.sh lunasip-stateful "proxies/lunasip.sh memory"
#   ./memory.sh -k kamailio kamailio-stateful "proxies/kamailio.sh stateful"
# Prints a summary and appends it to results/memory.tsv.
set -uo pipefail
BENCH_DIR="$(cd "$(dirname "$0")" && pwd)"
cd "$BENCH_DIR"

RATE=1000 CALLS=10000 HOLD=15000 WAIT=10 ROUNDS=1 KIND=lunasip MI_URL=http://127.0.0.1:8888/mi OUT="" DLG=0
while getopts "r:m:p:w:n:k:u:o:D" opt; do
  case $opt in
    r) RATE=$OPTARG ;; m) CALLS=$OPTARG ;; p) HOLD=$OPTARG ;; w) WAIT=$OPTARG ;; n) ROUNDS=$OPTARG ;; D) DLG=1 ;;
    k) KIND=$OPTARG ;; u) MI_URL=$OPTARG ;; o) OUT=$OPTARG ;;
    *) sed -n '2,38p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND-1))
LABEL="${1:?usage: memory.sh [options] <label> <proxy-start-command>}"
PROXY_CMD="${2:?usage: memory.sh [options] <label> <proxy-start-command>}"
SIPP=${SIPP:-sipp}
LUNASIP=${LUNASIP:-$BENCH_DIR/../target/release/lunasip}
TS=$(date +%Y%m%d-%H%M%S)
[ -n "$OUT" ] || OUT="results/raw/${LABEL}-memory-${TS}"
mkdir -p "$OUT"
port_busy() { ss -Hlun "sport = :$1" 2>/dev/null | grep -q .; }
for p in 5060 5070 5080; do
  port_busy $p && { echo "udp port $p is already in use; stop that first" >&2; exit 2; }
done

PROXY_PG="" UAS_PID="" UAC_PID=""
cleanup() {
  for p in $UAC_PID $UAS_PID; do kill -TERM "$p" 2>/dev/null; done
  if [ -n "$PROXY_PG" ]; then
    kill -TERM -- "-$PROXY_PG" 2>/dev/null
    for _ in $(seq 50); do kill -0 -- "-$PROXY_PG" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$PROXY_PG" 2>/dev/null
  fi
  for p in $UAC_PID $UAS_PID; do
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  PROXY_PG="" UAS_PID="" UAC_PID=""
}
trap cleanup EXIT
trap 'cleanup; exit 2' INT TERM

if [ "$KIND" = kamailio ]; then
  KAM_CTL=${KAM_CTL:-unix:/tmp/kambench-mem-$$.ctl}
  export KAM_EXTRA="--loadmodule=ctl.so --modparam=ctl:binrpc:s:$KAM_CTL ${KAM_EXTRA:-}"
fi

# 1) proxy in its own session / process group
setsid bash -c "$PROXY_CMD" > "$OUT/proxy.log" 2>&1 < /dev/null &
PROXY_PG=$!
for _ in $(seq 100); do port_busy 5060 && break; kill -0 $PROXY_PG 2>/dev/null || break; sleep 0.1; done
port_busy 5060 || { echo "proxy did not bind udp 5060; see $OUT/proxy.log" >&2; exit 2; }
sleep 2

group_pids() { local f line rest; for f in /proc/[0-9]*/stat; do
  read -r line 2>/dev/null < "$f" || continue; rest=${line##*) }; set -- $rest
  [ "$3" = "$PROXY_PG" ] && { f=${f#/proc/}; echo "${f%/stat}"; }; done; }
status_kb() { awk -v k="$2:" '$1==k{print $2}' "/proc/$1/status" 2>/dev/null; }
pss_kb() { local t=0 p v; for p in $(group_pids); do
  v=$(awk '$1=="Pss:"{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null); t=$((t + ${v:-0})); done; echo $t; }
inflight() {
  if [ $DLG = 1 ]; then
    case $KIND in
      lunasip)  "$LUNASIP" mi --url "$MI_URL" get_statistics dialog: 2>/dev/null \
                  | grep -o '"dialog:active_dialogs" *: *[0-9]*' | grep -o '[0-9]*$' ;;
      kamailio) kamcmd -s "$KAM_CTL" dlg.stats_active 2>/dev/null | awk '$1=="all:"{print $2}' ;;
      *) echo NA ;;
    esac
    return
  fi
  case $KIND in
    lunasip)  "$LUNASIP" mi --url "$MI_URL" get_statistics tm: 2>/dev/null \
                | grep -o '"tm:inuse_transactions" *: *[0-9]*' | grep -o '[0-9]*$' ;;
    kamailio) kamcmd -s "$KAM_CTL" tm.stats 2>/dev/null | awk '$1=="current:"{print $2}' ;;
    *) echo NA ;;
  esac
}
shm_kb() { [ "$KIND" = kamailio ] || { echo NA; return; }
  kamcmd -s "$KAM_CTL" core.shmmem 2>/dev/null | awk '$1=="used:"{print int($2/1024)}'; }
T0=$(date +%s.%N)
sample() { # phase
  local t; t=$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN{printf "%.1f", a-b}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$1" "$(status_kb $PROXY_PG VmRSS)" \
    "$(status_kb $PROXY_PG VmHWM)" "$(pss_kb)" "$(inflight)" "$(shm_kb)" >> "$OUT/samples.tsv"
}
printf 't_s\tphase\trss_kb\thwm_kb\tpss_kb\tinflight\tshm_kb\n' > "$OUT/samples.tsv"
sample baseline; sleep 0.5; sample baseline

# 2) UAS that holds every INVITE HOLD ms (-D: answers at once)
if [ $DLG = 1 ]; then
  cp scenarios/uas.xml "$OUT/uas-hold.xml"; UAC_HOLD="-d $HOLD"
else
  sed "s/<pause milliseconds=\"[0-9]*\"\/>/<pause milliseconds=\"$HOLD\"\/>/" scenarios/uas-hold.xml > "$OUT/uas-hold.xml"
  UAC_HOLD=""
fi
"$SIPP" -sf "$OUT/uas-hold.xml" -i 127.0.0.1 -p 5080 -nostdin -buff_size 4194304 \
    -trace_stat -stf "$OUT/uas_stat.csv" -fd 1 -trace_err -error_file "$OUT/uas_err.log" -max_log_size 2000000 \
    > "$OUT/uas_screen.txt" 2>&1 < /dev/null &
UAS_PID=$!
for _ in $(seq 50); do port_busy 5080 && break; sleep 0.1; done
port_busy 5080 || { echo "UAS did not start; see $OUT/uas_screen.txt" >&2; exit 2; }

# 3) UAC, ROUNDS times in the same proxy process; sample while it runs and
# WAIT s after each round. Phases carry the round number (load1, hold1, ...).
RECV_TO=$((HOLD + 30000))
UAC_TIMEOUT_S=$(( CALLS / RATE + HOLD / 1000 + 60 ))
# "hold": every call started (CALLS/RATE s) and none answered yet (HOLD ms)
HOLD_FROM=$(awk -v c="$CALLS" -v r="$RATE" 'BEGIN{print c/r + 0.5}') HOLD_TO=$(awk -v h="$HOLD" 'BEGIN{print h/1000 - 0.3}')
OK=0 FAILED=0 UAC_RC=0
stat_last() { awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i; next} {v=$k} END{print v}' "$1"; }
for round in $(seq "$ROUNDS"); do
  # shellcheck disable=SC2086
  "$SIPP" 127.0.0.1:5060 -sf scenarios/uac.xml -i 127.0.0.1 -p 5070 -r "$RATE" -rp 1000 $UAC_HOLD \
      -l $((CALLS * 2)) -m "$CALLS" -nostdin -buff_size 4194304 -recv_timeout "$RECV_TO" \
      -timeout "${UAC_TIMEOUT_S}s" -timeout_error -trace_stat -stf "$OUT/uac_stat$round.csv" -fd 1 \
      -trace_err -error_file "$OUT/uac_err$round.log" -max_log_size 2000000 \
      > "$OUT/uac_screen$round.txt" 2>&1 < /dev/null &
  UAC_PID=$!
  UAC_T0=$(date +%s.%N)
  while kill -0 $UAC_PID 2>/dev/null; do
    phase=$(awk -v a="$(date +%s.%N)" -v b="$UAC_T0" -v f="$HOLD_FROM" -v t="$HOLD_TO" \
      'BEGIN{e=a-b; print (e>=f && e<=t) ? "hold" : "load"}')
    sample $phase$round; sleep 0.5
  done
  wait $UAC_PID; rc=$?; UAC_PID=""; [ $rc = 0 ] || UAC_RC=$rc
  END=$(date +%s)
  while [ $(( $(date +%s) - END )) -lt "$WAIT" ]; do sample after$round; sleep 0.5; done
  sleep 1.2   # SIPp's last stat line
  OK=$((OK + $(stat_last "$OUT/uac_stat$round.csv" 'SuccessfulCall(C)')))
  FAILED=$((FAILED + $(stat_last "$OUT/uac_stat$round.csv" 'FailedCall(C)')))
done
sample final
cleanup

# 4) summary (ok / failed: all rounds; plateau: round 1; after_rss_by_round:
# RSS at the end of each round's wait; final: the last sample)
HEADER="label	kind	rate	calls	hold_ms	ok	failed	uac_rc	base_rss_kb	plateau_inflight	plateau_rss_kb	plateau_pss_kb	plateau_shm_kb	max_inflight	peak_rss_kb	hwm_kb	after_rss_by_round	final_rss_kb	final_inflight	base_shm_kb	final_shm_kb	kb_per_txn_rss	kb_per_txn_pss	kb_per_txn_shm	out"
LINE=$(awk -F'\t' -v label="$LABEL" -v kind="$KIND" -v rate="$RATE" -v calls="$CALLS" -v hold="$HOLD" \
  -v ok="$OK" -v failed="$FAILED" -v rc="$UAC_RC" -v out="$OUT" '
  NR==1 {next}
  $2=="baseline" {brss=$3; bpss=$5; bshm=$7}
  # plateau: the last "hold" sample (all calls started, none answered yet)
  $2=="hold1" {inf=$6+0; prss=$3; ppss=$5; pshm=$7}
  $2 ~ /^after/ {after[substr($2, 6)+0] = $3; nr = substr($2, 6)+0}
  $6 != "NA" && $6+0 > maxinf {maxinf=$6+0}
  $3+0 > peak {peak=$3+0}
  {hwm=$4; frss=$3; finf=$6; fshm=$7}
  END {
    kr = (inf > 0) ? (prss-brss)/inf : -1; kp = (inf > 0) ? (ppss-bpss)/inf : -1;
    ks = (inf > 0 && bshm != "NA") ? (pshm-bshm)/inf : -1;
    abr = ""; for (i = 1; i <= nr; i++) abr = abr (i > 1 ? "," : "") after[i];
    printf "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%s\n",
      label, kind, rate, calls, hold, ok, failed, rc, brss, inf, prss, ppss, pshm, maxinf, peak, hwm, abr, frss, finf, bshm, fshm, kr, kp, ks, out
  }' "$OUT/samples.tsv")
mkdir -p results
[ -s results/memory.tsv ] || echo "$HEADER" > results/memory.tsv
echo "$LINE" >> results/memory.tsv
paste <(tr '\t' '\n' <<< "$HEADER") <(tr '\t' '\n' <<< "$LINE") | column -t -s $'\t'
