#!/bin/bash
# Builds build/$TARGET/acme_driver: tests/acme_driver.c linked with the ACME client's
# modules, static against musl, BearSSL and libev like edgeproxy itself. Used by
# tests/integration/test_acme.py (and the Makefile) until the proxy runs acme.c.
set -eu
cd "$(dirname "$0")/.."
target=${TARGET:-x86_64}
deps=build/$target/deps
cc=$(sed -n 's/^CC := //p' "$deps/toolchain.mk")
version=$(sed -n 's/^VERSION := //p' Makefile)
out=build/$target/acme_driver
srcs="tests/acme_driver.c src/acme.c src/acme_board.c src/acme_config.c src/acme_roots.c src/child.c src/csr.c src/der.c
	src/fsutil.c src/http_client.c src/json.c src/jws.c src/http_parse.c src/strbuf.c
	src/rand.c src/log.c src/tls_cert.c src/timefmt.c src/confval.c
	src/ec_impl.c src/ecdsa.c src/p256.c src/x25519.c"
# shellcheck disable=SC2086
$cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -fno-strict-aliasing \
	-Os -g -I"$deps/include" -Isrc -DEDGEPROXY_VERSION="\"$version\"" -static $srcs \
	-L"$deps/lib" -lbearssl -lev -o "$out"
echo "$out"
