/* base64.c - RFC 4648 §4 base64: encoding, and decoding that accepts only the
 * canonical encoding (no whitespace, no missing padding, no stray bits). */
#include "base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_encode(const void *in, size_t len, char *out, size_t cap)
{
	const unsigned char *p = in;
	size_t o = 0;

	if (len > (cap / 4) * 3 || BASE64_LEN(len) >= cap)
		return -1;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return (int)o;
}

static int value_of(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int base64_decode(struct slice in, unsigned char *out, size_t cap)
{
	size_t o = 0;

	if (in.len % 4 != 0 || in.len / 4 * 3 > (size_t)0x7fffffff)
		return -1;
	for (size_t i = 0; i < in.len; i += 4) {
		bool last = i + 4 == in.len;
		/* '=' may only end the final group: "xx==" or "xxx=". */
		size_t pad = 0;
		if (last && in.p[i + 3] == '=')
			pad = in.p[i + 2] == '=' ? 2 : 1;
		unsigned v = 0;
		for (size_t j = 0; j < 4; j++) {
			int d = j < 4 - pad ? value_of(in.p[i + j]) : 0;
			if (d < 0)
				return -1;
			v = v << 6 | (unsigned)d;
		}
		size_t n = 3 - pad;
		if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
			return -1; /* bits the padding says are unused */
		if (n > cap - o)
			return -1;
		out[o++] = (unsigned char)(v >> 16);
		if (n > 1)
			out[o++] = (unsigned char)(v >> 8);
		if (n > 2)
			out[o++] = (unsigned char)v;
	}
	return (int)o;
}
