# shellcheck shell=sh disable=SC2034
# Pinned third-party versions and checksums; sourced by the other vendor scripts.
#
# Changing anything here invalidates the matching stamps, so the next
# vendor/deps.sh run re-fetches and rebuilds exactly what changed.
#
# Two ways to get the same sources (see vendor/README.md):
#   debian   (default) `apt-get source` from the mirrors already configured on the
#            machine; the musl tree gets Debian's patches (dpkg-source -x).
#   upstream (EDGEPROXY_FETCH=upstream) the projects' own release tarballs, for
#            hosts without a Debian archive; musl is then built unpatched.
# Every file is checked against the sha256 below before it is unpacked.

# ---- BearSSL 0.6 -----------------------------------------------------------
BEARSSL_VERSION=0.6
BEARSSL_DIR=bearssl-0.6
BEARSSL_DEB_SOURCE=bearssl
# bookworm revision: trixie's -4 .dsc/.debian.tar.xz are gone from the archive.
BEARSSL_DEB_VERSION=0.6+dfsg.1-3
# The dfsg repack only drops T0Comp.exe; the generated C files are still there.
BEARSSL_DEB_FILE=bearssl_0.6+dfsg.1.orig.tar.xz
BEARSSL_DEB_SHA256=102a625bd8f6155260867a50c508df8d8c3f796985dd744df1a68e5cd1a79004
BEARSSL_UP_URL=https://bearssl.org/bearssl-0.6.tar.gz
BEARSSL_UP_FILE=bearssl-0.6.tar.gz
BEARSSL_UP_SHA256=6705bba1714961b41a728dfc5debbe348d2966c117649392f8c8139efc83ff14
# BR_MAX_CIPHER_SUITES, set in inc/bearssl_ssl.h once unpacked (vendor/fetch.sh;
# the header has no #ifndef for it). 48 upstream. The server's handshake code
# (T0) looks every slot of its client_suites[BR_MAX_CIPHER_SUITES] array up in
# the table of ~50 suites it knows, empty slots included: with 48 slots that is
# ~2,500 table steps, 80% of the interpreter's work and a fifth of a full
# handshake's CPU on x86_64. edgeproxy configures at most 14 suites (tls.c).
# Both the library and edgeproxy compile against the edited header, so the
# structures agree.
BEARSSL_MAX_CIPHER_SUITES=16

# ---- libev 4.33 ------------------------------------------------------------
LIBEV_VERSION=4.33
LIBEV_DIR=libev-4.33
LIBEV_DEB_SOURCE=libev
LIBEV_DEB_VERSION=1:4.33-1
LIBEV_DEB_FILE=libev_4.33.orig.tar.gz
LIBEV_DEB_SHA256=507eb7b8d1015fbec5b935f34ebed15bf346bed04a11ab82b8eee848c4205aea
# Byte-identical to the Debian orig tarball.  The newest release lives both in
# the top directory and in Attic/; Attic/ keeps working after a new release.
LIBEV_UP_URL=http://dist.schmorp.de/libev/Attic/libev-4.33.tar.gz
LIBEV_UP_FILE=libev-4.33.tar.gz
LIBEV_UP_SHA256=507eb7b8d1015fbec5b935f34ebed15bf346bed04a11ab82b8eee848c4205aea

# ---- inih r59 --------------------------------------------------------------
INIH_VERSION=r59
INIH_DIR=inih-r59
INIH_DEB_SOURCE=libinih
INIH_DEB_VERSION=59-1
INIH_DEB_FILE=libinih_59.orig.tar.gz
INIH_DEB_SHA256=062279922805f5e9a369551a08d5ddb506140fe50774183ffdbb7c22bb97e3f4
# GitHub's tag archive.  Its sha256 is the Debian orig one: Debian's orig *is*
# this archive (Homebrew's and Termux's inih r59 recipes pin the same digest).
# GitHub archives are generated on the fly; if GitHub ever changes their
# compression the digest changes and the fetch fails loudly rather than
# silently accepting different bytes.
INIH_UP_URL=https://github.com/benhoyt/inih/archive/refs/tags/r59.tar.gz
INIH_UP_FILE=inih-r59.tar.gz
INIH_UP_SHA256=062279922805f5e9a369551a08d5ddb506140fe50774183ffdbb7c22bb97e3f4

# ---- musl 1.2.5 ------------------------------------------------------------
MUSL_VERSION=1.2.5
MUSL_DIR=musl-1.2.5
MUSL_DEB_SOURCE=musl
# trixie security/stable update; Debian patches: static-pie in musl-gcc.specs,
# renameat2, iconv CVE-2025-26519 (x2), iconv slowness, qsort heap corruption.
MUSL_DEB_VERSION=1.2.5-3.1~deb13u1
MUSL_DEB_FILE=musl_1.2.5.orig.tar.gz
MUSL_DEB_SHA256=a9a118bbe84d8764da0ea0d28b3ab3fae8477fc7e4085d90102b8596fc7c75e4
MUSL_DEB_DEBIAN_FILE=musl_1.2.5-3.1~deb13u1.debian.tar.xz
MUSL_DEB_DEBIAN_SHA256=46fdfb271edc2f035d8d4063ff2e299734409693e781e69e4b77e0a9a495072e
MUSL_DEB_DSC=musl_1.2.5-3.1~deb13u1.dsc
# Upstream's signature of the orig tarball; listed in the .dsc, so
# dpkg-source wants it next to the other files.
MUSL_DEB_ORIG_ASC=musl_1.2.5.orig.tar.gz.asc
# Byte-identical to the Debian orig tarball (but used without Debian's patches).
MUSL_UP_URL=https://musl.libc.org/releases/musl-1.2.5.tar.gz
MUSL_UP_FILE=musl-1.2.5.tar.gz
MUSL_UP_SHA256=a9a118bbe84d8764da0ea0d28b3ab3fae8477fc7e4085d90102b8596fc7c75e4
# -Os: the SPEC's 400 KiB limit; musl's own default (-O2, hot paths at -O3)
# costs 11-16 KiB per target. The directories in MUSL_O2_DIRS, which every
# request runs through (string functions, syscall glue, clock_gettime), stay at
# -O2 for 1-2 KiB: all of musl at -Os costs a hello request 3% more instructions
# (valgrind --tool=cachegrind). stdio is at -Os: the request path formats no
# text with printf (cidr_addr_text, not inet_ntop, writes the client address).
# -fno-pie: the programs are static executables (ET_EXEC), never static-pie, so
# position-independent code only costs size (GOT loads; on MIPS a $gp set-up in
# every function). Sections let --gc-sections drop unused libc code.
MUSL_CFLAGS="-Os -fno-pie -ffunction-sections -fdata-sections"
MUSL_O2_DIRS="string internal time"
# Bump when build-musl.sh changes what it installs; it is part of the cache key,
# so old sysroots are simply left behind instead of being reused.
MUSL_RECIPE_REV=3

# ---- GCC 12 soft-fp sources (mipsel/mips soft-float only) -------------------
# Debian's mips libgcc.a float helpers are hard-float; OpenWrt kernels have no
# FPU emulator, so libsoftfp.a is built from GCC's own libgcc/soft-fp.
# gcc-12-source ships the upstream-derived tarball below; only the tarball
# inside the .deb is pinned (apt already checks the .deb against the signed
# Packages index).
GCC_SRC_DEB_PACKAGE=gcc-12-source
GCC_SRC_DEB_VERSION=12.2.0-14+deb12u1
GCC_SRC_INNER=usr/src/gcc-12/gcc-12.2.0-dfsg.tar.xz
GCC_SRC_FILE=gcc-12.2.0-dfsg.tar.xz
GCC_SRC_SHA256=50c63ff82919323c25fbbb4a9eae259edc974118a0fb30c905190cb782ec11c2
GCC_SRC_TOPDIR=gcc-12.2.0

# Debian suites that hold the revisions above (musl comes from trixie).
DEB_SRC_SUITES="bookworm bookworm-updates trixie"

# ---- How the libraries are compiled (part of the build-libs stamp) ---------
# Shared by all three libraries; gc-sections in the final link needs them.
# -fno-pie as for musl: static executables only.
DEPS_CFLAGS="-Os -fno-pie -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables"
BEARSSL_CFLAGS="-W -Wall $DEPS_CFLAGS -DBR_USE_URANDOM=0 -DBR_RDRAND=0"
# ev.c turns epoll/eventfd/signalfd/timerfd on only for __GLIBC__, io_uring and
# linuxaio need kernel headers the bare musl sysroot lacks, and nanosleep
# keys off _POSIX_C_SOURCE, which musl leaves undefined: set them all.
# EV_NO_THREADS: edgeproxy never calls libev from a second thread (workers are
# processes), so libev's memory fences go; on MIPS they are also what keeps
# ev.c from compiling as MIPS16 (a `sync` in inline assembly).
LIBEV_DEFS="-DEV_STANDALONE=1 -DEV_NO_THREADS=1 -DEV_USE_EPOLL=1 -DEV_USE_POLL=1 -DEV_USE_SELECT=0 -DEV_USE_EVENTFD=1 -DEV_USE_SIGNALFD=1 -DEV_USE_TIMERFD=1 -DEV_USE_INOTIFY=0 -DEV_USE_IOURING=0 -DEV_USE_LINUXAIO=0 -DEV_USE_MONOTONIC=1 -DEV_USE_NANOSLEEP=1 -DEV_USE_FLOOR=1"
LIBEV_CFLAGS="$DEPS_CFLAGS -fno-strict-aliasing -w $LIBEV_DEFS"
# These change ini.h itself (handler prototype, buffer size), so the generated
# include/ini.h pins them for the program too.
INIH_DEFS="-DINI_HANDLER_LINENO=1 -DINI_MAX_LINE=4096 -DINI_ALLOW_MULTILINE=0 -DINI_STOP_ON_FIRST_ERROR=0 -DINI_CALL_HANDLER_ON_NEW_SECTION=1"
INIH_CFLAGS="$DEPS_CFLAGS -W -Wall $INIH_DEFS"
