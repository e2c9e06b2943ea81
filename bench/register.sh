#!/usr/bin/env bash
# REGISTER load against lunasip's registrar: N registrations (one AoR each)
# at RATE per second, usrloc in db_mode 0 (memory) or 3 (MySQL, a table
# made with `lunasip db init`). Prints the proxy's CPU-seconds per 1000
# REGISTERs, failed calls, and RSS growth per contact.
# Usage (from bench/): ./register.sh [-m db_mode] [-n calls] [-r rate] [-k]
#   -k: Kamailio 5.6 instead (proxies/kamailio/registrar.cfg, db_mode 0 only;
#       CPU summed over its processes, no RSS figure: its memory is shm).
# Env: LUNASIP (binary, default ../target/release/lunasip),
#      DB_URL (default mysql://root@127.0.0.1:3306/test),
#      PROXY_PORT (5060), UAC_PORT (5070).
set -euo pipefail
mode=0 n=20000 rate=2000 kam=0
while getopts "m:n:r:k" o; do
  case $o in m) mode=$OPTARG ;; n) n=$OPTARG ;; r) rate=$OPTARG ;; k) kam=1 ;; *) exit 2 ;; esac
done
here="$(cd "$(dirname "$0")" && pwd)"
bin="${LUNASIP:-$here/../target/release/lunasip}"
url="${DB_URL:-mysql://root@127.0.0.1:3306/test}"
pport="${PROXY_PORT:-5060}" uport="${UAC_PORT:-5070}"
work="$(mktemp -d)"
table="loc_bench_$$"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
if [ "$mode" != 0 ] && [ "$kam" = 0 ]; then
  "$bin" db init "$url" --location-table "$table" >/dev/null
fi
cat >"$work/reg.lua" <<LUA
config = {
  listen = { "udp:127.0.0.1:$pport" },
  children = 2,
  log_level = "warn",
  modules = { usrloc = { db_mode = $mode, db_url = "$url" }, mi_fifo = false, mi_http = false },
}
function route.main()
  if sip.is_method("REGISTER") then
    sip.registrar.save("$table")
    sip.exit()
  end
  sip.sl.sl_send_reply(404, "Not Found")
end
LUA
if [ "$kam" = 1 ]; then
  kamailio -DD -E -f "$here/proxies/kamailio/registrar.cfg" -l "udp:127.0.0.1:$pport" \
    -m 1024 -M 16 -Y "$work" 2>"$work/log" &
else
  "$bin" run -c "$work/reg.lua" 2>"$work/log" &
fi
pid=$!
sleep 1
# Kamailio forks its workers: sum every process of the tree.
cpu() {
  local t=0 p
  for p in $pid $(pgrep -P "$pid" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo $t
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
c0=$(cpu) r0=$(rss)
t0=$(date +%s.%N)
sipp "127.0.0.1:$pport" -sf "$here/scenarios/register.xml" -s user -i 127.0.0.1 -p "$uport" \
  -m "$n" -r "$rate" -l 2000 -nostdin -buff_size 4194304 -timeout 120s \
  -trace_stat -stf "$work/stat.csv" -fd 1 >/dev/null 2>&1 || true
t1=$(date +%s.%N)
sleep 1
c1=$(cpu) r1=$(rss)
hz=$(getconf CLK_TCK)
failed=$(tail -1 "$work/stat.csv" | awk -F';' '{print $18}')
echo "$([ "$kam" = 1 ] && echo kamailio || echo lunasip) db_mode=$mode registers=$n rate=$rate wall=$(echo "$t1 - $t0" | bc) s" \
  "cpu_s_per_1000=$(echo "scale=4; ($c1 - $c0) * 1000 / $hz / $n" | bc)" "cpu_ticks=$((c1 - c0))" \
  "failed=$failed rss_kb=$r0->$r1 bytes_per_contact=$(( (r1 - r0) * 1024 / n ))"
if [ "$mode" != 0 ] && [ "$kam" = 0 ]; then
  mariadb -uroot -h127.0.0.1 test -e "DROP TABLE $table; DELETE FROM version WHERE table_name='$table'" 2>/dev/null || true
fi
