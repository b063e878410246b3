#!/usr/bin/env bash
# Install (Debian/Ubuntu, as root) the host packages the vendor build needs.
#
# usage: vendor/install-host-deps.sh [TARGET...]
#   no TARGET: the tools to fetch sources and build for the host itself;
#   a cross TARGET also gets its Debian cross gcc and qemu-user-static.
# Does nothing (and never runs apt-get update) when everything is installed.
# Exit status 1 if something is missing and cannot be installed here.
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

pkgs=(gcc make file binutils dpkg-dev xz-utils curl ca-certificates)
for t in "$@"; do
	target_vars "$t"
	if [ -n "$T_CROSS" ]; then
		pkgs+=("$T_DEB_GCC" qemu-user-static)
	fi
done

installed() {
	# dpkg -s succeeds for removed-but-not-purged packages too; check Status.
	dpkg -s "$1" 2>/dev/null | grep -qx 'Status: install ok installed'
}

have dpkg || {
	note "not a Debian-based host; make sure these (or equivalents) are installed: ${pkgs[*]}"
	exit 0
}

missing=()
for p in "${pkgs[@]}"; do
	installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0

if [ "$(id -u)" != 0 ]; then
	die "missing host packages: ${missing[*]}
  install them with: sudo apt-get install --no-install-recommends ${missing[*]}"
fi

note "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2 || die "apt-get update failed"
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
	die "apt-get install ${missing[*]} failed"
