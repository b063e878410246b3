/* fuzz_chunked.c - libFuzzer harness for the chunked decoder: fed whole, one byte
 * at a time, and in uneven pieces, it must give the same data and the same end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

struct outcome {
	ssize_t consumed; /* bytes up to CHUNK_DONE, or of the whole input; -1 on error */
	enum http_chunked_state state;
	size_t data_len;
};

/* Feeds data in pieces whose sizes cycle through steps[]. */
static struct outcome run(const uint8_t *data, size_t size, const size_t *steps, size_t nsteps,
			  char *out)
{
	struct http_chunked c;
	struct outcome o = { 0, CHUNK_SIZE, 0 };
	size_t pos = 0, s = 0;

	http_chunked_init(&c);
	while (pos < size && c.state != CHUNK_DONE) {
		size_t n = steps[s++ % nsteps], off, dlen;
		ssize_t r;

		if (n > size - pos)
			n = size - pos;
		r = http_chunked_feed(&c, (const char *)data + pos, n, &off, &dlen);
		if (r < 0) {
			if (c.state != CHUNK_ERROR)
				abort();
			o.consumed = -1;
			o.state = c.state;
			return o;
		}
		/* contract: progress, inside the input, data within what was consumed */
		if (r == 0 || (size_t)r > n || off + dlen > (size_t)r || (dlen && off + dlen != (size_t)r))
			abort();
		memcpy(out + o.data_len, data + pos + off, dlen);
		o.data_len += dlen;
		pos += (size_t)r;
	}
	o.consumed = (ssize_t)pos;
	o.state = c.state;
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out_whole[1 << 20], out_piece[1 << 20];
	size_t whole_step[1] = { size ? size : 1 }, one[1] = { 1 };
	size_t uneven[4] = { 3, 1, 7, 2 };
	struct outcome a, b;

	if (size > sizeof(out_whole))
		return 0;
	if (size)
		uneven[0] = (size_t)data[0] % 13 + 1;
	a = run(data, size, whole_step, 1, out_whole);
	b = run(data, size, one, 1, out_piece);
	if (a.consumed != b.consumed || a.state != b.state || a.data_len != b.data_len ||
	    memcmp(out_whole, out_piece, a.data_len) != 0)
		abort();
	b = run(data, size, uneven, 4, out_piece);
	if (a.consumed != b.consumed || a.state != b.state || a.data_len != b.data_len ||
	    memcmp(out_whole, out_piece, a.data_len) != 0)
		abort();
	if (a.data_len > size)
		abort();
	return 0;
}
