#!/usr/bin/env bash
# The container image test, without a Docker engine:
#   1. build the image (oci.py) as an OCI layout and docker-load tars for TARGETS,
#   2. check it with skopeo (manifest, config: user, entrypoint, healthcheck, ports)
#      and umoci (unpack verifies every digest),
#   3. unpack each target's image into an empty directory and run it there under
#      unshare + chroot (run-rootfs.sh): it must serve the hello backend on :80, TLS on
#      :443, pass its own HEALTHCHECK command and stop cleanly, as uid 65534.
#
#   firmware/container/test.sh [TARGET...]     (default: x86_64 aarch64; binaries from build/TARGET)
# Needs skopeo and umoci (apt-get install skopeo umoci) and root for step 3's
# namespaces (else user namespaces).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OCI_OUT:-$ROOT/build/oci}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(x86_64 aarch64)
for c in skopeo umoci python3; do
	command -v $c >/dev/null || { echo "test.sh: $c is needed (apt-get install skopeo umoci)" >&2; exit 2; }
done
declare -A ARCH=([x86_64]=amd64 [aarch64]=arm64 [armv7]=arm [mipsel]=mipsle [mips]=mips)
declare -A QEMU=([aarch64]=qemu-aarch64-static [armv7]=qemu-arm-static [mipsel]=qemu-mipsel-static [mips]=qemu-mips-static)
VERSION=$(sed -n 's/^VERSION := //p' "$ROOT/Makefile")

specs=()
for t in "${TARGETS[@]}"; do specs+=("$t=$ROOT/build/$t/edgeproxy"); done
python3 "$HERE/oci.py" --out "$OUT" --version "$VERSION" "${specs[@]}"

fail=0
W=$(mktemp -d /tmp/edgeproxy-oci.XXXXXX)
trap 'rm -rf "$W"' EXIT
for t in "${TARGETS[@]}"; do
	a=${ARCH[$t]} ref="oci:$OUT/layout:$VERSION-$a"
	echo "== $t ($a)"
	cfg=$(skopeo inspect --config "$ref")
	if python3 - "$a" "$cfg" <<'PY'; then echo "  ok    skopeo: OCI config"; else echo "  FAIL  skopeo: OCI config"; fail=1; fi
import json, sys
arch, c = sys.argv[1], json.loads(sys.argv[2])
k = c["config"]
assert c["architecture"] == arch and c["os"] == "linux", c
assert k["User"] == "65534:65534" and k["Entrypoint"] == ["/edgeproxy"] and k["Cmd"] == ["run"], k
assert set(k["ExposedPorts"]) == {"80/tcp", "443/tcp"} and "/var/lib/edgeproxy" in k["Volumes"], k
PY
	if skopeo inspect --raw --config "docker-archive:$OUT/edgeproxy-$a.docker.tar" |
		python3 -c 'import json,sys; h=json.load(sys.stdin)["config"]["Healthcheck"]; assert h["Test"]==["CMD","/edgeproxy","healthcheck"], h'; then
		echo "  ok    skopeo: docker archive loads, HEALTHCHECK = edgeproxy healthcheck"
	else
		echo "  FAIL  skopeo: docker archive"; fail=1
	fi
	rm -rf "$W/bundle"
	if umoci unpack --image "$OUT/layout:$VERSION-$a" "$W/bundle" >/dev/null; then
		echo "  ok    umoci unpack (digests verified): $(cd "$W/bundle/rootfs" && find . -mindepth 1 | sort | tr '\n' ' ')"
	else
		echo "  FAIL  umoci unpack"; fail=1; continue
	fi
	bash "$HERE/run-rootfs.sh" "$W/bundle/rootfs" "${QEMU[$t]:-}" || fail=1
done
skopeo inspect --raw "oci:$OUT/layout:$VERSION" | python3 -c '
import json, sys
m = json.load(sys.stdin)["manifests"]
print("  ok    multi-platform index '"$VERSION"':", ", ".join(x["platform"]["architecture"] for x in m))'
if [ $fail != 0 ]; then echo "container image test: FAILED"; exit 1; fi
echo "container image test: passed"
