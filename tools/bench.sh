#!/bin/bash
# bench.sh - edgeproxy beside nginx (and HAProxy where the scenario has an
# upstream), one worker each, the server pinned to CPU 0 and wrk to CPU 1, in the
# same run. Reports requests/s and requests per CPU-second of the server process
# itself (the two cores are shared and noisy; CPU-seconds are the fairer measure),
# the median of ROUNDS rounds, plus idle RSS.
#
#   tools/bench.sh [BIN]        BIN defaults to build/x86_64/edgeproxy
#   env: DURATION=5 ROUNDS=3 CONNS=50
set -eu
BIN=${1:-build/x86_64/edgeproxy}
BIN=$(readlink -f "$BIN")
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
WORK=$(mktemp -d /tmp/edgeproxy-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

for tool in wrk nginx taskset; do
	command -v "$tool" >/dev/null || { echo "bench: $tool missing (make test-deps)" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
# utime+stime of a process (and its children, for nginx's master+worker) in ticks
cpu_ticks() {
	local total=0 p
	for p in "$@"; do
		[ -r /proc/$p/stat ] || continue
		total=$((total + $(awk '{print $14 + $15}' /proc/$p/stat)))
	done
	echo $total
}
tree_pids() { echo "$1" $(pgrep -P "$1" || true); }
rss_kib() { awk '/VmRSS/ {print $2}' /proc/$1/status; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# run_wrk NAME PORT PIDS...: prints "rps rps_per_cpu_s" for one round
run_wrk() {
	local port=$1; shift
	local hz before after rps
	hz=$(getconf CLK_TCK)
	before=$(cpu_ticks "$@")
	rps=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/" 2>/dev/null |
		awk '/Requests\/sec/ {print $2}')
	after=$(cpu_ticks "$@")
	local cpu_s
	cpu_s=$(awk -v a="$after" -v b="$before" -v hz="$hz" 'BEGIN {printf "%.3f", (a-b)/hz}')
	awk -v r="$rps" -v d="$DURATION" -v c="$cpu_s" 'BEGIN {printf "%.0f %.0f\n", r, (c > 0) ? r*d/c : 0}'
}

report() { # NAME then lines of "rps per_cpu"
	local name=$1 data
	data=$(cat)
	printf '%-28s %10s req/s %12s req/CPU-s\n' "$name" \
		"$(echo "$data" | awk '{print $1}' | median)" "$(echo "$data" | awk '{print $2}' | median)"
}

# ---- hello backend vs nginx `return 200` --------------------------------------
EP_PORT=$(free_port)
cat > "$WORK/edgeproxy.ini" <<EOF
[global]
state_dir = $WORK/state
[entrypoint web]
listen = 127.0.0.1:$EP_PORT
[router hello]
rule = PathPrefix(\`/\`)
service = hello
[service hello]
type = hello
EOF
taskset -c 0 "$BIN" run -c "$WORK/edgeproxy.ini" 2>"$WORK/edgeproxy.log" &
EP_PID=$!
PIDS+=("$EP_PID")
wait_port "$EP_PORT"
sleep 0.2
IDLE_RSS=$(rss_kib "$EP_PID")

NG_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;
	fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
	server { listen 127.0.0.1:$NG_PORT; location / { return 200 "Hello from nginx"; } }
}
EOF
taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" &
NG_PID=$!
PIDS+=("$NG_PID")
wait_port "$NG_PORT"
sleep 0.2
NG_TREE=$(tree_pids "$NG_PID")

echo "== hello backend vs nginx return 200: wrk -t1 -c$CONNS -d${DURATION}s, median of $ROUNDS"
EP_DATA="" NG_DATA=""
for _ in $(seq "$ROUNDS"); do
	EP_DATA+=$(run_wrk "$EP_PORT" "$EP_PID")$'\n'
	# shellcheck disable=SC2086
	NG_DATA+=$(run_wrk "$NG_PORT" $NG_TREE)$'\n'
done
echo -n "$EP_DATA" | grep . | report "edgeproxy hello"
echo -n "$NG_DATA" | grep . | report "nginx return 200"
ep_cpu=$(echo -n "$EP_DATA" | grep . | awk '{print $2}' | median)
ng_cpu=$(echo -n "$NG_DATA" | grep . | awk '{print $2}' | median)
awk -v a="$ep_cpu" -v b="$ng_cpu" 'BEGIN {printf "ratio edgeproxy/nginx per CPU-second: %.2f\n", (b > 0) ? a/b : 0}'
echo "edgeproxy idle RSS: ${IDLE_RSS} KiB; after load: $(rss_kib "$EP_PID") KiB"
echo "nginx worker RSS after load: $(for p in $NG_TREE; do rss_kib "$p"; done | sort -n | tail -1) KiB"
echo "edgeproxy binary: $(stat -c %s "$BIN") bytes"
