/* test_http_parse.c - unit tests for the strict HTTP/1.1 parser and chunked decoder:
 * tables of valid and hostile messages, and split-at-every-byte properties. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "test.h"

#define MAX_HEAD 16384

struct raw {
	const char *p;
	size_t len;
};

#define R(s) { (s), sizeof(s) - 1 }

/* A private heap copy of exactly len bytes, so ASan sees any over-read; it lives
 * until the next call, as the parsed slices point into it. */
static char *exact_copy(const char *p, size_t len)
{
	static char *last;

	free(last);
	last = malloc(len ? len : 1);
	memcpy(last, p, len);
	return last;
}

static int parse_req(const char *p, size_t len, size_t max_head, struct http_request *req)
{
	return http_parse_request(exact_copy(p, len), len, max_head, req);
}

static int parse_resp(const char *p, size_t len, const char *method, struct http_response *resp)
{
	return http_parse_response(exact_copy(p, len), len, MAX_HEAD, slice_cstr(method), resp);
}

static bool eq(struct slice s, const char *want)
{
	return slice_eq(s, slice_cstr(want));
}

/* Length of the head: up to and including the first CRLF CRLF after leading CRLFs. */
static size_t head_len(struct raw r)
{
	size_t i = 0;

	while (i + 1 < r.len && r.p[i] == '\r' && r.p[i + 1] == '\n')
		i += 2;
	for (; i + 3 < r.len; i++)
		if (memcmp(r.p + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return 0;
}

/*
 * Valid requests.
 */

struct valid_req {
	struct raw raw;
	const char *method, *path, *query, *host;
	int minor;
	enum http_body_kind body;
	uint64_t content_length;
	bool keep_alive, expect_continue, upgrade;
	size_t nfields;
};

static const struct valid_req valid_reqs[] = {
	{ R("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), "GET", "/", "", "example.com", 1,
	  HTTP_BODY_NONE, 0, true, false, false, 1 },
	{ R("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\n\r\n"), "GET",
	  "/a/b", "x=1&y=2", "example.com:8080", 1, HTTP_BODY_NONE, 0, true, false, false, 2 },
	{ R("POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"), "POST", "/submit",
	  "", "h", 1, HTTP_BODY_LENGTH, 5, true, false, false, 2 },
	{ R("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), "POST", "/", "", "h", 1,
	  HTTP_BODY_LENGTH, 0, true, false, false, 2 },
	{ R("POST / HTTP/1.1\r\nHost: h\r\ncontent-length:007\r\n\r\n"), "POST", "/", "", "h", 1,
	  HTTP_BODY_LENGTH, 7, true, false, false, 2 },
	{ R("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n"), "POST", "/",
	  "", "h", 1, HTTP_BODY_LENGTH, UINT64_C(9223372036854775807), true, false, false, 2 },
	{ R("POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
	  "POST", "/up", "", "h", 1, HTTP_BODY_CHUNKED, 0, true, false, false, 2 },
	{ R("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n"), "POST", "/", "", "h",
	  1, HTTP_BODY_CHUNKED, 0, true, false, false, 2 },
	{ R("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked ,\r\n\r\n"), "POST", "/", "",
	  "h", 1, HTTP_BODY_CHUNKED, 0, true, false, false, 2 },
	{ R("GET / HTTP/1.0\r\n\r\n"), "GET", "/", "", "", 0, HTTP_BODY_NONE, 0, false, false, false,
	  0 },
	{ R("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), "GET", "/", "", "", 0,
	  HTTP_BODY_NONE, 0, true, false, false, 1 },
	{ R("GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n"), "GET", "/", "", "", 0,
	  HTTP_BODY_NONE, 0, false, false, false, 1 },
	{ R("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), "GET", "/", "", "h", 1,
	  HTTP_BODY_NONE, 0, false, false, false, 2 },
	{ R("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo\r\nConnection: CLOSE\r\n\r\n"), "GET", "/",
	  "", "h", 1, HTTP_BODY_NONE, 0, false, false, false, 3 },
	{ R("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"), "POST",
	  "/", "", "h", 1, HTTP_BODY_LENGTH, 3, true, true, false, 3 },
	{ R("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"), "POST", "/", "",
	  "", 0, HTTP_BODY_LENGTH, 3, false, false, false, 2 },
	{ R("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"),
	  "GET", "/ws", "", "h", 1, HTTP_BODY_NONE, 0, true, false, true, 3 },
	{ R("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\r\n"), "GET", "/ws", "", "h", 1,
	  HTTP_BODY_NONE, 0, true, false, false, 2 },
	{ R("GET http://example.com/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n"), "GET", "/p", "q",
	  "example.com", 1, HTTP_BODY_NONE, 0, true, false, false, 1 },
	{ R("GET HTTPS://Example.com:443 HTTP/1.1\r\nHost: example.COM:443\r\n\r\n"), "GET", "/", "",
	  "Example.com:443", 1, HTTP_BODY_NONE, 0, true, false, false, 1 },
	{ R("GET http://a.b?x HTTP/1.0\r\n\r\n"), "GET", "/", "x", "a.b", 0, HTTP_BODY_NONE, 0, false,
	  false, false, 0 },
	{ R("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), "OPTIONS", "*", "", "h", 1, HTTP_BODY_NONE, 0,
	  true, false, false, 1 },
	{ R("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), "CONNECT", "", "",
	  "example.com:443", 1, HTTP_BODY_NONE, 0, true, false, false, 1 },
	{ R("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n"), "CONNECT", "", "", "[::1]:443",
	  1, HTTP_BODY_NONE, 0, true, false, false, 1 },
	{ R("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), "GET", "/", "", "h", 1, HTTP_BODY_NONE, 0, true,
	  false, false, 1 },
	{ R("\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), "GET", "/", "", "h", 1, HTTP_BODY_NONE,
	  0, true, false, false, 1 },
	{ R("GET / HTTP/1.1\r\nHost:h\r\nX-Obs: caf\xc3\xa9 \xff\r\nX-Empty:\r\nX-Tab:\t a\tb \t\r\n\r\n"),
	  "GET", "/", "", "h", 1, HTTP_BODY_NONE, 0, true, false, false, 4 },
	{ R("GET / HTTP/1.1\r\nHost: 192.0.2.1:80\r\n\r\n"), "GET", "/", "", "192.0.2.1:80", 1,
	  HTTP_BODY_NONE, 0, true, false, false, 1 },
	{ R("GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n"), "GET", "/", "", "[2001:db8::1]", 1,
	  HTTP_BODY_NONE, 0, true, false, false, 1 },
	{ R("GET / HTTP/1.1\r\nHost: xn--bcher-kva.example%41\r\n\r\n"), "GET", "/", "",
	  "xn--bcher-kva.example%41", 1, HTTP_BODY_NONE, 0, true, false, false, 1 },
	{ R("M-SEARCH! /%7e{}|^` HTTP/1.1\r\nHost: h\r\n\r\n"), "M-SEARCH!", "/%7e{}|^`", "", "h", 1,
	  HTTP_BODY_NONE, 0, true, false, false, 1 },
	{ R("GET /?a?b HTTP/1.1\r\nHost: h\r\n\r\n"), "GET", "/", "a?b", "h", 1, HTTP_BODY_NONE, 0,
	  true, false, false, 1 },
};

static void check_valid_req(const struct valid_req *v, const struct http_request *req, int r)
{
	const char *s = v->raw.p;

	CHECKF(r == (int)head_len(v->raw), "%s: r=%d want %zu", s, r, head_len(v->raw));
	if (r <= 0)
		return;
	CHECKF(eq(req->method, v->method), "%s: method", s);
	CHECKF(eq(req->path, v->path), "%s: path %.*s", s, (int)req->path.len, req->path.p);
	CHECKF(eq(req->query, v->query), "%s: query %.*s", s, (int)req->query.len, req->query.p);
	CHECKF(slice_case_eq(req->host, slice_cstr(v->host)), "%s: host %.*s", s, (int)req->host.len,
	       req->host.p);
	CHECKF(req->minor == v->minor, "%s: minor", s);
	CHECKF(req->body == v->body, "%s: body %d", s, req->body);
	if (v->body == HTTP_BODY_LENGTH)
		CHECKF(req->content_length == v->content_length, "%s: content_length", s);
	CHECKF(req->keep_alive == v->keep_alive, "%s: keep_alive", s);
	CHECKF(req->expect_continue == v->expect_continue, "%s: expect", s);
	CHECKF(req->upgrade == v->upgrade, "%s: upgrade", s);
	CHECKF(req->nfields == v->nfields, "%s: nfields %zu", s, req->nfields);
}

static void test_valid_requests(void)
{
	struct http_request req;

	for (size_t i = 0; i < sizeof(valid_reqs) / sizeof(valid_reqs[0]); i++) {
		const struct valid_req *v = &valid_reqs[i];
		check_valid_req(v, &req, parse_req(v->raw.p, v->raw.len, MAX_HEAD, &req));
	}
}

static void test_field_values(void)
{
	static const char raw[] =
		"GET / HTTP/1.1\r\nHost:h\r\nX-Obs: caf\xc3\xa9 \xff\r\nX-Empty:\r\nX-Tab:\t a\tb \t\r\n\r\n";
	struct http_request req;
	const struct http_field *f;

	CHECK(http_parse_request(raw, sizeof(raw) - 1, MAX_HEAD, &req) == (int)sizeof(raw) - 1);
	CHECK(eq(req.fields[0].name, "Host") && eq(req.fields[0].value, "h"));
	f = http_find_field(req.fields, req.nfields, SLICE_LIT("x-obs"));
	CHECK(f && eq(f->value, "caf\xc3\xa9 \xff"));
	f = http_find_field(req.fields, req.nfields, SLICE_LIT("X-EMPTY"));
	CHECK(f && f->value.len == 0);
	f = http_find_field(req.fields, req.nfields, SLICE_LIT("x-tab"));
	CHECK(f && eq(f->value, "a\tb"));
	CHECK(http_find_field(req.fields, req.nfields, SLICE_LIT("x-none")) == NULL);
	CHECK(http_find_field(req.fields, req.nfields, SLICE_LIT("x-ob")) == NULL);
	CHECK(eq(req.target, "/"));
}

static void test_target_slices(void)
{
	static const char raw[] = "GET http://h.example/a%20b?c=d HTTP/1.1\r\nHost: h.example\r\n\r\n";
	struct http_request req;

	CHECK(http_parse_request(raw, sizeof(raw) - 1, MAX_HEAD, &req) > 0);
	CHECK(eq(req.target, "http://h.example/a%20b?c=d"));
	CHECK(eq(req.path, "/a%20b"));
	CHECK(eq(req.query, "c=d"));
	CHECK(eq(req.host, "h.example"));
}

/*
 * Invalid requests.
 */

struct bad_req {
	struct raw raw;
	int want;
};

#define H "Host: h\r\n"

static const struct bad_req bad_reqs[] = {
	/* request line */
	{ R("GET  / HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET /  HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1 \r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R(" GET / HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET\t/ HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET /\tx HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET / http/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1x\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/11\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/10.0\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET /\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / \r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/2.0\r\n" H "\r\n"), HTTP_ERR_VERSION },
	{ R("GET / HTTP/1.2\r\n" H "\r\n"), HTTP_ERR_VERSION },
	{ R("GET / HTTP/0.9\r\n" H "\r\n"), HTTP_ERR_VERSION },
	{ R("GET / HTTP/3.0\r\n" H "\r\n"), HTTP_ERR_VERSION },
	{ R("G(T / HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GE\"T / HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("G\x80T / HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET /\x80 HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET /\x7f HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET foo HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET * HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("OPTIONS *x HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET example.com:80 HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("CONNECT / HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("CONNECT example.com HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("CONNECT http://h/ HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET ftp://h/ HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET http:/h/ HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET http:///p HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET http://user@h/ HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET http://other/ HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET http://h/ HTTP/1.1\r\n\r\n"), HTTP_ERR_BAD },
	/* CR, LF and NUL anywhere */
	{ R("GET / HTTP/1.1\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: h\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: h\r\n\n"), HTTP_ERR_BAD },
	{ R("\nGET / HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("\r\n\nGET / HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("\r\rGET / HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X: a\r\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET /\0 HTTP/1.1\r\n" H "\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X: a\x01\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X: \x1b[0m\r\n\r\n"), HTTP_ERR_BAD },
	/* field syntax */
	{ R("GET / HTTP/1.1\r\n" H "X : a\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X\t: a\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n " H "\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H ": a\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X a\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X(y): a\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\n" H "X\x80: a\r\n\r\n"), HTTP_ERR_BAD },
	/* Host */
	{ R("GET / HTTP/1.1\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nX: y\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.0\r\nHost: a\r\nHOST: a\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost:\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: a:\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: a:x\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: :80\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: a%4\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: [1:2:3]\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n"), HTTP_ERR_BAD },
	{ R("GET / HTTP/1.1\r\nHost: a\xc3\xa9\r\n\r\n"), HTTP_ERR_BAD },
	/* Content-Length and Transfer-Encoding */
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
	  HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "transfer-encoding: CHUNKED\r\ncontent-length: 0\r\n\r\n"),
	  HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n"),
	  HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n"), HTTP_ERR_TE },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n"), HTTP_ERR_TE },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip\r\n\r\n"), HTTP_ERR_TE },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  HTTP_ERR_TE },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;q=1\r\n\r\n"), HTTP_ERR_TE },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n"), HTTP_ERR_TE },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\x80\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: \"chunked\"\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chun ked\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: ,\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: 5,5\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: 0x10\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: 5.0\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775808\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n"), HTTP_ERR_BAD },
	{ R("POST / HTTP/1.1\r\n" H "Content-Length: \xd9\xa5\r\n\r\n"), HTTP_ERR_BAD },
	/* leading empty lines are a courtesy, not a flood */
	{ R("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n"),
	  HTTP_ERR_BAD },
};

static void test_invalid_requests(void)
{
	struct http_request req;

	for (size_t i = 0; i < sizeof(bad_reqs) / sizeof(bad_reqs[0]); i++) {
		const struct bad_req *b = &bad_reqs[i];
		int r = parse_req(b->raw.p, b->raw.len, MAX_HEAD, &req);
		CHECKF(r == b->want, "case %zu %s: got %d want %d", i, b->raw.p, r, b->want);
	}
}

/* A valid head arriving in pieces: every proper prefix is INCOMPLETE, and the
 * whole gives the same answer; also through the resumable variant. */
static void test_split_every_byte(void)
{
	for (size_t i = 0; i < sizeof(valid_reqs) / sizeof(valid_reqs[0]); i++) {
		const struct valid_req *v = &valid_reqs[i];
		size_t n = head_len(v->raw), scan = 0;
		char *buf = malloc(n);
		struct http_request req;
		int r = 0;

		memcpy(buf, v->raw.p, n);
		for (size_t k = 0; k < n; k++) {
			r = parse_req(v->raw.p, k, MAX_HEAD, &req);
			CHECKF(r == HTTP_INCOMPLETE, "%s: prefix %zu gave %d", v->raw.p, k, r);
			r = http_parse_request_resume(buf, k, MAX_HEAD, &scan, &req);
			CHECKF(r == HTTP_INCOMPLETE, "%s: resume prefix %zu gave %d", v->raw.p, k, r);
		}
		r = http_parse_request_resume(buf, n, MAX_HEAD, &scan, &req);
		check_valid_req(v, &req, r);
		check_valid_req(v, &req, parse_req(v->raw.p, n, MAX_HEAD, &req));
		free(buf);
	}
}

/* A hostile head arriving in pieces: prefixes are INCOMPLETE or already the same
 * error, never a success, and the whole gives the error. */
static void test_split_invalid(void)
{
	for (size_t i = 0; i < sizeof(bad_reqs) / sizeof(bad_reqs[0]); i++) {
		const struct bad_req *b = &bad_reqs[i];
		struct http_request req;
		size_t scan = 0;
		bool failed = false;
		int r;

		for (size_t k = 0; k <= b->raw.len; k++) {
			r = http_parse_request_resume(b->raw.p, k, MAX_HEAD, &scan, &req);
			CHECKF(r <= 0, "case %zu prefix %zu: %d", i, k, r);
			if (failed)
				CHECKF(r == b->want, "case %zu prefix %zu: %d after an error", i, k, r);
			if (r < 0) {
				CHECKF(r == b->want, "case %zu prefix %zu: %d want %d", i, k, r, b->want);
				failed = true;
			}
		}
		CHECKF(failed, "case %zu never failed", i);
	}
}

static void test_bare_lf_is_immediate(void)
{
	struct http_request req;

	/* rejected as soon as seen, long before the head could be complete */
	CHECK(parse_req("GET / HTTP/1.1\n", 15, MAX_HEAD, &req) == HTTP_ERR_BAD);
	CHECK(parse_req("GET /\0", 6, MAX_HEAD, &req) == HTTP_ERR_BAD);
	CHECK(parse_req("GET /\rx", 7, MAX_HEAD, &req) == HTTP_ERR_BAD);
	CHECK(parse_req("GET / HTTP/1.1\r", 15, MAX_HEAD, &req) == HTTP_INCOMPLETE);
}

static void test_head_too_large(void)
{
	static char buf[MAX_HEAD + 64];
	struct http_request req;
	size_t n;

	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "GET / HTTP/1.1\r\nHost: h\r\nX: ", 28);
	CHECK(parse_req(buf, 100, 100, &req) == HTTP_ERR_HEAD_TOO_LARGE);
	CHECK(parse_req(buf, 99, 100, &req) == HTTP_INCOMPLETE);
	CHECK(parse_req(buf, sizeof(buf), MAX_HEAD, &req) == HTTP_ERR_HEAD_TOO_LARGE);

	/* exactly max_head bytes is fine; one more is not */
	n = 200;
	memcpy(buf + n - 4, "\r\n\r\n", 4);
	CHECK(parse_req(buf, n, n, &req) == (int)n);
	CHECK(parse_req(buf, n, n - 1, &req) == HTTP_ERR_HEAD_TOO_LARGE);
	CHECK(parse_req(buf, n - 1, n - 1, &req) == HTTP_ERR_HEAD_TOO_LARGE);
	CHECK(parse_req(buf, n - 2, n - 1, &req) == HTTP_INCOMPLETE);
}

/* The scanners test eight bytes at a time: put each forbidden byte at every offset
 * of a long target and a long value, so every lane of a word is exercised. */
static void test_bad_byte_every_offset(void)
{
	static const char tmpl[] = "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: h\r\n"
				   "X: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n";
	static const unsigned char value_bad[] = { 0x00, 0x01, 0x0a, 0x0b, 0x0d, 0x1f, 0x7f };
	static const unsigned char target_bad[] = { 0x00, 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x7f, 0x80, 0xff };
	char buf[sizeof(tmpl)];
	struct http_request req;
	size_t n = sizeof(tmpl) - 1;
	size_t tgt = 5, tgt_len = 39, val = (size_t)(strstr(tmpl, "X: ") - tmpl) + 3, val_len = 49;

	CHECK(parse_req(tmpl, n, MAX_HEAD, &req) == (int)n);
	for (size_t off = 0; off < val_len; off++) {
		for (size_t b = 0; b < sizeof(value_bad); b++) {
			memcpy(buf, tmpl, n);
			buf[val + off] = (char)value_bad[b];
			CHECKF(parse_req(buf, n, MAX_HEAD, &req) == HTTP_ERR_BAD, "value off %zu byte %02x",
			       off, value_bad[b]);
		}
		/* obs-text, HTAB and SP are fine inside a value */
		memcpy(buf, tmpl, n);
		buf[val + off] = (char)0x80;
		buf[val + (off + 3) % val_len] = (char)0xff;
		if (off != 0 && off != val_len - 1)
			buf[val + off / 2 + 1] = '\t';
		CHECKF(parse_req(buf, n, MAX_HEAD, &req) == (int)n, "value off %zu obs-text", off);
		CHECK(req.nfields == 2 && req.fields[1].value.len == val_len);
	}
	for (size_t off = 0; off < tgt_len; off++) {
		for (size_t b = 0; b < sizeof(target_bad); b++) {
			memcpy(buf, tmpl, n);
			buf[tgt + off] = (char)target_bad[b];
			CHECKF(parse_req(buf, n, MAX_HEAD, &req) == HTTP_ERR_BAD, "target off %zu byte %02x",
			       off, target_bad[b]);
		}
		memcpy(buf, tmpl, n);
		buf[tgt + off] = '~';
		CHECKF(parse_req(buf, n, MAX_HEAD, &req) == (int)n && req.target.len == tgt_len + 1,
		       "target off %zu", off);
	}
}

static size_t build_fields(char *buf, size_t cap, int nfields)
{
	size_t n = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: h\r\n");

	for (int i = 1; i < nfields; i++)
		n += (size_t)snprintf(buf + n, cap - n, "X-Field-%d: value %d\r\n", i, i);
	n += (size_t)snprintf(buf + n, cap - n, "\r\n");
	return n;
}

static void test_many_fields(void)
{
	static char buf[8192];
	struct http_request req;
	size_t n;

	n = build_fields(buf, sizeof(buf), HTTP_MAX_FIELDS);
	CHECK(parse_req(buf, n, MAX_HEAD, &req) == (int)n);
	CHECK(req.nfields == HTTP_MAX_FIELDS);
	CHECK(eq(req.fields[HTTP_MAX_FIELDS - 1].name, "X-Field-99"));
	CHECK(eq(req.fields[HTTP_MAX_FIELDS - 1].value, "value 99"));
	CHECK(eq(req.host, "h"));

	n = build_fields(buf, sizeof(buf), HTTP_MAX_FIELDS + 1);
	CHECK(parse_req(buf, n, MAX_HEAD, &req) == HTTP_ERR_TOO_MANY_FIELDS);
}

/* Two pipelined requests: the head length tells where the next one starts. */
static void test_pipelined(void)
{
	static const char raw[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
	struct http_request req;
	int r = http_parse_request(raw, sizeof(raw) - 1, MAX_HEAD, &req);

	CHECK(r == 28);
	CHECK(eq(req.path, "/a"));
	CHECK(http_parse_request(raw + r, sizeof(raw) - 1 - (size_t)r, MAX_HEAD, &req) == 28);
	CHECK(eq(req.path, "/b"));
}

static void test_token_list(void)
{
	CHECK(http_token_list_has(SLICE_LIT("close"), SLICE_LIT("close")));
	CHECK(http_token_list_has(SLICE_LIT("Keep-Alive"), SLICE_LIT("keep-alive")));
	CHECK(http_token_list_has(SLICE_LIT("a, b ,\tUpgrade\t"), SLICE_LIT("upgrade")));
	CHECK(http_token_list_has(SLICE_LIT(",,, close,,"), SLICE_LIT("close")));
	CHECK(!http_token_list_has(SLICE_LIT("closed"), SLICE_LIT("close")));
	CHECK(!http_token_list_has(SLICE_LIT("xclose, close-x"), SLICE_LIT("close")));
	CHECK(!http_token_list_has(SLICE_LIT(""), SLICE_LIT("close")));
	CHECK(!http_token_list_has(SLICE_LIT(" , ,"), SLICE_LIT("close")));
	CHECK(!http_token_list_has(SLICE_LIT("clo se"), SLICE_LIT("close")));
	CHECK(!http_token_list_has(SLICE_LIT("a,b"), SLICE_LIT("")));
}

/*
 * Responses.
 */

struct resp_case {
	struct raw raw;
	const char *method;
	int status, minor;
	enum http_body_kind body;
	uint64_t content_length;
	bool keep_alive;
	const char *reason;
};

static const struct resp_case resp_cases[] = {
	{ R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), "GET", 200, 1, HTTP_BODY_LENGTH,
	  5, true, "OK" },
	{ R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), "HEAD", 200, 1, HTTP_BODY_NONE, 0, true,
	  "OK" },
	{ R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "HEAD", 200, 1,
	  HTTP_BODY_NONE, 0, true, "OK" },
	{ R("HTTP/1.1 204 No Content\r\n\r\n"), "GET", 204, 1, HTTP_BODY_NONE, 0, true,
	  "No Content" },
	{ R("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), "GET", 304, 1,
	  HTTP_BODY_NONE, 0, true, "Not Modified" },
	{ R("HTTP/1.1 100 Continue\r\n\r\n"), "POST", 100, 1, HTTP_BODY_NONE, 0, true, "Continue" },
	{ R("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
	  "GET", 101, 1, HTTP_BODY_NONE, 0, true, "Switching Protocols" },
	{ R("HTTP/1.1 200 Connection established\r\n\r\n"), "CONNECT", 200, 1, HTTP_BODY_NONE, 0,
	  true, "Connection established" },
	{ R("HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n"), "CONNECT", 407, 1, HTTP_BODY_LENGTH,
	  2, true, "Auth" },
	{ R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "GET", 200, 1,
	  HTTP_BODY_CHUNKED, 0, true, "OK" },
	{ R("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), "GET", 200, 1,
	  HTTP_BODY_CHUNKED, 0, true, "OK" },
	{ R("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), "GET", 200, 1, HTTP_BODY_EOF, 0,
	  false, "OK" },
	{ R("HTTP/1.1 200 OK\r\n\r\n"), "GET", 200, 1, HTTP_BODY_EOF, 0, false, "OK" },
	{ R("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"), "GET", 200, 0, HTTP_BODY_LENGTH, 1,
	  false, "OK" },
	{ R("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n"), "GET", 200,
	  0, HTTP_BODY_LENGTH, 1, true, "OK" },
	{ R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"), "GET", 200, 1,
	  HTTP_BODY_LENGTH, 1, false, "OK" },
	{ R("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), "GET", 200, 1, HTTP_BODY_LENGTH, 0, true,
	  "" },
	{ R("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), "GET", 200, 1, HTTP_BODY_LENGTH, 0,
	  true, "" },
	{ R("HTTP/1.1 404 Not \xe2\x80\x9c Found\t\r\nContent-Length: 0\r\n\r\n"), "GET", 404, 1,
	  HTTP_BODY_LENGTH, 0, true, "Not \xe2\x80\x9c Found\t" },
	{ R("\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), "GET", 200, 1, HTTP_BODY_LENGTH,
	  0, true, "OK" },
};

struct resp_bad {
	struct raw raw;
	const char *method;
	int want;
};

static const struct resp_bad resp_bad[] = {
	{ R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), "GET",
	  HTTP_ERR_BAD },
	{ R("HTTP/1.1 204 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"), "GET",
	  HTTP_ERR_BAD },
	{ R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), "GET",
	  HTTP_ERR_BAD },
	{ R("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"), "HEAD", HTTP_ERR_BAD },
	{ R("HTTP/1.1 20 OK\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1 2000 OK\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1 099 OK\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1 600 OK\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1  200 OK\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1 200 O\x01K\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1 200 OK\r\nX : a\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1 200 OK\nX: a\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("http/1.1 200 OK\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/1.1\r\n\r\n"), "GET", HTTP_ERR_BAD },
	{ R("HTTP/2.0 200 OK\r\n\r\n"), "GET", HTTP_ERR_VERSION },
};

static void test_responses(void)
{
	for (size_t i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
		const struct resp_case *c = &resp_cases[i];
		struct http_response resp;
		int r = parse_resp(c->raw.p, c->raw.len, c->method, &resp);

		CHECKF(r == (int)head_len(c->raw), "resp case %zu: %d", i, r);
		if (r <= 0)
			continue;
		CHECKF(resp.status == c->status, "resp case %zu: status %d", i, resp.status);
		CHECKF(resp.minor == c->minor, "resp case %zu: minor", i);
		CHECKF(resp.body == c->body, "resp case %zu: body %d", i, resp.body);
		if (c->body == HTTP_BODY_LENGTH)
			CHECKF(resp.content_length == c->content_length, "resp case %zu: cl", i);
		CHECKF(resp.keep_alive == c->keep_alive, "resp case %zu: keep_alive", i);
		CHECKF(eq(resp.reason, c->reason), "resp case %zu: reason", i);

		/* prefixes of a valid response are incomplete */
		for (size_t k = 0; k < (size_t)r; k++)
			CHECKF(parse_resp(c->raw.p, k, c->method, &resp) == HTTP_INCOMPLETE,
			       "resp case %zu prefix %zu", i, k);
	}
}

static void test_responses_invalid(void)
{
	for (size_t i = 0; i < sizeof(resp_bad) / sizeof(resp_bad[0]); i++) {
		const struct resp_bad *c = &resp_bad[i];
		struct http_response resp;
		int r = parse_resp(c->raw.p, c->raw.len, c->method, &resp);

		CHECKF(r == c->want, "resp bad %zu: %d want %d", i, r, c->want);
	}
}

static void test_response_resume(void)
{
	static const char raw[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nServer: x\r\n\r\nabc";
	struct http_response resp;
	size_t scan = 0;
	int r = 0;

	for (size_t k = 0; k <= sizeof(raw) - 1 && r == 0; k++)
		r = http_parse_response_resume(raw, k, MAX_HEAD, &scan, SLICE_LIT("GET"), &resp);
	CHECK(r == (int)sizeof(raw) - 4);
	CHECK(resp.body == HTTP_BODY_LENGTH && resp.content_length == 3 && resp.nfields == 2);
}

/*
 * Chunked bodies.
 */

struct chunk_case {
	struct raw raw;
	struct raw data; /* decoded body */
	size_t consumed; /* bytes up to CHUNK_DONE */
};

static const struct chunk_case chunk_ok[] = {
	{ R("0\r\n\r\n"), R(""), 5 },
	{ R("5\r\nhello\r\n0\r\n\r\n"), R("hello"), 15 },
	{ R("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), R("hello world"), 26 },
	{ R("A\r\n0123456789\r\n00\r\n\r\n"), R("0123456789"), 21 },
	{ R("a\r\n0123456789\r\n000\r\n\r\n"), R("0123456789"), 22 },
	{ R("0000000000000003\r\nabc\r\n0\r\n\r\n"), R("abc"), 28 },
	{ R("3;ext\r\nabc\r\n0\r\n\r\n"), R("abc"), 17 },
	{ R("3;a=b;c=\"d e;\\\"f\";g\r\nabc\r\n0;last\r\n\r\n"), R("abc"), 36 },
	{ R("3 ;a = b\t; c\r\nabc\r\n0\r\n\r\n"), R("abc"), 24 },
	{ R("3;a=\"\"\r\nabc\r\n0\r\n\r\n"), R("abc"), 18 },
	{ R("3\r\na\r\n\r\n0\r\nX-Trailer: v\r\nX-Empty:\r\n\r\n"), R("a\r\n"), 37 },
	{ R("2\r\n\0\xff\r\n0\r\nChecksum:\tabc \xc3\xa9\r\n\r\n"), R("\0\xff"), 30 },
};

/* Feeds in steps of at most `step` bytes; returns the bytes consumed up to DONE
 * or -1, and collects the data. */
static ssize_t feed_all(struct raw in, size_t step, char *out, size_t *out_len, enum http_chunked_state *final)
{
	struct http_chunked c;
	size_t pos = 0;

	http_chunked_init(&c);
	*out_len = 0;
	while (pos < in.len && c.state != CHUNK_DONE) {
		size_t n = in.len - pos < step ? in.len - pos : step;
		char *copy = malloc(n);
		size_t off, dlen;
		ssize_t r;

		memcpy(copy, in.p + pos, n);
		r = http_chunked_feed(&c, copy, n, &off, &dlen);
		if (r < 0) {
			free(copy);
			*final = c.state;
			return -1;
		}
		if (r == 0 || (size_t)r > n || off + dlen > (size_t)r) {
			free(copy);
			*final = c.state;
			return -2; /* contract broken */
		}
		memcpy(out + *out_len, copy + off, dlen);
		*out_len += dlen;
		pos += (size_t)r;
		free(copy);
	}
	*final = c.state;
	return (ssize_t)pos;
}

static void test_chunked_valid(void)
{
	static char out[256];

	for (size_t i = 0; i < sizeof(chunk_ok) / sizeof(chunk_ok[0]); i++) {
		const struct chunk_case *cc = &chunk_ok[i];
		size_t steps[] = { cc->raw.len, 1, 2, 3, 7 };

		for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			enum http_chunked_state st;
			size_t olen;
			ssize_t r = feed_all(cc->raw, steps[s], out, &olen, &st);

			CHECKF(r == (ssize_t)cc->consumed, "chunk case %zu step %zu: %zd", i, steps[s], r);
			CHECKF(st == CHUNK_DONE, "chunk case %zu step %zu: state %d", i, steps[s], st);
			CHECKF(olen == cc->data.len && memcmp(out, cc->data.p, olen) == 0,
			       "chunk case %zu step %zu: data", i, steps[s]);
		}
	}
}

static void test_chunked_done_and_empty(void)
{
	struct http_chunked c;
	size_t off, dlen;

	http_chunked_init(&c);
	CHECK(http_chunked_feed(&c, "", 0, &off, &dlen) == 0);
	CHECK(http_chunked_feed(&c, "0\r\n\r\nX", 6, &off, &dlen) == 5);
	CHECK(c.state == CHUNK_DONE && dlen == 0);
	CHECK(http_chunked_feed(&c, "X", 1, &off, &dlen) == 0);

	/* data is handed out one piece at a time, stopping right after it */
	http_chunked_init(&c);
	CHECK(http_chunked_feed(&c, "3\r\nabc\r\n2\r\nde\r\n", 15, &off, &dlen) == 6);
	CHECK(off == 3 && dlen == 3);
	CHECK(http_chunked_feed(&c, "\r\n2\r\nde\r\n", 9, &off, &dlen) == 7);
	CHECK(off == 5 && dlen == 2);

	/* an error sticks */
	http_chunked_init(&c);
	CHECK(http_chunked_feed(&c, "g", 1, &off, &dlen) == -1);
	CHECK(c.state == CHUNK_ERROR);
	CHECK(http_chunked_feed(&c, "0\r\n\r\n", 5, &off, &dlen) == -1);
}

static const struct raw chunk_bad[] = {
	R("\r\n"),
	R(" 5\r\nhello\r\n0\r\n\r\n"),
	R("\t5\r\nhello\r\n0\r\n\r\n"),
	R("0x5\r\nhello\r\n0\r\n\r\n"),
	R("+5\r\nhello\r\n0\r\n\r\n"),
	R("-5\r\nhello\r\n0\r\n\r\n"),
	R("5 \r\nhello\r\n0\r\n\r\n"),
	R("5\nhello\r\n0\r\n\r\n"),
	R("5\r\rhello\r\n0\r\n\r\n"),
	R("5\r\nhelloX\r\n0\r\n\r\n"),
	R("5\r\nhello\n0\r\n\r\n"),
	R("5\r\nhello\r\r0\r\n\r\n"),
	R("5\r\nhello0\r\n\r\n"),
	R("5\r\nhello\r\n0\n\r\n"),
	R("5\r\nhello\r\n0\r\n\n"),
	R("5\r\nhello\r\n0\r\n\rX"),
	R("g\r\n"),
	R("5g\r\n"),
	R("5;\r\nhello\r\n0\r\n\r\n"),
	R("5;=a\r\nhello\r\n0\r\n\r\n"),
	R("5;a=\r\nhello\r\n0\r\n\r\n"),
	R("5;a b\r\nhello\r\n0\r\n\r\n"),
	R("5;a b=c\r\nhello\r\n0\r\n\r\n"),
	R("5;a=\"b\" c\r\nhello\r\n0\r\n\r\n"),
	R("5;a=b c\r\nhello\r\n0\r\n\r\n"),
	R("5;a=\"b\r\nhello\r\n0\r\n\r\n"),
	R("5;a=\"b\"c\r\nhello\r\n0\r\n\r\n"),
	R("5;a=\"b\x01\"\r\nhello\r\n0\r\n\r\n"),
	R("5;a=b \r\nhello\r\n0\r\n\r\n"),
	R("5;a(\r\nhello\r\n0\r\n\r\n"),
	R("5;a\nhello\r\n0\r\n\r\n"),
	R("5;a\0\r\nhello\r\n0\r\n\r\n"),
	R("10000000000000000\r\n"),        /* 17 digits */
	R("00000000000000001\r\n"),        /* 17 digits, even with leading zeros */
	R("4000000000000001\r\n"),         /* 2^62 + 1 */
	R("ffffffffffffffff\r\n"),         /* overflow territory */
	R("0\r\n X: y\r\n\r\n"),           /* obs-fold in trailer */
	R("0\r\nX : y\r\n\r\n"),
	R("0\r\n: y\r\n\r\n"),
	R("0\r\nX y\r\n\r\n"),
	R("0\r\nX: y\n\r\n"),
	R("0\r\nX: y\r\r\n"),
	R("0\r\nX: y\0\r\n\r\n"),
	R("0\r\nX: \x7f\r\n\r\n"),
	R("0\r\n\n"),
};

static void test_chunked_invalid(void)
{
	static char out[256];

	for (size_t i = 0; i < sizeof(chunk_bad) / sizeof(chunk_bad[0]); i++) {
		struct raw in = chunk_bad[i];
		enum http_chunked_state st1, st2;
		size_t olen1, olen2;
		ssize_t whole = feed_all(in, in.len, out, &olen1, &st1);
		ssize_t bytes = feed_all(in, 1, out, &olen2, &st2);

		CHECKF(whole == -1 && st1 == CHUNK_ERROR, "chunk bad %zu (%s): %zd", i, in.p, whole);
		CHECKF(bytes == -1 && st2 == CHUNK_ERROR, "chunk bad %zu bytewise: %zd", i, bytes);
	}
}

static void test_chunked_limits(void)
{
	static char big[MAX_HEAD * 2];
	struct http_chunked c;
	size_t off, dlen, n;
	ssize_t r;

	/* 2^62 exactly is allowed as a size */
	http_chunked_init(&c);
	CHECK(http_chunked_feed(&c, "4000000000000000\r\n", 18, &off, &dlen) == 18);
	CHECK(c.state == CHUNK_DATA && c.remaining == (UINT64_C(1) << 62));

	/* a huge extension line is cut off */
	n = (size_t)snprintf(big, sizeof(big), "1;a=");
	memset(big + n, 'x', 5000);
	n += 5000;
	http_chunked_init(&c);
	CHECK(http_chunked_feed(&c, big, n, &off, &dlen) == -1);
	n = (size_t)snprintf(big, sizeof(big), "1;a=");
	memset(big + n, 'x', 4000);
	n += 4000;
	memcpy(big + n, "\r\nz\r\n", 5);
	http_chunked_init(&c);
	r = http_chunked_feed(&c, big, n + 5, &off, &dlen);
	CHECK(r == (ssize_t)n + 3 && dlen == 1 && big[off] == 'z');

	/* an endless trailer section is cut off */
	memcpy(big, "0\r\n", 3);
	n = 3;
	while (n + 12 < sizeof(big)) {
		memcpy(big + n, "X-T: abcde\r\n", 12);
		n += 12;
	}
	http_chunked_init(&c);
	CHECK(http_chunked_feed(&c, big, n, &off, &dlen) == -1);
}

TEST_MAIN("http_parse", TEST(test_valid_requests), TEST(test_field_values),
	  TEST(test_target_slices), TEST(test_invalid_requests), TEST(test_split_every_byte),
	  TEST(test_split_invalid), TEST(test_bare_lf_is_immediate),
	  TEST(test_bad_byte_every_offset), TEST(test_head_too_large),
	  TEST(test_many_fields), TEST(test_pipelined), TEST(test_token_list), TEST(test_responses),
	  TEST(test_responses_invalid),
	  TEST(test_response_resume), TEST(test_chunked_valid), TEST(test_chunked_done_and_empty),
	  TEST(test_chunked_invalid), TEST(test_chunked_limits))
