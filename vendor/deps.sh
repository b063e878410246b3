#!/usr/bin/env bash
# One entry point for the Makefile: fetch + musl + libraries for a target.
#
# usage: vendor/deps.sh TARGET [OUTDIR]     (OUTDIR default: build/TARGET/deps)
# Each step skips itself when its stamp matches, so a second run takes well
# under a second.  On success stdout carries the vendor/env.sh settings
# (NAME='value' lines) for `eval`; progress and errors go to stderr.
# env: EDGEPROXY_NO_INSTALL=1 never runs apt-get install (as root it
# otherwise installs missing host packages, see install-host-deps.sh).
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	die "usage: $0 TARGET [OUTDIR]"
fi
TARGET=$1
OUTDIR=${2:-$EDGEPROXY_ROOT/build/$TARGET/deps}
target_vars "$TARGET"

if [ "$(id -u)" = 0 ] && [ "${EDGEPROXY_NO_INSTALL:-0}" != 1 ]; then
	"$VENDOR_DIR/install-host-deps.sh" "$TARGET"
fi

components=(bearssl libev inih musl)
[ "$T_SOFTFP" = 1 ] && components+=(gcc-softfp)
"$VENDOR_DIR/fetch.sh" "$EDGEPROXY_ROOT" "${components[@]}"
"$VENDOR_DIR/build-musl.sh" "$TARGET" >/dev/null
"$VENDOR_DIR/build-libs.sh" "$TARGET" "$OUTDIR"
"$VENDOR_DIR/env.sh" "$TARGET"
