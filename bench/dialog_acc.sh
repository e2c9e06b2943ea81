#!/usr/bin/env bash
# Dialog + CDR accounting cost (issue #16): SIPp stateful calls through
#   lunasip  proxies/lunasip/stateful.lua     (record_route + t_relay)
#   lunasip  proxies/lunasip/dialog_acc.lua   (+ create_dialog, do_accounting("db", "cdr"))
#   Kamailio proxies/kamailio/stateful.cfg    (the same routing)
#   Kamailio proxies/kamailio/dialog_acc.cfg  (+ dlg_manage, acc CDRs to MariaDB)
# ROUNDS alternating rounds (odd rounds in that order, even rounds reversed),
# each run a fresh proxy started by run.sh (CPU-s of its process group per
# 1000 calls). CDRs: rows added to lunasip_bench.acc / kam_bench.acc_cdrs
# during the run, read after the proxy stopped.
# Usage (from bench/): ./dialog_acc.sh [-r RATE (1000)] [-m CALLS (10000)] [-n ROUNDS (2)] [-t]
#   -t: also Kamailio with the TLSF allocator (-x tlsf -X tlsf) for both
#       configs: the Debian package's default q_malloc costs it a lot.
# Env: LUNASIP (binary, default ../target/release/lunasip).
# Makes the databases when missing: lunasip_bench (`lunasip db init`),
# kam_bench (Kamailio's acc-create.sql, plus a callid column for cdr_extra).
# Prints one line per run: label, CPU-s per 1000 calls, ok, failed, CDRs, noisy.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
rate=1000 calls=10000 rounds=2 tlsf=0
while getopts "r:m:n:t" o; do
  case $o in r) rate=$OPTARG ;; m) calls=$OPTARG ;; n) rounds=$OPTARG ;; t) tlsf=1 ;;
    *) sed -n '2,18p' "$0"; exit 2 ;; esac
done
export LUNASIP="${LUNASIP:-$here/../target/release/lunasip}"
sql() { mariadb -uroot -h127.0.0.1 -N "$@"; }
sql -e "CREATE DATABASE IF NOT EXISTS lunasip_bench"
"$LUNASIP" db init mysql://root@127.0.0.1:3306/lunasip_bench >/dev/null || exit 2
if [ -z "$(sql -e "SHOW DATABASES LIKE 'kam_bench'")" ]; then
  sql -e "CREATE DATABASE kam_bench"
  sql kam_bench < /usr/share/kamailio/mysql/standard-create.sql
fi
if [ -z "$(sql kam_bench -e "SHOW TABLES LIKE 'acc_cdrs'")" ]; then
  sql kam_bench < /usr/share/kamailio/mysql/acc-create.sql
fi
if [ -z "$(sql kam_bench -e "SHOW COLUMNS FROM acc_cdrs LIKE 'callid'")" ]; then
  sql kam_bench -e "ALTER TABLE acc_cdrs ADD COLUMN callid VARCHAR(255) NOT NULL DEFAULT ''"
fi
cdrs() { # label -> rows in its CDR table (NA for the plain ones)
  case $1 in
    lunasip-dialog-acc) sql lunasip_bench -e "SELECT COUNT(*) FROM acc" ;;
    kamailio*dialog-acc) sql kam_bench -e "SELECT COUNT(*) FROM acc_cdrs" ;;
    *) echo 0 ;;
  esac
}
one() { # label start-command
  local before line
  before=$(cdrs "$1")
  case $1 in kamailio-tlsf*) export KAM_EXTRA="-x tlsf -X tlsf" ;; *) unset KAM_EXTRA ;; esac
  line=$(./run.sh -q -r "$rate" -m "$calls" "$1" "$2")
  # fields: 14 cpu_s_per_1k, 5 ok, 6 failed, 22 noisy (see run.sh's RESULT_HEADER)
  printf '%-22s cpu_s_per_1k=%s ok=%s failed=%s cdrs=%s %s\n' "$1" \
    "$(cut -f14 <<<"$line")" "$(cut -f5 <<<"$line")" "$(cut -f6 <<<"$line")" \
    "$(( $(cdrs "$1") - before ))" "$(cut -f22 <<<"$line")"
}
runs=("lunasip-stateful|proxies/lunasip.sh stateful"
      "lunasip-dialog-acc|proxies/lunasip.sh dialog_acc"
      "kamailio-stateful|proxies/kamailio.sh stateful"
      "kamailio-dialog-acc|proxies/kamailio.sh dialog_acc")
[ $tlsf = 1 ] && runs+=("kamailio-tlsf-stateful|proxies/kamailio.sh stateful"
                        "kamailio-tlsf-dialog-acc|proxies/kamailio.sh dialog_acc")
for r in $(seq "$rounds"); do
  echo "# round $r, $calls calls at $rate/s, load $(cut -d' ' -f1-3 /proc/loadavg)"
  order=($(seq 0 $((${#runs[@]} - 1)))); [ $((r % 2)) = 0 ] && order=($(seq $((${#runs[@]} - 1)) -1 0))
  for i in "${order[@]}"; do one "${runs[$i]%%|*}" "${runs[$i]#*|}"; done
done
