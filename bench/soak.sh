#!/usr/bin/env bash
# Soak: SIPp stateful calls through a dispatcher script for MINUTES at RATE
# calls/s while the script is reloaded 5 times, and twice each one of the
# two boxes is killed and revived, MariaDB is restarted and RabbitMQ is
# restarted (twice, so that memory kept per outage shows as a second step,
# where an allocator's high-water mark does not grow again). Prints failed
# calls, the proxy's RSS, anonymous memory and open fds over time and at
# each disturbance (with MariaDB's count of open prepared statements), and
# their growth after warm-up. Warm-up ends 10 % of the run after every kind
# of disturbance has happened once (at 50 %): a restart's buffers and
# reconnections reach their high-water mark the first time, and what is
# measured is whether a second round of the same outages adds to it.
#
#   bench/soak.sh [MINUTES [RATE]]        (default 10 minutes, 100 calls/s)
#
# Everything it starts is its own, on ports of its own (proxy 5360, boxes
# 5380/5381, caller 5370, MI 8390, MariaDB 3316, RabbitMQ 5682): a private
# mariadbd with a scratch datadir (--skip-grant-tables) and a private
# RabbitMQ node, so the machine's services are not touched. Needs
# sip-tester, mariadb-server and rabbitmq-server (Debian) and a release
# build (LUNASIP=path, default target/release/lunasip). Exit 0 when no call
# failed beyond those on a killed box and RSS, anonymous memory and fds
# grew < 5 % after warm-up. Not part of CI. A build
# with --features jemalloc-stats adds the heap's allocated and resident kB
# to the samples (what the proxy holds against what jemalloc keeps).
set -euo pipefail
MIN=${1:-10}
RATE=${2:-100}
here="$(cd "$(dirname "$0")" && pwd)"
LUNASIP=${LUNASIP:-$here/../target/release/lunasip}
PROXY=5360 MI=8390 DB=3316 AMQP=5682 DIST=25682 BOXA=5380 BOXB=5381 UAC=5370
work=$(mktemp -d /tmp/lunasip-soak.XXXXXX)
chmod 755 "$work"
log() { printf '%s soak: %s\n' "$(date +%T)" "$*" >&2; }
port_open() { (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # wait_port PORT up|down SECONDS
  for _ in $(seq $(($3 * 10))); do
    if port_open "$1"; then [ "$2" = up ] && return 0; else [ "$2" = down ] && return 0; fi
    sleep 0.1
  done
  return 1
}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  db_down || true
  mq_down || true
}
trap cleanup EXIT

# --- private MariaDB
mariadb-install-db --no-defaults --datadir="$work/db" --user=root >"$work/db-install.log" 2>&1
db_up() {
  mariadbd --no-defaults --datadir="$work/db" --user=root --port=$DB --bind-address=127.0.0.1 \
    --socket="$work/db.sock" --pid-file="$work/db.pid" --skip-grant-tables \
    --log-error="$work/db.err" >/dev/null 2>&1 &
  wait_port $DB up 60 || { log "mariadbd did not start: $work/db.err"; exit 2; }
}
db_down() {
  [ -f "$work/db.pid" ] || return 0
  kill "$(cat "$work/db.pid")" 2>/dev/null || true
  wait_port $DB down 60
}
sql() { mariadb -h 127.0.0.1 -P $DB -u root "$@"; }

# --- private RabbitMQ node; a durable queue bound to amq.direct by a
# definitions file (imported at every boot).
chown rabbitmq "$work" 2>/dev/null || true
guest_hash=$(python3 -c 'import hashlib,base64,os; s=os.urandom(4); print(base64.b64encode(s+hashlib.sha256(s+b"guest").digest()).decode())')
cat > "$work/defs.json" <<DEFS
{"users":[{"name":"guest","password_hash":"$guest_hash","hashing_algorithm":"rabbit_password_hashing_sha256","tags":["administrator"]}],
 "vhosts":[{"name":"/"}],
 "permissions":[{"user":"guest","vhost":"/","configure":".*","write":".*","read":".*"}],
 "queues":[{"name":"lunasip.soak","vhost":"/","durable":true,"auto_delete":false,"arguments":{"x-max-length":100000}}],
 "bindings":[{"source":"amq.direct","vhost":"/","destination":"lunasip.soak","destination_type":"queue","routing_key":"lunasip.soak","arguments":{}}]}
DEFS
cat > "$work/rabbitmq.conf" <<CONF
listeners.tcp.local = 127.0.0.1:$AMQP
loopback_users = none
definitions.import_backend = local_filesystem
definitions.local.path = $work/defs.json
CONF
chmod 644 "$work/defs.json" "$work/rabbitmq.conf"
export RABBITMQ_CONFIG_FILE=$work/rabbitmq.conf RABBITMQ_NODENAME=lunasipsoak@localhost \
  RABBITMQ_NODE_PORT=$AMQP RABBITMQ_DIST_PORT=$DIST RABBITMQ_MNESIA_BASE=$work/mnesia \
  RABBITMQ_LOG_BASE=$work/mqlog RABBITMQ_PID_FILE=$work/mq.pid
mq_up() {
  rabbitmq-server -detached >/dev/null 2>&1
  wait_port $AMQP up 90 || { log "rabbitmq did not start: $work/mqlog"; exit 2; }
}
mq_down() {
  [ -f "$work/mq.pid" ] || return 0
  kill "$(cat "$work/mq.pid")" 2>/dev/null || true
  wait_port $AMQP down 60
}

log "work dir $work; starting MariaDB and RabbitMQ"
db_up
mq_up
sql -e 'CREATE DATABASE soak'
sql soak < "$here/../packaging/sql/dispatcher-mysql.sql"
"$LUNASIP" db init "mysql://root@127.0.0.1:$DB/soak" >/dev/null
sql soak -e "INSERT INTO dispatcher (setid, destination, description) VALUES
  (1, 'sip:127.0.0.1:$BOXA', 'box a'), (1, 'sip:127.0.0.1:$BOXB', 'box b')"

# --- boxes, proxy
box() { # box PORT NAME
  sipp -sf "$here/scenarios/uas.xml" -i 127.0.0.1 -p "$1" -nostdin -bg \
    -trace_err -error_file "$work/$2_err.log" >/dev/null 2>&1
  pgrep -n -f -- "-p $1 -nostdin"
}
a_pid=$(box $BOXA a); b_pid=$(box $BOXB b)
pids+=("$a_pid")
sed -e "s/@PROXY@/$PROXY/; s/@MI@/$MI/; s/@DB@/$DB/g; s/@AMQP@/$AMQP/" \
  "$here/proxies/lunasip/soak.lua" > "$work/soak.lua"
"$LUNASIP" run -c "$work/soak.lua" > "$work/proxy.log" 2>&1 &
proxy=$!
pids+=("$proxy")
sleep 2
kill -0 $proxy || { log "proxy did not start: $work/proxy.log"; exit 2; }

# --- caller
secs=$((MIN * 60))
calls=$((secs * RATE))
sipp 127.0.0.1:$PROXY -sf "$here/scenarios/uac.xml" -i 127.0.0.1 -p $UAC -r "$RATE" \
  -m $calls -d 1000 -nostdin -recv_timeout 20000 -trace_stat -stf "$work/uac_stat.csv" -fd 5 \
  -trace_err -error_file "$work/uac_err.log" > "$work/uac.txt" 2>&1 &
uac=$!
pids+=("$uac")
log "$calls calls at $RATE/s for $MIN min; proxy pid $proxy"

# --- the disturbances, at fractions of the run (percent: action)
mi() { curl -s -m 5 -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":${2:-[]}}" "http://127.0.0.1:$MI/mi"; }
# jemalloc's own figures when the binary has them (--features jemalloc-stats).
heap() {
  mi get_statistics '[["jemalloc:"]]' 2>/dev/null | python3 -c 'import json,sys
try: r = json.load(sys.stdin)["result"]; print(r["jemalloc:allocated"] // 1024, r["jemalloc:resident"] // 1024)
except Exception: print("NA NA")'
}
rss_now() { awk '/^VmRSS/{print $2}' "/proc/$proxy/status"; }
anon_now() { awk '/^RssAnon/{print $2}' "/proc/$proxy/status"; }
stmts_now() { sql -N -e "SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'" 2>/dev/null | awk '{print $2}' || echo NA; }
act() {
  echo "$now $1 $(rss_now) $(anon_now) $(stmts_now)" >> "$work/events.txt"
  case $1 in
    reload) kill -HUP $proxy; log "reload (SIGHUP)" ;;
    kill_b) kill "$b_pid"; log "box b killed" ;;
    revive_b) b_pid=$(box $BOXB b); pids+=("$b_pid"); log "box b revived" ;;
    db) log "restarting MariaDB"; db_down; sleep 3; db_up; log "MariaDB back" ;;
    mq) log "restarting RabbitMQ"; mq_down; sleep 3; mq_up; log "RabbitMQ back" ;;
  esac
}
plan=(10:reload 20:kill_b 25:revive_b 30:db 35:reload 40:mq
  50:reload 55:kill_b 60:revive_b 65:reload 70:db 80:mq 90:reload)
echo "t_s rss_kb fds heap_allocated_kb heap_resident_kb anon_kb" > "$work/samples.txt"
echo "t_s action rss_kb_before anon_kb_before db_prepared_stmts" > "$work/events.txt"
# Warm-up: until 10 % after the first of each kind of disturbance.
declare -A seen
for step in "${plan[@]}"; do
  k=${step#*:}; [ -n "${seen[$k]:-}" ] || seen[$k]=${step%%:*}
done
warm_pct=$(( $(printf '%s\n' "${seen[@]}" | sort -n | tail -1) + 10 ))
t0=$(date +%s)
next=0
while kill -0 $uac 2>/dev/null; do
  now=$(( $(date +%s) - t0 ))
  if [ $next -lt ${#plan[@]} ]; then
    pct=${plan[$next]%%:*}
    if [ $((now * 100)) -ge $((pct * secs)) ]; then act "${plan[$next]#*:}"; next=$((next + 1)); fi
  fi
  if [ $((now % 10)) = 0 ]; then
    rss=$(rss_now)
    fds=$(ls /proc/$proxy/fd | wc -l)
    echo "$now $rss $fds $(heap) $(anon_now)" >> "$work/samples.txt"
  fi
  sleep 1
done
wait $uac || true
sleep 5
stats=$(mi get_statistics '[["tm:","evi:","acc:","dialog:","dispatcher:"]]' || true)
rss=$(rss_now); anon=$(anon_now); fds=$(ls /proc/$proxy/fd | wc -l)
echo "$secs $rss $fds $(heap) $anon" >> "$work/samples.txt"

last() { awk -F';' -v c="$2" 'NR==1{for(i=1;i<=NF;i++) if($i==c) k=i; next} {v=$k} END{print v}' "$1"; }
ok=$(last "$work/uac_stat.csv" 'SuccessfulCall(C)')
failed=$(last "$work/uac_stat.csv" 'FailedCall(C)')
cdrs=$(sql -N soak -e 'SELECT COUNT(*) FROM acc' 2>/dev/null || echo NA)
# Calls no failover can save: answered by box b before it was killed, their
# BYE then timed out (408) at the proxy.
lost_with_box=$(python3 - "$work/uac_err.log" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read() if len(sys.argv) > 1 else ""
ids = set()
for m in re.finditer(r"Aborting call on unexpected message for Call-Id '([^']+)'.*?received 'SIP/2.0 (\d+)(.*?)'", text, re.S):
    if m.group(2) == "408" and re.search(r"CSeq: \d+ BYE", m.group(3)):
        ids.add(m.group(1))
print(len(ids))
PY
)
warm=$((secs * warm_pct / 100))
read -r rss0 fd0 anon0 <<< "$(awk -v w=$warm 'NR>1 && $1>=w {print $2, $3, $6; exit}' "$work/samples.txt")"
echo "== soak: $MIN min at $RATE/s, $calls calls: successful $ok, failed $failed ($lost_with_box in progress on the killed box: their BYE timed out)"
echo "== CDRs in MariaDB: $cdrs"
echo "== after warm-up (${warm} s) -> end: RSS ${rss0} -> ${rss} kB, anonymous ${anon0} -> ${anon} kB, fds ${fd0} -> ${fds}"
echo "== statistics: $stats"
echo "== before each disturbance (t_s action RSS_kB anon_kB MariaDB_prepared_statements):"
tail -n +2 "$work/events.txt" | sed 's/^/   /'
echo "== samples (t_s rss_kb fds heap heap anon_kb): $work/samples.txt; logs in $work"
growth() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", (b-a)*100/a}'; }
g_rss=$(growth "$rss0" "$rss"); g_anon=$(growth "$anon0" "$anon"); g_fd=$(growth "$fd0" "$fds")
echo "== growth after warm-up: RSS ${g_rss} %, anonymous ${g_anon} %, fds ${g_fd} %"
# Also from 20 % of the run, for comparison with earlier runs (the first
# outage of each kind is inside it).
rss20=$(awk -v m=$((secs / 5)) 'NR>1 && $1>=m {print $2; exit}' "$work/samples.txt")
echo "== growth from 20 % of the run: RSS $(growth "$rss20" "$rss") % (${rss20} -> ${rss} kB)"
if [ "$failed" = "$lost_with_box" ] &&
  awk -v r="$g_rss" -v a="$g_anon" -v f="$g_fd" 'BEGIN{exit !(r < 5 && a < 5 && f < 5)}'; then
  echo "PASS"
else
  echo "FAIL"; exit 1
fi
