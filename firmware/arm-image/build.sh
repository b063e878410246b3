#!/usr/bin/env bash
# Build a bootable initramfs for emulated ARM (qemu-system-aarch64 -M virt): a Debian
# arm64 kernel, BusyBox as init, and edgeproxy as a respawned service.
#
#   firmware/arm-image/build.sh [BINARY]      (default build/aarch64/edgeproxy)
#   -> build/arm-image/vmlinuz, build/arm-image/initramfs.cpio.gz
#
# Downloads (once, kept in build/arm-image/dl): linux-image-<abi>-arm64 and
# busybox-static:arm64 from Debian bookworm with `apt-get download`, through a
# throwaway apt configuration (its own lists and cache; the system's apt state is
# not touched; apt checks the .debs against the signed indexes).
# The archive is the one this machine's apt already uses (its sources list), so no
# host is named here; ARM_IMAGE_MIRROR (base URL holding debian/ and
# debian-security/) overrides it.
#
# The initramfs holds only: busybox (init, sh, ip, insmod, mount), the four kernel
# modules for a virtio network interface, /etc/inittab and /etc/init.d/rcS,
# /usr/bin/edgeproxy, /etc/edgeproxy/edgeproxy.ini and /etc/hosts.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-$ROOT/build/aarch64/edgeproxy}
OUT=$ROOT/build/arm-image
DL=$OUT/dl
# The first Debian archive in the machine's own apt sources (deb822 or one-line),
# without its trailing /debian path (the sources below add it back).
system_mirror() {
	local uri
	uri=$(grep -hoE '^URIs: *[^ ]+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | awk '{print $2}')
	[ -n "$uri" ] || uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
	printf '%s' "${uri%/debian*}"
}
MIRROR=${ARM_IMAGE_MIRROR:-$(system_mirror)}
[ -n "$MIRROR" ] || { echo "build.sh: no Debian archive in the apt sources; set ARM_IMAGE_MIRROR" >&2; exit 1; }
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
MODULES="virtio_mmio failover net_failover virtio_net"

[ -x "$BIN" ] || { echo "build.sh: no aarch64 binary at $BIN (make TARGET=aarch64)" >&2; exit 1; }
file -b "$BIN" | grep -q 'ARM aarch64' || { echo "build.sh: $BIN is not an aarch64 binary" >&2; exit 1; }
mkdir -p "$DL"

# ---- 1. kernel and busybox (.deb, arm64) ------------------------------------------
if ! ls "$DL"/linux-image-*-arm64_*.deb >/dev/null 2>&1 || ! ls "$DL"/busybox-static_*.deb >/dev/null 2>&1; then
	A=$(mktemp -d /tmp/edgeproxy-apt-arm64.XXXXXX)
	trap 'rm -rf "$A"' EXIT
	mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/parts" "$A/dl"
	: >"$A/sources.list"
	cat >"$A/parts/arm64.sources" <<SRC
Types: deb
URIs: $MIRROR/debian
Suites: bookworm bookworm-updates
Components: main
Architectures: arm64
Signed-By: $KEYRING

Types: deb
URIs: $MIRROR/debian-security
Suites: bookworm-security
Components: main
Architectures: arm64
Signed-By: $KEYRING
SRC
	O=(-o "Dir::Etc::SourceList=$A/sources.list" -o "Dir::Etc::SourceParts=$A/parts"
		-o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o "Dir::Cache::pkgcache="
		-o "Dir::Cache::srcpkgcache=" -o "Dir::State::status=/dev/null"
		-o "APT::Architecture=arm64" -o "APT::Architectures=arm64")
	if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chmod 755 "$A"; chown -R _apt "$A/dl" "$A/lists"; fi
	echo "arm-image: apt-get update (arm64, throwaway configuration)"
	apt-get -q "${O[@]}" update >"$A/update.log" 2>&1 || { cat "$A/update.log"; exit 1; }
	# linux-image-arm64 is the metapackage; download the kernel it points at.
	kpkg=$(apt-cache "${O[@]}" depends linux-image-arm64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-arm64\)$/\1/p' | head -1)
	[ -n "$kpkg" ] || { echo "arm-image: cannot resolve linux-image-arm64" >&2; exit 1; }
	echo "arm-image: apt-get download $kpkg busybox-static (arm64)"
	(cd "$A/dl" && apt-get -q "${O[@]}" download "$kpkg" busybox-static)
	mv "$A"/dl/*.deb "$DL/"
fi
KDEB=$(find "$DL" -name 'linux-image-*-arm64_*.deb' | sort | tail -1)
BDEB=$(find "$DL" -name 'busybox-static_*.deb' | sort | tail -1)
echo "arm-image: $(basename "$KDEB"), $(basename "$BDEB")"

# ---- 2. the root tree ------------------------------------------------------------------
X=$OUT/extract
R=$OUT/root
rm -rf "$X" "$R"
mkdir -p "$X/k" "$X/b"
dpkg-deb -x "$KDEB" "$X/k"
dpkg-deb -x "$BDEB" "$X/b"
cp "$X"/k/boot/vmlinuz-* "$OUT/vmlinuz"

mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,etc/edgeproxy,lib/modules,proc,sys,dev,tmp,run,var/lib/edgeproxy,root}
install -m 0755 "$X/b/bin/busybox" "$R/bin/busybox"
ln -s bin/busybox "$R/init"
ln -s busybox "$R/bin/sh"
for m in $MODULES; do
	ko=$(find "$X/k/lib/modules" -name "$m.ko" -o -name "$m.ko.xz" | head -1)
	[ -n "$ko" ] || { echo "arm-image: module $m not in $(basename "$KDEB")" >&2; exit 1; }
	case "$ko" in *.xz) xz -dc "$ko" >"$R/lib/modules/$m.ko" ;; *) cp "$ko" "$R/lib/modules/$m.ko" ;; esac
done
install -m 0755 "$BIN" "$R/usr/bin/edgeproxy"
chmod 0700 "$R/var/lib/edgeproxy"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$R/etc/hosts"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"

cat >"$R/etc/inittab" <<'TAB'
# BusyBox init: bring the box up, then keep edgeproxy running (respawn).
::sysinit:/etc/init.d/rcS
::respawn:/usr/bin/edgeproxy run -c /etc/edgeproxy/edgeproxy.ini
::ctrlaltdel:/bin/busybox poweroff
::shutdown:/bin/busybox echo "edgeproxy-image: shutting down"
TAB
cat >"$R/etc/init.d/rcS" <<'RCS'
#!/bin/sh
# Mount the kernel filesystems, load the virtio network driver, configure eth0 for
# QEMU's user network (10.0.2.0/24, gateway 10.0.2.2).
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o mode=0755 tmpfs /run
for m in virtio_mmio failover net_failover virtio_net; do
	insmod "/lib/modules/$m.ko" || echo "edgeproxy-image: insmod $m failed"
done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "nameserver 10.0.2.3" >/etc/resolv.conf
echo "edgeproxy-image: network up after $(cut -d' ' -f1 /proc/uptime)s: $(ip -4 -o addr show eth0 | awk '{print $4}')"
RCS
chmod 0755 "$R/etc/init.d/rcS"
cat >"$R/etc/edgeproxy/edgeproxy.ini" <<'INI'
; edgeproxy on the emulated ARM box (firmware/arm-image)
[global]
state_dir = /var/lib/edgeproxy
; ports 80/443 are bound as root (init starts it), then it runs as nobody
user = nobody
group = nogroup
log_level = info
access_log = stderr
watch = off

[entrypoint web]
listen = :80

[entrypoint websecure]
listen = :443
tls = on

[admin]
listen = 127.0.0.1:8082

[router hello]
rule = PathPrefix(`/`)
service = hello

[service hello]
type = hello
message = Hello from edgeproxy
INI

python3 "$HERE/mkcpio.py" "$R" "$OUT/initramfs.cpio.gz" var/lib/edgeproxy=65534:65534
rm -rf "$X"
echo "arm-image: $OUT/vmlinuz ($(stat -c %s "$OUT/vmlinuz") bytes), $OUT/initramfs.cpio.gz ($(stat -c %s "$OUT/initramfs.cpio.gz") bytes;" \
	"edgeproxy $(stat -c %s "$BIN"), busybox $(stat -c %s "$R/bin/busybox"), modules $(du -cb "$R"/lib/modules/*.ko | tail -1 | cut -f1))"
