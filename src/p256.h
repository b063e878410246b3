/* p256.h - NIST P-256 (secp256r1) point multiplication with 64-bit limbs and
 * 128-bit products, for the targets whose compiler has them; ec_impl.c puts it in
 * front of BearSSL's 31-bit code there. Points are SEC 1 uncompressed (65 bytes),
 * scalars big-endian, at most 32 bytes, below the group order. Constant time in
 * the scalars and the points. */
#ifndef EDGEPROXY_P256_H
#define EDGEPROXY_P256_H

#include <stddef.h>

#if defined(__SIZEOF_INT128__)
#define P256_AVAILABLE 1
#else
#define P256_AVAILABLE 0
#endif

/* The conventional generator, 65 bytes. */
const unsigned char *p256_generator(size_t *len);

/* point = x * point: 1, or 0 (point unchanged or garbage) when point is not a
 * curve point, x is longer than 32 bytes, or the result is the point at infinity. */
int p256_mul(unsigned char *point, size_t len, const unsigned char *x, size_t xlen);

/* out = x * G; 65 (the length written), 0 when x is longer than 32 bytes. */
size_t p256_mulgen(unsigned char out[65], const unsigned char *x, size_t xlen);

/* a = x * a + y * b (b NULL: the generator): 1, or 0 as p256_mul. Used to verify
 * signatures, where nothing is secret, but constant time all the same. */
int p256_muladd(unsigned char *a, const unsigned char *b, size_t len, const unsigned char *x, size_t xlen,
		const unsigned char *y, size_t ylen);

#endif
