/* body.h - moving a message body from an input buffer to an output buffer,
 * re-framed on the way: Content-Length and close-delimited bodies are copied,
 * chunked bodies are decoded and re-encoded (extensions and trailers dropped), so
 * a peer only ever receives framing that edgeproxy wrote itself. */
#ifndef EDGEPROXY_BODY_H
#define EDGEPROXY_BODY_H

#include <stdbool.h>
#include <stdint.h>

#include "http_parse.h"

struct body_pump {
	enum http_body_kind in_kind; /* how the input is framed */
	bool out_chunked;            /* write chunked framing (else raw bytes) */
	uint64_t left;               /* HTTP_BODY_LENGTH: bytes still to come */
	uint64_t moved;              /* body bytes moved so far */
	struct http_chunked dec;
	bool done;                   /* the whole body has been moved */
	bool eof;                    /* HTTP_BODY_EOF: the source has closed */
};

void body_pump_init(struct body_pump *p, enum http_body_kind in_kind, uint64_t length, bool out_chunked);

/* Moves what it can from in[*off..len) into out[*out_len..cap), advancing both.
 * Returns -1 on a malformed chunked body, else 0. When the source of an
 * HTTP_BODY_EOF body has closed, set p->eof first so the end is written. */
int body_pump_move(struct body_pump *p, const char *in, size_t *off, size_t len, char *out, size_t *out_len,
		   size_t cap);

/* Raw relay: how many of avail input bytes may go out unchanged right now (0 when
 * the body is re-framed, or complete). After sending k of them, call
 * body_pump_consumed(p, k). */
size_t body_pump_raw_span(const struct body_pump *p, size_t avail);
void body_pump_consumed(struct body_pump *p, size_t k);

#endif
