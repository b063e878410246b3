#!/usr/bin/env bash
# Smoke suite for one edgeproxy binary, usually a cross build under qemu-user.
#
#   EDGEPROXY_BIN=build/aarch64/edgeproxy \
#   EDGEPROXY_RUNNER="qemu-aarch64-static -cpu cortex-a53" \
#   EXPECT_TRIPLE=aarch64-linux-musl  bash tests/cross/smoke.sh
#
# EDGEPROXY_RUNNER is put in front of every invocation (empty: run natively; qemu is
# invoked explicitly, binfmt_misc is not needed). EXPECT_TRIPLE, when set, must
# appear in `edgeproxy version`. Everything listens on 127.0.0.1 only.
#
# Covers: version/help/bad command line, `check` exit codes and FILE:LINE messages,
# the hello backend, proxying to a real upstream (tests/integration/upstream.py) with
# a middleware and a 1 MiB body, a TLS handshake on a `tls = on` entry point (the
# generated self-signed certificate) with both AES-GCM and ChaCha20 suites, the admin
# listener, `healthcheck`, reload by SIGHUP (new message seen; a broken file keeps
# the old configuration), and a graceful stop by SIGTERM with exit code 0.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${EDGEPROXY_BIN:-$ROOT/build/x86_64/edgeproxy}
# shellcheck disable=SC2206 # the runner is a command line: split it into words
RUNNER=(${EDGEPROXY_RUNNER:-})
UPSTREAM_PY=$ROOT/tests/integration/upstream.py
PY=${PYTHON:-python3}
# Waits are generous: under TCG emulation on a loaded 2-core machine a cold start
# of the emulated binary can take a second.
WAIT=${SMOKE_WAIT:-20}

[ -x "$BIN" ] || { echo "smoke: no executable at $BIN" >&2; exit 2; }
command -v curl >/dev/null || { echo "smoke: curl is needed" >&2; exit 2; }

T=$(mktemp -d /tmp/edgeproxy-smoke.XXXXXX)
EP_PID="" UP_PID=""
cleanup() {
	# Only the processes this script started, by PID.
	for p in $EP_PID $UP_PID; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	if [ "${SMOKE_KEEP:-0}" = 1 ]; then echo "smoke: kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); printf '  ok    %s\n' "$1"; }
bad() { FAIL=$((FAIL + 1)); printf '  FAIL  %s\n' "$1"; [ $# -lt 2 ] || printf '%s\n' "$2" | sed 's/^/        /' | head -20; }
check() { # check NAME CONDITION-COMMAND... [-- detail]
	local name=$1; shift
	if "$@"; then ok "$name"; else bad "$name"; fi
}
ms_now() { date +%s%3N; }
ep() { "${RUNNER[@]}" "$BIN" "$@"; }
CURL=(curl -sS --noproxy '*' --max-time 15)

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # wait_http URL: until any HTTP answer, up to WAIT seconds
	local deadline=$(($(date +%s) + WAIT))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		"${CURL[@]}" -k -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
		[ -n "$EP_PID" ] && ! kill -0 "$EP_PID" 2>/dev/null && return 1
		sleep 0.05
	done
	return 1
}
wait_body() { # wait_body URL TEXT: until the body contains TEXT
	local deadline=$(($(date +%s) + WAIT))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		"${CURL[@]}" -k --max-time 2 "$1" 2>/dev/null | grep -qF -- "$2" && return 0
		sleep 0.1
	done
	return 1
}

echo "smoke: ${RUNNER[*]:-(native)} $BIN"
START=$(ms_now)

# ---- command line ---------------------------------------------------------------
out=$(ep version 2>&1); rc=$?
if [ $rc = 0 ] && grep -q '^edgeproxy ' <<<"$out" && grep -q 'BearSSL' <<<"$out" &&
	{ [ -z "${EXPECT_TRIPLE:-}" ] || grep -qF "($EXPECT_TRIPLE)" <<<"$out"; }; then
	ok "version names ${EXPECT_TRIPLE:-the triple}: $(head -1 <<<"$out")"
else
	bad "version (rc=$rc, want ${EXPECT_TRIPLE:-a triple})" "$out"
fi
ep help >/dev/null 2>&1; check "help exits 0" test $? = 0
ep no-such-command >/dev/null 2>&1; rc=$?; check "unknown command exits 2 (got $rc)" test $rc = 2
ep check -c "$T/x.ini" --bogus >/dev/null 2>&1; rc=$?; check "unknown option exits 2 (got $rc)" test $rc = 2

# ---- check ------------------------------------------------------------------------
cat >"$T/good.ini" <<EOF
[global]
state_dir = $T/state-check
[entrypoint web]
listen = 127.0.0.1:1
[router r]
rule = PathPrefix(\`/\`)
service = hello
[service hello]
type = hello
EOF
out=$(ep check -c "$T/good.ini" 2>&1); rc=$?
check "check: valid file exits 0" test $rc = 0
cat >"$T/bad.ini" <<EOF
[entrypoint web]
listen = 127.0.0.1:1
[router r]
rule = PathPrefix(\`/\`)
service = missing
no_such_key = 1
EOF
out=$(ep check -c "$T/bad.ini" 2>&1); rc=$?
if [ $rc = 1 ] && grep -qE "bad\.ini:[0-9]+: " <<<"$out" && grep -q 'missing' <<<"$out" && grep -q 'no_such_key' <<<"$out"; then
	ok "check: bad file exits 1 with FILE:LINE messages ($(wc -l <<<"$out") errors)"
else
	bad "check: bad file (rc=$rc)" "$out"
fi
ep check -c "$T/does-not-exist.ini" >/dev/null 2>&1; rc=$?
check "check: missing file exits 1 (got $rc)" test $rc = 1

# ---- upstream --------------------------------------------------------------------
"$PY" "$UPSTREAM_PY" serve --port 0 --name smoke-up --log "$T/upstream.log" >"$T/upstream.out" 2>&1 &
UP_PID=$!
UP_PORT=""
for _ in $(seq 100); do
	UP_PORT=$(sed -n 's/^PORT //p' "$T/upstream.out")
	[ -n "$UP_PORT" ] && break
	sleep 0.05
done
[ -n "$UP_PORT" ] || { bad "upstream did not start" "$(cat "$T/upstream.out")"; exit 1; }

# ---- the proxy ---------------------------------------------------------------------
WEB=$(free_port) SEC=$(free_port) ADM=$(free_port)
write_ini() { # write_ini MESSAGE
	cat >"$T/edgeproxy.ini" <<EOF
; written by tests/cross/smoke.sh
[global]
state_dir = $T/state
log_level = info
access_log = stderr
watch = off
grace_period = 5s

[entrypoint web]
listen = 127.0.0.1:$WEB

[entrypoint websecure]
listen = 127.0.0.1:$SEC
tls = on

[admin]
listen = 127.0.0.1:$ADM

[router hello]
rule = PathPrefix(\`/\`)
service = hello

[router up]
rule = PathPrefix(\`/up\`)
service = up
middlewares = strip, hdr

[middleware strip]
type = strip_prefix
prefix = /up

[middleware hdr]
type = headers
response_header = X-Smoke: yes

[service up]
server = http://127.0.0.1:$UP_PORT

[service hello]
type = hello
message = $1
EOF
}
write_ini "Hello from smoke one"
t0=$(ms_now)
# Not through ep(): `ep ... &` would fork a subshell, and $! would name the shell,
# not the process that must receive the signals.
"${RUNNER[@]}" "$BIN" run -c "$T/edgeproxy.ini" 2>"$T/edgeproxy.log" &
EP_PID=$!
if wait_http "http://127.0.0.1:$WEB/health"; then
	ok "starts and listens ($(($(ms_now) - t0)) ms to the first answer)"
else
	bad "start" "$(tail -20 "$T/edgeproxy.log")"
	exit 1
fi

body=$("${CURL[@]}" "http://127.0.0.1:$WEB/" 2>&1)
check "hello backend: '$body'" test "$body" = "Hello from smoke one @ 127.0.0.1:$WEB"
body=$("${CURL[@]}" "http://127.0.0.1:$WEB/health" 2>&1)
check "hello /health answers OK" test "$body" = "OK"
code=$("${CURL[@]}" -o /dev/null -o /dev/null -w '%{http_code}/%{num_connects} ' -H 'Host: a.example' \
	"http://127.0.0.1:$WEB/x" "http://127.0.0.1:$WEB/y" 2>&1)
check "two requests on one keep-alive connection (status/new connections: $code)" test "$code" = "200/1 200/0 "

hdr=$("${CURL[@]}" -D - -o "$T/echo.json" "http://127.0.0.1:$WEB/up/echo?q=1" 2>&1)
if grep -qi '^X-Upstream: smoke-up' <<<"$hdr" && grep -qi '^X-Smoke: yes' <<<"$hdr" &&
	"$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); h={k.lower():v for k,v in j["headers"]} if isinstance(j["headers"],list) else {k.lower():v for k,v in j["headers"].items()}; assert j["path"]=="/echo", j; assert "x-forwarded-for" in h, h' "$T/echo.json" 2>"$T/echo.err"; then
	ok "proxy to upstream: strip_prefix, X-Forwarded-For, response header middleware"
else
	bad "proxy to upstream" "$hdr$(cat "$T/echo.json" "$T/echo.err" 2>/dev/null)"
fi
want=$(cd "$ROOT/tests/integration" && "$PY" -c 'from upstream import pattern_sha256; print(pattern_sha256(1048576))')
got=$("${CURL[@]}" "http://127.0.0.1:$WEB/up/big?size=1048576" | sha256sum | cut -d' ' -f1)
check "proxy: 1 MiB body intact" test "$got" = "$want"

# ---- TLS -------------------------------------------------------------------------------
t0=$(ms_now)
out=$("${CURL[@]}" -k -v --tlsv1.2 "https://127.0.0.1:$SEC/" 2>&1)
if grep -qF "Hello from smoke one @ 127.0.0.1:$SEC" <<<"$out"; then
	ok "TLS handshake + request ($(grep -o 'SSL connection using [^ ]* / [^ ]*' <<<"$out" | sed 's/SSL connection using //'), $(($(ms_now) - t0)) ms)"
else
	bad "TLS request" "$out"
fi
for suite in ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-CHACHA20-POLY1305; do
	out=$("${CURL[@]}" -k -v --tls-max 1.2 --ciphers "$suite" "https://127.0.0.1:$SEC/" 2>&1)
	if grep -qF "Hello from smoke one" <<<"$out" && grep -qF "$suite" <<<"$out"; then
		ok "TLS with $suite"
	else
		bad "TLS with $suite" "$(grep -E 'SSL|TLS|curl:' <<<"$out")"
	fi
done
got=$("${CURL[@]}" -k "https://127.0.0.1:$SEC/up/big?size=1048576" | sha256sum | cut -d' ' -f1)
check "TLS: 1 MiB proxied body intact" test "$got" = "$want"
check "self-signed default certificate written under state_dir" test -n "$(find "$T/state" -type f 2>/dev/null | head -1)"

# ---- admin, healthcheck ---------------------------------------------------------------
body=$("${CURL[@]}" "http://127.0.0.1:$ADM/ping" 2>&1)
check "admin /ping" test "$body" = "OK"
"${CURL[@]}" "http://127.0.0.1:$ADM/metrics" >"$T/metrics" 2>&1
check "admin /metrics counts requests" grep -q '^edgeproxy_entrypoint_requests_total{.*entrypoint="web"' "$T/metrics"
ep healthcheck -c "$T/edgeproxy.ini" >/dev/null 2>&1; rc=$?
check "healthcheck exits 0 while serving (got $rc)" test $rc = 0

# ---- reload -----------------------------------------------------------------------------
write_ini "Hello from smoke two"
t0=$(ms_now)
kill -HUP "$EP_PID"
if wait_body "http://127.0.0.1:$WEB/" "Hello from smoke two"; then
	ok "SIGHUP reload: new message served ($(($(ms_now) - t0)) ms)"
else
	bad "SIGHUP reload" "$(tail -10 "$T/edgeproxy.log")"
fi
check "reload also applies to the TLS entry point" wait_body "https://127.0.0.1:$SEC/" "Hello from smoke two"
cp "$T/edgeproxy.ini" "$T/edgeproxy.ini.good"
printf '[router broken]\nrule = Nope(\n' >>"$T/edgeproxy.ini"
kill -HUP "$EP_PID"
sleep 1
body=$("${CURL[@]}" "http://127.0.0.1:$WEB/" 2>&1)
if [ "$body" = "Hello from smoke two @ 127.0.0.1:$WEB" ] && kill -0 "$EP_PID" 2>/dev/null; then
	ok "reload of a broken file keeps the running configuration"
else
	bad "broken reload" "$body$(tail -5 "$T/edgeproxy.log")"
fi
check "broken reload is logged with FILE:LINE" grep -qE 'edgeproxy\.ini:[0-9]+' "$T/edgeproxy.log"

# ---- stop ---------------------------------------------------------------------------------
t0=$(ms_now)
kill -TERM "$EP_PID"
wait "$EP_PID"; rc=$?
EP_PID=""
check "SIGTERM: graceful stop, exit 0 (got $rc, $(($(ms_now) - t0)) ms)" test $rc = 0
ep healthcheck -c "$T/edgeproxy.ini.good" >/dev/null 2>&1; rc=$?
check "healthcheck exits 1 once stopped (got $rc)" test $rc = 1

echo "smoke: $PASS passed, $FAIL failed in $((($(ms_now) - START) / 1000)) s"
[ "$FAIL" = 0 ]
