/* limb64.h - 256-bit numbers as four 64-bit limbs (little-endian limb order), the
 * word operations with carries that p256.c and ecdsa.c build their modular
 * arithmetic from, and big-endian conversion. Only for compilers with 128-bit
 * products (__SIZEOF_INT128__). */
#ifndef EDGEPROXY_LIMB64_H
#define EDGEPROXY_LIMB64_H

#include <stdint.h>

typedef unsigned __int128 limb64_u128;

#define LIMB64_INLINE static inline __attribute__((always_inline))

/* a + b + carry: the low word, the carry out into carry */
LIMB64_INLINE uint64_t addc(uint64_t a, uint64_t b, uint64_t *carry)
{
	limb64_u128 t = (limb64_u128)a + b + *carry;
	*carry = (uint64_t)(t >> 64);
	return (uint64_t)t;
}

/* a - b - borrow: the low word, the borrow out (0 or 1) into borrow */
LIMB64_INLINE uint64_t subb(uint64_t a, uint64_t b, uint64_t *borrow)
{
	limb64_u128 t = (limb64_u128)a - b - *borrow;
	*borrow = (uint64_t)(t >> 127);
	return (uint64_t)t;
}

/* acc + a * b + carry: the low word, the high word into carry (never overflows:
 * (2^64 - 1)^2 + 2 (2^64 - 1) = 2^128 - 1) */
LIMB64_INLINE uint64_t mac(uint64_t acc, uint64_t a, uint64_t b, uint64_t *carry)
{
	limb64_u128 t = (limb64_u128)a * b + acc + *carry;
	*carry = (uint64_t)(t >> 64);
	return (uint64_t)t;
}

/* 32 big-endian bytes to limbs, and back */
LIMB64_INLINE void limb64_from_be(uint64_t r[4], const unsigned char b[32])
{
	for (int i = 0; i < 4; i++) {
		uint64_t w = 0;
		for (int j = 0; j < 8; j++)
			w = (w << 8) | b[(3 - i) * 8 + j];
		r[i] = w;
	}
}

LIMB64_INLINE void limb64_to_be(unsigned char b[32], const uint64_t a[4])
{
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 8; j++)
			b[(3 - i) * 8 + j] = (unsigned char)(a[i] >> (56 - 8 * j));
}

#endif
