/* json_check.h - a strict RFC 8259 validator for the JSON documents the unit tests
 * receive (admin API, health document): grammar, string escapes, UTF-8, depth.
 * json_valid() says whether the whole text is exactly one JSON value. */
#ifndef EDGEPROXY_JSON_CHECK_H
#define EDGEPROXY_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct json_cur {
	const unsigned char *p, *end;
	int depth;
};

static bool json_value(struct json_cur *c);

static void json_ws(struct json_cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static bool json_lit(struct json_cur *c, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
		return false;
	c->p += n;
	return true;
}

static bool json_hex4(struct json_cur *c)
{
	if (c->end - c->p < 4)
		return false;
	for (int i = 0; i < 4; i++, c->p++) {
		unsigned char h = *c->p;
		if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
			return false;
	}
	return true;
}

/* One UTF-8 sequence of two to four bytes (RFC 3629 §4), lead byte at c->p. */
static bool json_utf8(struct json_cur *c)
{
	unsigned char b = *c->p;
	int n = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
	if (n < 0 || c->end - c->p <= n)
		return false;
	unsigned char b1 = c->p[1];
	if ((b == 0xe0 && b1 < 0xa0) || (b == 0xed && b1 > 0x9f) || (b == 0xf0 && b1 < 0x90) ||
	    (b == 0xf4 && b1 > 0x8f))
		return false;
	for (int i = 1; i <= n; i++)
		if ((c->p[i] & 0xc0) != 0x80)
			return false;
	c->p += n + 1;
	return true;
}

static bool json_string(struct json_cur *c)
{
	if (c->p >= c->end || *c->p != '"')
		return false;
	c->p++;
	while (c->p < c->end) {
		unsigned char b = *c->p;
		if (b == '"') {
			c->p++;
			return true;
		}
		if (b < 0x20)
			return false;
		if (b == '\\') {
			c->p++;
			if (c->p >= c->end)
				return false;
			unsigned char e = *c->p++;
			if (e == 'u') {
				if (!json_hex4(c))
					return false;
			} else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
				return false;
			}
		} else if (b >= 0x80) {
			if (!json_utf8(c))
				return false;
		} else {
			c->p++;
		}
	}
	return false;
}

static bool json_digits(struct json_cur *c)
{
	const unsigned char *start = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
		c->p++;
	return c->p > start;
}

static bool json_number(struct json_cur *c)
{
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (c->p < c->end && *c->p == '0')
		c->p++;
	else if (!json_digits(c))
		return false;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (!json_digits(c))
			return false;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!json_digits(c))
			return false;
	}
	return true;
}

static bool json_container(struct json_cur *c, char close, bool object)
{
	if (++c->depth > 64)
		return false;
	c->p++;
	json_ws(c);
	if (c->p < c->end && *c->p == close) {
		c->p++;
		c->depth--;
		return true;
	}
	for (;;) {
		json_ws(c);
		if (object) {
			if (!json_string(c))
				return false;
			json_ws(c);
			if (c->p >= c->end || *c->p++ != ':')
				return false;
		}
		if (!json_value(c))
			return false;
		json_ws(c);
		if (c->p >= c->end)
			return false;
		if (*c->p == ',') {
			c->p++;
			continue;
		}
		if (*c->p++ != close)
			return false;
		c->depth--;
		return true;
	}
}

static bool json_value(struct json_cur *c)
{
	json_ws(c);
	if (c->p >= c->end)
		return false;
	switch (*c->p) {
	case '{': return json_container(c, '}', true);
	case '[': return json_container(c, ']', false);
	case '"': return json_string(c);
	case 't': return json_lit(c, "true");
	case 'f': return json_lit(c, "false");
	case 'n': return json_lit(c, "null");
	default: return json_number(c);
	}
}

static inline bool json_valid(const char *text, size_t len)
{
	struct json_cur c = { (const unsigned char *)text, (const unsigned char *)text + len, 0 };
	if (!text || !json_value(&c))
		return false;
	json_ws(&c);
	return c.p == c.end;
}

#endif
