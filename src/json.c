/* json.c - strict RFC 8259 parsing into a flat token array. Containers are tracked
 * on a fixed stack (JSON_MAX_DEPTH), so hostile nesting costs neither recursion nor
 * memory; strings are validated while parsing and decoded on demand. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the parser expects next. */
enum state {
	ST_VALUE,          /* a value (document start, after ':' or after ',' in an array) */
	ST_VALUE_OR_CLOSE, /* after '[' */
	ST_KEY,            /* after ',' in an object */
	ST_KEY_OR_CLOSE,   /* after '{' */
	ST_COLON,          /* after a key */
	ST_COMMA_OR_CLOSE, /* after a value inside a container */
	ST_DONE,           /* the top-level value is complete */
};

struct parser {
	struct json_doc *doc;
	const unsigned char *p;
	size_t len, pos;
	uint32_t stack[JSON_MAX_DEPTH]; /* token index of each open container */
	size_t depth;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!ps->err || ps->errlen == 0)
		return -1;
	n = snprintf(ps->err, ps->errlen, "offset %zu: ", ps->pos);
	if (n < 0 || (size_t)n >= ps->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int add_tok(struct parser *ps, uint8_t type, size_t start)
{
	struct json_doc *d = ps->doc;

	if (d->n == JSON_MAX_TOKENS)
		return fail(ps, "more than %d values", JSON_MAX_TOKENS);
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		if (cap > JSON_MAX_TOKENS)
			cap = JSON_MAX_TOKENS;
		struct json_tok *t = realloc(d->toks, cap * sizeof(*t));
		if (!t)
			return fail(ps, "out of memory");
		d->toks = t;
		d->cap = cap;
	}
	struct json_tok *t = &d->toks[d->n];
	memset(t, 0, sizeof(*t));
	t->type = type;
	t->start = (uint32_t)start;
	t->end = (uint32_t)(d->n + 1);
	return (int)d->n++;
}

static void skip_ws(struct parser *ps)
{
	while (ps->pos < ps->len) {
		unsigned char c = ps->p[ps->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		ps->pos++;
	}
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Four hex digits at p (bounds checked by the caller). */
static int hex4(const unsigned char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* Length of the well-formed UTF-8 sequence at p[0..n) (RFC 3629 §4: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 1;
	else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < need + 1 || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i <= need; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return need + 1;
}

/* ---- decoding strings (already validated) ----------------------------------- */

/* Yields the decoded bytes of a validated string token one at a time. */
struct str_iter {
	const unsigned char *p, *end;
	unsigned char buf[4];
	int blen, bpos;
};

static void str_iter_init(struct str_iter *it, const struct json_doc *d, const struct json_tok *t)
{
	it->p = (const unsigned char *)d->text + t->start;
	it->end = it->p + t->len;
	it->blen = it->bpos = 0;
}

static int put_utf8(unsigned char *b, unsigned long cp)
{
	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		b[0] = (unsigned char)(0xc0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		b[0] = (unsigned char)(0xe0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	b[0] = (unsigned char)(0xf0 | cp >> 18);
	b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
	b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	b[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The next decoded byte, or -1 at the end. */
static int str_next(struct str_iter *it)
{
	if (it->bpos < it->blen)
		return it->buf[it->bpos++];
	if (it->p >= it->end)
		return -1;
	if (*it->p != '\\')
		return *it->p++;
	unsigned char e = it->p[1];
	it->p += 2;
	switch (e) {
	case 'b': return '\b';
	case 'f': return '\f';
	case 'n': return '\n';
	case 'r': return '\r';
	case 't': return '\t';
	case 'u': break;
	default: return e; /* '"', '\\', '/' */
	}
	unsigned long cp = (unsigned long)hex4(it->p);
	it->p += 4;
	if (cp >= 0xd800 && cp <= 0xdbff) { /* validated: a low surrogate follows */
		unsigned long lo = (unsigned long)hex4(it->p + 2);
		it->p += 6;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	it->blen = put_utf8(it->buf, cp);
	it->bpos = 1;
	return it->buf[0];
}

static uint32_t str_hash(const struct json_doc *d, const struct json_tok *t)
{
	struct str_iter it;
	uint32_t h = 2166136261u; /* FNV-1a */
	int c;

	str_iter_init(&it, d, t);
	while ((c = str_next(&it)) >= 0)
		h = (h ^ (uint32_t)c) * 16777619u;
	return h;
}

static bool str_tok_eq(const struct json_doc *d, const struct json_tok *a, const struct json_tok *b)
{
	struct str_iter ia, ib;
	int ca, cb;

	if (a->hash != b->hash)
		return false;
	str_iter_init(&ia, d, a);
	str_iter_init(&ib, d, b);
	do {
		ca = str_next(&ia);
		cb = str_next(&ib);
		if (ca != cb)
			return false;
	} while (ca >= 0);
	return true;
}

/* ---- parsing ---------------------------------------------------------------- */

/* A string starting at the opening quote; on success pos is past the closing one. */
static int parse_string(struct parser *ps)
{
	size_t start = ++ps->pos;

	for (;;) {
		if (ps->pos >= ps->len)
			return fail(ps, "unterminated string");
		unsigned char c = ps->p[ps->pos];
		if (c == '"')
			break;
		if (c < 0x20)
			return fail(ps, "control character in string");
		if (c == '\\') {
			if (ps->pos + 1 >= ps->len)
				return fail(ps, "unterminated string");
			unsigned char e = ps->p[ps->pos + 1];
			if (e != 'u') {
				if (!strchr("\"\\/bfnrt", e) || e == '\0')
					return fail(ps, "bad escape \\%c", e >= 0x20 && e < 0x7f ? e : '?');
				ps->pos += 2;
				continue;
			}
			int cp = ps->pos + 6 <= ps->len ? hex4(ps->p + ps->pos + 2) : -1;
			if (cp < 0)
				return fail(ps, "bad \\u escape");
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(ps, "unpaired low surrogate");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				size_t q = ps->pos + 6;
				int lo = q + 6 <= ps->len && ps->p[q] == '\\' && ps->p[q + 1] == 'u'
						 ? hex4(ps->p + q + 2) : -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return fail(ps, "unpaired high surrogate");
				ps->pos += 12;
				continue;
			}
			ps->pos += 6;
			continue;
		}
		size_t n = utf8_seq(ps->p + ps->pos, ps->len - ps->pos);
		if (n == 0)
			return fail(ps, "invalid UTF-8");
		ps->pos += n;
	}
	int i = add_tok(ps, JSON_STRING, start);
	if (i < 0)
		return -1;
	struct json_tok *t = &ps->doc->toks[i];
	t->len = (uint32_t)(ps->pos - start);
	t->hash = str_hash(ps->doc, t);
	ps->pos++; /* closing quote */
	return i;
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 8259 §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int parse_number(struct parser *ps)
{
	size_t start = ps->pos, p = ps->pos;
	const unsigned char *s = ps->p;

	if (p < ps->len && s[p] == '-')
		p++;
	if (p >= ps->len || !is_digit(s[p]))
		return fail(ps, "bad number");
	if (s[p] == '0') {
		p++;
		if (p < ps->len && is_digit(s[p]))
			return fail(ps, "leading zero in number");
	} else {
		while (p < ps->len && is_digit(s[p]))
			p++;
	}
	if (p < ps->len && s[p] == '.') {
		p++;
		if (p >= ps->len || !is_digit(s[p]))
			return fail(ps, "bad fraction");
		while (p < ps->len && is_digit(s[p]))
			p++;
	}
	if (p < ps->len && (s[p] == 'e' || s[p] == 'E')) {
		p++;
		if (p < ps->len && (s[p] == '+' || s[p] == '-'))
			p++;
		if (p >= ps->len || !is_digit(s[p]))
			return fail(ps, "bad exponent");
		while (p < ps->len && is_digit(s[p]))
			p++;
	}
	int i = add_tok(ps, JSON_NUMBER, start);
	if (i < 0)
		return -1;
	ps->doc->toks[i].len = (uint32_t)(p - start);
	ps->pos = p;
	return i;
}

static int parse_literal(struct parser *ps, const char *word, uint8_t type)
{
	size_t n = strlen(word);

	if (ps->len - ps->pos < n || memcmp(ps->p + ps->pos, word, n) != 0)
		return fail(ps, "unexpected character");
	int i = add_tok(ps, type, ps->pos);
	if (i < 0)
		return -1;
	ps->doc->toks[i].len = (uint32_t)n;
	ps->pos += n;
	return i;
}

/* A value ended: count it in its container and say what may follow. */
static enum state value_done(struct parser *ps)
{
	if (ps->depth == 0)
		return ST_DONE;
	ps->doc->toks[ps->stack[ps->depth - 1]].n++;
	return ST_COMMA_OR_CLOSE;
}

/* A key was just added as token k of the innermost object: refuse a repeat. */
static int check_duplicate(struct parser *ps, int k)
{
	const struct json_doc *d = ps->doc;
	uint32_t obj = ps->stack[ps->depth - 1];

	for (uint32_t i = obj + 1; i < (uint32_t)k; i = d->toks[i + 1].end)
		if (str_tok_eq(d, &d->toks[i], &d->toks[k]))
			return fail(ps, "duplicate key");
	return 0;
}

/* Starts a value at pos: scalars complete at once, containers are pushed. */
static int start_value(struct parser *ps, enum state *st)
{
	unsigned char c = ps->p[ps->pos];
	int i;

	switch (c) {
	case '{':
	case '[':
		if (ps->depth == JSON_MAX_DEPTH)
			return fail(ps, "nested deeper than %d", JSON_MAX_DEPTH);
		if ((i = add_tok(ps, c == '{' ? JSON_OBJECT : JSON_ARRAY, ps->pos)) < 0)
			return -1;
		ps->stack[ps->depth++] = (uint32_t)i;
		ps->pos++;
		*st = c == '{' ? ST_KEY_OR_CLOSE : ST_VALUE_OR_CLOSE;
		return 0;
	case '"':
		i = parse_string(ps);
		break;
	case 't':
		i = parse_literal(ps, "true", JSON_TRUE);
		break;
	case 'f':
		i = parse_literal(ps, "false", JSON_FALSE);
		break;
	case 'n':
		i = parse_literal(ps, "null", JSON_NULL);
		break;
	default:
		if (c != '-' && !is_digit(c))
			return fail(ps, "unexpected character");
		i = parse_number(ps);
		break;
	}
	if (i < 0)
		return -1;
	*st = value_done(ps);
	return 0;
}

/* Closes the innermost container with the byte at pos (']' or '}'). */
static int close_container(struct parser *ps, enum state *st)
{
	struct json_doc *d = ps->doc;
	uint32_t top = ps->stack[ps->depth - 1];
	unsigned char want = d->toks[top].type == JSON_OBJECT ? '}' : ']';

	if (ps->p[ps->pos] != want)
		return fail(ps, "expected '%c'", want);
	d->toks[top].end = (uint32_t)d->n;
	d->toks[top].len = (uint32_t)(ps->pos + 1 - d->toks[top].start);
	ps->depth--;
	ps->pos++;
	*st = value_done(ps);
	return 0;
}

int json_parse(struct json_doc *doc, const char *text, size_t len, char *err, size_t errlen)
{
	struct parser ps = { .doc = doc, .p = (const unsigned char *)text, .len = len,
			     .err = err, .errlen = errlen };
	enum state st = ST_VALUE;

	memset(doc, 0, sizeof(*doc));
	doc->text = text;
	doc->len = len;
	if (err && errlen)
		err[0] = '\0';
	if (len > JSON_MAX_TEXT) {
		fail(&ps, "document larger than %d bytes", JSON_MAX_TEXT);
		goto bad;
	}
	for (;;) {
		skip_ws(&ps);
		if (st == ST_DONE) {
			if (ps.pos != ps.len) {
				fail(&ps, "text after the value");
				goto bad;
			}
			return 0;
		}
		if (ps.pos >= ps.len) {
			fail(&ps, "unexpected end");
			goto bad;
		}
		unsigned char c = ps.p[ps.pos];
		int rc = 0;
		switch (st) {
		case ST_VALUE_OR_CLOSE:
			if (c == ']') {
				rc = close_container(&ps, &st);
				break;
			}
			/* fall through */
		case ST_VALUE:
			rc = start_value(&ps, &st);
			break;
		case ST_KEY_OR_CLOSE:
			if (c == '}') {
				rc = close_container(&ps, &st);
				break;
			}
			/* fall through */
		case ST_KEY: {
			if (c != '"') {
				rc = fail(&ps, "expected a string key");
				break;
			}
			int k = parse_string(&ps);
			rc = k < 0 ? -1 : check_duplicate(&ps, k);
			st = ST_COLON;
			break;
		}
		case ST_COLON:
			if (c != ':')
				rc = fail(&ps, "expected ':'");
			ps.pos++;
			st = ST_VALUE;
			break;
		case ST_COMMA_OR_CLOSE:
			if (c == ',') {
				ps.pos++;
				st = ps.doc->toks[ps.stack[ps.depth - 1]].type == JSON_OBJECT ? ST_KEY
											   : ST_VALUE;
			} else {
				rc = close_container(&ps, &st);
			}
			break;
		case ST_DONE:
			break;
		}
		if (rc < 0)
			goto bad;
	}
bad:
	json_free(doc);
	return -1;
}

void json_free(struct json_doc *doc)
{
	free(doc->toks);
	memset(doc, 0, sizeof(*doc));
}

/* ---- access ------------------------------------------------------------------ */

static const struct json_tok *tok(const struct json_doc *d, int i)
{
	return i >= 0 && (size_t)i < d->n ? &d->toks[i] : NULL;
}

int json_type(const struct json_doc *d, int i)
{
	const struct json_tok *t = tok(d, i);
	return t ? t->type : -1;
}

size_t json_count(const struct json_doc *d, int i)
{
	const struct json_tok *t = tok(d, i);
	return t && (t->type == JSON_ARRAY || t->type == JSON_OBJECT) ? t->n : 0;
}

int json_member_key(const struct json_doc *d, int obj, size_t idx)
{
	const struct json_tok *t = tok(d, obj);
	if (!t || t->type != JSON_OBJECT || idx >= t->n)
		return -1;
	uint32_t k = (uint32_t)obj + 1;
	while (idx--)
		k = d->toks[k + 1].end;
	return (int)k;
}

int json_get(const struct json_doc *d, int obj, const char *key)
{
	const struct json_tok *t = tok(d, obj);
	if (!t || t->type != JSON_OBJECT)
		return -1;
	for (uint32_t k = (uint32_t)obj + 1, m = 0; m < t->n; m++, k = d->toks[k + 1].end)
		if (json_str_eq(d, (int)k, key))
			return (int)k + 1;
	return -1;
}

int json_at(const struct json_doc *d, int arr, size_t idx)
{
	const struct json_tok *t = tok(d, arr);
	if (!t || t->type != JSON_ARRAY || idx >= t->n)
		return -1;
	uint32_t e = (uint32_t)arr + 1;
	while (idx--)
		e = d->toks[e].end;
	return (int)e;
}

long json_string(const struct json_doc *d, int i, char *buf, size_t cap)
{
	const struct json_tok *t = tok(d, i);
	struct str_iter it;
	size_t n = 0;
	int c;

	if (cap == 0)
		return -1;
	if (!t || t->type != JSON_STRING) {
		buf[0] = '\0';
		return -1;
	}
	str_iter_init(&it, d, t);
	while ((c = str_next(&it)) >= 0) {
		if (c == 0 || n + 1 >= cap) {
			buf[0] = '\0';
			return -1;
		}
		buf[n++] = (char)c;
	}
	buf[n] = '\0';
	return (long)n;
}

char *json_strdup(const struct json_doc *d, int i)
{
	const struct json_tok *t = tok(d, i);
	if (!t || t->type != JSON_STRING)
		return NULL;
	/* decoding never makes a string longer than its escaped form */
	char *s = malloc((size_t)t->len + 1);
	if (s && json_string(d, i, s, (size_t)t->len + 1) < 0) {
		free(s);
		s = NULL;
	}
	return s;
}

bool json_str_eq(const struct json_doc *d, int i, const char *s)
{
	const struct json_tok *t = tok(d, i);
	struct str_iter it;
	int c;

	if (!t || t->type != JSON_STRING)
		return false;
	str_iter_init(&it, d, t);
	while ((c = str_next(&it)) >= 0) {
		if (*s == '\0' || (unsigned char)*s != c)
			return false;
		s++;
	}
	return *s == '\0';
}

int json_int64(const struct json_doc *d, int i, int64_t *out)
{
	const struct json_tok *t = tok(d, i);
	if (!t || t->type != JSON_NUMBER)
		return -1;
	const char *p = d->text + t->start, *end = p + t->len;
	bool neg = *p == '-';
	uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

	if (neg)
		p++;
	for (; p < end; p++) {
		if (!is_digit((unsigned char)*p))
			return -1; /* fraction or exponent */
		unsigned dgt = (unsigned)(*p - '0');
		if (v > (limit - dgt) / 10)
			return -1;
		v = v * 10 + dgt;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}
