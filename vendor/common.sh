# shellcheck shell=bash disable=SC2034
# Helpers shared by the vendor scripts (sourced, never run on its own).

VENDOR_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$VENDOR_DIR/versions.sh"

# The repo root owns build/; allow an override so the scripts can serve a
# separate checkout or an out-of-tree build directory.
EDGEPROXY_ROOT=${EDGEPROXY_ROOT:-$(cd "$VENDOR_DIR/.." && pwd)}
EDGEPROXY_CACHE=${EDGEPROXY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeproxy}

PROG=${PROG:-$(basename "$0")}

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
# Progress goes to stderr: build-musl.sh's stdout is reserved for the prefix.
note() { printf '%s: %s\n' "$PROG" "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
sha256_str() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# verify FILE SHA256: the single gate between a download and tar/dpkg-source.
verify() {
	local got
	[ -f "$1" ] || die "missing file $1"
	got=$(sha256_of "$1")
	if [ "$got" != "$2" ]; then
		die "sha256 mismatch for $1
    expected $2
    got      $got
  Nothing was unpacked from it.  Either the pin in vendor/versions.sh is
  out of date or the source served different bytes; find out which before
  changing the pin."
	fi
}

# Serialise concurrent runs (e.g. `make -j` building two targets) on one
# resource; the lock is released when the script exits.
lock() {
	have flock || return 0
	mkdir -p "$(dirname "$1")"
	exec 9>"$1"
	if ! flock -n 9; then
		note "waiting for lock $1"
		flock 9
	fi
}

# Jobs for make: all cores, unless the caller says otherwise.
jobs() { printf '%s' "${EDGEPROXY_JOBS:-$(nproc 2>/dev/null || echo 2)}"; }

# run_logged LOG CMD...: keep multi-thousand-line build output out of the
# terminal, but show its tail when something breaks.  V=1 streams it.
run_logged() {
	local log=$1
	shift
	mkdir -p "$(dirname "$log")"
	if [ "${V:-0}" = 1 ]; then
		"$@" 2>&1 | tee -a "$log" >&2
		return "${PIPESTATUS[0]}"
	fi
	if ! "$@" >>"$log" 2>&1; then
		printf '%s: command failed: %s\n---- last 40 lines of %s ----\n' "$PROG" "$*" "$log" >&2
		tail -n 40 "$log" >&2
		return 1
	fi
}

# target_vars TARGET: describe a target.  Sets
#   T_GNU       Debian cross triple of the gcc that musl-gcc wraps
#   T_MUSL      musl triple (configure --target, and the name we advertise)
#   T_CFLAGS    flags every compile and link for this target needs
#   T_SOFTFP    1 if libgcc's float helpers must be replaced (MIPS soft-float)
#   T_MIPS16    -mips16 where C that is not speed-critical is built as MIPS16e
#               (musl, libev, inih, the soft-float helpers), else empty
#   T_DEB_GCC   Debian package of the cross gcc
#   T_QEMU      qemu-user binary to run test binaries on an x86_64 host
#   T_CROSS     tool prefix: "" when the host gcc already targets T_GNU
target_vars() {
	T_CFLAGS="" T_SOFTFP=0 T_MIPS16=""
	case "$1" in
	x86_64) T_GNU=x86_64-linux-gnu T_MUSL=x86_64-linux-musl T_DEB_GCC=gcc-x86-64-linux-gnu T_QEMU=qemu-x86_64-static ;;
	# The tiny code model: one ADR (+-1 MiB) instead of ADRP+ADD for every address,
	# 2% of the binary. The whole static image is a few hundred KiB; if it ever
	# passes 1 MiB, the link fails ("relocation truncated"), it cannot go wrong
	# silently.
	aarch64) T_GNU=aarch64-linux-gnu T_MUSL=aarch64-linux-musl T_DEB_GCC=gcc-aarch64-linux-gnu T_QEMU=qemu-aarch64-static
		T_CFLAGS=-mcmodel=tiny ;;
	# Debian's armhf gcc defaults to armv7-a + VFPv3-D16, Thumb-2, hard-float ABI.
	armv7) T_GNU=arm-linux-gnueabihf T_MUSL=arm-linux-musleabihf T_DEB_GCC=gcc-arm-linux-gnueabihf T_QEMU=qemu-arm-static ;;
	# OpenWrt MIPS userlands are soft-float and their kernels lack the FPU emulator.
	# The rest is the code model of a static executable: abicalls code is PIC even
	# with -fno-pie, and -mno-shared -mplt turn its $gp/GOT calls and loads into
	# direct calls and absolute addresses (a sixth of the binary).  Some of the C
	# is MIPS16e (T_MIPS16), so 32-bit code must not tail-jump into it:
	# -minterlink-mips16 everywhere.
	mipsel) T_GNU=mipsel-linux-gnu T_MUSL=mipsel-linux-muslsf T_DEB_GCC=gcc-mipsel-linux-gnu T_QEMU=qemu-mipsel-static
		T_CFLAGS="-msoft-float -mno-shared -mplt -minterlink-mips16" T_SOFTFP=1 T_MIPS16=-mips16 ;;
	mips) T_GNU=mips-linux-gnu T_MUSL=mips-linux-muslsf T_DEB_GCC=gcc-mips-linux-gnu T_QEMU=qemu-mips-static
		T_CFLAGS="-msoft-float -mno-shared -mplt -minterlink-mips16" T_SOFTFP=1 T_MIPS16=-mips16 ;;
	"") die "no TARGET given (one of: x86_64 aarch64 armv7 mipsel mips)" ;;
	*) die "unknown TARGET '$1' (one of: x86_64 aarch64 armv7 mipsel mips)" ;;
	esac
	# Plain gcc/ar/strip when building for the host itself: that is what a
	# non-Debian host has, and it is what TOOLCHAIN.md tested.
	if [ "$(gcc -dumpmachine 2>/dev/null)" = "$T_GNU" ]; then
		T_CROSS=""
		T_QEMU=""
	else
		T_CROSS=$T_GNU-
	fi
}

# Fail early, naming the package, when the compiler for a target is missing.
need_target_gcc() {
	have "${T_CROSS}gcc" ||
		die "${T_CROSS}gcc not found; install it with: vendor/install-host-deps.sh $1 (Debian package ${T_DEB_GCC})"
}

# Stamp content of the musl source tree; written by fetch.sh, it also records
# whether Debian's patches are in, so it feeds the sysroot cache key.
musl_src_stamp() {
	if [ "${EDGEPROXY_FETCH:-debian}" = upstream ]; then
		printf 'musl %s upstream orig=%s\n' "$MUSL_VERSION" "$MUSL_UP_SHA256"
	else
		printf 'musl %s debian %s orig=%s debian=%s\n' "$MUSL_VERSION" "$MUSL_DEB_VERSION" \
			"$MUSL_DEB_SHA256" "$MUSL_DEB_DEBIAN_SHA256"
	fi
}

SRC_DIR=$EDGEPROXY_ROOT/build/src

# musl_prefix TARGET: the cached sysroot.  The key covers what went into it
# (source checksums incl. Debian patches, target, flags, recipe revision), so
# a new pin gets a fresh directory and never a half-matching old one.
musl_prefix() {
	local src key
	# The tree actually fetched decides (it may be upstream or Debian); before
	# any fetch, use what this environment would fetch.
	if [ -f "$SRC_DIR/.stamp-musl" ]; then
		src=$(cat "$SRC_DIR/.stamp-musl")
	else
		src=$(musl_src_stamp)
	fi
	key=$(sha256_str "$src
target=$1
cflags=$MUSL_CFLAGS $T_CFLAGS $T_MIPS16 o2=$MUSL_O2_DIRS
recipe=$MUSL_RECIPE_REV")
	printf '%s/musl-%s-%s/%s' "$EDGEPROXY_CACHE" "$MUSL_VERSION" "${key%"${key#????????????}"}" "$1"
}
