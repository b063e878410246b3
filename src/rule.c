/* rule.c - the Traefik v3 router rule language: a recursive-descent compiler to a small
 * tree (regexps and CIDRs prepared once), and an allocation-free matcher. */
#include "rule.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "regexp.h"

/* '(' groups plus '!' prefixes; bounds the compiler's and the matcher's recursion so a
 * hostile or careless config cannot exhaust the stack. */
#define RULE_MAX_DEPTH 64

/* Longest query value QueryRegexp decodes and matches; a longer one does not match.
 * Request heads are capped by max_header_size, so only absurd values get there. */
#define RULE_QUERY_VALUE_MAX 8192

enum rule_op {
	OP_AND,
	OP_OR,
	OP_NOT,
	OP_HOST,
	OP_HOST_REGEXP,
	OP_PATH,
	OP_PATH_PREFIX,
	OP_PATH_REGEXP,
	OP_METHOD,
	OP_HEADER,
	OP_HEADER_REGEXP,
	OP_QUERY,
	OP_QUERY_REGEXP,
	OP_CLIENT_IP,
};

struct rule {
	enum rule_op op;
	struct rule **kids;  /* AND, OR: nkids >= 2; NOT: 1; owner: this node */
	size_t nkids;
	char *arg[2];        /* matcher arguments, NUL-terminated; owner: this node */
	size_t arglen[2];
	unsigned nargs;
	struct regexp *re;   /* compiled from the last argument, or NULL; owner: this node */
	struct cidr cidr;    /* ClientIP */
};

/* How each matcher is spelled and how many arguments it takes. A matcher whose
 * max_args is 0 takes one or more, meaning any of them (Traefik v2's Host(`a`, `b`)),
 * and is compiled to an OR of one-argument matchers. */
struct matcher_def {
	const char *name;
	enum rule_op op;
	unsigned min_args, max_args;
};

static const struct matcher_def matchers[] = {
	{ "Host", OP_HOST, 1, 0 },
	{ "HostRegexp", OP_HOST_REGEXP, 1, 0 },
	{ "Path", OP_PATH, 1, 0 },
	{ "PathPrefix", OP_PATH_PREFIX, 1, 0 },
	{ "PathRegexp", OP_PATH_REGEXP, 1, 0 },
	{ "Method", OP_METHOD, 1, 0 },
	{ "Header", OP_HEADER, 2, 2 },
	{ "HeaderRegexp", OP_HEADER_REGEXP, 2, 2 },
	{ "Query", OP_QUERY, 1, 2 },
	{ "QueryRegexp", OP_QUERY_REGEXP, 2, 2 },
	{ "ClientIP", OP_CLIENT_IP, 1, 0 },
};

/* ---- compiling ---------------------------------------------------------------- */

struct parser {
	const char *s;   /* the rule text, NUL-terminated */
	size_t pos;      /* byte offset of the next unread character */
	unsigned depth;
	char *err;
	size_t errlen;
	int col;         /* 1-based column of the first error, 0 while there is none */
};

struct arg {
	char *s;         /* decoded string; owner: the arg_list until moved into a node */
	size_t len;
	size_t at;       /* offset of its opening quote, for error columns */
};

struct arg_list {
	struct arg *v;   /* owner: the parser of one matcher call */
	size_t n, cap;
};

struct kid_list {
	struct rule **v; /* owner: the parser until moved into an AND/OR node */
	size_t n, cap;
};

static void fail(struct parser *p, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records the first error only: later ones are consequences of it. */
static void fail(struct parser *p, size_t at, const char *fmt, ...)
{
	va_list ap;

	if (p->col)
		return;
	p->col = at < INT_MAX ? (int)at + 1 : INT_MAX;
	if (p->err && p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
}

/* Describes the character at pos for "unexpected ..." messages without echoing
 * control bytes into logs. */
static void fail_unexpected(struct parser *p, const char *expected)
{
	unsigned char c = (unsigned char)p->s[p->pos];

	if (c == '\0')
		fail(p, p->pos, "unexpected end of rule, expected %s", expected);
	else if (c >= 0x21 && c < 0x7f)
		fail(p, p->pos, "unexpected '%c', expected %s", c, expected);
	else
		fail(p, p->pos, "unexpected byte 0x%02x, expected %s", c, expected);
}

static void skip_ws(struct parser *p)
{
	for (;;) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			return;
		p->pos++;
	}
}

static char cur(const struct parser *p)
{
	return p->s[p->pos];
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9');
}

static void node_free(struct rule *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nkids; i++)
		node_free(r->kids[i]);
	free(r->kids);
	free(r->arg[0]);
	free(r->arg[1]);
	regexp_free(r->re);
	free(r);
}

static void kids_free(struct kid_list *k)
{
	for (size_t i = 0; i < k->n; i++)
		node_free(k->v[i]);
	free(k->v);
	k->v = NULL;
	k->n = k->cap = 0;
}

static int kids_push(struct parser *p, struct kid_list *k, struct rule *r)
{
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 4;
		struct rule **v = realloc(k->v, cap * sizeof(*v));
		if (!v) {
			fail(p, p->pos, "out of memory");
			return -1;
		}
		k->v = v;
		k->cap = cap;
	}
	k->v[k->n++] = r;
	return 0;
}

static void args_free(struct arg_list *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i].s);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

static struct rule *node_new(struct parser *p, enum rule_op op)
{
	struct rule *r = calloc(1, sizeof(*r));

	if (!r) {
		fail(p, p->pos, "out of memory");
		return NULL;
	}
	r->op = op;
	return r;
}

/* Turns a list of one or more operands into the operand itself or an AND/OR node. */
static struct rule *node_from_list(struct parser *p, enum rule_op op, struct kid_list *k)
{
	struct rule *r;

	if (k->n == 1) {
		r = k->v[0];
		free(k->v);
		k->v = NULL;
		k->n = k->cap = 0;
		return r;
	}
	r = node_new(p, op);
	if (!r) {
		kids_free(k);
		return NULL;
	}
	r->kids = k->v;
	r->nkids = k->n;
	k->v = NULL;
	k->n = k->cap = 0;
	return r;
}

/* A backtick string is raw (Go raw string literal); a double-quoted one knows the
 * escapes \" and \\ and refuses any other, rather than guess what Go would have meant. */
static int parse_string(struct parser *p, struct arg *out)
{
	size_t start = p->pos, i, n = 0;
	char q = cur(p);
	char *s;

	if (q != '`' && q != '"') {
		if (q == '\'')
			fail(p, p->pos, "strings are quoted with ` or \", not '");
		else
			fail_unexpected(p, "a quoted string");
		return -1;
	}
	for (i = start + 1; p->s[i] != q; i++) {
		if (p->s[i] == '\0') {
			fail(p, start, "unterminated string");
			return -1;
		}
		if (q == '"' && p->s[i] == '\\') {
			char e = p->s[i + 1];
			if (e == '\0') {
				fail(p, start, "unterminated string");
				return -1;
			}
			if (e != '"' && e != '\\') {
				if (e >= 0x21 && e < 0x7f)
					fail(p, i, "unknown escape '\\%c' in string (only \\\" and \\\\)", e);
				else
					fail(p, i, "unknown escape in string (only \\\" and \\\\)");
				return -1;
			}
			i++;
		}
	}
	s = malloc(i - start); /* decoded length <= raw length between the quotes, + NUL */
	if (!s) {
		fail(p, start, "out of memory");
		return -1;
	}
	for (size_t j = start + 1; j < i; j++) {
		if (q == '"' && p->s[j] == '\\')
			j++;
		s[n++] = p->s[j];
	}
	s[n] = '\0';
	out->s = s;
	out->len = n;
	out->at = start;
	p->pos = i + 1;
	return 0;
}

static int parse_args(struct parser *p, size_t open, struct arg_list *a)
{
	p->pos++; /* '(' */
	skip_ws(p);
	if (cur(p) == ')') {
		p->pos++;
		return 0;
	}
	for (;;) {
		if (cur(p) == '\0') {
			fail(p, open, "unbalanced '(': missing ')'");
			return -1;
		}
		if (a->n == a->cap) {
			size_t cap = a->cap ? a->cap * 2 : 2;
			struct arg *v = realloc(a->v, cap * sizeof(*v));
			if (!v) {
				fail(p, p->pos, "out of memory");
				return -1;
			}
			a->v = v;
			a->cap = cap;
		}
		if (parse_string(p, &a->v[a->n]) < 0)
			return -1;
		a->n++;
		skip_ws(p);
		if (cur(p) == ')') {
			p->pos++;
			return 0;
		}
		if (cur(p) == '\0') {
			fail(p, open, "unbalanced '(': missing ')'");
			return -1;
		}
		if (cur(p) != ',') {
			fail_unexpected(p, "',' or ')'");
			return -1;
		}
		p->pos++;
		skip_ws(p);
	}
}

/* Go's RE2 syntax, as Traefik takes it (regexp.c); the engine bounds the pattern's
 * size and nesting, and matching time is linear, so no rule can be made to eat
 * memory or CPU. */
static int compile_regex(struct parser *p, struct rule *r, const struct arg *a,
			 const char *name)
{
	char msg[128];

	r->re = regexp_compile(a->s, a->len, 0, msg, sizeof(msg));
	if (!r->re) {
		fail(p, a->at, "bad regexp in '%s': %s", name, msg);
		return -1;
	}
	return 0;
}

static bool all_ascii(const struct arg *a)
{
	for (size_t i = 0; i < a->len; i++)
		if ((unsigned char)a->s[i] >= 0x80)
			return false;
	return true;
}

/* Puts a Host() name in the form requests are compared in: lowercase, without IPv6
 * brackets (Traefik strips them from the request host) and without a trailing dot. */
static void canon_host_arg(struct arg *a)
{
	for (size_t i = 0; i < a->len; i++)
		a->s[i] = ascii_lower(a->s[i]);
	if (a->len >= 2 && a->s[0] == '[' && a->s[a->len - 1] == ']') {
		memmove(a->s, a->s + 1, a->len - 2);
		a->len -= 2;
		a->s[a->len] = '\0';
	}
	if (a->len > 0 && a->s[a->len - 1] == '.')
		a->s[--a->len] = '\0';
}

/* Validates and prepares the arguments args[0..n) of one matcher leaf. */
static int leaf_prepare(struct parser *p, struct rule *r, const struct matcher_def *d,
			struct arg *args, unsigned n)
{
	struct arg *a = &args[0];

	/* Only a header or query value may be empty; everything else is a mistake. */
	for (unsigned i = 0; i < n; i++) {
		bool may_be_empty = i == 1 && (d->op == OP_HEADER || d->op == OP_QUERY);
		if (args[i].len == 0 && !may_be_empty) {
			fail(p, args[i].at, "empty argument to '%s'", d->name);
			return -1;
		}
	}
	switch (d->op) {
	case OP_HOST:
		if (!all_ascii(a)) {
			fail(p, a->at, "non-ASCII host in 'Host' (use the punycode form)");
			return -1;
		}
		canon_host_arg(a);
		return 0;
	case OP_HOST_REGEXP:
		if (!all_ascii(a)) {
			fail(p, a->at, "non-ASCII pattern in 'HostRegexp' (use the punycode form)");
			return -1;
		}
		return compile_regex(p, r, a, d->name);
	case OP_PATH:
	case OP_PATH_PREFIX:
		if (a->s[0] != '/') {
			fail(p, a->at, "'%s' argument must start with '/'", d->name);
			return -1;
		}
		return 0;
	case OP_PATH_REGEXP:
		return compile_regex(p, r, a, d->name);
	case OP_METHOD:
		/* Traefik uppercases the rule's method and compares case-sensitively. */
		for (size_t i = 0; i < a->len; i++)
			if (a->s[i] >= 'a' && a->s[i] <= 'z')
				a->s[i] = (char)(a->s[i] - 32);
		return 0;
	case OP_HEADER_REGEXP:
	case OP_QUERY_REGEXP:
		return compile_regex(p, r, &args[1], d->name);
	case OP_CLIENT_IP:
		if (cidr_parse(slice_make(a->s, a->len), &r->cidr) < 0) {
			fail(p, a->at, "bad IP or CIDR '%.64s' in 'ClientIP'", a->s);
			return -1;
		}
		return 0;
	default:
		return 0;
	}
}

/* Builds one leaf from args[0..n), taking ownership of their strings. */
static struct rule *leaf_new(struct parser *p, const struct matcher_def *d, struct arg *args,
			     unsigned n)
{
	struct rule *r = node_new(p, d->op);

	if (!r)
		return NULL;
	if (leaf_prepare(p, r, d, args, n) < 0) {
		node_free(r);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		r->arg[i] = args[i].s;
		r->arglen[i] = args[i].len;
		args[i].s = NULL;
	}
	r->nargs = n;
	return r;
}

static struct rule *parse_matcher(struct parser *p)
{
	size_t start = p->pos, namelen, open;
	const struct matcher_def *d = NULL;
	struct arg_list a = { 0 };
	struct kid_list k = { 0 };
	struct rule *r = NULL;

	while (is_alnum(cur(p)))
		p->pos++;
	namelen = p->pos - start;
	for (size_t i = 0; i < sizeof(matchers) / sizeof(matchers[0]); i++) {
		if (strlen(matchers[i].name) == namelen &&
		    memcmp(matchers[i].name, p->s + start, namelen) == 0) {
			d = &matchers[i];
			break;
		}
	}
	if (!d) {
		fail(p, start, "unknown matcher '%.*s'", namelen > 40 ? 40 : (int)namelen,
		     p->s + start);
		return NULL;
	}
	skip_ws(p);
	if (cur(p) != '(') {
		fail(p, p->pos, "expected '(' after '%s'", d->name);
		return NULL;
	}
	open = p->pos;
	if (parse_args(p, open, &a) < 0)
		goto out;
	if (a.n < d->min_args || (d->max_args && a.n > d->max_args)) {
		if (d->max_args == 0)
			fail(p, start, "'%s' takes at least %u argument%s, got %zu", d->name,
			     d->min_args, d->min_args == 1 ? "" : "s", a.n);
		else if (d->min_args == d->max_args)
			fail(p, start, "'%s' takes %u argument%s, got %zu", d->name, d->min_args,
			     d->min_args == 1 ? "" : "s", a.n);
		else
			fail(p, start, "'%s' takes %u or %u arguments, got %zu", d->name,
			     d->min_args, d->max_args, a.n);
		goto out;
	}
	if (d->max_args != 0) {
		r = leaf_new(p, d, a.v, (unsigned)a.n);
		goto out;
	}
	for (size_t i = 0; i < a.n; i++) {
		struct rule *leaf = leaf_new(p, d, &a.v[i], 1);
		if (!leaf || kids_push(p, &k, leaf) < 0) {
			node_free(leaf);
			kids_free(&k);
			goto out;
		}
	}
	r = node_from_list(p, OP_OR, &k);
out:
	args_free(&a);
	return r;
}

static struct rule *parse_or(struct parser *p);

static int depth_enter(struct parser *p)
{
	if (++p->depth > RULE_MAX_DEPTH) {
		fail(p, p->pos, "rule nested too deeply (more than %d levels of '(' and '!')",
		     RULE_MAX_DEPTH);
		return -1;
	}
	return 0;
}

static struct rule *parse_unary(struct parser *p)
{
	struct rule *r, *k;
	size_t open;

	skip_ws(p);
	if (cur(p) == '!') {
		if (depth_enter(p) < 0)
			return NULL;
		p->pos++;
		k = parse_unary(p);
		p->depth--;
		if (!k)
			return NULL;
		struct kid_list one = { 0 };
		r = node_new(p, OP_NOT);
		if (!r || kids_push(p, &one, k) < 0) {
			node_free(k);
			node_free(r);
			return NULL;
		}
		r->kids = one.v;
		r->nkids = 1;
		return r;
	}
	if (cur(p) == '(') {
		open = p->pos;
		if (depth_enter(p) < 0)
			return NULL;
		p->pos++;
		r = parse_or(p);
		p->depth--;
		if (!r)
			return NULL;
		skip_ws(p);
		if (cur(p) == ')') {
			p->pos++;
			return r;
		}
		if (cur(p) == '\0')
			fail(p, open, "unbalanced '(': missing ')'");
		else
			fail_unexpected(p, "'&&', '||' or ')'");
		node_free(r);
		return NULL;
	}
	if (is_alpha(cur(p)))
		return parse_matcher(p);
	fail_unexpected(p, "a matcher, '(' or '!'");
	return NULL;
}

/* and := unary ('&&' unary)* ; '&&' binds tighter than '||'. */
static struct rule *parse_and(struct parser *p)
{
	struct kid_list k = { 0 };
	struct rule *r;

	for (;;) {
		r = parse_unary(p);
		if (!r || kids_push(p, &k, r) < 0) {
			node_free(r);
			kids_free(&k);
			return NULL;
		}
		skip_ws(p);
		if (cur(p) != '&')
			break;
		if (p->s[p->pos + 1] != '&') {
			fail(p, p->pos, "expected '&&'");
			kids_free(&k);
			return NULL;
		}
		p->pos += 2;
	}
	return node_from_list(p, OP_AND, &k);
}

/* or := and ('||' and)* */
static struct rule *parse_or(struct parser *p)
{
	struct kid_list k = { 0 };
	struct rule *r;

	for (;;) {
		r = parse_and(p);
		if (!r || kids_push(p, &k, r) < 0) {
			node_free(r);
			kids_free(&k);
			return NULL;
		}
		skip_ws(p);
		if (cur(p) != '|')
			break;
		if (p->s[p->pos + 1] != '|') {
			fail(p, p->pos, "expected '||'");
			kids_free(&k);
			return NULL;
		}
		p->pos += 2;
	}
	return node_from_list(p, OP_OR, &k);
}

struct rule *rule_compile(const char *text, char *err, size_t errlen, int *err_col)
{
	struct parser p = { .s = text ? text : "", .err = err, .errlen = errlen };
	struct rule *r = NULL;

	if (err && errlen)
		err[0] = '\0';
	skip_ws(&p);
	if (cur(&p) == '\0') {
		fail(&p, p.pos, "empty rule");
		goto out;
	}
	r = parse_or(&p);
	if (!r)
		goto out;
	skip_ws(&p);
	if (cur(&p) != '\0') {
		if (cur(&p) == ')')
			fail(&p, p.pos, "unbalanced ')'");
		else
			fail_unexpected(&p, "'&&' or '||'");
		node_free(r);
		r = NULL;
	}
out:
	if (err_col)
		*err_col = r ? 0 : p.col;
	return r;
}

void rule_free(struct rule *r)
{
	node_free(r);
}

/* ---- matching (hot path: no allocation) --------------------------------------- */

/* The request host as Traefik canonizes it (requestdecorator's parseHost): "[v6]" and
 * "[v6]:port" lose brackets and port, "name:port" loses the port; a bare IPv6 address
 * (several colons) or anything unparsable is left as it is. */
static struct slice host_without_port(struct slice h)
{
	const char *close, *colon;

	if (h.len == 0)
		return h;
	if (h.p[0] == '[') {
		close = memchr(h.p, ']', h.len);
		if (close) {
			size_t k = (size_t)(close - h.p);
			if (k + 1 == h.len || h.p[k + 1] == ':')
				return slice_make(h.p + 1, k - 1);
		}
		return h;
	}
	colon = memchr(h.p, ':', h.len);
	if (!colon)
		return h;
	size_t at = (size_t)(colon - h.p);
	if (memchr(colon + 1, ':', h.len - at - 1))
		return h;
	return slice_make(h.p, at);
}

/* Whether re matches anywhere in p[0..len); lower: as if the bytes were lowercase
 * (host names). */
static bool regex_match(const struct regexp *re, const char *p, size_t len, bool lower)
{
	return regexp_search(re, slice_make(p, len), 0, lower, NULL);
}

static bool match_host(const struct rule *r, struct slice host)
{
	struct slice h = host_without_port(host);

	if (h.len == 0)
		return false;
	/* Traefik ignores a trailing dot (fully qualified form) on either side. */
	if (h.p[h.len - 1] == '.')
		h.len--;
	return slice_case_eq(h, slice_make(r->arg[0], r->arglen[0]));
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Next byte of a query component decoded as Go's url.QueryUnescape does: "%XX" with two
 * hex digits, '+' as a space; -1 on a malformed escape. */
static int query_byte(struct slice raw, size_t *i)
{
	char c = raw.p[(*i)++];

	if (c == '+')
		return ' ';
	if (c != '%')
		return (unsigned char)c;
	if (*i + 2 > raw.len)
		return -1;
	int hi = hex_digit(raw.p[*i]), lo = hex_digit(raw.p[*i + 1]);
	if (hi < 0 || lo < 0)
		return -1;
	*i += 2;
	return hi * 16 + lo;
}

/* 1 if raw decodes to want[0..wantlen), 0 if to something else, -1 if malformed.
 * Decodes in place of a copy: the hot path has no buffer to spare for it. */
static int query_component_eq(struct slice raw, const char *want, size_t wantlen)
{
	size_t i = 0, j = 0;
	bool eq = true;

	while (i < raw.len) {
		int c = query_byte(raw, &i);
		if (c < 0)
			return -1;
		if (j >= wantlen || (unsigned char)want[j] != c)
			eq = false;
		j++;
	}
	return eq && j == wantlen;
}

/* Decodes raw into buf; the decoded length, or -1 if malformed or too long. */
static long query_decode(struct slice raw, char *buf, size_t cap)
{
	size_t i = 0, n = 0;

	while (i < raw.len) {
		int c = query_byte(raw, &i);
		if (c < 0 || n >= cap)
			return -1;
		buf[n++] = (char)c;
	}
	return (long)n;
}

/* Steps through the pairs of a raw query the way Go's url.ParseQuery does: split on
 * '&', skip empty pairs and pairs containing ';' (Go >= 1.17 refuses them), split each
 * on its first '='. Returns false when there are no more pairs. */
static bool query_next(struct slice q, size_t *i, struct slice *key, struct slice *val)
{
	while (*i < q.len) {
		size_t start = *i, end = start;
		while (end < q.len && q.p[end] != '&')
			end++;
		*i = end < q.len ? end + 1 : end;
		struct slice pair = slice_make(q.p + start, end - start);
		if (pair.len == 0 || memchr(pair.p, ';', pair.len))
			continue;
		const char *eq = memchr(pair.p, '=', pair.len);
		if (eq) {
			size_t k = (size_t)(eq - pair.p);
			*key = slice_make(pair.p, k);
			*val = slice_make(eq + 1, pair.len - k - 1);
		} else {
			*key = pair;
			*val = slice_make(pair.p + pair.len, 0);
		}
		return true;
	}
	return false;
}

static bool match_query(const struct rule *r, struct slice q)
{
	struct slice key, val;
	size_t i = 0;

	while (query_next(q, &i, &key, &val)) {
		/* Go drops a pair whose key or value is malformed, so check both. */
		if (query_component_eq(key, r->arg[0], r->arglen[0]) != 1)
			continue;
		if (r->nargs == 1) {
			if (query_component_eq(val, "", 0) >= 0)
				return true;
			continue;
		}
		if (query_component_eq(val, r->arg[1], r->arglen[1]) == 1)
			return true;
	}
	return false;
}

static bool match_query_regexp(const struct rule *r, struct slice q)
{
	char buf[RULE_QUERY_VALUE_MAX];
	struct slice key, val;
	size_t i = 0;

	while (query_next(q, &i, &key, &val)) {
		if (query_component_eq(key, r->arg[0], r->arglen[0]) != 1)
			continue;
		long n = query_decode(val, buf, sizeof(buf));
		if (n >= 0 && regex_match(r->re, buf, (size_t)n, false))
			return true;
	}
	return false;
}

static bool match_header(const struct rule *r, const struct rule_subject *s, bool regexp)
{
	struct slice name = slice_make(r->arg[0], r->arglen[0]);
	struct slice want = slice_make(r->arg[1], r->arglen[1]);

	for (size_t i = 0; i < s->nfields; i++) {
		const struct http_field *f = &s->fields[i];
		if (!slice_case_eq(f->name, name))
			continue;
		if (regexp ? regex_match(r->re, f->value.p, f->value.len, false)
			   : slice_eq(f->value, want))
			return true;
	}
	return false;
}

bool rule_match(const struct rule *r, const struct rule_subject *s)
{
	struct slice arg0;

	if (!r || !s)
		return false;
	arg0 = slice_make(r->arg[0], r->arglen[0]);
	switch (r->op) {
	case OP_AND:
		for (size_t i = 0; i < r->nkids; i++)
			if (!rule_match(r->kids[i], s))
				return false;
		return true;
	case OP_OR:
		for (size_t i = 0; i < r->nkids; i++)
			if (rule_match(r->kids[i], s))
				return true;
		return false;
	case OP_NOT:
		return !rule_match(r->kids[0], s);
	case OP_HOST:
		return match_host(r, s->host);
	case OP_HOST_REGEXP: {
		struct slice h = host_without_port(s->host);
		return regex_match(r->re, h.p, h.len, true);
	}
	case OP_PATH:
		return slice_eq(s->path, arg0);
	case OP_PATH_PREFIX:
		return slice_has_prefix(s->path, arg0);
	case OP_PATH_REGEXP:
		return regex_match(r->re, s->path.p, s->path.len, false);
	case OP_METHOD:
		return slice_eq(s->method, arg0);
	case OP_HEADER:
		return match_header(r, s, false);
	case OP_HEADER_REGEXP:
		return match_header(r, s, true);
	case OP_QUERY:
		return match_query(r, s->query);
	case OP_QUERY_REGEXP:
		return match_query_regexp(r, s->query);
	case OP_CLIENT_IP:
		return cidr_contains(&r->cidr, s->client);
	}
	return false;
}

size_t rule_hosts(const struct rule *r, void (*fn)(void *ctx, const char *host), void *ctx)
{
	size_t n = 0;

	if (!r)
		return 0;
	switch (r->op) {
	case OP_AND:
	case OP_OR:
		for (size_t i = 0; i < r->nkids; i++)
			n += rule_hosts(r->kids[i], fn, ctx);
		return n;
	case OP_HOST:
		if (fn)
			fn(ctx, r->arg[0]);
		return 1;
	default:
		/* '!' excludes its names: a router for "not example.com" certifies nothing. */
		return 0;
	}
}
