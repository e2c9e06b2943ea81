#!/usr/bin/env bash
# Event throughput to the local RabbitMQ (issue 15's "20,000 events/s"):
# lunasip runs proxies/lunasip/events_burst.lua; every 50 ms one request
# asks for BATCH events (default 1000: 20,000/s) for SECONDS seconds
# (default 10). Prints events raised, confirmed by the broker (evi:sent),
# dropped, the achieved rate and lunasip's CPU per 1000 events.
# Usage (from bench/): LUNASIP=/path/to/release/lunasip ./events.sh [BATCH] [SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${LUNASIP:-$here/../target/release/lunasip}"
batch="${1:-1000}" secs="${2:-10}"
"$bin" run -c "$here/proxies/lunasip/events_burst.lua" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
sleep 1.5
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
stat() { "$bin" mi --url http://127.0.0.1:8899/mi get_statistics evi: 2>/dev/null | tr -d ' \n'; }
ticks=$(getconf CLK_TCK)
c0=$(cpu) t0=$(date +%s.%N)
rounds=$((secs * 20))
# One datagram per request (bash's /dev/udp may split a printf in several).
python3 - "$batch" "$rounds" <<'PY'
import socket, sys, time
batch, rounds = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
start = time.monotonic()
for i in range(rounds):
    msg = (f"OPTIONS sip:{batch}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-b{i}\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\n"
           f"Call-ID: burst-{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), ("127.0.0.1", 5060))
    time.sleep(max(0.0, start + (i + 1) * 0.05 - time.monotonic()))
PY
want=$((rounds * batch))
for _ in $(seq 100); do
  s=$(stat)
  sent=$(grep -o '"evi:sent":[0-9]*' <<<"$s" | cut -d: -f3)
  dropped=$(grep -o '"evi:dropped":[0-9]*' <<<"$s" | cut -d: -f3)
  [ $((${sent:-0} + ${dropped:-0})) -ge $want ] && break
  sleep 0.2
done
t1=$(date +%s.%N) c1=$(cpu)
awk -v w="$want" -v s="${sent:-0}" -v d="${dropped:-0}" -v t="$(echo "$t1 - $t0" | bc)" \
    -v c="$(( c1 - c0 ))" -v hz="$ticks" 'BEGIN {
  printf "raised %d  confirmed %d  dropped %d  in %.2f s: %.0f events/s confirmed; lunasip CPU %.2f s = %.3f CPU-s per 1000 events\n",
    w, s, d, t, s / t, c / hz, (c / hz) / (s / 1000) }'
