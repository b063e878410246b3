#!/usr/bin/env bash
# Fetch, verify and unpack the pinned third-party sources into build/src/.
#
# usage: vendor/fetch.sh [ROOT] [COMPONENT...]
#   ROOT        repo root (default: the directory above vendor/)
#   COMPONENT   bearssl libev inih musl (default: all four) and/or gcc-softfp
#               (GCC's soft-float sources, needed only for mipsel/mips)
# env:
#   EDGEPROXY_FETCH=debian|upstream  where from (default debian, see README.md)
#   EDGEPROXY_APT_URIS="URI..."      Debian mirror(s) to use instead of the
#                                    ones parsed from /etc/apt
#   EDGEPROXY_UPSTREAM_MIRROR=URL    upstream mode: fetch URL/<file name>
#                                    (a local mirror, or file:///dir) instead
#                                    of the projects' sites
#   EDGEPROXY_FORCE=1                unpack again even if the stamps match
#
# Result: build/src/{bearssl-0.6,libev-4.33,inih-r59,musl-1.2.5}, each with a
# build/src/.stamp-<name> written only after its checksums matched.  Verified
# downloads stay in build/src/dl/, so unpacking again needs no network.
set -euo pipefail

if [ $# -gt 0 ] && [ -d "$1" ]; then
	EDGEPROXY_ROOT=$(cd "$1" && pwd)
	export EDGEPROXY_ROOT
	shift
fi
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

MODE=${EDGEPROXY_FETCH:-debian}
case $MODE in
debian | upstream) ;;
*) die "EDGEPROXY_FETCH must be 'debian' or 'upstream', not '$MODE'" ;;
esac

DL=$SRC_DIR/dl
# Scratch paths removed on any exit, so a failed run leaves nothing behind
# that could be mistaken for a result.
SCRATCH=()
cleanup() { [ ${#SCRATCH[@]} -eq 0 ] || rm -rf "${SCRATCH[@]}"; }
trap cleanup EXIT
LOG=$EDGEPROXY_ROOT/build/log/fetch.log

[ $# -gt 0 ] || set -- bearssl libev inih musl

# ---- per-component facts ---------------------------------------------------
# comp_vars NAME sets: C_DIR (unpacked dir), C_STAMP (expected stamp text),
# C_FILES ("file sha256" lines to have in dl/), C_DEBSRC (apt-get source arg),
# C_URL (upstream URL of the single upstream file).
comp_vars() {
	C_DEBSRC="" C_URL=""
	case $1 in
	bearssl | libev | inih)
		local U=${1^^}
		C_DIR=$(eval "printf %s \"\$${U}_DIR\"")
		if [ "$MODE" = debian ]; then
			local f s v p
			f=$(eval "printf %s \"\$${U}_DEB_FILE\"")
			s=$(eval "printf %s \"\$${U}_DEB_SHA256\"")
			p=$(eval "printf %s \"\$${U}_DEB_SOURCE\"")
			v=$(eval "printf %s \"\$${U}_DEB_VERSION\"")
			C_FILES="$f $s"
			C_DEBSRC="$p=$v"
			C_STAMP="$1 debian $v sha256=$s"
			if [ "$1" = bearssl ]; then C_STAMP="$C_STAMP max-suites=$BEARSSL_MAX_CIPHER_SUITES"; fi
		else
			local f s
			f=$(eval "printf %s \"\$${U}_UP_FILE\"")
			s=$(eval "printf %s \"\$${U}_UP_SHA256\"")
			C_URL=$(eval "printf %s \"\$${U}_UP_URL\"")
			C_FILES="$f $s"
			C_STAMP="$1 upstream sha256=$s"
			if [ "$1" = bearssl ]; then C_STAMP="$C_STAMP max-suites=$BEARSSL_MAX_CIPHER_SUITES"; fi
		fi
		;;
	musl)
		C_DIR=$MUSL_DIR
		C_STAMP=$(musl_src_stamp)
		if [ "$MODE" = debian ]; then
			# The .dsc and .asc are not pinned: apt checked them against
			# the signed Sources index, and dpkg-source checks the two
			# pinned tarballs against the .dsc again.
			C_FILES="$MUSL_DEB_FILE $MUSL_DEB_SHA256
$MUSL_DEB_DEBIAN_FILE $MUSL_DEB_DEBIAN_SHA256
$MUSL_DEB_DSC -
$MUSL_DEB_ORIG_ASC -"
			C_DEBSRC="$MUSL_DEB_SOURCE=$MUSL_DEB_VERSION"
		else
			C_FILES="$MUSL_UP_FILE $MUSL_UP_SHA256"
			C_URL=$MUSL_UP_URL
		fi
		;;
	gcc-softfp)
		C_DIR=$GCC_SRC_TOPDIR-softfp
		C_STAMP="gcc-softfp $GCC_SRC_DEB_VERSION sha256=$GCC_SRC_SHA256"
		C_FILES="$GCC_SRC_FILE $GCC_SRC_SHA256"
		;;
	*) die "unknown component '$1' (bearssl libev inih musl gcc-softfp)" ;;
	esac
}

is_current() {
	[ "${EDGEPROXY_FORCE:-0}" != 1 ] && [ -d "$SRC_DIR/$C_DIR" ] &&
		[ -f "$SRC_DIR/.stamp-$1" ] && [ "$(cat "$SRC_DIR/.stamp-$1")" = "$C_STAMP" ]
}

# Fast path first: everything requested is already unpacked and stamped.
todo=()
for c in "$@"; do
	comp_vars "$c"
	is_current "$c" || todo+=("$c")
done
[ ${#todo[@]} -gt 0 ] || exit 0

mkdir -p "$DL"
lock "$SRC_DIR/.fetch.lock"
mkdir -p "$(dirname "$LOG")"
: >"$LOG"

# Drop a cached download whose bytes no longer match its pin (a truncated
# earlier run, or a pin that changed); it is fetched again below.
have_verified() {
	[ -f "$DL/$1" ] || return 1
	[ "$2" = - ] && return 0
	[ "$(sha256_of "$DL/$1")" = "$2" ] && return 0
	warn "cached $DL/$1 does not match its pin; fetching it again"
	rm -f "$DL/$1"
	return 1
}

# ---- Debian: apt-get source with a throwaway configuration -----------------

# Print "URI SIGNED-BY" for every Debian archive entry configured on this
# machine (one-line sources.list files and deb822 .sources files).  Only
# entries for Debian release suites count: security, third-party and Ubuntu
# repositories do not carry our source packages.
apt_debian_uris() {
	local suite_re='^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)(-updates|-backports|-proposed-updates)?$'
	local f files=()
	[ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
	for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && files+=("$f"); done
	if [ ${#files[@]} -gt 0 ]; then
		awk -v re="$suite_re" '
		/^[ \t]*(#|$)/ { next }
		$1 != "deb" && $1 != "deb-src" { next }
		{
			line = $0; sb = "-"
			if (match(line, /\[[^]]*\]/)) {
				opts = substr(line, RSTART + 1, RLENGTH - 2)
				line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
				n = split(opts, o, /[ \t]+/)
				for (i = 1; i <= n; i++)
					if (o[i] ~ /^signed-by=\//) sb = substr(o[i], 11)
			}
			split(line, w, /[ \t]+/)
			# w[1]=type w[2]=uri w[3]=suite
			if (w[2] !~ /^cdrom:/ && w[3] ~ re) print w[2], sb
		}' "${files[@]}"
	fi
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v re="$suite_re" '
		function flush(   i, n, u, s, ok) {
			if (types ~ /(^|[ \t])deb(-src)?([ \t]|$)/ && tolower(enabled) != "no") {
				n = split(suites, s, /[ \t]+/); ok = 0
				for (i = 1; i <= n; i++) if (s[i] ~ re) ok = 1
				if (ok) {
					n = split(uris, u, /[ \t]+/)
					for (i = 1; i <= n; i++)
						if (u[i] != "" && u[i] !~ /^cdrom:/)
							print u[i], (signedby ~ /^\// ? signedby : "-")
				}
			}
			types = uris = suites = signedby = enabled = ""
		}
		/^[ \t]*#/ { next }
		/^[ \t]*$/ { flush(); next }
		/^[ \t]/ { next }        # continuation (e.g. an inline key)
		{
			k = tolower($0); sub(/:.*/, "", k)
			v = $0; sub(/^[^:]*:[ \t]*/, "", v); sub(/[ \t]+$/, "", v)
			if (k == "types") types = v
			else if (k == "uris") uris = v
			else if (k == "suites") suites = v
			else if (k == "signed-by") signedby = v
			else if (k == "enabled") enabled = v
		}
		END { flush() }' "$f"
	done
}

# apt_setup WITH_BINARY: create $APTTMP with a sources list of deb-src (and,
# for gcc-12-source, deb) entries and fill its own lists directory.  The
# system's apt configuration, lists and caches are never written.
apt_setup() {
	have apt-get || die "apt-get not found; on a non-Debian host use EDGEPROXY_FETCH=upstream"
	APTTMP=$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-apt.XXXXXX")
	SCRATCH+=("$APTTMP")
	mkdir -p "$APTTMP/sources.list.d" "$APTTMP/lists/partial" "$APTTMP/cache/archives/partial" "$APTTMP/dl"
	: >"$APTTMP/sources.list"

	local entries
	if [ -n "${EDGEPROXY_APT_URIS:-}" ]; then
		# shellcheck disable=SC2086 # a space-separated list by design
		entries=$(printf '%s -\n' $EDGEPROXY_APT_URIS)
	else
		entries=$(apt_debian_uris | awk '!seen[$1]++')
	fi
	[ -n "$entries" ] || die "no Debian archive found in /etc/apt/sources.list{,.d/*}.
  Set EDGEPROXY_APT_URIS to a Debian mirror URI, or use EDGEPROXY_FETCH=upstream."

	local uri sb out=$APTTMP/sources.list.d/edgeproxy.sources
	: >"$out"
	while read -r uri sb; do
		{
			printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\n' "$uri" "$DEB_SRC_SUITES"
			[ "$sb" = - ] || printf 'Signed-By: %s\n' "$sb"
			printf '\n'
			if [ "$1" = 1 ]; then
				printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$uri"
				[ "$sb" = - ] || printf 'Signed-By: %s\n' "$sb"
				printf '\n'
			fi
		} >>"$out"
	done <<<"$entries"
	note "apt sources (throwaway): $(awk '{print $1}' <<<"$entries" | tr '\n' ' ')"

	APTOPTS=(
		-o "Dir::Etc::SourceList=$APTTMP/sources.list"
		-o "Dir::Etc::SourceParts=$APTTMP/sources.list.d"
		-o "Dir::State::Lists=$APTTMP/lists"
		-o "Dir::Cache=$APTTMP/cache"
		-o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
		-o "APT::Get::Only-Source=true"
	)
	# apt drops root to _apt for downloads; let it write the download dir
	# instead of warning and falling back to running unsandboxed.
	if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
		chmod 755 "$APTTMP"
		chown _apt "$APTTMP/dl"
	fi

	note "apt-get update (deb-src: $DEB_SRC_SUITES)"
	# A suite missing on some mirror is not fatal by itself; apt-get source
	# below reports what is really unavailable.
	run_logged "$LOG" apt-get -q "${APTOPTS[@]}" update ||
		warn "apt-get update reported errors (see $LOG); trying anyway"
}

fetch_debian() {
	local c pkgs=() want_bin=0
	for c in "$@"; do
		comp_vars "$c"
		if [ "$c" = gcc-softfp ]; then want_bin=1; else pkgs+=("$C_DEBSRC"); fi
	done
	apt_setup "$want_bin"
	if [ ${#pkgs[@]} -gt 0 ]; then
		note "apt-get source --download-only ${pkgs[*]}"
		(cd "$APTTMP/dl" && run_logged "$LOG" apt-get -q "${APTOPTS[@]}" source --download-only "${pkgs[@]}") ||
			die "apt-get source failed (see $LOG). Are $DEB_SRC_SUITES reachable on the mirror?"
	fi
	if [ "$want_bin" = 1 ]; then
		note "apt-get download $GCC_SRC_DEB_PACKAGE=$GCC_SRC_DEB_VERSION (for libgcc/soft-fp)"
		(cd "$APTTMP/dl" && run_logged "$LOG" apt-get -q "${APTOPTS[@]}" download "$GCC_SRC_DEB_PACKAGE=$GCC_SRC_DEB_VERSION") ||
			die "apt-get download $GCC_SRC_DEB_PACKAGE failed (see $LOG)"
		local deb
		deb=$(ls "$APTTMP/dl/${GCC_SRC_DEB_PACKAGE}_"*.deb)
		note "extracting $GCC_SRC_FILE from $(basename "$deb")"
		dpkg-deb --fsys-tarfile "$deb" | tar -xO "./$GCC_SRC_INNER" >"$APTTMP/dl/$GCC_SRC_FILE" ||
			die "$GCC_SRC_INNER not found in $deb"
		rm -f "$deb"
	fi
	# Only verified files move into build/src/dl.
	local f s
	for c in "$@"; do
		comp_vars "$c"
		while read -r f s; do
			[ -f "$DL/$f" ] && continue
			[ "$s" = - ] || verify "$APTTMP/dl/$f" "$s"
			mv "$APTTMP/dl/$f" "$DL/$f"
		done <<<"$C_FILES"
	done
}

# ---- upstream tarballs -----------------------------------------------------
download() {
	local url=$1 out=$2
	note "downloading $url"
	if have curl; then
		curl -fsSL --retry 3 --connect-timeout 30 -o "$out" "$url"
	elif have wget; then
		wget -q -O "$out" "$url"
	else
		die "neither curl nor wget is installed"
	fi
}

fetch_upstream() {
	local c f s
	for c in "$@"; do
		comp_vars "$c"
		[ -n "$C_URL" ] || die "'$c' has no upstream download; put $GCC_SRC_FILE (sha256 $GCC_SRC_SHA256) into $DL yourself, or use EDGEPROXY_FETCH=debian"
		read -r f s <<<"$C_FILES"
		[ -z "${EDGEPROXY_UPSTREAM_MIRROR:-}" ] || C_URL=${EDGEPROXY_UPSTREAM_MIRROR%/}/$f
		SCRATCH+=("$DL/$f.part")
		download "$C_URL" "$DL/$f.part" || die "download of $C_URL failed"
		verify "$DL/$f.part" "$s"
		mv "$DL/$f.part" "$DL/$f"
	done
}

# ---- unpack ------------------------------------------------------------------
# Unpack into a scratch dir and rename into place, so an interrupted run never
# leaves a half tree that a later run could mistake for a good one.
unpack() {
	local c=$1 tmp top
	comp_vars "$c"
	tmp=$(mktemp -d "$SRC_DIR/.unpack-$c.XXXXXX")
	SCRATCH+=("$tmp")
	local f s
	case $c in
	musl)
		if [ "$MODE" = debian ]; then
			verify "$DL/$MUSL_DEB_FILE" "$MUSL_DEB_SHA256"
			verify "$DL/$MUSL_DEB_DEBIAN_FILE" "$MUSL_DEB_DEBIAN_SHA256"
			note "dpkg-source -x $MUSL_DEB_DSC (applies Debian's patches)"
			# dpkg-source also copies the orig tarball next to the tree;
			# only the tree moves into place.
			mkdir "$tmp/x"
			run_logged "$LOG" dpkg-source -x "$DL/$MUSL_DEB_DSC" "$tmp/x/$C_DIR" ||
				die "dpkg-source -x failed (see $LOG)"
			mv "$tmp/x/$C_DIR" "$tmp/$C_DIR"
			rm -rf "$tmp/x"
		else
			verify "$DL/$MUSL_UP_FILE" "$MUSL_UP_SHA256"
			tar --no-same-owner -xf "$DL/$MUSL_UP_FILE" -C "$tmp"
		fi
		;;
	gcc-softfp)
		verify "$DL/$GCC_SRC_FILE" "$GCC_SRC_SHA256"
		note "extracting libgcc/soft-fp from $GCC_SRC_FILE"
		mkdir "$tmp/$C_DIR"
		tar --no-same-owner -xJf "$DL/$GCC_SRC_FILE" -C "$tmp/$C_DIR" --strip-components=1 --wildcards \
			"$GCC_SRC_TOPDIR/libgcc/soft-fp/*" "$GCC_SRC_TOPDIR/libgcc/config/mips/*" \
			"$GCC_SRC_TOPDIR/include/longlong.h"
		;;
	*)
		read -r f s <<<"$C_FILES"
		verify "$DL/$f" "$s"
		tar --no-same-owner -xf "$DL/$f" -C "$tmp"
		;;
	esac
	# Whatever the tarball calls its top directory, it lands at the fixed name.
	top=$(find "$tmp" -mindepth 1 -maxdepth 1)
	if [ "$(printf '%s\n' "$top" | wc -l)" != 1 ] || [ ! -d "$top" ]; then
		die "unexpected layout in the $c source (expected one top directory)"
	fi
	if [ "$c" = bearssl ]; then
		# the one compile-time setting BearSSL's headers fix (vendor/versions.sh)
		h=$top/inc/bearssl_ssl.h
		sed -i "s/^#define BR_MAX_CIPHER_SUITES .*/#define BR_MAX_CIPHER_SUITES   $BEARSSL_MAX_CIPHER_SUITES/" "$h"
		grep -q "^#define BR_MAX_CIPHER_SUITES   $BEARSSL_MAX_CIPHER_SUITES\$" "$h" ||
			die "could not set BR_MAX_CIPHER_SUITES in $h"
	fi
	rm -rf "${SRC_DIR:?}/$C_DIR" "$SRC_DIR/.stamp-$c"
	mv "$top" "$SRC_DIR/$C_DIR"
	rmdir "$tmp"
	printf '%s\n' "$C_STAMP" >"$SRC_DIR/.stamp-$c"
	note "ready: build/src/$C_DIR"
}

# dpkg-source (dpkg-dev) unpacks musl, xz the .tar.xz files.  As root on
# Debian they are simply installed; otherwise say what is missing.
ensure_tools() {
	local miss=()
	if [ "$MODE" = debian ]; then
		have dpkg-source || miss+=(dpkg-dev)
	elif ! have curl && ! have wget; then
		miss+=(curl)
	fi
	have xz || miss+=(xz-utils)
	[ ${#miss[@]} -gt 0 ] || return 0
	if [ "$(id -u)" = 0 ] && have apt-get; then
		"$VENDOR_DIR/install-host-deps.sh"
	else
		die "missing host tools (Debian packages: ${miss[*]}); run vendor/install-host-deps.sh as root"
	fi
}

# Recheck under the lock: a concurrent run may have finished the work.
need=()
for c in "${todo[@]}"; do
	comp_vars "$c"
	is_current "$c" || need+=("$c")
done
[ ${#need[@]} -gt 0 ] || exit 0

missing=()
for c in "${need[@]}"; do
	comp_vars "$c"
	while read -r f s; do
		if ! have_verified "$f" "$s"; then
			missing+=("$c")
			break
		fi
	done <<<"$C_FILES"
done

ensure_tools

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$MODE" = debian ]; then
		fetch_debian "${missing[@]}"
	else
		fetch_upstream "${missing[@]}"
	fi
fi

for c in "${need[@]}"; do
	unpack "$c"
done
