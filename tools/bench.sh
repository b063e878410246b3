#!/bin/bash
# bench.sh - edgeproxy side by side with nginx and HAProxy (SPEC §5); the driver is
# tools/bench.py (stdlib Python), which documents the scenarios and settings.
#
#   tools/bench.sh [BIN]        BIN defaults to build/x86_64/edgeproxy
#   env: ROUNDS=3 DURATION=4 CONNS=50 IDLE_CONNS=1000 WARMUP=1 KEEP=0
#        SCENARIOS=hello,plain,64k,idle,tls (tls = tls-keepalive,tls-handshake,tls-idle)
#        TLS_GROUPS=X25519:P-256 TLS_CIPHER=ECDHE-ECDSA-AES128-GCM-SHA256
#   The tls-handshake client, tools/tls_handshake.c, is built per run: needs cc + libssl-dev.
set -eu
exec python3 "$(dirname "$0")/bench.py" "$@"
