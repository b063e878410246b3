/* slice.h - length-carrying byte strings: how untrusted bytes move through edgeproxy
 * without NUL-terminated scans. A slice never owns its bytes. */
#ifndef EDGEPROXY_SLICE_H
#define EDGEPROXY_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct slice {
	const char *p;
	size_t len;
};

/* One header field as it appeared on the wire (name and value trimmed). */
struct http_field {
	struct slice name;
	struct slice value;
};

#define SLICE_LIT(s) ((struct slice){ (s), sizeof(s) - 1 })

static inline struct slice slice_make(const char *p, size_t len)
{
	return (struct slice){ p, len };
}

static inline struct slice slice_cstr(const char *s)
{
	return (struct slice){ s, s ? strlen(s) : 0 };
}

static inline bool slice_eq(struct slice a, struct slice b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static inline bool slice_case_eq(struct slice a, struct slice b)
{
	if (a.len != b.len)
		return false;
	for (size_t i = 0; i < a.len; i++)
		if (ascii_lower(a.p[i]) != ascii_lower(b.p[i]))
			return false;
	return true;
}

static inline bool slice_has_prefix(struct slice s, struct slice prefix)
{
	return s.len >= prefix.len && memcmp(s.p, prefix.p, prefix.len) == 0;
}

/* Copies s into dst (capacity cap) with a terminating NUL; false if it does not fit. */
static inline bool slice_to_cstr(struct slice s, char *dst, size_t cap)
{
	if (s.len >= cap)
		return false;
	memcpy(dst, s.p, s.len);
	dst[s.len] = '\0';
	return true;
}

#endif
