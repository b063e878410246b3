# tools/analyze.mk - static analysis of src/ (issue 10): GCC's analyzer and
# cppcheck; a finding of either fails the target. Included by the Makefile after
# SRCS, COMMON_CFLAGS, VERSION and LIB_VERSIONS:
#
#     include tools/analyze.mk
#
#   make analyze            both of the following
#   make analyze-gcc        every src/*.c through host gcc -fanalyzer -Werror, with the
#                           release build's language, warning and inih flags and the
#                           vendor headers (glibc instead of musl, as tools/asan.mk);
#                           objects go to build/analyze/obj, so a rerun analyzes only
#                           what changed
#   make analyze-cppcheck   cppcheck --enable=warning,portability,performance over src/
#
# A false positive is silenced where it is reported, with the reason beside it:
# ANALYZER_IGNORE (src/analyzer.h) for GCC, `// cppcheck-suppress ID` for cppcheck.

ANALYZE_DIR := build/analyze
ANALYZE_INC := -Ibuild/src/libev-4.33 -Ibuild/src/inih-r59 -Ibuild/src/bearssl-0.6/inc
ANALYZE_DEFS := -DEDGEPROXY_VERSION='"$(VERSION)"' -DEDGEPROXY_TRIPLE='"x86_64-linux-gnu (analyze)"' \
	-DEDGEPROXY_LIBS='"$(LIB_VERSIONS)"'
# -Os as the release build: the analyzer runs after the early optimizations, which
# the level changes.
ANALYZE_CFLAGS := $(COMMON_CFLAGS) -Os -fanalyzer -Werror -MMD -MP $(ANALYZE_INC) $(ANALYZE_DEFS)
ANALYZE_OBJS := $(SRCS:src/%.c=$(ANALYZE_DIR)/obj/%.o)

# --library=posix: cppcheck's knowledge of the POSIX calls (descriptors, argument
# rules) besides the C library's. The -D set is the build's: with any -D given,
# cppcheck checks that one configuration instead of guessing others. The build dir
# keeps results per file for reruns and turns on the whole-program (ctu) checks. No
# -j: cppcheck 2.10 with -j prints ctu findings but still exits 0.
CPPCHECK_FLAGS := --enable=warning,portability,performance --library=posix --std=c11 \
	--error-exitcode=1 --inline-suppr -q --cppcheck-build-dir=$(ANALYZE_DIR)/cppcheck \
	-D_GNU_SOURCE $(INIH_DEFS) $(ANALYZE_DEFS) -Isrc $(ANALYZE_INC)

.PHONY: analyze analyze-gcc analyze-cppcheck

analyze: analyze-gcc analyze-cppcheck

analyze-gcc: $(ANALYZE_OBJS)

$(ANALYZE_DIR)/obj/%.o: src/%.c $(DEPS)/toolchain.mk
	@mkdir -p $(dir $@)
	@echo "analyze $<"
	@gcc $(ANALYZE_CFLAGS) -c $< -o $@

-include $(ANALYZE_OBJS:.o=.d)

analyze-cppcheck: $(ANALYZE_DIR)/cppcheck.ok

$(ANALYZE_DIR)/cppcheck.ok: $(wildcard src/*.c src/*.h) $(DEPS)/toolchain.mk | test-deps
	@mkdir -p $(ANALYZE_DIR)/cppcheck
	cppcheck $(CPPCHECK_FLAGS) src/
	@touch $@
