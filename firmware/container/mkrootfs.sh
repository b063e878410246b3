#!/usr/bin/env bash
# Assemble the container's root filesystem in a directory: exactly what the
# Dockerfile puts in the FROM scratch image, nothing else.
#
#   firmware/container/mkrootfs.sh DIR [BINARY]     (BINARY default: build/x86_64/edgeproxy)
#
# DIR/edgeproxy                      the static binary (ENTRYPOINT)
# DIR/etc/edgeproxy/edgeproxy.ini    default configuration (mount your own over it)
# DIR/etc/hosts                      "localhost" for musl's resolver (no NSS in a static binary)
# DIR/etc/passwd, DIR/etc/group      root and nobody/nogroup (65534), for [global] user
# DIR/var/lib/edgeproxy/             state_dir (VOLUME), owned by 65534, mode 0700
# File modes and owners are set as in the image when run as root; as another user
# the owners stay the caller's (the OCI layer writer, oci.py, sets them itself).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: $0 DIR [BINARY]" >&2; exit 2; fi
DIR=$1
BIN=${2:-$ROOT/build/x86_64/edgeproxy}
[ -x "$BIN" ] || { echo "mkrootfs: no binary at $BIN (make first)" >&2; exit 1; }
if readelf -lW "$BIN" | grep -qE 'INTERP|DYNAMIC'; then
	echo "mkrootfs: $BIN is not a static executable" >&2
	exit 1
fi

rm -rf "$DIR"
mkdir -p "$DIR"
cp -a "$HERE/rootfs/." "$DIR/"
install -m 0755 "$BIN" "$DIR/edgeproxy"
chmod 0644 "$DIR/etc/edgeproxy/edgeproxy.ini" "$DIR/etc/hosts" "$DIR/etc/passwd" "$DIR/etc/group"
chmod 0755 "$DIR/etc" "$DIR/etc/edgeproxy" "$DIR/var" "$DIR/var/lib"
chmod 0700 "$DIR/var/lib/edgeproxy"
chmod 0700 "$DIR/var/lib/edgeproxy/.keep"   # as COPY --chmod=0700 leaves it
if [ "$(id -u)" = 0 ]; then
	chown -R 0:0 "$DIR"
	chown -R 65534:65534 "$DIR/var/lib/edgeproxy"
fi
