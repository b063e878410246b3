/* regexp.h - the regular expressions of router rules (HostRegexp, PathRegexp, ...)
 * and of the redirect_regex middleware: Go's RE2 syntax (what Traefik users write,
 * a subset, listed in regexp.c), Go's leftmost-first matching, and a Pike VM that
 * runs in time linear in the subject (no backtracking, whatever the pattern). */
#ifndef EDGEPROXY_REGEXP_H
#define EDGEPROXY_REGEXP_H

#include <stdbool.h>
#include <stddef.h>

#include "slice.h"

/* Limits a pattern must stay within: bytes matched after bounded repetitions are
 * expanded ("(a{16}){16}" counts 256), a count in {n,m}, and group nesting. */
#define REGEXP_MAX_ATOMS 4096
#define REGEXP_MAX_REPEAT 255
#define REGEXP_MAX_DEPTH 32

struct regexp;

/* Where a group matched in the subject, as offsets; -1 and -1 when it did not take
 * part in the match. Group 0 is the whole match. */
struct regexp_span {
	long so, eo;
};

/* Compiles pattern[0..len). ncap is how many groups a match reports, group 0
 * included (0 for a matcher that only says yes or no); groups past that are not
 * recorded. Returns NULL with a message in err on bad syntax, an unsupported
 * construct, a pattern past the limits, or no memory. Owner: the caller
 * (regexp_free). */
struct regexp *regexp_compile(const char *pattern, size_t len, unsigned ncap, char *err,
			      size_t errlen);
void regexp_free(struct regexp *re);

/* Finds the leftmost-first match in s that starts at or after from (<= s.len).
 * ^ and \A match only at offset 0, also when from > 0, as a search continuing
 * after an earlier match needs. fold: s is read as if ASCII-lowercased. caps, when
 * not NULL, receives the compiled ncap groups. Not reentrant for one regexp: the
 * matcher works in space allocated with it (edgeproxy is single-threaded). */
bool regexp_search(const struct regexp *re, struct slice s, size_t from, bool fold,
		   struct regexp_span *caps);

#endif
