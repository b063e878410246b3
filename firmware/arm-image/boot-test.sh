#!/usr/bin/env bash
# Boot the image from build.sh under qemu-system-aarch64 (-M virt, TCG) and prove
# that edgeproxy answers through QEMU's user network: host 127.0.0.1:PORT -> guest :80
# (and a second port -> :443 for TLS). `restrict=on`: the guest reaches nothing but
# the forwarded ports. Reports boot-to-serving time.
#
#   firmware/arm-image/boot-test.sh        env: BOOT_TIMEOUT (s, default 240), KEEP=1
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/build/arm-image
TIMEOUT=${BOOT_TIMEOUT:-240}
if [ ! -f "$OUT/vmlinuz" ] || [ ! -f "$OUT/initramfs.cpio.gz" ]; then echo "boot-test: run build.sh first" >&2; exit 1; fi
command -v qemu-system-aarch64 >/dev/null || { echo "boot-test: apt-get install qemu-system-arm" >&2; exit 2; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(port) HTTPS=$(port)
LOG=$OUT/console.log
QPID=""
cleanup() {
	if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill "$QPID"; wait "$QPID" 2>/dev/null || true; fi
}
trap cleanup EXIT

t0=$(date +%s%3N)
qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 1 -m 256 \
	-kernel "$OUT/vmlinuz" -initrd "$OUT/initramfs.cpio.gz" \
	-append "console=ttyAMA0 panic=-1 loglevel=4" -no-reboot \
	-netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$HTTP-:80,hostfwd=tcp:127.0.0.1:$HTTPS-:443" \
	-device virtio-net-device,netdev=n0 \
	-display none -serial "file:$LOG" -monitor none &
QPID=$!
echo "boot-test: qemu-system-aarch64 (pid $QPID), guest :80 -> 127.0.0.1:$HTTP, :443 -> 127.0.0.1:$HTTPS"

body=""
deadline=$(($(date +%s) + TIMEOUT))
while [ "$(date +%s)" -lt "$deadline" ]; do
	kill -0 "$QPID" 2>/dev/null || { echo "boot-test: qemu exited"; cat "$LOG"; exit 1; }
	body=$(curl -s --noproxy '*' --max-time 3 "http://127.0.0.1:$HTTP/" 2>/dev/null || true)
	[ -n "$body" ] && break
	sleep 0.5
done
t1=$(date +%s%3N)
fail=0
if [ "$body" = "Hello from edgeproxy @ 127.0.0.1:$HTTP" ]; then
	echo "  ok    $body  (boot to serving: $(((t1 - t0) / 1000)).$(((t1 - t0) % 1000 / 100)) s from qemu start, TCG emulation)"
else
	echo "  FAIL  no answer within ${TIMEOUT}s (got '$body')"; fail=1
fi
if [ $fail = 0 ]; then
	tls=$(curl -sk --noproxy '*' --max-time 20 "https://127.0.0.1:$HTTPS/" || true)
	if [ "$tls" = "Hello from edgeproxy @ 127.0.0.1:$HTTPS" ]; then echo "  ok    TLS: $tls"; else echo "  FAIL  TLS: '$tls'"; fail=1; fi
fi
echo "---- guest console (last lines) ----"
grep -aE 'edgeproxy|Run /init|Freeing unused' "$LOG" | tail -12
if [ $fail != 0 ]; then echo "arm image boot test: FAILED (console: $LOG)"; exit 1; fi
echo "arm image boot test: passed"
