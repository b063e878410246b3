/* http_parse.c - strict HTTP/1.1 head parser and chunked decoder (RFC 9112, RFC 9110).
 * Anything two hops could frame differently is rejected, never repaired. */
#define _POSIX_C_SOURCE 200809L /* inet_pton */
#include "http_parse.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

/* Leading empty lines ignored before a start line (RFC 9112 §2.2 asks for at least
 * one); more than this is a flood, not a client bug. */
#define MAX_LEADING_CRLF 16
#define MAX_CHUNK_EXT 4096       /* bytes of chunk extensions on one size line */
#define MAX_TRAILER 16384        /* bytes of the whole trailer section */
#define MAX_CHUNK_SIZE (UINT64_C(1) << 62)

/* Character classes, one bit each. */
enum {
	C_TCHAR = 0x01, /* token character, RFC 9110 §5.6.2 */
	C_FVAL = 0x02,  /* field-value byte: HTAB, SP, VCHAR, obs-text (RFC 9110 §5.5) */
	C_VIS = 0x04,   /* VCHAR 0x21-0x7E: request-target bytes */
	C_HEX = 0x08,   /* HEXDIG */
	C_REG = 0x10,   /* reg-name byte except '%': unreserved / sub-delims (RFC 3986 §3.2.2) */
	C_QD = 0x20,    /* qdtext, RFC 9110 §5.6.4 */
};

static const unsigned char cls[256] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x22, 0x37, 0x06, 0x27, 0x37, 0x27, 0x37, 0x37, 0x36, 0x36, 0x37, 0x37, 0x36, 0x37, 0x37, 0x26,
	0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x26, 0x36, 0x26, 0x36, 0x26, 0x26,
	0x26, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37,
	0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x26, 0x06, 0x26, 0x27, 0x37,
	0x27, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37,
	0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x26, 0x27, 0x26, 0x37, 0x00,
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
};

static inline bool is(char c, unsigned bit)
{
	return (cls[(unsigned char)c] & bit) != 0;
}

static inline bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Word-at-a-time scanning (SWAR): eight bytes are tested with a few integer
 * operations, so the long runs of plain text in a head cost little. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t load64(const char *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof(x));
	return x;
}

/* Nonzero iff some byte of x is below n (n <= 128); bytes >= 0x80 never count. */
static inline uint64_t any_below(uint64_t x, unsigned n)
{
	return (x - ONES * n) & ~x & HIGHS;
}

/* Offset of the first flagged byte in a nonzero any_below/any_equal mask; the
 * lowest flag is always exact (borrows only run upwards). Without a way to count
 * trailing zeros, 0: the caller's byte loop then finds the byte itself. */
static inline size_t first_flagged(uint64_t m)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (size_t)__builtin_ctzll(m) >> 3;
#else
	(void)m;
	return 0;
#endif
}

/* Nonzero iff some byte of x equals b. */
static inline uint64_t any_equal(uint64_t x, unsigned b)
{
	return any_below(x ^ (ONES * b), 1);
}

/* Skips 8-byte words made only of field-value bytes other than HTAB: no CTL, no
 * DEL (RFC 9110 §5.5); the caller checks the rest one byte at a time. */
static size_t skip_fval_words(const char *buf, size_t i, size_t lim)
{
	while (i + 8 <= lim) {
		uint64_t x = load64(buf + i);
		uint64_t m = any_below(x, 0x20) | any_equal(x, 0x7f);
		if (m)
			return i + first_flagged(m);
		i += 8;
	}
	return i;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = ascii_lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static struct slice trim_ows(struct slice s)
{
	while (s.len && is_ows(s.p[0])) {
		s.p++;
		s.len--;
	}
	while (s.len && is_ows(s.p[s.len - 1]))
		s.len--;
	return s;
}

/*
 * Head framing.
 */

/* Finds the end of a message head in buf[0..len): skips leading empty lines
 * (RFC 9112 §2.2), then looks for the empty line ending the field section (§2.1).
 * On the way rejects NUL, a bare LF and a CR not followed by LF (§2.2). *scan
 * resumes a previous search. Returns the head length (> 0), HTTP_INCOMPLETE or an
 * error; *startp receives the offset of the start line. */
static int find_head(const char *buf, size_t len, size_t max_head, size_t *scan, size_t *startp)
{
	size_t i = 0, start, line, lim;
	unsigned n = 0;

	if (max_head > INT_MAX)
		max_head = INT_MAX;
	while (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n') {
		if (++n > MAX_LEADING_CRLF)
			return HTTP_ERR_BAD;
		i += 2;
	}
	start = line = i;
	*startp = start;
	lim = len < max_head ? len : max_head;
	if (*scan > start && *scan <= lim) {
		i = *scan;
		/* Every byte before *scan was checked, so a CRLF right before it
		 * means it is the first byte of a line. */
		if (i >= start + 2 && buf[i - 2] == '\r' && buf[i - 1] == '\n')
			line = i;
	}
	while (i < lim) {
		char c;

		if (i + 8 <= lim) {
			uint64_t m = any_below(load64(buf + i), '\r' + 1);
			if (!m) {
				i += 8;
				continue;
			}
			i += first_flagged(m);
		}
		c = buf[i];
		if ((unsigned char)c > '\r') {
			i++;
			continue;
		}
		if (c == '\0' || c == '\n')
			return HTTP_ERR_BAD; /* every valid LF is taken with its CR below */
		if (c != '\r') {
			i++;
			continue;
		}
		if (i + 1 >= lim)
			break; /* look at this CR again when its LF can be seen */
		if (buf[i + 1] != '\n')
			return HTTP_ERR_BAD;
		if (i == line)
			return (int)(i + 2); /* empty line: end of the head */
		i += 2;
		line = i;
	}
	*scan = i;
	return len >= max_head ? HTTP_ERR_HEAD_TOO_LARGE : HTTP_INCOMPLETE;
}

/* Parses the field lines in buf[p..end-2), each ending in CRLF (RFC 9112 §5,
 * RFC 9110 §5.5). find_head guarantees every CR in there is followed by LF. */
static int parse_fields(const char *buf, size_t p, size_t end, struct http_field *fields,
			size_t *nfields)
{
	*nfields = 0;
	while (p < end - 2) {
		size_t n = p, v, e, next;

		/* A line starting with SP/HTAB is obs-fold (§5.2) or whitespace
		 * after the start line (§2.2): both rejected. */
		while (is(buf[n], C_TCHAR))
			n++;
		if (n == p || buf[n] != ':')
			return HTTP_ERR_BAD; /* no whitespace before the colon (§5.1) */
		v = n + 1;
		while (is_ows(buf[v]))
			v++;
		e = skip_fval_words(buf, v, end);
		while (is(buf[e], C_FVAL))
			e++;
		if (buf[e] != '\r')
			return HTTP_ERR_BAD; /* NUL, CR or another CTL in the value */
		next = e + 2;
		while (e > v && is_ows(buf[e - 1]))
			e--;
		if (*nfields == HTTP_MAX_FIELDS)
			return HTTP_ERR_TOO_MANY_FIELDS;
		fields[*nfields].name = slice_make(buf + p, n - p);
		fields[*nfields].value = slice_make(buf + v, e - v);
		(*nfields)++;
		p = next;
	}
	return 0;
}

/* HTTP-version = "HTTP/" DIGIT "." DIGIT at s, avail bytes readable (RFC 9112
 * §2.3). Returns the minor version, HTTP_ERR_VERSION for another well-formed
 * version, or HTTP_ERR_BAD. */
static int parse_version(const char *s, size_t avail)
{
	if (avail < 8 || memcmp(s, "HTTP/", 5) != 0 || s[6] != '.' || s[5] < '0' || s[5] > '9' ||
	    s[7] < '0' || s[7] > '9')
		return HTTP_ERR_BAD;
	if (s[5] != '1' || (s[7] != '0' && s[7] != '1'))
		return HTTP_ERR_VERSION;
	return s[7] - '0';
}

/*
 * Field semantics.
 */

/* Content-Length = 1*DIGIT (RFC 9110 §8.6), at most 2^63-1. A list, even of equal
 * values, is refused: we never forward an ambiguity. */
static bool parse_content_length(struct slice v, uint64_t *out)
{
	uint64_t n = 0;

	if (v.len == 0)
		return false;
	for (size_t i = 0; i < v.len; i++) {
		unsigned d = (unsigned char)v.p[i] - '0';
		if (d > 9)
			return false;
		if (n > (UINT64_C(0x7fffffffffffffff) - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*out = n;
	return true;
}

/* What a Transfer-Encoding list holds, over all its field lines (RFC 9112 §6.1). */
struct te_info {
	unsigned chunked;  /* elements that are exactly "chunked" */
	unsigned other;    /* any other coding, or chunked with parameters */
	bool last_chunked; /* the final coding is chunked */
};

static size_t skip_token(struct slice v, size_t i)
{
	while (i < v.len && is(v.p[i], C_TCHAR))
		i++;
	return i;
}

static size_t skip_ows(struct slice v, size_t i)
{
	while (i < v.len && is_ows(v.p[i]))
		i++;
	return i;
}

/* quoted-string at v.p[i] == '"' (RFC 9110 §5.6.4); returns the index after the
 * closing quote, or 0 if malformed. */
static size_t skip_quoted(struct slice v, size_t i)
{
	for (i++; i < v.len; i++) {
		char c = v.p[i];
		if (c == '"')
			return i + 1;
		if (c == '\\') {
			if (++i == v.len || !is(v.p[i], C_FVAL))
				return 0;
		} else if (!is(c, C_QD)) {
			return 0;
		}
	}
	return 0;
}

/* transfer-coding = token *( OWS ";" OWS token BWS "=" BWS ( token / quoted-string ) )
 * (RFC 9110 §10.1.4), as a #list (§5.6.1: empty elements ignored). */
static bool scan_te(struct slice v, struct te_info *t)
{
	size_t i = 0;

	for (;;) {
		size_t name, name_end;
		bool params = false;

		while (i < v.len && (is_ows(v.p[i]) || v.p[i] == ','))
			i++;
		if (i == v.len)
			return true;
		name = i;
		i = name_end = skip_token(v, i);
		if (i == name)
			return false;
		for (;;) {
			size_t j = skip_ows(v, i), k;
			if (j == v.len || v.p[j] != ';')
				break;
			j = skip_ows(v, j + 1);
			k = skip_token(v, j);
			if (k == j)
				return false;
			k = skip_ows(v, k);
			if (k == v.len || v.p[k] != '=')
				return false;
			k = skip_ows(v, k + 1);
			if (k < v.len && v.p[k] == '"') {
				i = skip_quoted(v, k);
				if (i == 0)
					return false;
			} else {
				i = skip_token(v, k);
				if (i == k)
					return false;
			}
			params = true;
		}
		i = skip_ows(v, i);
		if (i < v.len && v.p[i] != ',')
			return false;
		if (!params && slice_case_eq(slice_make(v.p + name, name_end - name), SLICE_LIT("chunked"))) {
			t->chunked++;
			t->last_chunked = true;
		} else {
			t->other++;
			t->last_chunked = false;
		}
	}
}

/* port = *DIGIT (RFC 3986 §3.2.3); we want 1 to 5 digits, at most 65535. */
static bool valid_port(struct slice s)
{
	unsigned n = 0;

	if (s.len == 0 || s.len > 5)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		unsigned d = (unsigned char)s.p[i] - '0';
		if (d > 9)
			return false;
		n = n * 10 + d;
	}
	return n <= 65535;
}

/* uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): an IPv6 literal in
 * brackets or a non-empty reg-name (which covers IPv4address); no userinfo
 * (RFC 9110 §4.2.4). CONNECT's authority-form needs the port (RFC 9112 §3.2.3). */
static bool valid_authority(struct slice a, bool need_port)
{
	size_t i = 0;

	if (a.len == 0)
		return false;
	if (a.p[0] == '[') {
		char tmp[INET6_ADDRSTRLEN];
		unsigned char addr[16];
		const char *close = memchr(a.p, ']', a.len);
		size_t n;

		if (!close)
			return false;
		n = (size_t)(close - a.p) - 1;
		if (n < 2 || n >= sizeof(tmp))
			return false;
		memcpy(tmp, a.p + 1, n);
		tmp[n] = '\0';
		for (size_t k = 0; k < n; k++)
			if (!is(tmp[k], C_HEX) && tmp[k] != ':' && tmp[k] != '.')
				return false; /* no IPvFuture, no zone id */
		if (inet_pton(AF_INET6, tmp, addr) != 1)
			return false;
		i = n + 2;
	} else {
		while (i < a.len && a.p[i] != ':') {
			if (a.p[i] == '%') {
				if (a.len - i < 3 || !is(a.p[i + 1], C_HEX) || !is(a.p[i + 2], C_HEX))
					return false;
				i += 3;
			} else if (is(a.p[i], C_REG)) {
				i++;
			} else {
				return false;
			}
		}
		if (i == 0)
			return false;
	}
	if (i == a.len)
		return !need_port;
	if (a.p[i] != ':')
		return false;
	return valid_port(slice_make(a.p + i + 1, a.len - i - 1));
}

/* The fields that decide framing and connection handling, gathered in one pass. */
struct head_facts {
	unsigned nhost, ncl, nte;
	struct slice host;
	uint64_t content_length;
	bool cl_bad, te_bad;
	struct te_info te;
	bool conn_close, conn_keep_alive, conn_upgrade;
	bool has_upgrade, expect_continue;
};

/* Connection options we act on (RFC 9110 §7.6.1), in one walk over the list. */
static void connection_options(struct slice v, struct head_facts *h)
{
	size_t i = 0;

	while (i < v.len) {
		const char *comma = memchr(v.p + i, ',', v.len - i);
		size_t e = comma ? (size_t)(comma - v.p) : v.len;
		struct slice el = trim_ows(slice_make(v.p + i, e - i));

		if (slice_case_eq(el, SLICE_LIT("close")))
			h->conn_close = true;
		else if (slice_case_eq(el, SLICE_LIT("keep-alive")))
			h->conn_keep_alive = true;
		else if (slice_case_eq(el, SLICE_LIT("upgrade")))
			h->conn_upgrade = true;
		i = e + 1;
	}
}

static void gather_facts(const struct http_field *f, size_t n, struct head_facts *h)
{
	memset(h, 0, sizeof(*h));
	for (size_t i = 0; i < n; i++) {
		struct slice name = f[i].name, v = f[i].value;

		switch (name.len) {
		case 4:
			if (slice_case_eq(name, SLICE_LIT("host"))) {
				h->nhost++;
				h->host = v;
			}
			break;
		case 6:
			if (slice_case_eq(name, SLICE_LIT("expect")) &&
			    slice_case_eq(v, SLICE_LIT("100-continue")))
				h->expect_continue = true;
			break;
		case 7:
			if (slice_case_eq(name, SLICE_LIT("upgrade")))
				h->has_upgrade = true;
			break;
		case 10:
			if (slice_case_eq(name, SLICE_LIT("connection")))
				connection_options(v, h);
			break;
		case 14:
			if (slice_case_eq(name, SLICE_LIT("content-length"))) {
				h->ncl++;
				if (!parse_content_length(v, &h->content_length))
					h->cl_bad = true;
			}
			break;
		case 17:
			if (slice_case_eq(name, SLICE_LIT("transfer-encoding"))) {
				h->nte++;
				if (!scan_te(v, &h->te))
					h->te_bad = true;
			}
			break;
		}
	}
}

/*
 * Requests.
 */

/* Splits an origin-form target "/path?query" (RFC 9112 §3.2.1). */
static void split_path(struct slice t, struct http_request *req)
{
	const char *q = memchr(t.p, '?', t.len);

	if (q) {
		req->path = slice_make(t.p, (size_t)(q - t.p));
		req->query = slice_make(q + 1, t.len - req->path.len - 1);
	} else {
		req->path = t;
		req->query = slice_make(t.p + t.len, 0);
	}
}

/* Classifies the request-target (RFC 9112 §3.2) and fills path/query. *authority
 * receives the host of an absolute-form target. */
static int parse_target(struct http_request *req, struct slice *authority)
{
	struct slice t = req->target;
	bool connect = slice_eq(req->method, SLICE_LIT("CONNECT"));
	size_t skip, a;

	*authority = slice_make(NULL, 0);
	if (connect) /* §3.2.3: CONNECT uses only authority-form */
		return valid_authority(t, true) ? 0 : HTTP_ERR_BAD;
	if (t.p[0] == '/') {
		split_path(t, req);
		return 0;
	}
	if (t.len == 1 && t.p[0] == '*') { /* §3.2.4: asterisk-form, OPTIONS only */
		if (!slice_eq(req->method, SLICE_LIT("OPTIONS")))
			return HTTP_ERR_BAD;
		req->path = t;
		return 0;
	}

	/* §3.2.2 absolute-form; only the schemes we serve. */
	if (slice_case_eq(slice_make(t.p, t.len < 7 ? t.len : 7), SLICE_LIT("http://")))
		skip = 7;
	else if (slice_case_eq(slice_make(t.p, t.len < 8 ? t.len : 8), SLICE_LIT("https://")))
		skip = 8;
	else
		return HTTP_ERR_BAD;
	a = skip;
	while (a < t.len && t.p[a] != '/' && t.p[a] != '?')
		a++;
	*authority = slice_make(t.p + skip, a - skip);
	if (!valid_authority(*authority, false))
		return HTTP_ERR_BAD;
	if (a < t.len && t.p[a] == '/') {
		split_path(slice_make(t.p + a, t.len - a), req);
	} else {
		/* §3.2.1: an empty path is sent as "/" */
		req->path = SLICE_LIT("/");
		req->query = a < t.len ? slice_make(t.p + a + 1, t.len - a - 1) : slice_make(t.p + a, 0);
	}
	return 0;
}

/* request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3). */
static int parse_request_line(const char *buf, size_t p, size_t end, struct http_request *req,
			      size_t *next)
{
	size_t m = p, t, v;
	int minor;

	while (is(buf[m], C_TCHAR))
		m++;
	if (m == p || buf[m] != ' ')
		return HTTP_ERR_BAD;
	t = m + 1;
	v = t;
	while (v + 8 <= end) { /* words of VCHAR only: no CTL, SP, DEL or obs-text */
		uint64_t x = load64(buf + v);
		uint64_t bad = any_below(x, 0x21) | any_equal(x, 0x7f) | (x & HIGHS);
		if (bad) {
			v += first_flagged(bad);
			break;
		}
		v += 8;
	}
	while (is(buf[v], C_VIS))
		v++;
	if (v == t || buf[v] != ' ')
		return HTTP_ERR_BAD;
	v++;
	minor = parse_version(buf + v, end - v);
	if (minor < 0)
		return minor;
	if (buf[v + 8] != '\r')
		return HTTP_ERR_BAD;
	req->method = slice_make(buf + p, m - p);
	req->target = slice_make(buf + t, v - 1 - t);
	req->minor = minor;
	*next = v + 10;
	return 0;
}

/* Applies RFC 9112 §6 and RFC 9110 §7.2 to the request's fields. */
static int request_semantics(struct http_request *req, struct slice authority)
{
	struct head_facts h;

	gather_facts(req->fields, req->nfields, &h);

	/* RFC 9112 §3.2: HTTP/1.1 needs exactly one valid Host. */
	if (h.nhost > 1 || (h.nhost == 0 && req->minor == 1))
		return HTTP_ERR_BAD;
	if (h.nhost == 1 && !valid_authority(h.host, false))
		return HTTP_ERR_BAD;
	req->host = h.host;
	if (authority.p) {
		/* §3.2.2: the target's authority wins; a Host that says otherwise
		 * would let the router and the upstream disagree, so refuse it. */
		if (h.nhost == 1 && !slice_case_eq(h.host, authority))
			return HTTP_ERR_BAD;
		req->host = authority;
	}

	if (h.ncl > 1 || h.cl_bad)
		return HTTP_ERR_BAD;
	if (h.nte) {
		if (h.ncl)
			return HTTP_ERR_BAD; /* §6.1: both present is smuggling */
		if (req->minor == 0)
			return HTTP_ERR_BAD; /* §6.1: faulty framing from 1.0 */
		if (h.te_bad || h.te.chunked > 1 || h.te.chunked + h.te.other == 0)
			return HTTP_ERR_BAD;
		if (h.te.other)
			return HTTP_ERR_TE; /* §6.1: unknown coding, 501 */
		req->body = HTTP_BODY_CHUNKED;
	} else if (h.ncl) {
		req->body = HTTP_BODY_LENGTH;
		req->content_length = h.content_length;
	}

	/* RFC 9112 §9.3 persistence. */
	if (req->minor == 1)
		req->keep_alive = !h.conn_close;
	else
		req->keep_alive = h.conn_keep_alive && !h.conn_close;
	/* RFC 9110 §10.1.1 and §7.8: both are ignored in HTTP/1.0. */
	req->expect_continue = req->minor == 1 && h.expect_continue;
	req->upgrade = req->minor == 1 && h.conn_upgrade && h.has_upgrade;
	return 0;
}

int http_parse_request_resume(const char *buf, size_t len, size_t max_head, size_t *scan,
			      struct http_request *req)
{
	size_t start, p;
	struct slice authority;
	int end, r;

	end = find_head(buf, len, max_head, scan, &start);
	if (end <= 0)
		return end;
	req->path = req->query = req->host = slice_make(NULL, 0);
	req->nfields = 0;
	req->body = HTTP_BODY_NONE;
	req->content_length = 0;
	req->keep_alive = req->expect_continue = req->upgrade = false;

	r = parse_request_line(buf, start, (size_t)end, req, &p);
	if (r < 0)
		return r;
	r = parse_fields(buf, p, (size_t)end, req->fields, &req->nfields);
	if (r < 0)
		return r;
	r = parse_target(req, &authority);
	if (r < 0)
		return r;
	r = request_semantics(req, authority);
	if (r < 0)
		return r;
	return end;
}

int http_parse_request(const char *buf, size_t len, size_t max_head, struct http_request *req)
{
	size_t scan = 0;

	return http_parse_request_resume(buf, len, max_head, &scan, req);
}

/*
 * Responses.
 */

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC 9112 §4);
 * a missing SP before an empty reason is tolerated, as servers omit it. */
static int parse_status_line(const char *buf, size_t p, size_t end, struct http_response *resp,
			     size_t *next)
{
	const char *s = buf + p;
	size_t r;
	int minor;

	minor = parse_version(s, end - p);
	if (minor < 0)
		return minor;
	if (end - p < 13 || s[8] != ' ')
		return HTTP_ERR_BAD;
	for (int k = 9; k < 12; k++)
		if (s[k] < '0' || s[k] > '9')
			return HTTP_ERR_BAD;
	resp->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	if (resp->status < 100 || resp->status > 599)
		return HTTP_ERR_BAD; /* RFC 9110 §15: outside 100..599 is invalid */
	resp->minor = minor;
	if (s[12] == '\r') {
		resp->reason = slice_make(s + 12, 0);
		*next = p + 14;
		return 0;
	}
	if (s[12] != ' ')
		return HTTP_ERR_BAD;
	r = p + 13;
	while (is(buf[r], C_FVAL))
		r++;
	if (buf[r] != '\r')
		return HTTP_ERR_BAD;
	resp->reason = slice_make(buf + p + 13, r - p - 13);
	*next = r + 2;
	return 0;
}

/* Message body length of a response, RFC 9112 §6.3 rules 1-7. */
static int response_semantics(struct http_response *resp, struct slice method)
{
	struct head_facts h;
	int st = resp->status;

	gather_facts(resp->fields, resp->nfields, &h);

	/* Refuse what we could not forward unambiguously, whatever the status. */
	if (h.ncl > 1 || h.cl_bad)
		return HTTP_ERR_BAD;
	if (h.nte && (h.ncl || resp->minor == 0 || h.te_bad || h.te.chunked > 1 ||
		      h.te.chunked + h.te.other == 0))
		return HTTP_ERR_BAD;

	if (slice_eq(method, SLICE_LIT("HEAD")) || st < 200 || st == 204 || st == 304)
		resp->body = HTTP_BODY_NONE; /* rule 1 */
	else if (slice_eq(method, SLICE_LIT("CONNECT")) && st < 300)
		resp->body = HTTP_BODY_NONE; /* rule 2: a tunnel follows */
	else if (h.nte)
		resp->body = h.te.last_chunked ? HTTP_BODY_CHUNKED : HTTP_BODY_EOF; /* rule 4 */
	else if (h.ncl) {
		resp->body = HTTP_BODY_LENGTH; /* rule 6 */
		resp->content_length = h.content_length;
	} else {
		resp->body = HTTP_BODY_EOF; /* rule 8 */
	}

	if (resp->minor == 1)
		resp->keep_alive = !h.conn_close;
	else
		resp->keep_alive = h.conn_keep_alive && !h.conn_close;
	if (resp->body == HTTP_BODY_EOF)
		resp->keep_alive = false;
	return 0;
}

int http_parse_response_resume(const char *buf, size_t len, size_t max_head, size_t *scan,
			       struct slice request_method, struct http_response *resp)
{
	size_t start, p;
	int end, r;

	end = find_head(buf, len, max_head, scan, &start);
	if (end <= 0)
		return end;
	resp->nfields = 0;
	resp->body = HTTP_BODY_NONE;
	resp->content_length = 0;
	resp->keep_alive = false;

	r = parse_status_line(buf, start, (size_t)end, resp, &p);
	if (r < 0)
		return r;
	r = parse_fields(buf, p, (size_t)end, resp->fields, &resp->nfields);
	if (r < 0)
		return r;
	r = response_semantics(resp, request_method);
	if (r < 0)
		return r;
	return end;
}

int http_parse_response(const char *buf, size_t len, size_t max_head, struct slice request_method,
			struct http_response *resp)
{
	size_t scan = 0;

	return http_parse_response_resume(buf, len, max_head, &scan, request_method, resp);
}

/*
 * Field helpers.
 */

const struct http_field *http_find_field(const struct http_field *fields, size_t n, struct slice name)
{
	for (size_t i = 0; i < n; i++)
		if (slice_case_eq(fields[i].name, name))
			return &fields[i];
	return NULL;
}

/* #list elements separated by commas with OWS around them (RFC 9110 §5.6.1). */
bool http_token_list_has(struct slice value, struct slice token)
{
	size_t i = 0;

	while (i < value.len) {
		const char *comma = memchr(value.p + i, ',', value.len - i);
		size_t e = comma ? (size_t)(comma - value.p) : value.len;
		struct slice el = trim_ows(slice_make(value.p + i, e - i));

		if (el.len && slice_case_eq(el, token))
			return true;
		i = e + 1;
	}
	return false;
}

/*
 * Chunked transfer coding, RFC 9112 §7.1.
 */

/* Positions inside chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 * and inside a trailer field line. */
enum {
	EXT_SEMI,       /* after whitespace: only BWS or ';' may follow */
	EXT_NAME_START, /* after ';' */
	EXT_NAME,
	EXT_AFTER_NAME, /* BWS after a name: '=' or ';' */
	EXT_VAL_START,  /* after '=' */
	EXT_TOKEN,
	EXT_QUOTED,
	EXT_QUOTED_ESC,
	EXT_AFTER_VAL,  /* after a closing quote */
	TR_NAME,
	TR_VALUE,
};

void http_chunked_init(struct http_chunked *c)
{
	c->state = CHUNK_SIZE;
	c->remaining = 0;
	c->size_digits = 0;
	c->line_len = 0;
	c->sub = 0;
}

/* One byte of a chunk extension; false if it breaks the grammar. */
static bool ext_byte(struct http_chunked *c, char ch)
{
	bool ws = is_ows(ch);

	switch (c->sub) {
	case EXT_SEMI:
		if (ch == ';')
			c->sub = EXT_NAME_START;
		return ws || ch == ';';
	case EXT_NAME_START:
		if (is(ch, C_TCHAR))
			c->sub = EXT_NAME;
		return ws || is(ch, C_TCHAR);
	case EXT_NAME:
	case EXT_AFTER_NAME:
		if (ch == '=')
			c->sub = EXT_VAL_START;
		else if (ch == ';')
			c->sub = EXT_NAME_START;
		else if (ws)
			c->sub = EXT_AFTER_NAME;
		else
			return c->sub == EXT_NAME && is(ch, C_TCHAR);
		return true;
	case EXT_VAL_START:
		if (ch == '"')
			c->sub = EXT_QUOTED;
		else if (is(ch, C_TCHAR))
			c->sub = EXT_TOKEN;
		else
			return ws;
		return true;
	case EXT_TOKEN:
	case EXT_AFTER_VAL:
		if (ch == ';')
			c->sub = EXT_NAME_START;
		else if (ws)
			c->sub = EXT_SEMI;
		else
			return c->sub == EXT_TOKEN && is(ch, C_TCHAR);
		return true;
	case EXT_QUOTED:
		if (ch == '"')
			c->sub = EXT_AFTER_VAL;
		else if (ch == '\\')
			c->sub = EXT_QUOTED_ESC;
		else
			return is(ch, C_QD);
		return true;
	case EXT_QUOTED_ESC:
		c->sub = EXT_QUOTED;
		return is(ch, C_FVAL); /* quoted-pair, RFC 9110 §5.6.4 */
	}
	return false;
}

/* The CR ending a size line may come only where an extension is complete. */
static bool ext_complete(const struct http_chunked *c)
{
	return c->sub == EXT_NAME || c->sub == EXT_TOKEN || c->sub == EXT_AFTER_VAL;
}

static ssize_t chunk_fail(struct http_chunked *c)
{
	c->state = CHUNK_ERROR;
	return -1;
}

ssize_t http_chunked_feed(struct http_chunked *c, const char *in, size_t len, size_t *data_off,
			  size_t *data_len)
{
	size_t i;

	*data_off = 0;
	*data_len = 0;
	if (c->state == CHUNK_ERROR)
		return -1;
	for (i = 0; i < len && c->state != CHUNK_DONE; i++) {
		char ch = in[i];
		int d;

		switch (c->state) {
		case CHUNK_SIZE:
			/* chunk-size = 1*HEXDIG; no sign, no "0x", no whitespace first */
			d = hexval(ch);
			if (d >= 0) {
				if (c->size_digits == 16 || c->remaining > (MAX_CHUNK_SIZE >> 4))
					return chunk_fail(c);
				c->remaining = (c->remaining << 4) | (uint64_t)d;
				c->size_digits++;
				if (c->remaining > MAX_CHUNK_SIZE)
					return chunk_fail(c);
			} else if (c->size_digits == 0) {
				return chunk_fail(c);
			} else if (ch == '\r') {
				c->state = CHUNK_SIZE_LF;
			} else if (ch == ';' || is_ows(ch)) {
				c->state = CHUNK_SIZE_EXT;
				c->sub = ch == ';' ? EXT_NAME_START : EXT_SEMI;
				c->line_len = 1;
			} else {
				return chunk_fail(c);
			}
			break;
		case CHUNK_SIZE_EXT:
			if (ch == '\r' && ext_complete(c)) {
				c->state = CHUNK_SIZE_LF;
				break;
			}
			if (++c->line_len > MAX_CHUNK_EXT || !ext_byte(c, ch))
				return chunk_fail(c);
			break;
		case CHUNK_SIZE_LF:
			if (ch != '\n')
				return chunk_fail(c);
			if (c->remaining == 0) {
				c->state = CHUNK_TRAILER_START; /* last-chunk */
				c->line_len = 0;
			} else {
				c->state = CHUNK_DATA;
			}
			break;
		case CHUNK_DATA: {
			size_t n = len - i;
			if ((uint64_t)n > c->remaining)
				n = (size_t)c->remaining;
			*data_off = i;
			*data_len = n;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = CHUNK_DATA_CR;
			return (ssize_t)(i + n);
		}
		case CHUNK_DATA_CR:
			if (ch != '\r')
				return chunk_fail(c);
			c->state = CHUNK_DATA_LF;
			break;
		case CHUNK_DATA_LF:
			if (ch != '\n')
				return chunk_fail(c);
			c->state = CHUNK_SIZE;
			c->remaining = 0;
			c->size_digits = 0;
			c->line_len = 0;
			break;
		case CHUNK_TRAILER_START:
			/* trailer-section = *( field-line CRLF ), RFC 9112 §7.1.2 */
			if (++c->line_len > MAX_TRAILER)
				return chunk_fail(c);
			if (ch == '\r') {
				c->state = CHUNK_FINAL_LF;
			} else if (is(ch, C_TCHAR)) {
				c->state = CHUNK_TRAILER_LINE;
				c->sub = TR_NAME;
			} else {
				return chunk_fail(c); /* obs-fold, empty name, bare LF */
			}
			break;
		case CHUNK_TRAILER_LINE:
			if (++c->line_len > MAX_TRAILER)
				return chunk_fail(c);
			if (c->sub == TR_NAME) {
				if (ch == ':')
					c->sub = TR_VALUE;
				else if (!is(ch, C_TCHAR))
					return chunk_fail(c);
			} else if (ch == '\r') {
				c->state = CHUNK_TRAILER_LF;
			} else if (!is(ch, C_FVAL)) {
				return chunk_fail(c);
			}
			break;
		case CHUNK_TRAILER_LF:
			if (++c->line_len > MAX_TRAILER || ch != '\n')
				return chunk_fail(c);
			c->state = CHUNK_TRAILER_START;
			break;
		case CHUNK_FINAL_LF:
			if (ch != '\n')
				return chunk_fail(c);
			c->state = CHUNK_DONE;
			break;
		case CHUNK_DONE:
		case CHUNK_ERROR:
			break;
		}
	}
	return (ssize_t)i;
}
