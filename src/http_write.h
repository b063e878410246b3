/* http_write.h - serialising HTTP/1.1 response heads: status lines, reason phrases
 * and the cached Date value. */
#ifndef EDGEPROXY_HTTP_WRITE_H
#define EDGEPROXY_HTTP_WRITE_H

#include <stddef.h>

#include "slice.h"

const char *http_reason(int status);

/* IMF-fixdate of the current second (RFC 9110 §5.6.7), recomputed once a second. */
struct slice http_date_now(void);

/* Appends to a bounded buffer; out->len grows, never past cap. Returns false when
 * the text did not fit (the buffer is then left as it was). */
struct http_out {
	char *p;
	size_t len;
	size_t cap;
};
bool http_out_put(struct http_out *o, const char *p, size_t n);
bool http_out_slice(struct http_out *o, struct slice s);
bool http_out_str(struct http_out *o, const char *s);
bool http_out_uint(struct http_out *o, unsigned long long v);

#endif
