# tools/cross.mk - cross builds, emulated tests, release files, firmware images.
# Included at the very end of the top-level Makefile (`include tools/cross.mk`), so
# every variable there (TARGET, BUILD, DEPS, BIN, CC, CFLAGS, LDFLAGS, LIBS, STRIP,
# TRIPLE, QEMU) is already set. See firmware/README.md.
#
#   make TARGET=aarch64            build/aarch64/edgeproxy (also armv7, mipsel, mips)
#   make release                   every target, build/release/edgeproxy-<triple> + SHA256SUMS
#   make size-report               stripped size of every target against the SPEC limit
#   make size-check                the same, failing when a target is over the limit
#   make test-cross                smoke suite (tests/cross/smoke.sh) under qemu-user per target
#   make TARGET=x test-cross-integration   the whole integration suite under qemu-user (slow)
#   make TARGET=x tlsspeed         build/<x>/tlsspeed: BearSSL speed with the shipped flags
#   make tlsspeed-report           build and run tlsspeed for every target (qemu for foreign ones)
#   make container-test            OCI image + docker tar without Docker; skopeo, umoci, run FROM scratch
#   make rootfs-test               this TARGET's scratch root filesystem, run under unshare+chroot
#   make image                     bootable aarch64 initramfs (firmware/arm-image); image-test boots it
#   make init-test                 systemd/OpenRC/SysV/procd scripts: shellcheck and a live run
#   make firmware-test             init-test + container-test + image-test

CROSS_TARGETS ?= x86_64 aarch64 armv7 mipsel mips
TEST_CROSS_TARGETS ?= aarch64 armv7 mipsel mips
SIZE_LIMIT_KIB ?= 400
RELEASE_DIR := build/release

# ---- per-target flags ---------------------------------------------------------
# aarch64: 16 KiB maximum page size instead of binutils' 64 KiB default (TOOLCHAIN
# §5): loads on 4K and 16K page kernels (Raspberry Pi 5 uses 16K), not on 64K-page
# ones (some server distributions). Segment alignment can cost file size; with the
# current layout both settings give the same size.
CROSS_LDFLAGS_aarch64 := -Wl,-z,max-page-size=16384
# MIPS: -mips16 (MIPS16e, on every 24Kc/34Kc/74Kc/1004Kc core OpenWrt targets, and
# OpenWrt's own default for packages) makes the program about a third smaller.
# src/ gets it, and so do musl, libev and inih where they can (vendor/build-musl.sh,
# vendor/mips16-cc.sh); BearSSL stays 32-bit MIPS code, so the crypto keeps its
# speed (tools/tlsspeed.c measures it). The code model comes with the compiler
# (vendor/common.sh): abicalls, non-PIC (-mno-shared -mplt), -minterlink-mips16 so
# 32-bit code may call MIPS16 code. Abicalls stays: mixing -mno-abicalls objects
# with abicalls libraries links, but a call through a function pointer into a
# library (a BearSSL vtable) then runs with a wrong $gp and crashes.
# Override with MIPS_CFLAGS= for plain 32-bit MIPS code in src/.
MIPS_CFLAGS ?= -mips16
CROSS_CFLAGS_mipsel = $(MIPS_CFLAGS)
CROSS_CFLAGS_mips = $(MIPS_CFLAGS)

TARGET_CFLAGS_EXTRA := $(CROSS_CFLAGS_$(TARGET))
TARGET_LDFLAGS_EXTRA := $(CROSS_LDFLAGS_$(TARGET))
CFLAGS += $(TARGET_CFLAGS_EXTRA)
LDFLAGS += $(TARGET_LDFLAGS_EXTRA)

# Objects and the binary are rebuilt when these per-target flags change: the flags
# are written to a stamp that only changes when they do.
CROSS_FLAGS_STAMP := $(BUILD)/.cross-flags
CROSS_FLAGS_NOW := cflags=$(strip $(TARGET_CFLAGS_EXTRA)) ldflags=$(strip $(TARGET_LDFLAGS_EXTRA))
ifneq ($(file < $(CROSS_FLAGS_STAMP)),$(CROSS_FLAGS_NOW))
$(shell mkdir -p $(BUILD) && printf '%s\n' '$(CROSS_FLAGS_NOW)' > $(CROSS_FLAGS_STAMP))
endif
$(OBJS) $(BIN): $(CROSS_FLAGS_STAMP)
$(CROSS_FLAGS_STAMP):
	@mkdir -p $(dir $@)
	@printf '%s\n' '$(CROSS_FLAGS_NOW)' > $@

# qemu CPU models for the emulated tests: the oldest core each build claims to
# support, so an instruction the real boxes lack fails here too (24Kc has no FPU).
QEMU_CPU_aarch64 := cortex-a53
QEMU_CPU_armv7 := cortex-a7
QEMU_CPU_mipsel := 24Kc
QEMU_CPU_mips := 24Kc
RUNNER = $(if $(QEMU),$(QEMU)$(if $(QEMU_CPU_$(TARGET)), -cpu $(QEMU_CPU_$(TARGET))))

.PHONY: release size-report size-check test-cross test-cross-one test-cross-integration tlsspeed tlsspeed-run tlsspeed-report \
	rootfs-test container-test image image-arm image-test init-test firmware-test firmware-deps clean-cross all-targets

# Sub-makes one target at a time: each reads its own toolchain.mk; two cross
# builds at once only fight over the CPUs.
all-targets:
	@set -e; for t in $(CROSS_TARGETS); do $(MAKE) --no-print-directory TARGET=$$t all; done

release: all-targets
	@rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	@set -e; for t in $(CROSS_TARGETS); do \
		triple=$$(sed -n 's/^TRIPLE := //p' build/$$t/deps/toolchain.mk); \
		if readelf -lW build/$$t/edgeproxy | grep -q 'INTERP\|DYNAMIC'; then \
			echo "build/$$t/edgeproxy is not a static executable" >&2; exit 1; fi; \
		cp build/$$t/edgeproxy $(RELEASE_DIR)/edgeproxy-$$triple; \
	done
	cd $(RELEASE_DIR) && sha256sum edgeproxy-* > SHA256SUMS
	@cat $(RELEASE_DIR)/SHA256SUMS
	@$(MAKE) --no-print-directory size-report CROSS_SKIP_BUILD=1

size-report size-check: $(if $(CROSS_SKIP_BUILD),,all-targets)
	@printf '%-8s %-22s %9s %8s %8s %7s %7s  %s\n' target triple bytes KiB text data bss "limit $(SIZE_LIMIT_KIB) KiB"
	@over=0; for t in $(CROSS_TARGETS); do \
		tc=build/$$t/deps/toolchain.mk; b=build/$$t/edgeproxy; \
		if [ ! -f $$b ] || [ ! -f $$tc ]; then printf '%-8s (not built)\n' $$t; over=1; continue; fi; \
		triple=$$(sed -n 's/^TRIPLE := //p' $$tc); strip=$$(sed -n 's/^STRIP := //p' $$tc); \
		bytes=$$(stat -c %s $$b); \
		set -- $$($${strip%strip}size $$b.unstripped | awk 'NR==2 { print $$1, $$2, $$3 }'); \
		verdict=ok; [ $$bytes -lt $$(($(SIZE_LIMIT_KIB) * 1024)) ] || { verdict=OVER; over=1; }; \
		printf '%-8s %-22s %9d %8s %8s %7s %7s  %s\n' $$t $$triple $$bytes $$(awk "BEGIN { printf \"%.1f\", $$bytes / 1024 }") \
			$$1 $$2 $$3 $$verdict; \
	done; \
	if [ "$@" = size-check ] && [ $$over = 1 ]; then echo "size-check: over $(SIZE_LIMIT_KIB) KiB" >&2; exit 1; fi

# ---- emulated smoke tests -------------------------------------------------------
# One target: build, then tests/cross/smoke.sh with the qemu runner for it.
# First the EC unit test (tests/unit/test_ec.c) built for the target: on 64-bit
# targets edgeproxy's own P-256/X25519 checked against BearSSL's reference code on
# the emulated CPU.
CROSS_TEST_EC := $(BUILD)/test_ec
$(CROSS_TEST_EC): tests/unit/test_ec.c tests/unit/test.h $(EC_SRCS) $(wildcard src/*.h) $(DEPS)/toolchain.mk
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) -Isrc -Itests/unit $(LDFLAGS) $< $(EC_SRCS) $(LIBS) -o $@
test-cross-one: $(BIN) $(CROSS_TEST_EC)
	$(RUNNER) $(CROSS_TEST_EC)
	EDGEPROXY_BIN=$(abspath $(BIN)) EDGEPROXY_RUNNER='$(RUNNER)' EXPECT_TRIPLE=$(TRIPLE) \
		bash tests/cross/smoke.sh

test-cross:
	@failed=""; for t in $(TEST_CROSS_TARGETS); do \
		echo "==== test-cross $$t"; \
		$(MAKE) --no-print-directory TARGET=$$t test-cross-one || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-cross FAILED:$$failed" >&2; exit 1; fi; \
	echo "test-cross: all passed ($(TEST_CROSS_TARGETS))"

# The whole integration suite (tests/integration) against one cross binary, through
# a wrapper that execs qemu-user (the harness runs EDGEPROXY_BIN directly; exec keeps
# the PID, so signals reach the emulated process). About 6 minutes per target.
# Deselected, because they measure the emulator rather than the program: the
# static-binary check (sees the wrapper), SIGUSR2 upgrade (the new process is
# exec'd without qemu: no binfmt_misc), RSS bound (counts qemu's translation
# cache), /proc uid right after listen (the emulated drop comes later). TARGET is
# unset for pytest: test_acme.py builds its host-side ACME driver from it.
CROSS_INTEGRATION_DESELECT := \
	tests/integration/test_foundation.py::test_binary_is_static_and_stripped \
	tests/integration/test_lifecycle.py::test_sigusr2_upgrade_under_load \
	tests/integration/test_lifecycle.py::test_runs_as_configured_user \
	tests/integration/test_proxy.py::test_64mib_response_to_slow_reader_keeps_memory_bounded
test-cross-integration: $(BIN)
	@printf '#!/bin/sh\nexec $(RUNNER) %s "$$@"\n' $(abspath $(BIN)) > $(BUILD)/edgeproxy-runner
	@chmod +x $(BUILD)/edgeproxy-runner
	env -u TARGET EDGEPROXY_BIN=$(abspath $(BUILD)/edgeproxy-runner) /usr/bin/python3 -m pytest -q -p no:cacheprovider \
		tests/integration $(addprefix --deselect ,$(CROSS_INTEGRATION_DESELECT))

# ---- BearSSL speed (tools/tlsspeed.c) ---------------------------------------------
# Same compiler, flags and libraries as edgeproxy itself.
TLSSPEED := $(BUILD)/tlsspeed
tlsspeed: $(TLSSPEED)
$(TLSSPEED): tools/tlsspeed.c $(EC_SRCS) $(DEPS)/toolchain.mk $(CROSS_FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(CFLAGS)) -Isrc $(LDFLAGS) $< $(EC_SRCS) $(LIBS) -o $@.unstripped
	$(STRIP) -R .comment -o $@ $@.unstripped

TLSSPEED_ARGS ?=
tlsspeed-run: $(TLSSPEED)
	@echo "==== tlsspeed $(TARGET) ($(TRIPLE))$(if $(QEMU), under $(RUNNER): relative numbers only)"
	$(RUNNER) $(TLSSPEED) $(TLSSPEED_ARGS)

tlsspeed-report:
	@set -e; for t in $(CROSS_TARGETS); do $(MAKE) --no-print-directory TARGET=$$t tlsspeed-run; done

# ---- firmware ------------------------------------------------------------------------
# FROM scratch image without a Docker engine: OCI layout + docker-load tars in
# build/oci, checked with skopeo/umoci, unpacked and run under unshare+chroot.
CONTAINER_TARGETS ?= x86_64 aarch64 armv7
firmware-deps:
	@sh firmware/install-deps.sh

container-test: firmware-deps
	@set -e; for t in $(CONTAINER_TARGETS); do $(MAKE) --no-print-directory TARGET=$$t all; done
	bash firmware/container/test.sh $(CONTAINER_TARGETS)

# The image's root filesystem for this TARGET, run with nothing else in it.
rootfs-test: $(BIN)
	bash firmware/container/mkrootfs.sh build/$(TARGET)/rootfs $(BIN)
	bash firmware/container/run-rootfs.sh build/$(TARGET)/rootfs $(if $(QEMU),$(QEMU))

# Bootable initramfs for emulated ARM (Debian arm64 kernel + BusyBox init + edgeproxy).
image image-arm:
	@$(MAKE) --no-print-directory TARGET=aarch64 all
	bash firmware/arm-image/build.sh build/aarch64/edgeproxy

image-test: firmware-deps image
	bash firmware/arm-image/boot-test.sh

# Init scripts (systemd, OpenRC, SysV, OpenWrt procd): shellcheck, systemd-analyze,
# and the SysV and procd scripts driving the native binary.
init-test: firmware-deps
	@$(MAKE) --no-print-directory TARGET=x86_64 all
	bash firmware/init/test-init.sh build/x86_64/edgeproxy
	bash firmware/openwrt/test-init.sh build/x86_64/edgeproxy

firmware-test: init-test container-test image-test

clean: clean-cross
clean-cross:
	rm -rf $(RELEASE_DIR) build/oci build/arm-image/root build/*/rootfs build/*/tlsspeed build/*/tlsspeed.unstripped \
		build/*/.cross-flags
