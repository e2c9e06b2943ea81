#!/usr/bin/env bash
# Alternating rounds of register.sh -a: each lunasip binary, then Kamailio
# (as packaged, q_malloc) and, with KAM_TLSF=1, Kamailio with TLSF, in
# turn; prints every run, then the median µs of CPU per registration of
# each per rate. Quote lunasip as a ratio of these medians (the machines
# are shared and noisy: one run alone says little).
# Usage (from anywhere): ./register_rounds.sh ROUNDS "RATE:CALLS ..." BIN...
#   BIN: a lunasip binary; "nopack:BIN" runs it with UDP_PACK=false,
#   "nowire:BIN" with LUNASIP_MYSQL_WIRE=0 (reads through mysql_async).
# Env: MODE (usrloc db_mode, default 0), KAM_TLSF=1, SIPP_EXTRA and
#      CHILDREN (passed to register.sh), PROXY_PORT/UAC_PORT/MI_PORT
#      (default 25460/25461/26190).
# Example (a port per registration, as phones have):
#   SIPP_EXTRA="-t un -max_socket 20000" ./register_rounds.sh 3 "1000:10000 4000:40000" /usr/sbin/lunasip
set -uo pipefail
[ $# -ge 3 ] || { sed -n '2,14p' "$0"; exit 2; }
rounds=$1 sets=$2
shift 2
here="$(cd "$(dirname "$0")" && pwd)"
mode=${MODE:-0}
export PROXY_PORT=${PROXY_PORT:-25460} UAC_PORT=${UAC_PORT:-25461} MI_PORT=${MI_PORT:-26190}
kams=(kam)
[ "${KAM_TLSF:-0}" = 1 ] && kams+=(kam-tlsf)
declare -A got
one() { # name rate calls
    local b=$1 out pack=true wire=1 path=$1
    case $b in nopack:*) pack=false path=${b#nopack:} ;; nowire:*) wire=0 path=${b#nowire:} ;; esac
    case $b in
    kam) out=$("$here/register.sh" -a -k -m "$mode" -n "$3" -r "$2" 2>&1) ;;
    kam-tlsf) out=$(KAM_EXTRA="-x tlsf -X tlsf" "$here/register.sh" -a -k -m "$mode" -n "$3" -r "$2" 2>&1) ;;
    *) out=$(LUNASIP_MYSQL_WIRE=$wire UDP_PACK=$pack LUNASIP=$path "$here/register.sh" -a -m "$mode" -n "$3" -r "$2" 2>&1) ;;
    esac
    local us failed achieved
    us=$(grep -o 'cpu_us_per_reg=[0-9]*' <<<"$out" | cut -d= -f2)
    failed=$(grep -o 'failed=[0-9]*' <<<"$out" | cut -d= -f2)
    achieved=$(grep -o 'achieved=[0-9]*' <<<"$out" | cut -d= -f2)
    echo "db_mode=$mode rate=$2 round=$r $b us=${us:-?} failed=${failed:-?} achieved=${achieved:-?}/s"
    got["$2 $b"]+="${us:-?} "
}
for set in $sets; do
    rate=${set%%:*} calls=${set##*:}
    for ((r = 1; r <= rounds; r++)); do
        for b in "$@" "${kams[@]}"; do one "$b" "$rate" "$calls"; done
    done
done
echo "== medians, db_mode $mode (µs of CPU per registration; the runs in brackets)"
for set in $sets; do
    rate=${set%%:*}
    for b in "$@" "${kams[@]}"; do
        # shellcheck disable=SC2086 # one run per word
        m=$(printf '%s\n' ${got["$rate $b"]} | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
        echo "rate=$rate $b median=$m (${got["$rate $b"]% })"
    done
done
