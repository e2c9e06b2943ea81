#!/usr/bin/env bash
# REGISTER load against lunasip's registrar: N registrations (one AoR each)
# at RATE per second, usrloc in db_mode 0 (memory) or 3 (MySQL, a table
# made with `lunasip db init`). Prints the proxy's CPU-seconds per 1000
# REGISTERs, failed calls, and RSS growth per contact.
# Usage (from bench/): ./register.sh [-m db_mode] [-n calls] [-r rate] [-k] [-a] [-u users]
#   -k: Kamailio 5.6 instead (proxies/kamailio/registrar.cfg; CPU summed over
#       its processes, no RSS figure: its memory is shm).
#   -a: digest authentication, two round trips per registration
#       (scenarios/register-auth.xml, SIPp [authentication], qop=auth):
#       users u1..uU (-u, default 10000), password pwN, realm bench.test,
#       taken in turn, so calls > users refresh contacts. lunasip reads the
#       `subscriber` table of database lunasip_bench (made with `lunasip db
#       init`, filled by SQL with the HA1s), Kamailio (-k -a:
#       proxies/kamailio/registrar-auth.cfg, usrloc db_mode 0 or 3) its own
#       database kam_bench (Kamailio's schema from /usr/share/kamailio/mysql).
#       With -a the lunasip location table is in lunasip_bench too.
# Env: LUNASIP (binary, default ../target/release/lunasip),
#      DB_URL (default mysql://root@127.0.0.1:3306/test; with -a
#      mysql://root@127.0.0.1:3306/lunasip_bench), PROXY_PORT (5060), UAC_PORT (5070),
#      START_WAIT (seconds between starting the proxy and the load, default 1;
#      more when LUNASIP is a wrapper that runs it under valgrind),
#      SIPP_EXTRA (more SIPp options; "-t un -max_socket 20000" gives each
#      registration its own UDP socket, as phones each have their own address,
#      so the kernel's hash would spread them over the proxy's workers;
#      SIPp stops at once if -max_socket is above `ulimit -n`),
#      CHILDREN (lunasip's SIP workers, default 2),
#      UDP_PACK=false (lunasip spreads datagrams over its workers by the
#      kernel's hash even at a light load: config.udp_pack),
#      PER_THREAD=1 (also print, per thread of the proxy or process of
#      Kamailio that ran, µs of CPU and context switches per registration).
set -euo pipefail
mode=0 n=20000 rate=2000 kam=0 auth=0 users=10000
while getopts "m:n:r:kau:" o; do
  case $o in m) mode=$OPTARG ;; n) n=$OPTARG ;; r) rate=$OPTARG ;; k) kam=1 ;; a) auth=1 ;;
    u) users=$OPTARG ;; *) exit 2 ;; esac
done
here="$(cd "$(dirname "$0")" && pwd)"
bin="${LUNASIP:-$here/../target/release/lunasip}"
if [ "$auth" = 1 ]; then url="${DB_URL:-mysql://root@127.0.0.1:3306/lunasip_bench}"
else url="${DB_URL:-mysql://root@127.0.0.1:3306/test}"; fi
db="${url##*/}" db="${db%%\?*}"
sql() { mariadb -uroot -h127.0.0.1 -N "$@"; }
pport="${PROXY_PORT:-5060}" uport="${UAC_PORT:-5070}" mport="${MI_PORT:-8890}"
work="$(mktemp -d)"
table="loc_bench_$$"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
if [ "$mode" != 0 ] && [ "$kam" = 0 ]; then
  "$bin" db init "$url" --location-table "$table" >/dev/null
fi
# users u1..u$users (HA1 = MD5(user:realm:password), RFC 2617 3.2.2.2)
fill_subscriber() { # database
  local have
  have=$(sql "$1" -e "SELECT COUNT(*) FROM subscriber WHERE domain='bench.test'")
  [ "$have" -ge "$users" ] && return
  sql "$1" -e "INSERT IGNORE INTO subscriber (username, domain, password, ha1) SELECT
    CONCAT('u', seq), 'bench.test', CONCAT('pw', seq), MD5(CONCAT('u', seq, ':bench.test:pw', seq))
    FROM seq_1_to_$users"
}
if [ "$auth" = 1 ]; then
  if [ "$kam" = 1 ]; then
    # dialog_acc.sh may have made kam_bench with other tables only
    sql -e "CREATE DATABASE IF NOT EXISTS kam_bench"
    if [ -z "$(sql kam_bench -e "SHOW TABLES LIKE 'version'")" ]; then
      sql kam_bench < /usr/share/kamailio/mysql/standard-create.sql
    fi
    for f in auth_db usrloc; do
      t=subscriber; [ $f = usrloc ] && t=location
      if [ -z "$(sql kam_bench -e "SHOW TABLES LIKE '$t'")" ]; then
        sql kam_bench < "/usr/share/kamailio/mysql/$f-create.sql"
      fi
    done
    fill_subscriber kam_bench
    sql kam_bench -e "DELETE FROM location"
  else
    sql -e "CREATE DATABASE IF NOT EXISTS $db"
    "$bin" db init "$url" --location-table "$table" >/dev/null
    fill_subscriber "$db"
  fi
  seq 1 "$users" | awk 'BEGIN{print "SEQUENTIAL"} {print "u" $1 ";[authentication username=u" $1 " password=pw" $1 "]"}' >"$work/users.csv"
fi
cat >"$work/reg.lua" <<LUA
config = {
  listen = { "udp:127.0.0.1:$pport" },
  children = ${CHILDREN:-2},
  udp_pack = ${UDP_PACK:-true},
  log_level = "warn",
  modules = {
    usrloc = { db_mode = $mode, db_url = "$url" },
    auth_db = { db_url = "$url" },
    mi_fifo = false, mi_http = { ip = "127.0.0.1", port = $mport, root = "mi" },
  },
}
function route.main()
  if sip.is_method("REGISTER") then
    if $auth == 1 then
      -- realm bench.test, users in the subscriber table (auth_db)
      local ok, rc = sip.auth_db.www_authorize("bench.test", "subscriber")
      if not ok then
        if rc == 0 then sip.exit() end
        sip.auth.www_challenge("bench.test", "auth")
        sip.exit()
      end
      sip.auth.consume_credentials()
    end
    sip.registrar.save("$table")
    sip.exit()
  end
  sip.sl.sl_send_reply(404, "Not Found")
end
LUA
if [ "$kam" = 1 ]; then
  kcfg=registrar.cfg kdef=""
  [ "$auth" = 1 ] && kcfg=registrar-auth.cfg
  [ "$mode" = 3 ] && kdef="-A DBMODE3"
  [ "$mode" != 0 ] && [ "$auth" = 0 ] && { echo "-k with db_mode $mode needs -a" >&2; exit 2; }
  # shellcheck disable=SC2086
  kamailio -DD -E -f "$here/proxies/kamailio/$kcfg" $kdef -l "udp:127.0.0.1:$pport" \
    -m 1024 -M 16 -Y "$work" ${KAM_EXTRA:-} 2>"$work/log" &
else
  "$bin" run -c "$work/reg.lua" 2>"$work/log" &
fi
pid=$!
sleep "${START_WAIT:-1}"
# Kamailio forks its workers: every process of the tree counts.
# shellcheck disable=SC2046 # one word per pid
procs() { echo "$pid" $(pgrep -P "$pid" || true); }
cpu() { # cpu [14|15]: user, system or (no argument) both, in ticks
  local t=0 p
  for p in $(procs); do
    t=$((t + $(awk -v f="${1:-0}" '{print f ? $f : $14 + $15}' "/proc/$p/stat")))
  done
  echo $t
}
# Nanoseconds on a CPU (scheduler's account, every thread of the tree):
# finer than the 10 ms ticks above.
cpu_ns() {
  local p
  for p in $(procs); do cat /proc/"$p"/task/*/schedstat; done 2>/dev/null |
    awk '{t += $1} END {printf "%d", t}'
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
# One line per thread: tid, name, ns on a CPU, voluntary and involuntary
# context switches (for PER_THREAD).
threads() {
  local p t
  for p in $(procs); do
    for t in /proc/"$p"/task/*; do
      printf '%s %s %s %s %s\n' "${t##*/}" "$(tr ' ' _ <"$t/comm")" "$(cut -d' ' -f1 "$t/schedstat")" \
        "$(awk '/^voluntary_ctxt/ {print $2}' "$t/status")" "$(awk '/^nonvoluntary_ctxt/ {print $2}' "$t/status")"
    done
  done 2>/dev/null | sort
}
# PRE_LOAD / POST_LOAD: commands run just before and after the load, with
# the proxy's pid in $pid (e.g. callgrind_control -z / -d "$pid" to count
# only the registrations, not the start or the ul_dump below).
eval "${PRE_LOAD:-}"
c0=$(cpu) s0=$(cpu 15) n0=$(cpu_ns) r0=$(rss)
[ -n "${PER_THREAD:-}" ] && threads >"$work/threads0"
t0=$(date +%s.%N)
scen=(-sf "$here/scenarios/register.xml" -s user)
[ "$auth" = 1 ] && scen=(-sf "$here/scenarios/register-auth.xml" -inf "$work/users.csv")
# -recv_timeout: a registration whose answer was lost fails instead of waiting forever
# shellcheck disable=SC2086 # SIPP_EXTRA: several options, split on purpose
timeout $((n / rate + 180)) sipp "127.0.0.1:$pport" "${scen[@]}" -i 127.0.0.1 -p "$uport" ${SIPP_EXTRA:-} -recv_timeout 20000 \
  -m "$n" -r "$rate" -l 2000 -nostdin -buff_size 4194304 -timeout 120s \
  -trace_stat -stf "$work/stat.csv" -fd 1 -trace_err -error_file "$work/err.log" >/dev/null 2>&1 || true
t1=$(date +%s.%N)
sleep 1
c1=$(cpu) s1=$(cpu 15) n1=$(cpu_ns) r1=$(rss)
[ -n "${PER_THREAD:-}" ] && threads >"$work/threads1"
eval "${POST_LOAD:-}"
hz=$(getconf CLK_TCK)
failed=$(tail -1 "$work/stat.csv" | awk -F';' '{print $18}')
# achieved rate: successful registrations over the SIPp run's wall time
ok=$(tail -1 "$work/stat.csv" | awk -F';' '{print $16}')
wall=$(echo "$t1 - $t0" | bc)
[ -n "${KEEP_LOG:-}" ] && cp "$work/log" "$KEEP_LOG" && { cp "$work/err.log" "$KEEP_LOG.sipp-err" 2>/dev/null || true; }
[ "$kam" = 1 ] && [ "$mode" = 3 ] && rows=$(sql kam_bench -e "SELECT COUNT(*) FROM location")
[ "$kam" = 0 ] && [ "$mode" != 0 ] && rows=$(sql "$db" -e "SELECT COUNT(*) FROM $table")
per=$n
if [ "$kam" = 0 ] && [ "$mode" = 0 ]; then
  dumped=$("$bin" mi --url "http://127.0.0.1:$mport/mi" ul_dump | grep -o '"Contact"' | wc -l)
  [ "$dumped" -gt 0 ] && per=$dumped
fi
echo "$([ "$kam" = 1 ] && echo kamailio || echo lunasip) auth=$auth db_mode=$mode registers=$n rate=$rate wall=$wall s" \
  "ok=$ok achieved=$(echo "scale=0; $ok / $wall" | bc)/s db_rows=${rows:-NA}" \
  "cpu_s_per_1000=$(echo "scale=4; ($c1 - $c0) * 1000 / $hz / $n" | bc)" "cpu_ticks=$((c1 - c0))" "sys_ticks=$((s1 - s0))" "cpu_us_per_reg=$(( (n1 - n0) / 1000 / n ))" \
  "failed=$failed ul_dump_contacts=${dumped:-NA} rss_kb=$r0->$r1 bytes_per_contact=$(( (r1 - r0) * 1024 / per ))"
if [ -n "${PER_THREAD:-}" ]; then
  join "$work/threads0" "$work/threads1" | awk -v n="$n" '{ us = ($7 - $3) / 1000 / n
    if (us >= 0.05) printf "  thread %s %s cpu_us_per_reg=%.1f voluntary_switches_per_reg=%.3f involuntary_switches_per_reg=%.3f\n",
      $1, $2, us, ($8 - $4) / n, ($9 - $5) / n }'
fi
if { [ "$mode" != 0 ] || [ "$auth" = 1 ]; } && [ "$kam" = 0 ]; then
  sql "$db" -e "DROP TABLE $table; DELETE FROM version WHERE table_name='$table'" 2>/dev/null || true
fi
