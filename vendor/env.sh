#!/usr/bin/env bash
# Print the toolchain settings for a target (no side effects, builds nothing).
#
# usage: vendor/env.sh TARGET            -> NAME='value' lines, for eval
#        vendor/env.sh TARGET NAME...    -> just the values, one per line
#   eval "$(vendor/env.sh aarch64)"; $CC ... ; $QEMU ./prog
#
# NAME      example (x86_64)                       meaning
# TARGET    x86_64                                 as given
# TRIPLE    x86_64-linux-musl                      musl triple of the target
# MUSL_PREFIX ~/.cache/edgeproxy/musl-1.2.5-<key>/x86_64  musl sysroot + wrapper
# MUSL_CC   $MUSL_PREFIX/bin/musl-gcc [-msoft-float]   compiler for the target
# CC        same as MUSL_CC (shell use only; deps.mk leaves make's CC alone)
# TARGET_CFLAGS  mipsel/mips: -msoft-float and the non-PIC code model (common.sh),
#           else empty (already in MUSL_CC)
# AR, STRIP binutils for the target (ar/strip natively, else <gnu-triple>-*)
# QEMU      qemu-user binary to run target programs; empty when native
# GNU_TRIPLE the Debian cross triple; CROSS_GCC_PKG its gcc package
# shellcheck disable=SC2034 # the variables are printed by name via ${!n}
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

[ $# -ge 1 ] || die "usage: $0 TARGET [NAME...]"
TARGET=$1
target_vars "$TARGET"
shift

TARGET_CFLAGS=$T_CFLAGS
TRIPLE=$T_MUSL
MUSL_PREFIX=$(musl_prefix "$TARGET")
MUSL_CC="$MUSL_PREFIX/bin/musl-gcc${T_CFLAGS:+ $T_CFLAGS}"
CC=$MUSL_CC
AR=${T_CROSS}ar
STRIP=${T_CROSS}strip
QEMU=$T_QEMU
GNU_TRIPLE=$T_GNU
CROSS_GCC_PKG=$T_DEB_GCC

NAMES="TARGET TRIPLE MUSL_PREFIX MUSL_CC CC TARGET_CFLAGS AR STRIP QEMU GNU_TRIPLE CROSS_GCC_PKG"
if [ $# -eq 0 ]; then
	q="'\\''"
	for n in $NAMES; do
		v=${!n}
		printf "%s='%s'\n" "$n" "${v//\'/$q}"
	done
else
	for n in "$@"; do
		case " $NAMES " in
		*" $n "*) printf '%s\n' "${!n}" ;;
		*) die "unknown name '$n' (one of: $NAMES)" ;;
		esac
	done
fi
