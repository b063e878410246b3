#!/usr/bin/env bash
# Build musl libc + its musl-gcc wrapper for one target into the user cache.
#
# usage: vendor/build-musl.sh TARGET      (x86_64 aarch64 armv7 mipsel mips)
# Needs build/src/musl-1.2.5 (vendor/fetch.sh; mipsel/mips also need
# `vendor/fetch.sh gcc-softfp`).  The last stdout line is the prefix:
#   $EDGEPROXY_CACHE/musl-1.2.5-<key>/<TARGET>     (see common.sh musl_prefix)
# with bin/musl-gcc, include/, lib/.  The sysroot lives outside the tree so
# `make clean` or a fresh checkout does not cost the musl build again.
# env: EDGEPROXY_FORCE=1 rebuilds even if the prefix is complete; V=1 shows
# the build output (otherwise it goes to build/log/musl-TARGET.log).
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

TARGET=${1:-}
target_vars "$TARGET"

PREFIX=$(musl_prefix "$TARGET")
STAMP=$PREFIX/.edgeproxy-complete

done_already() { [ "${EDGEPROXY_FORCE:-0}" != 1 ] && [ -f "$STAMP" ]; }

if done_already; then
	printf '%s\n' "$PREFIX"
	exit 0
fi

SRC=$SRC_DIR/$MUSL_DIR
if [ ! -f "$SRC_DIR/.stamp-musl" ] || [ ! -x "$SRC/configure" ]; then
	die "musl sources not found in $SRC; run vendor/fetch.sh first"
fi
need_target_gcc "$TARGET"
SOFTFP_SRC=$SRC_DIR/$GCC_SRC_TOPDIR-softfp
if [ "$T_SOFTFP" = 1 ] && [ ! -f "$SRC_DIR/.stamp-gcc-softfp" ]; then
	die "GCC soft-fp sources missing (needed for $TARGET); run vendor/fetch.sh gcc-softfp"
fi

lock "$PREFIX.lock"
# Another run may have built it while we waited for the lock.
if done_already; then
	printf '%s\n' "$PREFIX"
	exit 0
fi

OBJ=$EDGEPROXY_ROOT/build/obj/musl-$TARGET
LOG=$EDGEPROXY_ROOT/build/log/musl-$TARGET.log
# Nothing from an interrupted build is trusted: the prefix is only valid
# once the stamp is written as the very last step.
rm -rf "$OBJ" "$PREFIX"
mkdir -p "$OBJ" "$(dirname "$LOG")"
: >"$LOG"

start=$(date +%s)
note "building musl $MUSL_VERSION for $TARGET ($T_MUSL, ${T_CROSS}gcc) -> $PREFIX"
note "  takes about a minute on 2 cores (more under load); log: $LOG"

# MIPS: C files as MIPS16e where they assemble as such (mips16-cc.sh).
make_args=()
if [ -n "$T_MIPS16" ]; then
	make_args+=("CC_CMD=$VENDOR_DIR/mips16-cc.sh \$(CC) \$(CFLAGS_ALL) -c -o \$@ \$<")
fi

# AR and RANLIB must be explicit: with an empty CROSS_COMPILE, configure
# derives them from --target (x86_64-linux-musl-ar), which does not exist.
# configure builds libc.a from the -fPIC objects whenever the compiler defines
# __PIC__, which abicalls MIPS compilers always do: dropping that line from
# config.mak gives libc.a the objects built with our flags (non-PIC; static
# executables only, no static-pie).  MUSL_O2_DIRS (versions.sh) get -O2 after
# the -Os: a target-specific variable in config.mak, which the Makefile includes.
# (&& chains: set -e does not apply inside a subshell tested with ||.)
(
	cd "$OBJ" &&
		run_logged "$LOG" env CROSS_COMPILE="$T_CROSS" CC="${T_CROSS}gcc" \
			AR="${T_CROSS}ar" RANLIB="${T_CROSS}ranlib" \
			CFLAGS="$MUSL_CFLAGS${T_CFLAGS:+ $T_CFLAGS}" \
			"$SRC/configure" --target="$T_MUSL" --prefix="$PREFIX" \
			--disable-shared --enable-wrapper=gcc &&
		sed -i '/^AOBJS = \$(LOBJS)$/d' config.mak &&
		for d in $MUSL_O2_DIRS; do
			printf 'obj/src/%s/%%.o: CFLAGS_ALL += -O2\n' "$d" >>config.mak || exit 1
		done &&
		run_logged "$LOG" make -j"$(jobs)" "${make_args[@]}" &&
		run_logged "$LOG" make install
) || die "musl build for $TARGET failed (log: $LOG)"

# Puts archive $1 ahead of libgcc.a in the specs, so its functions win over
# libgcc's.  %s only searches gcc's own dirs, hence the absolute path.
hook_before_libgcc() {
	sed -i "s|^libgcc.a%s |$1 libgcc.a%s |" "$PREFIX/lib/musl-gcc.specs"
	grep -qF "$1" "$PREFIX/lib/musl-gcc.specs" ||
		die "could not hook $1 into $PREFIX/lib/musl-gcc.specs (format changed?)"
}

# Debian's mips libgcc.a float helpers are hard-float code (__adddf3 is an
# add.d): linking them into a -msoft-float program still traps on FPU-less
# OpenWrt CPUs.  Build GCC's generic soft-fp versions and have the specs put
# them ahead of libgcc.a.  Compiled like the rest of the non-crypto C (-Os,
# MIPS16): the program's floating point is timers and metrics, never a hot loop.
build_softfp() {
	local o=$OBJ/softfp f
	mkdir -p "$o"
	note "building libsoftfp.a (GCC libgcc/soft-fp) for $TARGET"
	for f in adddf3 addsf3 subdf3 subsf3 muldf3 mulsf3 divdf3 divsf3 negdf2 negsf2 \
		eqdf2 eqsf2 gedf2 gesf2 ledf2 lesf2 unorddf2 unordsf2 \
		fixdfsi fixsfsi fixdfdi fixsfdi fixunsdfsi fixunssfsi fixunsdfdi fixunssfdi \
		floatsidf floatsisf floatdidf floatdisf floatunsidf floatunsisf floatundidf floatundisf \
		extendsfdf2 truncdfsf2; do
		# shellcheck disable=SC2086 # flag lists
		run_logged "$LOG" "${T_CROSS}gcc" $T_CFLAGS $T_MIPS16 -Os -fno-pie -ffunction-sections -fdata-sections \
			-I"$SOFTFP_SRC/libgcc/soft-fp" -I"$SOFTFP_SRC/libgcc/config/mips" -I"$SOFTFP_SRC/include" \
			-c "$SOFTFP_SRC/libgcc/soft-fp/$f.c" -o "$o/$f.o"
	done
	rm -f "$PREFIX/lib/libsoftfp.a"
	run_logged "$LOG" "${T_CROSS}ar" rcs "$PREFIX/lib/libsoftfp.a" "$o"/*.o
	hook_before_libgcc "$PREFIX/lib/libsoftfp.a"
}
if [ "$T_SOFTFP" = 1 ]; then
	build_softfp
fi

# aarch64: long double is IEEE binary128 in software, and musl's printf links
# libgcc's __addtf3 and __subtf3, two 3.4 KiB copies of one adder; tools/subtf3.c
# subtracts through the adder instead.
if [ "$TARGET" = aarch64 ]; then
	# shellcheck disable=SC2086 # flag list
	run_logged "$LOG" "${T_CROSS}gcc" $T_CFLAGS -Os -fno-pie -ffunction-sections -W -Wall -Werror \
		-c "$EDGEPROXY_ROOT/tools/subtf3.c" -o "$OBJ/subtf3.o" &&
		run_logged "$LOG" "${T_CROSS}ar" rcs "$PREFIX/lib/libsubtf3.a" "$OBJ/subtf3.o" ||
		die "building libsubtf3.a failed (log: $LOG)"
	hook_before_libgcc "$PREFIX/lib/libsubtf3.a"
fi

# A one-line smoke test: a wrapper that cannot link a static program is not
# worth caching.
printf 'int main(void){return 0;}\n' >"$OBJ/t.c"
# shellcheck disable=SC2086 # T_CFLAGS is a flag list
run_logged "$LOG" "$PREFIX/bin/musl-gcc" $T_CFLAGS -static -Os "$OBJ/t.c" -o "$OBJ/t" ||
	die "the new musl-gcc for $TARGET cannot link a static program (log: $LOG)"

{
	cat "$SRC_DIR/.stamp-musl"
	printf 'target=%s musl-target=%s gcc=%s\ncflags=%s\nrecipe=%s\nbuilt=%s\n' \
		"$TARGET" "$T_MUSL" "$("${T_CROSS}gcc" -dumpfullversion 2>/dev/null || "${T_CROSS}gcc" -dumpversion)" \
		"$MUSL_CFLAGS${T_CFLAGS:+ $T_CFLAGS}" "$MUSL_RECIPE_REV" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$STAMP"
rm -rf "$OBJ"
note "musl for $TARGET done in $(($(date +%s) - start)) s"
printf '%s\n' "$PREFIX"
