# Make variables for building edgeproxy against the vendored, musl-based deps.
#
# Usage in the top-level Makefile (GNU make):
#
#   TARGET ?= x86_64
#   include vendor/deps.mk
#
#   $(DEPS_STAMP): FORCE                    # deps.sh is a no-op in <1 s when
#   	$(VENDOR_DEPS) $(TARGET) $(DEPS_DIR)  # up to date, and only rewrites
#   FORCE:                                  # the stamp when it rebuilt
#   $(OBJS): $(DEPS_STAMP)
#   %.o: %.c ; $(MUSL_CC) $(CFLAGS) $(DEPS_CFLAGS) $(DEPS_CPPFLAGS) -c $< -o $@
#   edgeproxy: $(OBJS) ; $(MUSL_CC) $(LDFLAGS) $(DEPS_LDFLAGS) $^ $(DEPS_LDLIBS) -o $@
#
# This file defines variables only (no rules, so it cannot steal the default
# goal) and leaves CC alone, so host builds (unit tests under ASan) keep
# using the host compiler.  Values come from vendor/env.sh, the single
# source of truth; it only computes paths and builds nothing.

VENDOR_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
TARGET ?= x86_64
DEPS_DIR ?= build/$(TARGET)/deps
DEPS_STAMP := $(DEPS_DIR)/.stamp
VENDOR_DEPS := $(VENDOR_DIR)/deps.sh

_vendor_env = $(shell $(VENDOR_DIR)/env.sh $(TARGET) $(1))
MUSL_PREFIX   := $(call _vendor_env,MUSL_PREFIX)
ifeq ($(MUSL_PREFIX),)
$(error vendor/env.sh rejected TARGET '$(TARGET)' (x86_64 aarch64 armv7 mipsel mips))
endif
TRIPLE        := $(call _vendor_env,TRIPLE)
TARGET_CFLAGS := $(call _vendor_env,TARGET_CFLAGS)
# musl's gcc wrapper; for mipsel/mips it carries -msoft-float.
MUSL_CC       := $(MUSL_PREFIX)/bin/musl-gcc $(TARGET_CFLAGS)
TARGET_AR     := $(call _vendor_env,AR)
TARGET_STRIP  := $(call _vendor_env,STRIP)
# Empty for a native target: run the binary directly.
QEMU          := $(call _vendor_env,QEMU)

DEPS_CPPFLAGS := -I$(DEPS_DIR)/include
# ev.h's ev_*_init macros break strict-aliasing rules, in *user* code too.
DEPS_CFLAGS   := -fno-strict-aliasing -ffunction-sections -fdata-sections
# musl has no shared libc here: every link must be -static.
DEPS_LDFLAGS  := -static -L$(DEPS_DIR)/lib -Wl,--gc-sections
DEPS_LDLIBS   := -lbearssl -lev -linih
