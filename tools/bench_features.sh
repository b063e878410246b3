#!/bin/bash
# bench_features.sh - two feature costs, each side by side in one run (servers on
# CPU 0, wrk and the upstream on CPU 1, median of ROUNDS):
#   1. a 4 KiB static file: edgeproxy type=static vs nginx serving the same file;
#   2. the seed middleware chain (security headers + ratelimit) vs the bare proxy
#      (the limit set high enough never to answer 429, so only its cost is seen).
#   tools/bench_features.sh [BIN]     env: ROUNDS=3 DURATION=4 CONNS=50
set -eu
BIN=$(readlink -f "${1:-build/x86_64/edgeproxy}")
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
CONNS=${CONNS:-50}
WORK=$(mktemp -d /tmp/edgeproxy-features.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
ticks() { local t=0; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# one round: prints "req/s req/CPU-s" for URL against the given PIDs
round() {
	local url=$1; shift
	local b a r
	b=$(ticks "$@")
	r=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url" 2>&1 | awk '/Requests\/sec/ {print $2}')
	a=$(ticks "$@")
	awk -v r="$r" -v d="$DURATION" -v t="$((a - b))" -v hz="$(getconf CLK_TCK)" \
		'BEGIN {printf "%.0f %.0f\n", r, (t > 0) ? r * d / (t / hz) : 0}'
}
measure() { # NAME URL PIDS...
	local name=$1 url=$2; shift 2
	local rows=""
	for _ in $(seq "$ROUNDS"); do rows+=$(round "$url" "$@")$'\n'; done
	printf '%-34s %9s req/s %10s req/CPU-s\n' "$name" \
		"$(echo -n "$rows" | awk '{print $1}' | median)" "$(echo -n "$rows" | awk '{print $2}' | median)"
}

mkdir -p "$WORK/www"
head -c 4096 /dev/urandom > "$WORK/www/4k.bin"
UP=$(port) EP=$(port) NG=$(port) BARE=$(port) CHAIN=$(port)

cat > "$WORK/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $WORK/nginx.pid; error_log $WORK/nginx.err;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK; keepalive_requests 1000000;
  server { listen 127.0.0.1:$NG; root $WORK/www; }
  server { listen 127.0.0.1:$UP; location / { return 200 "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"; } } }
EOF
taskset -c 1 nginx -c "$WORK/nginx.conf" & PIDS+=($!)
NGPID=$!

cat > "$WORK/ep.ini" <<EOF
[global]
state_dir = $WORK/state
[entrypoint files]
listen = 127.0.0.1:$EP
[entrypoint bare]
listen = 127.0.0.1:$BARE
[entrypoint chain]
listen = 127.0.0.1:$CHAIN
[router files]
rule = PathPrefix(\`/\`)
entrypoints = files
service = www
[router bare]
rule = PathPrefix(\`/\`)
entrypoints = bare
service = app
[router chain]
rule = PathPrefix(\`/\`)
entrypoints = chain
service = app
middlewares = secure, limit
[middleware secure]
type = headers
sts_seconds = 31536000
frame_deny = on
content_type_nosniff = on
referrer_policy = no-referrer
[middleware limit]
type = ratelimit
average = 100000000
burst = 100000000
[service www]
type = static
root = $WORK/www
[service app]
server = http://127.0.0.1:$UP
EOF
taskset -c 0 "$BIN" run -c "$WORK/ep.ini" 2>"$WORK/ep.log" & PIDS+=($!)
EPPID=$!
for p in "$UP" "$EP" "$BARE" "$CHAIN" "$NG"; do wait_port "$p"; done
sleep 0.3
# nginx serving the file: move its worker to CPU 0 like edgeproxy (the upstream
# server block shares the worker, which is idle during the file scenario)
for p in $(pgrep -P "$NGPID") "$NGPID"; do taskset -pc 0 "$p" >/dev/null; done

echo "== 4 KiB static file (wrk -c$CONNS, ${DURATION}s, median of $ROUNDS)"
measure "edgeproxy type=static" "http://127.0.0.1:$EP/4k.bin" "$EPPID"
measure "nginx root" "http://127.0.0.1:$NG/4k.bin" "$NGPID" $(pgrep -P "$NGPID")
for p in $(pgrep -P "$NGPID") "$NGPID"; do taskset -pc 1 "$p" >/dev/null; done
echo "== seed middleware chain vs bare proxy"
measure "edgeproxy bare proxy" "http://127.0.0.1:$BARE/" "$EPPID"
measure "edgeproxy headers+ratelimit" "http://127.0.0.1:$CHAIN/" "$EPPID"
