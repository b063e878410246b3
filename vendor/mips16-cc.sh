#!/bin/sh
# Compiler wrapper for musl's build on MIPS (build-musl.sh): a C file is compiled
# as MIPS16e when the assembler accepts it, else as 32-bit MIPS.
#
# usage: mips16-cc.sh CC ARGS... SOURCE     (SOURCE last, as musl's CC_CMD has it)
#
# MIPS16e code is about a third smaller. What cannot be MIPS16 says so loudly:
# inline assembly for syscalls, atomics (ll/sc, sync) and the thread pointer
# (rdhwr) does not assemble in MIPS16 mode, so those files fall back to 32-bit
# code, and only those. Assembly sources (.s/.S) are passed through unchanged.
# src/malloc stays 32-bit as a whole: mallocng's core needs atomics, and
# calloc.c overrides one of its hidden functions by a weak alias, a call the
# linker cannot turn into a mode-switching jump.
for last; do :; done
case $last in
*/src/malloc/*) ;;
*.c)
	"$@" -mips16 2>/dev/null && exit 0
	;;
esac
exec "$@"
