/* fuzz_http_request.c - libFuzzer harness for http_parse_request: no crash, slices
 * inside the input, framing invariants, and piecewise parsing equal to whole. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define MAX_HEAD 16384

static void check_slice(struct slice s, const char *buf, size_t len)
{
	if (s.len == 0)
		return;
	/* a static "/" is allowed for an absolute-form target without a path */
	if (s.len == 1 && s.p[0] == '/' && (s.p < buf || s.p >= buf + len))
		return;
	if (s.p < buf || s.p + s.len > buf + len)
		abort();
}

static void check_request(const struct http_request *r, const char *buf, size_t len, int head)
{
	check_slice(r->method, buf, (size_t)head);
	check_slice(r->target, buf, (size_t)head);
	check_slice(r->path, buf, (size_t)head);
	check_slice(r->query, buf, (size_t)head);
	check_slice(r->host, buf, (size_t)head);
	if (r->method.len == 0 || r->target.len == 0 || r->nfields > HTTP_MAX_FIELDS)
		abort();
	if (r->minor != 0 && r->minor != 1)
		abort();
	if (r->minor == 1 && r->host.len == 0)
		abort();
	for (size_t i = 0; i < r->nfields; i++) {
		struct slice n = r->fields[i].name, v = r->fields[i].value;
		check_slice(n, buf, (size_t)head);
		check_slice(v, buf, (size_t)head);
		if (n.len == 0)
			abort();
		for (size_t k = 0; k < n.len; k++)
			if (n.p[k] == ':' || n.p[k] == ' ' || n.p[k] == '\t' || (unsigned char)n.p[k] < 0x21)
				abort();
		for (size_t k = 0; k < v.len; k++)
			if (v.p[k] == '\r' || v.p[k] == '\n' || v.p[k] == '\0')
				abort();
		if (v.len && (v.p[0] == ' ' || v.p[v.len - 1] == ' '))
			abort();
	}
	/* never two framings (RFC 9112 §6.1) */
	bool cl = http_find_field(r->fields, r->nfields, SLICE_LIT("content-length")) != NULL;
	bool te = http_find_field(r->fields, r->nfields, SLICE_LIT("transfer-encoding")) != NULL;
	if (cl && te)
		abort();
	if (r->body == HTTP_BODY_CHUNKED && (!te || r->minor != 1))
		abort();
	if (r->body == HTTP_BODY_LENGTH && !cl)
		abort();
	if (r->body == HTTP_BODY_NONE && (cl || te))
		abort();
	if (r->body == HTTP_BODY_EOF)
		abort();
	if (r->content_length > UINT64_C(0x7fffffffffffffff))
		abort();
	(void)len;
}

static bool same(struct slice a, struct slice b)
{
	return a.p == b.p && a.len == b.len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_request whole, piece;
	const char *buf = (const char *)data;
	size_t max_head = size > 2 && data[0] == 'x' ? 64 : MAX_HEAD;
	size_t scan = 0;
	int r, rp = HTTP_INCOMPLETE;

	r = http_parse_request(buf, size, max_head, &whole);
	if (r > 0) {
		if ((size_t)r > size || (size_t)r > max_head)
			abort();
		check_request(&whole, buf, size, r);
	}

	/* The same bytes arriving one at a time through the resumable variant. */
	for (size_t k = 0; k <= size; k++) {
		rp = http_parse_request_resume(buf, k, max_head, &scan, &piece);
		if (rp != HTTP_INCOMPLETE)
			break;
	}
	if (rp != r)
		abort();
	if (r > 0) {
		if (!same(whole.method, piece.method) || !same(whole.target, piece.target) ||
		    !same(whole.path, piece.path) || !same(whole.query, piece.query) ||
		    !same(whole.host, piece.host) || whole.nfields != piece.nfields ||
		    whole.body != piece.body || whole.content_length != piece.content_length ||
		    whole.keep_alive != piece.keep_alive || whole.upgrade != piece.upgrade ||
		    whole.expect_continue != piece.expect_continue)
			abort();
		/* bytes after the head do not change the head's parse */
		if (http_parse_request(buf, (size_t)r, max_head, &piece) != r)
			abort();
	}
	return 0;
}
