/* utf8.h - recognising well-formed UTF-8 (RFC 3629 §4), so that generated documents
 * (JSON, Prometheus labels) stay valid whatever bytes a configuration holds. */
#ifndef EDGEPROXY_UTF8_H
#define EDGEPROXY_UTF8_H

#include <stddef.h>

/* Length of the well-formed multi-byte sequence at p (2..4), or 0 when the bytes
 * there (at most avail) are not one: a stray continuation byte, an overlong form,
 * a surrogate, past U+10FFFF, or cut short. */
static inline size_t utf8_seq_len(const unsigned char *p, size_t avail)
{
	unsigned char b = p[0];
	size_t n = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
	if (!n || avail < n)
		return 0;
	unsigned char b1 = p[1];
	if ((b == 0xe0 && b1 < 0xa0) || (b == 0xed && b1 > 0x9f) || (b == 0xf0 && b1 < 0x90) ||
	    (b == 0xf4 && b1 > 0x8f))
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

#endif
