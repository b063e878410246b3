#!/bin/bash
# Installs what the test suite needs on a Debian machine (as root), and only what
# is missing: curl and openssl as clients, python3 + pytest for the integration
# harness, clang + its runtime for fuzzing, nginx for the benchmark and as an
# upstream, Go for the backend that tests/backend/main.go holds, valgrind for the
# leak run (make valgrind), testssl.sh for the TLS scan
# (tests/integration/test_testssl.py), cppcheck for `make analyze`.
set -eu
pkgs="curl openssl python3 python3-pytest gcc clang libclang-rt-14-dev nginx-light wrk haproxy procps golang-go prometheus chromium pebble valgrind testssl.sh cppcheck"
missing=""
for p in $pkgs; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-test-deps: missing packages:$missing (run as root or install them)" >&2
	exit 1
fi
echo "install-test-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# nginx's package starts a service on install where an init system runs; the
# policy-rc.d guard keeps the test machine's port 80 free.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
