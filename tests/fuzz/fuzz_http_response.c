/* fuzz_http_response.c - libFuzzer harness for http_parse_response: the first byte
 * picks the request method; checks framing invariants and piecewise equivalence. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

#define MAX_HEAD 16384

static void check_slice(struct slice s, const char *buf, size_t len)
{
	if (s.len && (s.p < buf || s.p + s.len > buf + len))
		abort();
}

static void check_response(const struct http_response *r, const char *buf, int head)
{
	check_slice(r->reason, buf, (size_t)head);
	if (r->status < 100 || r->status > 599 || (r->minor != 0 && r->minor != 1))
		abort();
	if (r->nfields > HTTP_MAX_FIELDS)
		abort();
	for (size_t i = 0; i < r->nfields; i++) {
		struct slice v = r->fields[i].value;
		check_slice(r->fields[i].name, buf, (size_t)head);
		check_slice(v, buf, (size_t)head);
		if (r->fields[i].name.len == 0)
			abort();
		for (size_t k = 0; k < v.len; k++)
			if (v.p[k] == '\r' || v.p[k] == '\n' || v.p[k] == '\0')
				abort();
	}
	bool cl = http_find_field(r->fields, r->nfields, SLICE_LIT("content-length")) != NULL;
	bool te = http_find_field(r->fields, r->nfields, SLICE_LIT("transfer-encoding")) != NULL;
	if (cl && te)
		abort();
	if (r->body == HTTP_BODY_CHUNKED && !te)
		abort();
	if (r->body == HTTP_BODY_LENGTH && !cl)
		abort();
	if (r->body == HTTP_BODY_EOF && r->keep_alive)
		abort();
	if ((r->status < 200 || r->status == 204 || r->status == 304) && r->body != HTTP_BODY_NONE)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const methods[] = { "GET", "HEAD", "CONNECT", "POST" };
	static struct http_response whole, piece;
	struct slice method;
	const char *buf;
	size_t scan = 0;
	int r, rp = HTTP_INCOMPLETE;

	if (size == 0)
		return 0;
	method = slice_cstr(methods[data[0] & 3]);
	buf = (const char *)data + 1;
	size--;

	r = http_parse_response(buf, size, MAX_HEAD, method, &whole);
	if (r > 0) {
		if ((size_t)r > size)
			abort();
		check_response(&whole, buf, r);
		if (slice_eq(method, SLICE_LIT("HEAD")) && whole.body != HTTP_BODY_NONE)
			abort();
	}
	for (size_t k = 0; k <= size; k++) {
		rp = http_parse_response_resume(buf, k, MAX_HEAD, &scan, method, &piece);
		if (rp != HTTP_INCOMPLETE)
			break;
	}
	if (rp != r)
		abort();
	if (r > 0 && (whole.status != piece.status || whole.body != piece.body ||
		      whole.content_length != piece.content_length ||
		      whole.keep_alive != piece.keep_alive || whole.nfields != piece.nfields))
		abort();
	return 0;
}
