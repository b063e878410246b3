/* apr1.c - MD5-crypt as published with FreeBSD's crypt(3) (PHK, 1994) and used by
 * Apache with the magic "$apr1$": an initial digest over password, magic and salt,
 * 1000 rounds of re-hashing that mix password, salt and the previous digest, and a
 * fixed byte permutation written in crypt's radix-64. MD5 from BearSSL. */
#include "apr1.h"

#include <bearssl_hash.h>

static const char magic[] = "$apr1$";
static const char itoa64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* crypt's radix-64: n characters of v, least significant six bits first. */
static char *to64(char *out, unsigned long v, int n)
{
	while (n-- > 0) {
		*out++ = itoa64[v & 0x3f];
		v >>= 6;
	}
	return out;
}

static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}

void apr1_hash(struct slice password, struct slice salt, char out[APR1_HASH_CHARS])
{
	br_md5_context ctx, alt;
	unsigned char final[16];

	if (salt.len > APR1_SALT_MAX)
		salt.len = APR1_SALT_MAX;
	br_md5_init(&ctx);
	br_md5_update(&ctx, password.p, password.len);
	br_md5_update(&ctx, magic, sizeof(magic) - 1);
	br_md5_update(&ctx, salt.p, salt.len);

	br_md5_init(&alt);
	br_md5_update(&alt, password.p, password.len);
	br_md5_update(&alt, salt.p, salt.len);
	br_md5_update(&alt, password.p, password.len);
	br_md5_out(&alt, final);
	for (size_t left = password.len; left > 0; left -= left > 16 ? 16 : left)
		br_md5_update(&ctx, final, left > 16 ? 16 : left);

	/* One byte per bit of the length: a zero byte for a set bit, else the
	 * password's first byte (the original read a cleared digest buffer here). */
	static const unsigned char zero = 0;
	for (size_t i = password.len; i; i >>= 1)
		br_md5_update(&ctx, (i & 1) ? (const void *)&zero : (const void *)password.p, 1);
	br_md5_out(&ctx, final);

	for (int i = 0; i < 1000; i++) {
		br_md5_init(&ctx);
		if (i & 1)
			br_md5_update(&ctx, password.p, password.len);
		else
			br_md5_update(&ctx, final, 16);
		if (i % 3)
			br_md5_update(&ctx, salt.p, salt.len);
		if (i % 7)
			br_md5_update(&ctx, password.p, password.len);
		if (i & 1)
			br_md5_update(&ctx, final, 16);
		else
			br_md5_update(&ctx, password.p, password.len);
		br_md5_out(&ctx, final);
	}

	char *o = out;
	o = to64(o, (unsigned long)final[0] << 16 | (unsigned long)final[6] << 8 | final[12], 4);
	o = to64(o, (unsigned long)final[1] << 16 | (unsigned long)final[7] << 8 | final[13], 4);
	o = to64(o, (unsigned long)final[2] << 16 | (unsigned long)final[8] << 8 | final[14], 4);
	o = to64(o, (unsigned long)final[3] << 16 | (unsigned long)final[9] << 8 | final[15], 4);
	o = to64(o, (unsigned long)final[4] << 16 | (unsigned long)final[10] << 8 | final[5], 4);
	to64(o, final[11], 2);
	wipe(final, sizeof(final));
	wipe(&ctx, sizeof(ctx));
	wipe(&alt, sizeof(alt));
}
