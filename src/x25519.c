/* x25519.c - X25519 (RFC 7748) on 64-bit limbs.
 *
 * A field element mod p = 2^255 - 19 is five limbs of 51 bits (radix 2^51), each
 * product a 128-bit integer: 25 multiplications per field product where BearSSL's
 * 31-bit code needs 81. The scalar multiplication is RFC 7748's Montgomery ladder,
 * one conditional swap per bit, with no branch and no memory access that depends on
 * the scalar. Limb bounds: a reduced element has limbs below 2^51 + 2^13; sums of
 * two reduced elements (never more) go into products, whose 128-bit accumulators
 * then stay below 2^112. */
#include "x25519.h"

#if X25519_AVAILABLE

#include <stdint.h>
#include <string.h>

typedef unsigned __int128 u128;

#define MASK51 ((((uint64_t)1) << 51) - 1)

typedef struct {
	uint64_t v[5];
} fe;

static uint64_t load64_le(const unsigned char *b)
{
	uint64_t x = 0;
	for (int i = 7; i >= 0; i--)
		x = (x << 8) | b[i];
	return x;
}

static void store64_le(unsigned char *b, uint64_t x)
{
	for (int i = 0; i < 8; i++, x >>= 8)
		b[i] = (unsigned char)x;
}

/* The 255 low bits of 32 little-endian bytes (RFC 7748: the top bit is ignored). */
static void fe_from_bytes(fe *h, const unsigned char b[32])
{
	uint64_t w0 = load64_le(b), w1 = load64_le(b + 8), w2 = load64_le(b + 16), w3 = load64_le(b + 24);
	h->v[0] = w0 & MASK51;
	h->v[1] = ((w0 >> 51) | (w1 << 13)) & MASK51;
	h->v[2] = ((w1 >> 38) | (w2 << 26)) & MASK51;
	h->v[3] = ((w2 >> 25) | (w3 << 39)) & MASK51;
	h->v[4] = (w3 >> 12) & MASK51;
}

/* Carries every limb into the next, the top one back into the bottom times 19. */
static void fe_carry(fe *h)
{
	uint64_t c;
	for (int i = 0; i < 4; i++) {
		c = h->v[i] >> 51;
		h->v[i] &= MASK51;
		h->v[i + 1] += c;
	}
	c = h->v[4] >> 51;
	h->v[4] &= MASK51;
	h->v[0] += 19 * c;
	c = h->v[0] >> 51;
	h->v[0] &= MASK51;
	h->v[1] += c;
}

/* The canonical encoding: fully reduced below p, 32 little-endian bytes. */
static void fe_to_bytes(unsigned char b[32], const fe *f)
{
	fe h = *f;
	fe_carry(&h);
	fe_carry(&h);
	/* h < 2^255 now; h >= p exactly when h + 19 carries out of bit 255 */
	uint64_t q = (h.v[0] + 19) >> 51;
	for (int i = 1; i < 5; i++)
		q = (h.v[i] + q) >> 51;
	h.v[0] += 19 * q;
	for (int i = 0; i < 4; i++) {
		h.v[i + 1] += h.v[i] >> 51;
		h.v[i] &= MASK51;
	}
	h.v[4] &= MASK51;
	store64_le(b, h.v[0] | (h.v[1] << 51));
	store64_le(b + 8, (h.v[1] >> 13) | (h.v[2] << 38));
	store64_le(b + 16, (h.v[2] >> 26) | (h.v[3] << 25));
	store64_le(b + 24, (h.v[3] >> 39) | (h.v[4] << 12));
}

static void fe_add(fe *h, const fe *f, const fe *g)
{
	for (int i = 0; i < 5; i++)
		h->v[i] = f->v[i] + g->v[i];
}

/* f - g + 4p, carried: non-negative for any g below 2^53 per limb. */
static void fe_sub(fe *h, const fe *f, const fe *g)
{
	h->v[0] = f->v[0] + 0x1FFFFFFFFFFFB4 - g->v[0];
	for (int i = 1; i < 5; i++)
		h->v[i] = f->v[i] + 0x1FFFFFFFFFFFFC - g->v[i];
	fe_carry(h);
}

/* The five 128-bit column sums of a product, reduced to limbs. */
static void fe_reduce128(fe *h, u128 r0, u128 r1, u128 r2, u128 r3, u128 r4)
{
	r1 += (uint64_t)(r0 >> 51);
	r2 += (uint64_t)(r1 >> 51);
	r3 += (uint64_t)(r2 >> 51);
	r4 += (uint64_t)(r3 >> 51);
	uint64_t c = (uint64_t)(r4 >> 51);
	h->v[0] = ((uint64_t)r0 & MASK51) + 19 * c;
	h->v[1] = ((uint64_t)r1 & MASK51) + (h->v[0] >> 51);
	h->v[0] &= MASK51;
	h->v[2] = (uint64_t)r2 & MASK51;
	h->v[3] = (uint64_t)r3 & MASK51;
	h->v[4] = (uint64_t)r4 & MASK51;
}

static void fe_mul(fe *h, const fe *f, const fe *g)
{
	uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
	uint64_t g0 = g->v[0], g1 = g->v[1], g2 = g->v[2], g3 = g->v[3], g4 = g->v[4];
	uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
	u128 r0 = (u128)f0 * g0 + (u128)f1 * g4_19 + (u128)f2 * g3_19 + (u128)f3 * g2_19 + (u128)f4 * g1_19;
	u128 r1 = (u128)f0 * g1 + (u128)f1 * g0 + (u128)f2 * g4_19 + (u128)f3 * g3_19 + (u128)f4 * g2_19;
	u128 r2 = (u128)f0 * g2 + (u128)f1 * g1 + (u128)f2 * g0 + (u128)f3 * g4_19 + (u128)f4 * g3_19;
	u128 r3 = (u128)f0 * g3 + (u128)f1 * g2 + (u128)f2 * g1 + (u128)f3 * g0 + (u128)f4 * g4_19;
	u128 r4 = (u128)f0 * g4 + (u128)f1 * g3 + (u128)f2 * g2 + (u128)f3 * g1 + (u128)f4 * g0;
	fe_reduce128(h, r0, r1, r2, r3, r4);
}

static void fe_sq(fe *h, const fe *f)
{
	uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
	uint64_t f0_2 = 2 * f0, f1_2 = 2 * f1, f1_38 = 38 * f1, f2_38 = 38 * f2, f3_38 = 38 * f3;
	uint64_t f3_19 = 19 * f3, f4_19 = 19 * f4;
	u128 r0 = (u128)f0 * f0 + (u128)f1_38 * f4 + (u128)f2_38 * f3;
	u128 r1 = (u128)f0_2 * f1 + (u128)f2_38 * f4 + (u128)f3_19 * f3;
	u128 r2 = (u128)f0_2 * f2 + (u128)f1 * f1 + (u128)f3_38 * f4;
	u128 r3 = (u128)f0_2 * f3 + (u128)f1_2 * f2 + (u128)f4_19 * f4;
	u128 r4 = (u128)f0_2 * f4 + (u128)f1_2 * f3 + (u128)f2 * f2;
	fe_reduce128(h, r0, r1, r2, r3, r4);
}

static void fe_sq_n(fe *h, const fe *f, int n)
{
	fe_sq(h, f);
	while (--n > 0)
		fe_sq(h, h);
}

/* f times a24 = 121665 (RFC 7748's (486662 - 2) / 4). */
static void fe_mul_a24(fe *h, const fe *f)
{
	u128 r[5];
	for (int i = 0; i < 5; i++)
		r[i] = (u128)f->v[i] * 121665;
	fe_reduce128(h, r[0], r[1], r[2], r[3], r[4]);
}

/* 1/z as z^(p - 2), p - 2 = 2^255 - 21: the usual chain of 254 squarings and 11
 * products through z^(2^k - 1). */
static void fe_invert(fe *out, const fe *z)
{
	fe z2, z9, z11, t, a, b, c;
	fe_sq(&z2, z);            /* z^2 */
	fe_sq_n(&t, &z2, 2);      /* z^8 */
	fe_mul(&z9, &t, z);       /* z^9 */
	fe_mul(&z11, &z9, &z2);   /* z^11 */
	fe_sq(&t, &z11);          /* z^22 */
	fe_mul(&a, &t, &z9);      /* z^(2^5 - 1) */
	fe_sq_n(&t, &a, 5);
	fe_mul(&a, &t, &a);       /* z^(2^10 - 1) */
	fe_sq_n(&t, &a, 10);
	fe_mul(&b, &t, &a);       /* z^(2^20 - 1) */
	fe_sq_n(&t, &b, 20);
	fe_mul(&t, &t, &b);       /* z^(2^40 - 1) */
	fe_sq_n(&t, &t, 10);
	fe_mul(&a, &t, &a);       /* z^(2^50 - 1) */
	fe_sq_n(&t, &a, 50);
	fe_mul(&b, &t, &a);       /* z^(2^100 - 1) */
	fe_sq_n(&t, &b, 100);
	fe_mul(&c, &t, &b);       /* z^(2^200 - 1) */
	fe_sq_n(&t, &c, 50);
	fe_mul(&t, &t, &a);       /* z^(2^250 - 1) */
	fe_sq_n(&t, &t, 5);       /* z^(2^255 - 32) */
	fe_mul(out, &t, &z11);    /* z^(2^255 - 21) */
}

/* Swaps f and g when swap is 1, leaves them when 0; the same instructions either way. */
static void fe_cswap(fe *f, fe *g, uint64_t swap)
{
	uint64_t mask = 0 - swap;
	for (int i = 0; i < 5; i++) {
		uint64_t t = mask & (f->v[i] ^ g->v[i]);
		f->v[i] ^= t;
		g->v[i] ^= t;
	}
}

void x25519(unsigned char out[32], const unsigned char scalar[32], const unsigned char point[32])
{
	unsigned char k[32];
	fe x1, x2 = { { 1 } }, z2 = { { 0 } }, x3, z3 = { { 1 } };
	fe a, aa, b, bb, e, c, d, da, cb;
	uint64_t swap = 0;

	memcpy(k, scalar, 32);
	k[0] &= 0xF8;
	k[31] &= 0x7F;
	k[31] |= 0x40;
	fe_from_bytes(&x1, point);
	x3 = x1;
	for (int t = 254; t >= 0; t--) {
		uint64_t bit = (k[t >> 3] >> (t & 7)) & 1;
		swap ^= bit;
		fe_cswap(&x2, &x3, swap);
		fe_cswap(&z2, &z3, swap);
		swap = bit;
		fe_add(&a, &x2, &z2);
		fe_sq(&aa, &a);
		fe_sub(&b, &x2, &z2);
		fe_sq(&bb, &b);
		fe_sub(&e, &aa, &bb);
		fe_add(&c, &x3, &z3);
		fe_sub(&d, &x3, &z3);
		fe_mul(&da, &d, &a);
		fe_mul(&cb, &c, &b);
		fe_add(&x3, &da, &cb);
		fe_sq(&x3, &x3);
		fe_sub(&z3, &da, &cb);
		fe_sq(&z3, &z3);
		fe_mul(&z3, &z3, &x1);
		fe_mul(&x2, &aa, &bb);
		fe_mul_a24(&z2, &e);
		fe_add(&z2, &z2, &aa);
		fe_mul(&z2, &z2, &e);
	}
	fe_cswap(&x2, &x3, swap);
	fe_cswap(&z2, &z3, swap);
	fe_invert(&z2, &z2);
	fe_mul(&x2, &x2, &z2);
	fe_to_bytes(out, &x2);
	memset(k, 0, sizeof(k));
}

#endif
