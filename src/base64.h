/* base64.h - the standard base64 alphabet with padding (RFC 4648 §4): HTTP Basic
 * credentials (RFC 7617) and htpasswd {SHA} hashes. */
#ifndef EDGEPROXY_BASE64_H
#define EDGEPROXY_BASE64_H

#include <stddef.h>

#include "slice.h"

/* Encoded length of n bytes (with padding), not counting a NUL. */
#define BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* Writes the encoding of in[0..len) and a NUL into out (capacity cap). Returns the
 * encoded length, or -1 when it does not fit. */
int base64_encode(const void *in, size_t len, char *out, size_t cap);

/* Strict decoding: a multiple of 4 characters from the alphabet, '=' only as the
 * final padding, unused bits zero (one encoding per byte string, RFC 4648 §3.5).
 * Writes at most cap bytes. Returns the decoded length, or -1 on bad input or when
 * it does not fit. */
int base64_decode(struct slice in, unsigned char *out, size_t cap);

#endif
