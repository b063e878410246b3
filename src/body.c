/* body.c - the body pump between an input and an output buffer (see body.h). */
#include "body.h"

#include <stdio.h>
#include <string.h>

/* Room a re-encoded chunk needs besides its data: up to 16 hex digits, CRLF, CRLF. */
#define CHUNK_OVERHEAD 20
#define LAST_CHUNK "0\r\n\r\n"

void body_pump_init(struct body_pump *p, enum http_body_kind in_kind, uint64_t length, bool out_chunked)
{
	memset(p, 0, sizeof(*p));
	p->in_kind = in_kind;
	p->out_chunked = out_chunked;
	p->left = length;
	http_chunked_init(&p->dec);
	p->done = in_kind == HTTP_BODY_NONE || (in_kind == HTTP_BODY_LENGTH && length == 0);
	if (p->done && out_chunked)
		p->done = false; /* still owes the last chunk */
}

/* Appends data (already known to fit) as one chunk or raw. */
static void emit(struct body_pump *p, const char *data, size_t n, char *out, size_t *out_len)
{
	if (n == 0)
		return;
	if (p->out_chunked)
		*out_len += (size_t)snprintf(out + *out_len, CHUNK_OVERHEAD, "%zx\r\n", n);
	memcpy(out + *out_len, data, n);
	*out_len += n;
	if (p->out_chunked) {
		memcpy(out + *out_len, "\r\n", 2);
		*out_len += 2;
	}
	p->moved += n;
}

/* Writes the terminating chunk once the input is complete. */
static void finish(struct body_pump *p, char *out, size_t *out_len, size_t cap)
{
	if (p->out_chunked) {
		if (cap - *out_len < sizeof(LAST_CHUNK) - 1)
			return; /* next time, when the output has drained */
		memcpy(out + *out_len, LAST_CHUNK, sizeof(LAST_CHUNK) - 1);
		*out_len += sizeof(LAST_CHUNK) - 1;
	}
	p->done = true;
}

int body_pump_move(struct body_pump *p, const char *in, size_t *off, size_t len, char *out, size_t *out_len,
		   size_t cap)
{
	size_t overhead = p->out_chunked ? CHUNK_OVERHEAD : 0;
	bool input_complete = false;
	while (!p->done) {
		size_t room = cap - *out_len;
		size_t avail = len - *off;
		if (p->in_kind == HTTP_BODY_NONE) {
			input_complete = true;
		} else if (p->in_kind == HTTP_BODY_LENGTH) {
			if (p->left == 0) {
				input_complete = true;
			} else {
				if (avail == 0 || room <= overhead)
					break;
				size_t n = room - overhead;
				if (n > avail)
					n = avail;
				if (n > p->left)
					n = (size_t)p->left;
				emit(p, in + *off, n, out, out_len);
				*off += n;
				p->left -= n;
				continue;
			}
		} else if (p->in_kind == HTTP_BODY_EOF) {
			if (avail == 0) {
				input_complete = p->eof;
				if (!input_complete)
					break;
			} else {
				if (room <= overhead)
					break;
				size_t n = room - overhead < avail ? room - overhead : avail;
				emit(p, in + *off, n, out, out_len);
				*off += n;
				continue;
			}
		} else { /* HTTP_BODY_CHUNKED */
			if (p->dec.state == CHUNK_DONE) {
				input_complete = true;
			} else {
				if (avail == 0 || room <= overhead)
					break;
				/* Feed no more than fits once re-encoded: data never outruns room. */
				size_t feed = room - overhead < avail ? room - overhead : avail;
				size_t data_off = 0, data_len = 0;
				ssize_t used = http_chunked_feed(&p->dec, in + *off, feed, &data_off, &data_len);
				if (used < 0)
					return -1;
				emit(p, in + *off + data_off, data_len, out, out_len);
				*off += (size_t)used;
				if (used == 0 && data_len == 0)
					break;
				continue;
			}
		}
		if (input_complete) {
			finish(p, out, out_len, cap);
			break;
		}
	}
	return 0;
}

size_t body_pump_raw_span(const struct body_pump *p, size_t avail)
{
	if (p->done || p->out_chunked)
		return 0;
	if (p->in_kind == HTTP_BODY_EOF)
		return avail;
	if (p->in_kind == HTTP_BODY_LENGTH)
		return avail < p->left ? avail : (size_t)p->left;
	return 0;
}

void body_pump_consumed(struct body_pump *p, size_t k)
{
	p->moved += k;
	if (p->in_kind == HTTP_BODY_LENGTH) {
		p->left -= k;
		if (p->left == 0)
			p->done = true;
	}
}
