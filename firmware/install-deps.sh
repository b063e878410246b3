#!/bin/sh
# Host packages the firmware tests need (Debian, as root; only what is missing):
# skopeo + umoci (container image checks), qemu-system-arm (ARM boot test),
# ShellCheck (init scripts), systemd (systemd-analyze), curl, python3.
# The cross compilers and qemu-user-static come with vendor/deps.sh per target.
set -eu
pkgs="skopeo umoci qemu-system-arm shellcheck systemd curl python3 file"
missing=""
for p in $pkgs; do
	dpkg -s "$p" 2>/dev/null | grep -qx 'Status: install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "firmware/install-deps.sh: missing:$missing (run as root or install them)" >&2
	exit 1
fi
echo "firmware/install-deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
