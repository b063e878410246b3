#!/usr/bin/env bash
# Run a container root filesystem the way a runtime would, with nothing from the
# host inside it, and check that it serves:
#
#   firmware/container/run-rootfs.sh ROOTDIR [QEMU]
#
# ROOTDIR comes from mkrootfs.sh or from unpacking the OCI image (test.sh). The
# process gets its own network namespace (only its loopback: nothing is exposed, and
# the image's default ports 80/443 can be used as they are), mount and PID
# namespaces, and runs chrooted as the image's USER 65534 with the image's
# ENTRYPOINT/CMD and default configuration. Like Docker, the namespace sets
# net.ipv4.ip_unprivileged_port_start=0, so uid 65534 may bind 80 and 443.
# Needs root; as another user it falls back to `unshare --user --map-root-user`
# (the process is then uid 0 inside its own user namespace).
#
# QEMU (e.g. qemu-aarch64-static) runs a foreign binary: the static qemu is copied
# into a scratch copy of the root for the test only (binfmt_misc is not needed).
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: $0 ROOTDIR [QEMU]" >&2; exit 2; fi
ROOTDIR=$(cd "$1" && pwd)
QEMU=${2:-}
WAIT=${WAIT:-30}

if [ -n "$QEMU" ]; then
	q=$(command -v "$QEMU") || { echo "run-rootfs: $QEMU not found" >&2; exit 1; }
	cp "$q" "$ROOTDIR/.qemu"
	RUN="/.qemu /edgeproxy"
else
	RUN="/edgeproxy"
fi
echo "run-rootfs: $(find "$ROOTDIR" -mindepth 1 ! -name .qemu | sed "s|^$ROOTDIR||" | sort | tr '\n' ' ')"

# The part that runs inside the namespaces. $1 = root, $2 = command, $3 = chroot
# user option (empty when mapped), $4 = wait seconds.
inner() {
	set -euo pipefail
	local root=$1 run=$2 userspec=$3 wait=$4 log=$5 fail=0
	ip link set lo up
	sysctl -qw net.ipv4.ip_unprivileged_port_start=0
	# shellcheck disable=SC2086 # $run is "/edgeproxy" or "/.qemu /edgeproxy"
	chroot $userspec "$root" $run run >"$log" 2>&1 &
	local pid=$! t0 deadline
	t0=$(date +%s%3N)
	deadline=$(($(date +%s) + wait))
	until curl -s --noproxy '*' -o /dev/null --max-time 2 http://127.0.0.1:80/; do
		if ! kill -0 "$pid" 2>/dev/null || [ "$(date +%s)" -gt "$deadline" ]; then
			echo "  FAIL  did not start:"; cat "$log"; return 1
		fi
		sleep 0.05
	done
	echo "  ok    serving on :80 after $(($(date +%s%3N) - t0)) ms"
	body=$(curl -s --noproxy '*' --max-time 10 http://127.0.0.1:80/)
	if [ "$body" = "Hello from edgeproxy @ 127.0.0.1" ]; then echo "  ok    hello: $body"; else echo "  FAIL  hello: $body"; fail=1; fi
	body=$(curl -sk --noproxy '*' --max-time 10 https://127.0.0.1:443/)
	if [ "$body" = "Hello from edgeproxy @ 127.0.0.1" ]; then echo "  ok    TLS on :443 (self-signed default certificate): $body"; else echo "  FAIL  TLS: $body"; fail=1; fi
	# The image's HEALTHCHECK command, in the same root as the same user.
	# shellcheck disable=SC2086
	if chroot $userspec "$root" $run healthcheck; then echo "  ok    healthcheck exits 0"; else echo "  FAIL  healthcheck"; fail=1; fi
	local owner
	owner=$(stat -c '%u %a' "$root/var/lib/edgeproxy")
	echo "  info  state_dir owner/mode: $owner; files: $(cd "$root/var/lib/edgeproxy" && find . -type f | tr '\n' ' ')"
	# What the process sees as its uid (from outside the chroot).
	echo "  info  process: $(grep -E '^(Uid|Gid)' /proc/$pid/status | tr -s '\t ' ' ' | tr '\n' ' ')"
	kill -TERM "$pid"
	local rc=0
	wait "$pid" || rc=$?
	if [ $rc = 0 ]; then echo "  ok    SIGTERM: exit 0"; else echo "  FAIL  exit code $rc"; fail=1; fi
	grep -q 'running as root' "$log" && echo "  info  (the binary warned that it runs as root)"
	return $fail
}

LOG=$(mktemp /tmp/edgeproxy-rootfs.XXXXXX)
trap 'rm -f "$ROOTDIR/.qemu" "$LOG"' EXIT
if [ "$(id -u)" = 0 ]; then
	unshare --net --mount --pid --fork --mount-proc bash -c "$(declare -f inner); inner '$ROOTDIR' '$RUN' '--userspec=65534:65534' $WAIT '$LOG'"
else
	unshare --user --map-root-user --net --mount --pid --fork --mount-proc bash -c "$(declare -f inner); inner '$ROOTDIR' '$RUN' '' $WAIT '$LOG'"
fi
