#!/bin/sh
# embed-dashboard.sh - writes src/dashboard.c, the dashboard page as a C string, from
# src/dashboard.html. Run it after editing the HTML; test_admin checks they agree.
set -eu
cd "$(dirname "$0")/.."
in=src/dashboard.html
out=src/dashboard.c
# ASCII only (entities and \u escapes for the rest): no encoding questions in C.
if LC_ALL=C grep -n '[^[:print:][:blank:]]' "$in" >&2; then
	echo "embed-dashboard: $in: non-ASCII bytes on the lines above" >&2
	exit 1
fi
{
	printf '/* dashboard.c - the status page served at / by the admin listener. GENERATED from\n'
	printf ' * dashboard.html by tools/embed-dashboard.sh: edit the HTML and run that. */\n'
	printf '#include "dashboard.h"\n\nconst char dashboard_html[] =\n'
	# Leading indentation dropped (the page does not depend on it); \ " and ? escaped
	# (? against trigraphs, which -std=c11 enables).
	LC_ALL=C sed -e 's/^[[:blank:]]*//' -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' \
		-e 's/^/\t"/' -e 's/$/\\n"/' "$in"
	printf '\t;\nconst size_t dashboard_html_len = sizeof(dashboard_html) - 1;\n'
} >"$out.tmp"
mv "$out.tmp" "$out"
