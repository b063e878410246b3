#!/usr/bin/env bash
# Checks firmware/init/ on this machine: shellcheck for the OpenRC and SysV scripts,
# `systemd-analyze verify` + `security` for the unit, and the SysV script driving a
# real edgeproxy (build/x86_64) on loopback: start, status, reload by SIGHUP, a
# refused broken reload, stop.
#   firmware/init/test-init.sh [BINARY]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-$ROOT/build/x86_64/edgeproxy}
q() { "$@" >/dev/null; }
expect() {
	local msg=$1; shift
	if "$@"; then echo "  ok    $msg"; else echo "  FAIL  $msg"; exit 1; fi
}
expect "shellcheck edgeproxy.openrc edgeproxy.sysv" shellcheck -s sh "$HERE/edgeproxy.openrc" "$HERE/edgeproxy.sysv"
if command -v systemd-analyze >/dev/null; then
	# verify complains only that /usr/local/bin/edgeproxy is not installed here
	out=$(systemd-analyze verify "$HERE/edgeproxy.service" 2>&1 | grep -v 'is not executable' || true)
	expect "systemd-analyze verify edgeproxy.service${out:+: $out}" test -z "$out"
	score=$(systemd-analyze security --offline=yes "$HERE/edgeproxy.service" 2>&1 | sed -n 's/.*Overall exposure level for edgeproxy.service: //p')
	echo "  info  systemd-analyze security: $score"
fi

T=$(mktemp -d /tmp/edgeproxy-init.XXXXXX)
trap '[ -f "$T/pid" ] && kill "$(cat "$T/pid")" 2>/dev/null; rm -rf "$T"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$T/edgeproxy.ini" <<INI
[global]
state_dir = $T/state
watch = off
[entrypoint web]
listen = 127.0.0.1:$PORT
[router r]
rule = PathPrefix(\`/\`)
service = h
[service h]
type = hello
message = first
INI
sysv() { DAEMON=$BIN CONFIG=$T/edgeproxy.ini PIDFILE=$T/pid LOGFILE=$T/log sh "$HERE/edgeproxy.sysv" "$@"; }
get() { curl -s --noproxy '*' --max-time 5 "http://127.0.0.1:$PORT/"; }
expect "sysv start" q sysv start
expect "sysv status" q sysv status
expect "serves" test "$(get)" = "first @ 127.0.0.1:$PORT"
sed -i 's/message = first/message = second/' "$T/edgeproxy.ini"
expect "sysv reload (SIGHUP)" q sysv reload
sleep 0.5
expect "new configuration served" test "$(get)" = "second @ 127.0.0.1:$PORT"
echo "garbage" >>"$T/edgeproxy.ini"
if sysv reload >/dev/null 2>&1; then echo "  FAIL  broken reload accepted"; exit 1; fi
expect "broken reload refused, still serving" test "$(get)" = "second @ 127.0.0.1:$PORT"
expect "sysv stop (graceful)" q sysv stop
if sysv status >/dev/null; then echo "  FAIL  still running"; exit 1; fi
echo "  ok    stopped; log: $(wc -l <"$T/log") lines"
echo "init scripts test: passed"
