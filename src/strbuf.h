/* strbuf.h - a growable byte buffer for generated documents (metrics, JSON, HTML)
 * that are built off the hot path. */
#ifndef EDGEPROXY_STRBUF_H
#define EDGEPROXY_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "slice.h"

struct strbuf {
	char *p; /* owner: the strbuf (or whoever strbuf_take gave it to) */
	size_t len, cap;
	bool failed; /* an allocation failed: the contents are incomplete */
};

void strbuf_put(struct strbuf *b, const char *p, size_t n);
void strbuf_str(struct strbuf *b, const char *s);
void strbuf_slice(struct strbuf *b, struct slice s);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as the inside of a JSON string (quotes not included). */
void strbuf_json(struct strbuf *b, const char *s);
/* Hands the bytes over (caller frees) and empties b. */
char *strbuf_take(struct strbuf *b, size_t *len);
void strbuf_free(struct strbuf *b);

#endif
