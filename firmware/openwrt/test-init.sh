#!/usr/bin/env bash
# Checks files/edgeproxy.init without an OpenWrt system: shellcheck, then the script
# runs against stand-ins for rc.common's UCI and procd helpers that record what it
# asks procd for; the recorded command line is then run with a real edgeproxy binary
# (build/x86_64) to prove it starts, and the reload path sends SIGHUP to it.
#   firmware/openwrt/test-init.sh [BINARY]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-$ROOT/build/x86_64/edgeproxy}
INIT=$HERE/edgeproxy/files/edgeproxy.init
expect() { # expect MESSAGE COMMAND...: fails the test unless COMMAND succeeds
	local msg=$1; shift
	if "$@"; then echo "  ok    $msg"; else echo "  FAIL  $msg"; exit 1; fi
}
expect shellcheck shellcheck "$INIT"

T=$(mktemp -d /tmp/edgeproxy-openwrt.XXXXXX)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$T"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$T/edgeproxy.ini" <<INI
[global]
state_dir = $T/state
[entrypoint web]
listen = 127.0.0.1:$PORT
[router r]
rule = PathPrefix(\`/\`)
service = h
[service h]
type = hello
message = first
INI

# Stand-ins: UCI values from a here-table, procd calls recorded to $T/procd.
cat >"$T/stubs.sh" <<STUBS
extra_command() { :; }
config_load() { [ "\$1" = edgeproxy ]; }
config_get() { # config_get VAR SECTION OPTION DEFAULT
	case "\$3" in
	config) eval "\$1=$T/edgeproxy.ini" ;;
	*) eval "\$1=\\\${4}" ;;
	esac
}
config_get_bool() { eval "\$1=\${4:-0}"; }
procd_open_instance() { echo "open \$*" >>$T/procd; }
procd_set_param() { echo "param \$*" >>$T/procd; }
procd_close_instance() { echo close >>$T/procd; }
procd_add_reload_trigger() { echo "trigger \$*" >>$T/procd; }
procd_send_signal() { echo "signal \$*" >>$T/procd; kill -"\$3" "\$(cat $T/pid)"; }
logger() { cat >&2; }
mkdir() { :; }; chown() { :; }; chmod() { :; }
STUBS
run_init() { # run_init FUNCTION: the init script's function with the stand-ins
	bash -c ". '$T/stubs.sh'; . '$INIT'; PROG='$BIN'; $1"
}

run_init start_service
cmd=$(sed -n 's/^param command //p' "$T/procd")
expect "procd instance: respawn 3600 5 5" grep -q '^param respawn 3600 5 5$' "$T/procd"
expect "procd instance: reload_signal HUP" grep -q '^param reload_signal HUP$' "$T/procd"
expect "procd instance: INI file watched" grep -q "^param file $T/edgeproxy.ini\$" "$T/procd"
# shellcheck disable=SC2086 # the recorded command line
$cmd 2>"$T/log" &
PID=$!
echo "$PID" >"$T/pid"
for _ in $(seq 100); do curl -s --noproxy '*' "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.05; done
expect "recorded command serves: $cmd" test "$(curl -s --noproxy '*' "http://127.0.0.1:$PORT/")" = "first @ 127.0.0.1:$PORT"
sed -i 's/message = first/message = second/' "$T/edgeproxy.ini"
run_init reload_service >/dev/null
sleep 1
expect "reload_service: SIGHUP, new configuration served" test "$(curl -s --noproxy '*' "http://127.0.0.1:$PORT/")" = "second @ 127.0.0.1:$PORT"
echo "bad line" >>"$T/edgeproxy.ini"
if run_init reload_service >/dev/null 2>&1; then echo "  FAIL  reload of a broken file succeeded"; exit 1; fi
echo "  ok    reload_service refuses a broken file (check exit 1), proxy still up: $(curl -s --noproxy '*' "http://127.0.0.1:$PORT/")"
if run_init start_service 2>/dev/null; then echo "  FAIL  start_service accepted a broken file"; exit 1; fi
echo "  ok    start_service refuses a broken file"
echo "openwrt init test: passed"
