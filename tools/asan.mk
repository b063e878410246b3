# tools/asan.mk - edgeproxy built with AddressSanitizer and UndefinedBehaviorSanitizer
# (host gcc, glibc, dynamically linked), and the integration suite run against it
# (issue 10: memory safety under real traffic). Included by the Makefile after
# SRCS, COMMON_CFLAGS, INIH_DEFS, HOST_BEARSSL, VERSION and LIB_VERSIONS:
#
#     include tools/asan.mk
#
#   make asan          build/asan/edgeproxy
#   make test-asan     the integration suite against it; a sanitizer report from any
#                      edgeproxy process fails the test that ran it
#                      (tests/integration/conftest_asan.py, loaded with -p)
#   ASAN_PYTEST_ARGS='-k proxy'   narrows the run
#   make valgrind      build/valgrind/edgeproxy (host gcc, glibc, -g -O1, no
#                      sanitizers) and tools/valgrind_load.py against it: valgrind
#                      cannot replace malloc in the static musl binary (no preload
#                      in a static executable), so its leak check needs this build
#
# The libraries are built from the same sources and with the same configuration
# macros as vendor/build-libs.sh: libev with LIBEV_DEFS from vendor/versions.sh,
# inih with INIH_DEFS, BearSSL as the Makefile's HOST_BEARSSL (not instrumented:
# its constant-time code is not where our inputs are parsed).

ASAN_DIR := build/asan
ASAN_BIN := $(ASAN_DIR)/edgeproxy
ASAN_SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_LIBEV_DEFS := $(shell . vendor/versions.sh && printf '%s' "$$LIBEV_DEFS")
ASAN_CFLAGS := $(COMMON_CFLAGS) -g -O1 $(ASAN_SANITIZE) -MMD -MP \
	-Ibuild/src/libev-4.33 -Ibuild/src/inih-r59 -Ibuild/src/bearssl-0.6/inc \
	-DEDGEPROXY_VERSION='"$(VERSION)"' -DEDGEPROXY_TRIPLE='"x86_64-linux-gnu (asan)"' \
	-DEDGEPROXY_LIBS='"$(LIB_VERSIONS) (glibc, ASan+UBSan build)"'
ASAN_OBJS := $(SRCS:src/%.c=$(ASAN_DIR)/obj/%.o)
ASAN_LIB_OBJS := $(ASAN_DIR)/lib/ev.o $(ASAN_DIR)/lib/ini.o

# Where the sanitizers write their reports during test-asan: one file per process
# (PREFIX.PID), so that processes the harness does not start itself (CLI runs, the
# binary re-executed by an upgrade) are checked too.
ASAN_REPORTS := $(ASAN_DIR)/reports
ASAN_TEST_ENV := EDGEPROXY_BIN=$(abspath $(ASAN_BIN)) \
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:log_path=$(abspath $(ASAN_REPORTS))/asan \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=0:log_path=$(abspath $(ASAN_REPORTS))/ubsan \
	LSAN_OPTIONS=report_objects=1 \
	EDGEPROXY_SANITIZED=1 \
	EDGEPROXY_TEST_BUILD_DIR=$(abspath $(ASAN_DIR))/test EDGEPROXY_ARTIFACTS=$(abspath $(ASAN_DIR))/artifacts \
	PYTHONPATH=$(abspath tests/integration)
# Tests that check properties of the static musl release binary itself, or hard
# memory figures that ASan's shadow memory and quarantine make meaningless (the
# new tests keep their traffic and skip only the figure when EDGEPROXY_SANITIZED
# is set), and the testssl.sh scan (a minute of handshakes the TLS tests already
# drive through the same code; it checks the settings, which do not change here).
ASAN_DESELECT ?= \
	--deselect tests/integration/test_foundation.py::test_binary_is_static_and_stripped \
	--deselect tests/integration/test_foundation.py::test_version_names_target_and_libraries \
	--deselect tests/integration/test_proxy.py::test_64mib_response_to_slow_reader_keeps_memory_bounded \
	--deselect tests/integration/test_real_upstreams.py::test_slow_reader_of_50mib_keeps_edgeproxy_rss_bounded \
	--deselect tests/integration/test_testssl.py
ASAN_PYTEST_ARGS ?=

.PHONY: asan test-asan valgrind

asan: $(ASAN_BIN)

$(ASAN_DIR)/obj/%.o: src/%.c $(DEPS)/toolchain.mk
	@mkdir -p $(dir $@)
	gcc $(ASAN_CFLAGS) -c $< -o $@

$(ASAN_DIR)/lib/ev.o: build/src/libev-4.33/ev.c $(DEPS)/toolchain.mk
	@mkdir -p $(dir $@)
	gcc -g -O1 $(ASAN_SANITIZE) -fno-strict-aliasing -w $(ASAN_LIBEV_DEFS) -c $< -o $@

$(ASAN_DIR)/lib/ini.o: build/src/inih-r59/ini.c $(DEPS)/toolchain.mk
	@mkdir -p $(dir $@)
	gcc -g -O1 $(ASAN_SANITIZE) $(INIH_DEFS) -c $< -o $@

build/src/libev-4.33/ev.c build/src/inih-r59/ini.c: $(DEPS)/toolchain.mk

$(ASAN_BIN): $(ASAN_OBJS) $(ASAN_LIB_OBJS) $(HOST_BEARSSL)
	gcc $(ASAN_SANITIZE) $(ASAN_OBJS) $(ASAN_LIB_OBJS) $(HOST_BEARSSL) -lm -o $@
	@ls -l $@ | awk '{ printf "%s: %d bytes (ASan+UBSan, glibc)\n", $$NF, $$5 }'

-include $(ASAN_OBJS:.o=.d)

test-asan: $(ASAN_BIN) | test-deps
	@rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS)
	@# --basetemp: pytest prunes old numbered dirs in /tmp/pytest-of-USER, which
	@# removes the live one of a concurrent session (seen: every tmp_path test erred).
	$(ASAN_TEST_ENV) /usr/bin/python3 -m pytest -q -p conftest_asan -p no:cacheprovider \
		--basetemp=$(abspath $(ASAN_DIR))/pytest-tmp $(ASAN_DESELECT) $(ASAN_PYTEST_ARGS) tests/integration

# ---- a plain glibc build for valgrind ---------------------------------------------
VG_DIR := build/valgrind
VG_BIN := $(VG_DIR)/edgeproxy
VG_CFLAGS := $(filter-out $(ASAN_SANITIZE),$(ASAN_CFLAGS))
VG_OBJS := $(SRCS:src/%.c=$(VG_DIR)/obj/%.o)

$(VG_DIR)/obj/%.o: src/%.c $(DEPS)/toolchain.mk
	@mkdir -p $(dir $@)
	gcc $(VG_CFLAGS) -c $< -o $@

$(VG_DIR)/lib/ev.o: build/src/libev-4.33/ev.c $(DEPS)/toolchain.mk
	@mkdir -p $(dir $@)
	gcc -g -O1 -fno-strict-aliasing -w $(ASAN_LIBEV_DEFS) -c $< -o $@

$(VG_DIR)/lib/ini.o: build/src/inih-r59/ini.c $(DEPS)/toolchain.mk
	@mkdir -p $(dir $@)
	gcc -g -O1 $(INIH_DEFS) -c $< -o $@

$(VG_BIN): $(VG_OBJS) $(VG_DIR)/lib/ev.o $(VG_DIR)/lib/ini.o $(HOST_BEARSSL)
	gcc $(VG_OBJS) $(VG_DIR)/lib/ev.o $(VG_DIR)/lib/ini.o $(HOST_BEARSSL) -lm -o $@

-include $(VG_OBJS:.o=.d)

valgrind: $(VG_BIN) | test-deps
	/usr/bin/python3 tools/valgrind_load.py $(VG_BIN)
