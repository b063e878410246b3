# edgeproxy - one static binary; see README.md.
#   make                 build build/$(TARGET)/edgeproxy (TARGET=x86_64 by default)
#   make run             build and run on configs/edgeproxy.ini
#   make test            unit tests (host libc, ASan+UBSan), static analysis, integration
#                        tests against the static binary and an ASan build, a valgrind
#                        leak run, short fuzz, the aarch64/armv7 smoke suite under qemu,
#                        firmware tests, the size limit
#   make analyze         gcc -fanalyzer and cppcheck over src/ (tools/analyze.mk)
#   make fuzz            run every libFuzzer harness for FUZZ_SECONDS each
#   make bench           proxy benchmark beside nginx (tools/bench.sh)
#   make clean           remove build outputs, keep fetched sources and the musl cache
#   make distclean       remove build/ entirely (the musl cache in ~/.cache stays)

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec

TARGET ?= x86_64
VERSION := 0.1.0
BUILD := build/$(TARGET)
DEPS := $(BUILD)/deps
BIN := $(BUILD)/edgeproxy
CONFIG ?= configs/edgeproxy.ini
FUZZ_SECONDS ?= 30

# The toolchain file is written by the vendor recipe: CC (musl-gcc wrapper), STRIP,
# TRIPLE. Make builds it first and re-reads the Makefile (GNU make's include rule).
-include $(DEPS)/toolchain.mk

# inih's ABI-affecting macros must match the library build (vendor/build-libs.sh).
INIH_DEFS := -DINI_HANDLER_LINENO=1 -DINI_MAX_LINE=4096 -DINI_ALLOW_MULTILINE=0 \
	-DINI_STOP_ON_FIRST_ERROR=0 -DINI_CALL_HANDLER_ON_NEW_SECTION=1
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes
# -fno-strict-aliasing: libev's ev_*_init macros break strict aliasing (TOOLCHAIN.md §3.2).
COMMON_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -fno-strict-aliasing $(INIH_DEFS)
LIB_VERSIONS := BearSSL 0.6, libev 4.33, inih r59, musl 1.2.5
# No unwind tables: a C program without C++ exceptions never uses them (30+ KiB).
# -fno-pie: the binary is a static executable at a fixed address (Debian's gcc
# would otherwise compile for PIE).
CFLAGS := $(COMMON_CFLAGS) -Os -fno-pie -ffunction-sections -fdata-sections \
	-fno-asynchronous-unwind-tables -fno-unwind-tables -MMD -MP \
	-I$(DEPS)/include -DEDGEPROXY_VERSION='"$(VERSION)"' -DEDGEPROXY_TRIPLE='"$(TRIPLE)"' \
	-DEDGEPROXY_LIBS='"$(LIB_VERSIONS)"'
# -z norelro: only a dynamic loader applies PT_GNU_RELRO (musl's static start-up
# does not), and its page alignment costs up to a page of padding (16 KiB on
# aarch64). -z common-page-size=64: the data segment then starts right after the
# text in the file instead of at the next 4 KiB boundary in it (up to a page of
# zeros less; at run time the two may share a page frame, mapped twice).
# -z noseparate-code (x86_64; the other targets' linkers do not separate): one
# read-only segment for headers, code and constants instead of three page-aligned
# ones, 4-8 KiB of padding. Separate code keeps constants out of executable pages;
# in a static binary at a fixed address the code alone holds gadgets enough.
LDFLAGS := -static -Wl,--gc-sections -Wl,-O1 -Wl,-z,norelro -Wl,-z,common-page-size=64 \
	-Wl,-z,noseparate-code
LIBS := -L$(DEPS)/lib -lbearssl -lev -linih

SRCS := $(filter-out $(SRCS_EXCLUDE),$(wildcard src/*.c))
OBJS := $(SRCS:src/%.c=$(BUILD)/obj/%.o)

.PHONY: all deps run test unit integration fuzz bench clean distclean test-deps
all: $(BIN)

# vendor/deps.sh installs missing host packages (as root), fetches and verifies the
# pinned sources, builds musl (cached in ~/.cache/edgeproxy) and the libraries,
# and prints the toolchain settings that become make variables here.
$(DEPS)/toolchain.mk: vendor/versions.sh $(wildcard vendor/*.sh)
	@mkdir -p $(DEPS)
	bash vendor/deps.sh $(TARGET) $(DEPS) | \
		sed -n "s/^\(CC\|STRIP\|AR\|TRIPLE\|QEMU\)='\(.*\)'$$/\1 := \2/p" > $@.tmp
	mv $@.tmp $@

deps: $(DEPS)/toolchain.mk

$(BUILD)/obj/%.o: src/%.c $(DEPS)/toolchain.mk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BIN): $(OBJS) $(DEPS)/toolchain.mk
	$(CC) $(LDFLAGS) $(OBJS) $(LIBS) -o $@.unstripped
	$(STRIP) -R .comment -o $@ $@.unstripped
	@ls -l $@ | awk '{ printf "%s: %d bytes (%.1f KiB)\n", $$NF, $$5, $$5/1024 }'

-include $(OBJS:.o=.d)

run: $(BIN)
	@mkdir -p state
	$(BIN) run -c $(CONFIG)

# ---- tests ----------------------------------------------------------------
# Unit tests: each module with the host compiler under ASan+UBSan. A test's
# sources are its module plus what that module links against.
UNIT_CC := gcc
UNIT_CFLAGS := $(COMMON_CFLAGS) -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer -Isrc -Itests/unit -Ibuild/src/inih-r59
INIH_SRC := build/src/inih-r59/ini.c
UNIT_SRCS_rule := src/rule.c src/cidr.c src/regexp.c
UNIT_SRCS_cidr := src/cidr.c
UNIT_SRCS_http_parse := src/http_parse.c
UNIT_SRCS_confval := src/confval.c
UNIT_SRCS_static_path := src/static_path.c
UNIT_SRCS_http_write := src/http_write.c src/timefmt.c
# Host BearSSL for unit tests and fuzzers, with the target's config macros (no
# /dev/urandom, no RDRAND: entropy only through src/rand.c).
HOST_BEARSSL := build/host/bearssl/libbearssl.a
$(HOST_BEARSSL): $(DEPS)/toolchain.mk
	$(MAKE) -C build/src/bearssl-0.6 lib CONF=Unix BUILD=$(abspath build/host/bearssl) \
		CC=gcc AR=ar CFLAGS='-W -Wall -O1 -fPIC -DBR_USE_URANDOM=0 -DBR_RDRAND=0'
# Host libev for tests that need an event loop (config with ACME, snapshots).
LIBEV_DEFS := -DEV_STANDALONE=1 -DEV_NO_THREADS=1 -DEV_USE_EPOLL=1 -DEV_USE_POLL=1 -DEV_USE_SELECT=0 -DEV_USE_EVENTFD=1 \
	-DEV_USE_SIGNALFD=1 -DEV_USE_TIMERFD=1 -DEV_USE_INOTIFY=0 -DEV_USE_IOURING=0 -DEV_USE_LINUXAIO=0 \
	-DEV_USE_MONOTONIC=1 -DEV_USE_NANOSLEEP=1 -DEV_USE_FLOOR=1
HOST_LIBEV := build/host/libev/ev.o
$(HOST_LIBEV): $(DEPS)/toolchain.mk
	@mkdir -p $(dir $@)
	gcc -O1 -g -fPIC -fno-strict-aliasing -w $(LIBEV_DEFS) -c build/src/libev-4.33/ev.c -o $@
UNIT_CFLAGS += -Ibuild/src/libev-4.33
MIDDLEWARE_SRCS := src/middleware.c src/regexp.c src/http_parse.c src/breaker.c src/source_table.c src/siphash.c \
	src/htpasswd.c src/bcrypt.c src/apr1.c src/base64.c src/rand.c
# The elliptic-curve code BearSSL's users are given (src/ec_impl.h).
EC_SRCS := src/ec_impl.c src/ecdsa.c src/p256.c src/x25519.c
ACME_SRCS := $(EC_SRCS) src/acme.c src/acme_board.c src/acme_config.c src/acme_roots.c src/jws.c src/json.c src/csr.c src/der.c \
	src/fsutil.c src/http_client.c src/child.c src/strbuf.c src/tls_cert.c src/timefmt.c
UNIT_SRCS_config := src/config.c src/confval.c src/rule.c src/cidr.c src/log.c $(MIDDLEWARE_SRCS) $(ACME_SRCS) \
	$(INIH_SRC) $(HOST_BEARSSL) $(HOST_LIBEV)
UNIT_CFLAGS += -Ibuild/src/bearssl-0.6/inc
UNIT_SRCS_tls_cert := $(EC_SRCS) src/tls_cert.c src/der.c src/timefmt.c src/rand.c $(HOST_BEARSSL)
UNIT_SRCS_timefmt := src/timefmt.c
UNIT_SRCS_ec := $(EC_SRCS) $(HOST_BEARSSL)
build/unit/test_ec: $(HOST_BEARSSL)
UNIT_SRCS_regexp := src/regexp.c
build/unit/test_tls_cert: $(HOST_BEARSSL)
build/unit/test_config: $(HOST_BEARSSL) $(HOST_LIBEV)
UNIT_SRCS_middleware := $(MIDDLEWARE_SRCS) src/confval.c src/cidr.c src/log.c src/timefmt.c $(HOST_BEARSSL)
build/unit/test_middleware: $(HOST_BEARSSL)
UNIT_SRCS_snapshot_all := src/snapshot.c src/upstream.c src/tls.c src/tls_ca.c $(UNIT_SRCS_config)
UNIT_SRCS_metrics := src/metrics.c $(UNIT_SRCS_snapshot_all)
UNIT_SRCS_admin := src/admin.c src/dashboard.c src/metrics.c $(UNIT_SRCS_snapshot_all)
build/unit/test_metrics build/unit/test_admin: $(HOST_LIBEV) $(HOST_BEARSSL) tests/unit/snap_fixture.h \
	tests/unit/json_check.h src/dashboard.html
UNIT_TESTS := $(patsubst tests/unit/test_%.c,%,$(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_TESTS:%=build/unit/test_%)

# Second expansion: a test is rebuilt when the sources it links change, not only
# its own file (a fixed module must not pass on a stale binary).
.SECONDEXPANSION:
build/unit/test_%: tests/unit/test_%.c tests/unit/test.h $(wildcard src/*.h) $(DEPS)/toolchain.mk $$(UNIT_SRCS_$$*)
	@mkdir -p build/unit
	$(UNIT_CC) $(UNIT_CFLAGS) $< $(UNIT_SRCS_$*) -o $@

test-deps:
	@bash tools/install-test-deps.sh

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; done

# EDGEPROXY_REQUIRE_TESTSSL: test_testssl.py fails instead of skipping without testssl.
integration: $(BIN) | test-deps
	EDGEPROXY_BIN=$(abspath $(BIN)) EDGEPROXY_REQUIRE_TESTSSL=1 /usr/bin/python3 -m pytest -q tests/integration

# CI fuzzes each harness briefly; `make fuzz FUZZ_SECONDS=600` is the long run.
CI_FUZZ_SECONDS ?= 15
# CI (.ci/run is `make test`) also runs the emulated smoke suite for one 64-bit and
# one 32-bit target under qemu-user, and the firmware tests: init scripts, the OCI
# image run FROM scratch, the arm64 image booted in qemu-system (tools/cross.mk).
# The targets install their own packages (cross gcc, qemu, skopeo, ...) as root.
# About 3 minutes from a cold cache (two musl builds), after the passes below.
# size-check then holds the binaries built so far to the SPEC's 400 KiB.
CI_CROSS_TARGETS ?= aarch64 armv7

# The memory-safety passes (tools/asan.mk): the integration suite against the
# ASan+UBSan build (~6 min on 2 cores, most of it the suite's own waits) and the
# valgrind leak run (~40 s).
# The integration suite against the static binary and the memory-safety passes run
# side by side (TEST_JOBS=1: one after the other): the suites mostly wait on sockets
# and timers (about 1 CPU-minute in 6), and they share nothing but the binaries
# built first (each has its own ports and directories). Output is shown per pass
# when it ends.
TEST_JOBS ?= 2
test: test-deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory analyze
	@$(MAKE) --no-print-directory $(BIN) $(ACME_DRIVER) $(ASAN_BIN) $(VG_BIN)
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target test-passes
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(CI_FUZZ_SECONDS)
	@$(MAKE) --no-print-directory test-cross TEST_CROSS_TARGETS="$(CI_CROSS_TARGETS)"
	@$(MAKE) --no-print-directory firmware-test
	@$(MAKE) --no-print-directory size-check CROSS_TARGETS="x86_64 $(CI_CROSS_TARGETS)"

.PHONY: test-passes memory-passes
test-passes: integration memory-passes
memory-passes:
	@$(MAKE) --no-print-directory valgrind
	@$(MAKE) --no-print-directory test-asan

# ---- fuzzing (clang + libFuzzer, ASan+UBSan) ----------------------------------
FUZZ_CFLAGS := $(COMMON_CFLAGS) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Isrc -Ibuild/src/inih-r59
FUZZ_SRCS_rule := src/rule.c src/cidr.c src/regexp.c
FUZZ_SRCS_http_request := src/http_parse.c
FUZZ_SRCS_http_response := src/http_parse.c
FUZZ_SRCS_chunked := src/http_parse.c
FUZZ_SRCS_confval := src/confval.c src/cidr.c
FUZZ_SRCS_static_path := src/static_path.c
FUZZ_SRCS_timefmt := src/timefmt.c
FUZZ_SRCS_regexp := src/regexp.c
FUZZ_CFLAGS += -Ibuild/src/bearssl-0.6/inc
FUZZ_SRCS_pem := $(EC_SRCS) src/tls_cert.c src/der.c src/timefmt.c src/rand.c $(HOST_BEARSSL)
build/fuzz/fuzz_pem: $(HOST_BEARSSL)
FUZZ_SRCS_htpasswd := src/htpasswd.c src/bcrypt.c src/apr1.c src/base64.c $(HOST_BEARSSL)
build/fuzz/fuzz_htpasswd: $(HOST_BEARSSL)
FUZZ_SRCS_middleware := $(MIDDLEWARE_SRCS) src/confval.c src/cidr.c src/log.c src/timefmt.c $(HOST_BEARSSL)
build/fuzz/fuzz_middleware: $(HOST_BEARSSL)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard src/*.h) $$(FUZZ_SRCS_$$*)
	@mkdir -p build/fuzz
	clang $(FUZZ_CFLAGS) $< $(FUZZ_SRCS_$*) -o $@

fuzz: $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
	@set -e; for n in $(FUZZ_NAMES); do \
		mkdir -p build/fuzz/corpus-$$n; \
		echo "== fuzz $$n ($(FUZZ_SECONDS)s)"; \
		build/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			build/fuzz/corpus-$$n tests/fuzz/corpus/$$n 2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' ; \
	done

bench: $(BIN)
	bash tools/bench.sh $(BIN)

clean:
	rm -rf build/host build/x86_64/obj build/*/obj build/*/edgeproxy build/*/edgeproxy.unstripped build/unit build/fuzz

distclean:
	rm -rf build state

# Cross builds, emulated tests, release files, firmware (issue 9).
include tools/cross.mk
include tests/acme.mk
include tools/asan.mk
include tools/analyze.mk
