# tests/acme.mk - build settings for the ACME client's tests, included by the Makefile
# after its UNIT_/FUZZ_ variables and HOST_BEARSSL are defined:
#     include tests/acme.mk
# (the unit-test and fuzz rules pick test_<name>.c / fuzz_<name>.c up by wildcard;
# these lines give them their sources).

UNIT_SRCS_json := src/json.c
UNIT_SRCS_jws := $(EC_SRCS) src/jws.c src/json.c src/der.c src/timefmt.c src/strbuf.c src/rand.c $(HOST_BEARSSL)
UNIT_SRCS_csr := $(EC_SRCS) src/csr.c src/jws.c src/der.c src/timefmt.c src/strbuf.c src/rand.c src/tls_cert.c $(HOST_BEARSSL)
UNIT_SRCS_acme_config := $(EC_SRCS) src/acme_config.c src/jws.c src/der.c src/timefmt.c src/strbuf.c src/rand.c \
	src/fsutil.c src/confval.c src/http_client.c src/child.c src/http_parse.c \
	tests/unit/ev_host.c $(HOST_BEARSSL)
UNIT_SRCS_http_client := $(EC_SRCS) src/http_client.c src/child.c src/der.c src/timefmt.c src/http_parse.c src/rand.c \
	tests/unit/ev_host.c $(HOST_BEARSSL)
UNIT_SRCS_child := src/child.c tests/unit/ev_host.c
UNIT_SRCS_fsutil := src/fsutil.c src/rand.c $(HOST_BEARSSL)
UNIT_SRCS_der := src/der.c src/timefmt.c $(HOST_BEARSSL)
ACME_UNIT_BEARSSL := jws csr acme_config http_client fsutil der
$(ACME_UNIT_BEARSSL:%=build/unit/test_%): $(HOST_BEARSSL)
# libev from its pinned source for the host (tests/unit/ev_host.c sets its
# configuration; -isystem keeps its warnings out of ours)
ACME_UNIT_LIBEV := acme_config http_client child
$(ACME_UNIT_LIBEV:%=build/unit/test_%): UNIT_CFLAGS += -isystem build/src/libev-4.33
$(ACME_UNIT_LIBEV:%=build/unit/test_%): tests/unit/ev_host.c

FUZZ_SRCS_json := src/json.c

# The ACME client on its own event loop, proven against Pebble by
# tests/integration/test_acme.py before the proxy runs it.
ACME_DRIVER := $(BUILD)/acme_driver
$(ACME_DRIVER): tests/acme_driver.c tests/build-acme-driver.sh $(wildcard src/*.[ch]) $(DEPS)/toolchain.mk
	TARGET=$(TARGET) bash tests/build-acme-driver.sh
integration: $(ACME_DRIVER)
