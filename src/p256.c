/* p256.c - NIST P-256 point multiplication on 64-bit limbs.
 *
 * Field elements mod p = 2^256 - 2^224 + 2^192 + 2^96 - 1 are four 64-bit limbs in
 * Montgomery form (a * 2^256 mod p), multiplied with 128-bit products (CIOS
 * Montgomery multiplication: 32 word products where BearSSL's 31-bit code needs
 * 81 and more reductions). Points are homogeneous projective (X:Y:Z) and every
 * addition and doubling uses the complete formulas of Renes, Costello and Batina
 * (2016, algorithms 4 and 6, a = -3): they are correct for every pair of inputs,
 * the point at infinity (0:1:0) and P + P included, so the scalar loops have no
 * special case to branch on.
 *
 * Scalars: a fixed 4-bit window (variable base: 64 doublings of 4, 64 additions)
 * and a 4-tooth comb for the generator (64 doublings, 64 additions over a table of
 * 16 points computed once per process). Table entries are read by scanning the
 * whole table with masks. Nothing branches on, or indexes memory by, a secret. */
#include "p256.h"

#if P256_AVAILABLE

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "limb64.h"

typedef uint64_t fe[4]; /* little-endian limbs, Montgomery form, fully reduced */

static const fe P = { 0xFFFFFFFFFFFFFFFFu, 0x00000000FFFFFFFFu, 0, 0xFFFFFFFF00000001u };

/* The generator, uncompressed (SEC 1), and b of y^2 = x^3 - 3x + b. */
static const unsigned char GENERATOR[65] = {
	0x04, 0x6B, 0x17, 0xD1, 0xF2, 0xE1, 0x2C, 0x42, 0x47, 0xF8, 0xBC, 0xE6, 0xE5, 0x63, 0xA4,
	0x40, 0xF2, 0x77, 0x03, 0x7D, 0x81, 0x2D, 0xEB, 0x33, 0xA0, 0xF4, 0xA1, 0x39, 0x45, 0xD8,
	0x98, 0xC2, 0x96, 0x4F, 0xE3, 0x42, 0xE2, 0xFE, 0x1A, 0x7F, 0x9B, 0x8E, 0xE7, 0xEB, 0x4A,
	0x7C, 0x0F, 0x9E, 0x16, 0x2B, 0xCE, 0x33, 0x57, 0x6B, 0x31, 0x5E, 0xCE, 0xCB, 0xB6, 0x40,
	0x68, 0x37, 0xBF, 0x51, 0xF5
};
static const unsigned char B_BYTES[32] = {
	0x5A, 0xC6, 0x35, 0xD8, 0xAA, 0x3A, 0x93, 0xE7, 0xB3, 0xEB, 0xBD, 0x55, 0x76, 0x98, 0x86, 0xBC,
	0x65, 0x1D, 0x06, 0xB0, 0xCC, 0x53, 0xB0, 0xF6, 0x3B, 0xCE, 0x3C, 0x3E, 0x27, 0xD2, 0x60, 0x4B
};

/* ---- the field ---------------------------------------------------------------- */

/* Every field operation below is written out limb by limb (limb64.h's word
 * operations), so the compiler sees straight-line add/adc and mul chains at any
 * optimisation level. */
#define INLINE LIMB64_INLINE

/* r = x - p when x (with its fifth word hi) is at least p, else x: for x < 2p */
INLINE void reduce_once(fe r, uint64_t x0, uint64_t x1, uint64_t x2, uint64_t x3, uint64_t hi)
{
	uint64_t b = 0;
	uint64_t d0 = subb(x0, P[0], &b), d1 = subb(x1, P[1], &b), d2 = subb(x2, P[2], &b), d3 = subb(x3, P[3], &b);
	(void)subb(hi, 0, &b);
	uint64_t keep = 0 - b; /* all ones: x < p, keep it */
	r[0] = (x0 & keep) | (d0 & ~keep);
	r[1] = (x1 & keep) | (d1 & ~keep);
	r[2] = (x2 & keep) | (d2 & ~keep);
	r[3] = (x3 & keep) | (d3 & ~keep);
}

/* r = a + b mod p (inputs reduced) */
static void fe_add(fe r, const fe a, const fe b)
{
	uint64_t c = 0;
	uint64_t s0 = addc(a[0], b[0], &c), s1 = addc(a[1], b[1], &c), s2 = addc(a[2], b[2], &c),
		 s3 = addc(a[3], b[3], &c);
	reduce_once(r, s0, s1, s2, s3, c);
}

/* r = a - b mod p */
static void fe_sub(fe r, const fe a, const fe b)
{
	uint64_t bw = 0, c = 0;
	uint64_t d0 = subb(a[0], b[0], &bw), d1 = subb(a[1], b[1], &bw), d2 = subb(a[2], b[2], &bw),
		 d3 = subb(a[3], b[3], &bw);
	uint64_t mask = 0 - bw; /* add p back when it borrowed */
	r[0] = addc(d0, P[0] & mask, &c);
	r[1] = addc(d1, P[1] & mask, &c);
	r[2] = addc(d2, P[2] & mask, &c);
	r[3] = addc(d3, P[3] & mask, &c);
}

/* One Montgomery step on the running product t[i..i+4]: add m p with m = t[i]
 * (-p^-1 mod 2^64 is 1: p's low word is all ones), which clears t[i]; the carry
 * out of t[i+4] goes into *top. p's words: 2^64 - 1, 2^32 - 1, 0, 2^64 - 2^32 + 1. */
INLINE void mont_step(uint64_t *t, uint64_t *top)
{
	uint64_t m = t[0], c = 0;
	(void)mac(t[0], m, P[0], &c);
	t[1] = mac(t[1], m, P[1], &c);
	t[2] = addc(t[2], 0, &c);
	t[3] = mac(t[3], m, P[3], &c);
	limb64_u128 s = (limb64_u128)t[4] + c + *top;
	t[4] = (uint64_t)s;
	*top = (uint64_t)(s >> 64);
}

/* r = a * b / 2^256 mod p: the 512-bit product, then four Montgomery steps. */
static void fe_mul(fe r, const fe a, const fe b)
{
	uint64_t t[8], c;
	c = 0;
	t[0] = mac(0, a[0], b[0], &c);
	t[1] = mac(0, a[0], b[1], &c);
	t[2] = mac(0, a[0], b[2], &c);
	t[3] = mac(0, a[0], b[3], &c);
	t[4] = c;
	c = 0;
	t[1] = mac(t[1], a[1], b[0], &c);
	t[2] = mac(t[2], a[1], b[1], &c);
	t[3] = mac(t[3], a[1], b[2], &c);
	t[4] = mac(t[4], a[1], b[3], &c);
	t[5] = c;
	c = 0;
	t[2] = mac(t[2], a[2], b[0], &c);
	t[3] = mac(t[3], a[2], b[1], &c);
	t[4] = mac(t[4], a[2], b[2], &c);
	t[5] = mac(t[5], a[2], b[3], &c);
	t[6] = c;
	c = 0;
	t[3] = mac(t[3], a[3], b[0], &c);
	t[4] = mac(t[4], a[3], b[1], &c);
	t[5] = mac(t[5], a[3], b[2], &c);
	t[6] = mac(t[6], a[3], b[3], &c);
	t[7] = c;
	uint64_t top = 0;
	mont_step(t, &top);
	mont_step(t + 1, &top);
	mont_step(t + 2, &top);
	mont_step(t + 3, &top);
	/* t[4..7] + top 2^256 < 2p */
	reduce_once(r, t[4], t[5], t[6], t[7], top);
}

static void fe_sq(fe r, const fe a)
{
	fe_mul(r, a, a);
}

/* 2^512 mod p (to enter Montgomery form), 1 and b in Montgomery form. */
static fe R2, ONE, B;
static bool constants_ready;

/* 1 when a < p (a plain 256-bit number) */
static bool below_p(const fe a)
{
	uint64_t borrow = 0;
	for (int i = 0; i < 4; i++)
		(void)subb(a[i], P[i], &borrow);
	return borrow;
}

static void setup_constants(void)
{
	/* 2^512 mod p by doubling 1 512 times: no constant to mistype */
	fe x = { 1, 0, 0, 0 };
	for (int i = 0; i < 512; i++)
		fe_add(x, x, x);
	memcpy(R2, x, sizeof(fe));
	fe one = { 1, 0, 0, 0 }, b;
	fe_mul(ONE, one, R2);
	limb64_from_be(b, B_BYTES);
	fe_mul(B, b, R2);
	constants_ready = true;
}

/* a^(p - 2) = 1/a (0 for 0). The exponent is public: a fixed sequence. */
static void fe_invert(fe r, const fe a)
{
	/* p - 2 = ffffffff 00000001 00000000 00000000 00000000 ffffffff ffffffff fffffffd */
	static const uint64_t E[4] = { 0xFFFFFFFFFFFFFFFDu, 0x00000000FFFFFFFFu, 0, 0xFFFFFFFF00000001u };
	fe acc;
	memcpy(acc, ONE, sizeof(fe));
	for (int i = 255; i >= 0; i--) {
		fe_sq(acc, acc);
		if ((E[i >> 6] >> (i & 63)) & 1)
			fe_mul(acc, acc, a);
	}
	memcpy(r, acc, sizeof(fe));
}

/* ---- points -------------------------------------------------------------------- */

typedef struct {
	fe x, y, z;
} point;

static void point_infinity(point *p)
{
	memset(p, 0, sizeof(*p));
	memcpy(p->y, ONE, sizeof(fe));
}

/* r = p + q, complete (RCB16 algorithm 4, a = -3). r may alias p or q. */
static void point_add(point *r, const point *p, const point *q)
{
	fe t0, t1, t2, t3, t4, x3, y3, z3;
	fe_mul(t0, p->x, q->x);
	fe_mul(t1, p->y, q->y);
	fe_mul(t2, p->z, q->z);
	fe_add(t3, p->x, p->y);
	fe_add(t4, q->x, q->y);
	fe_mul(t3, t3, t4);
	fe_add(t4, t0, t1);
	fe_sub(t3, t3, t4);
	fe_add(t4, p->y, p->z);
	fe_add(x3, q->y, q->z);
	fe_mul(t4, t4, x3);
	fe_add(x3, t1, t2);
	fe_sub(t4, t4, x3);
	fe_add(x3, p->x, p->z);
	fe_add(y3, q->x, q->z);
	fe_mul(x3, x3, y3);
	fe_add(y3, t0, t2);
	fe_sub(y3, x3, y3);
	fe_mul(z3, B, t2);
	fe_sub(x3, y3, z3);
	fe_add(z3, x3, x3);
	fe_add(x3, x3, z3);
	fe_sub(z3, t1, x3);
	fe_add(x3, t1, x3);
	fe_mul(y3, B, y3);
	fe_add(t1, t2, t2);
	fe_add(t2, t1, t2);
	fe_sub(y3, y3, t2);
	fe_sub(y3, y3, t0);
	fe_add(t1, y3, y3);
	fe_add(y3, t1, y3);
	fe_add(t1, t0, t0);
	fe_add(t0, t1, t0);
	fe_sub(t0, t0, t2);
	fe_mul(t1, t4, y3);
	fe_mul(t2, t0, y3);
	fe_mul(y3, x3, z3);
	fe_add(y3, y3, t2);
	fe_mul(x3, x3, t3);
	fe_sub(x3, x3, t1);
	fe_mul(z3, z3, t4);
	fe_mul(t1, t3, t0);
	fe_add(z3, z3, t1);
	memcpy(r->x, x3, sizeof(fe));
	memcpy(r->y, y3, sizeof(fe));
	memcpy(r->z, z3, sizeof(fe));
}

/* r = 2p, complete (RCB16 algorithm 6, a = -3). r may alias p. */
static void point_double(point *r, const point *p)
{
	fe t0, t1, t2, t3, x3, y3, z3;
	fe_sq(t0, p->x);
	fe_sq(t1, p->y);
	fe_sq(t2, p->z);
	fe_mul(t3, p->x, p->y);
	fe_add(t3, t3, t3);
	fe_mul(z3, p->x, p->z);
	fe_add(z3, z3, z3);
	fe_mul(y3, B, t2);
	fe_sub(y3, y3, z3);
	fe_add(x3, y3, y3);
	fe_add(y3, x3, y3);
	fe_sub(x3, t1, y3);
	fe_add(y3, t1, y3);
	fe_mul(y3, x3, y3);
	fe_mul(x3, x3, t3);
	fe_add(t3, t2, t2);
	fe_add(t2, t2, t3);
	fe_mul(z3, B, z3);
	fe_sub(z3, z3, t2);
	fe_sub(z3, z3, t0);
	fe_add(t3, z3, z3);
	fe_add(z3, z3, t3);
	fe_add(t3, t0, t0);
	fe_add(t0, t3, t0);
	fe_sub(t0, t0, t2);
	fe_mul(t0, t0, z3);
	fe_add(y3, y3, t0);
	fe_mul(t0, p->y, p->z);
	fe_add(t0, t0, t0);
	fe_mul(z3, t0, z3);
	fe_sub(x3, x3, z3);
	fe_mul(z3, t0, t1);
	fe_add(z3, z3, z3);
	fe_add(z3, z3, z3);
	memcpy(r->x, x3, sizeof(fe));
	memcpy(r->y, y3, sizeof(fe));
	memcpy(r->z, z3, sizeof(fe));
}

/* r = table[index] for index 0..15, reading every entry. */
static void point_select(point *r, const point table[16], unsigned index)
{
	memset(r, 0, sizeof(*r));
	for (unsigned i = 0; i < 16; i++) {
		uint64_t mask = 0 - (uint64_t)(((i ^ index) - 1) >> 31 & 1); /* all ones when i == index */
		const uint64_t *src = &table[i].x[0];
		uint64_t *dst = &r->x[0];
		for (int k = 0; k < 12; k++)
			dst[k] |= src[k] & mask;
	}
}

/* SEC 1 uncompressed encoding to a point (Z = 1); false unless the bytes are a
 * point of the curve with coordinates below p (p is then the point at infinity). */
static bool point_decode(point *p, const unsigned char *b, size_t len)
{
	fe x, y, lhs, rhs, t;
	point_infinity(p);
	if (len != 65 || b[0] != 0x04)
		return false;
	limb64_from_be(x, b + 1);
	limb64_from_be(y, b + 33);
	if (!below_p(x) || !below_p(y))
		return false;
	fe_mul(p->x, x, R2);
	fe_mul(p->y, y, R2);
	memcpy(p->z, ONE, sizeof(fe));
	/* y^2 = x^3 - 3x + b */
	fe_sq(lhs, p->y);
	fe_sq(rhs, p->x);
	fe_mul(rhs, rhs, p->x);
	fe_add(t, p->x, p->x);
	fe_add(t, t, p->x);
	fe_sub(rhs, rhs, t);
	fe_add(rhs, rhs, B);
	uint64_t diff = 0;
	for (int i = 0; i < 4; i++)
		diff |= lhs[i] ^ rhs[i];
	if (diff != 0)
		point_infinity(p);
	return diff == 0;
}

/* Affine encoding; false for the point at infinity. */
static bool point_encode(unsigned char out[65], const point *p)
{
	fe zi, x, y, one = { 1, 0, 0, 0 };
	uint64_t z = p->z[0] | p->z[1] | p->z[2] | p->z[3];
	fe_invert(zi, p->z);
	fe_mul(x, p->x, zi);
	fe_mul(y, p->y, zi);
	fe_mul(x, x, one); /* out of Montgomery form */
	fe_mul(y, y, one);
	out[0] = 0x04;
	limb64_to_be(out + 1, x);
	limb64_to_be(out + 33, y);
	return z != 0;
}

/* The scalar as 32 big-endian bytes (shorter ones are left-padded). */
static bool scalar_load(unsigned char k[32], const unsigned char *x, size_t len)
{
	if (len > 32)
		return false;
	memset(k, 0, 32 - len);
	memcpy(k + 32 - len, x, len);
	return true;
}

/* r = k * p, fixed 4-bit windows from the top. */
static void point_mul(point *r, const point *p, const unsigned char k[32])
{
	point table[16], t;
	point_infinity(&table[0]);
	table[1] = *p;
	for (int i = 2; i < 16; i += 2) {
		point_double(&table[i], &table[i / 2]);
		point_add(&table[i + 1], &table[i], p);
	}
	point_infinity(r);
	for (int i = 0; i < 64; i++) {
		unsigned w = (k[i >> 1] >> (i & 1 ? 0 : 4)) & 15;
		if (i) {
			for (int d = 0; d < 4; d++)
				point_double(r, r);
		}
		point_select(&t, table, w);
		point_add(r, r, &t);
	}
	memset(table, 0, sizeof(table));
	memset(&t, 0, sizeof(t));
}

/* The comb: COMB[b] = sum over the set bits t of b of 2^(64 t) G. */
static point COMB[16];
static bool comb_ready;

static void setup_comb(void)
{
	point g, teeth[4];
	point_decode(&g, GENERATOR, sizeof(GENERATOR));
	teeth[0] = g;
	for (int t = 1; t < 4; t++) {
		teeth[t] = teeth[t - 1];
		for (int i = 0; i < 64; i++)
			point_double(&teeth[t], &teeth[t]);
	}
	point_infinity(&COMB[0]);
	for (unsigned b = 1; b < 16; b++) {
		unsigned low = b & (0u - b); /* lowest set bit */
		int t = __builtin_ctz(low);
		point_add(&COMB[b], &COMB[b ^ low], &teeth[t]);
	}
	comb_ready = true;
}

static void ready(void)
{
	if (!constants_ready)
		setup_constants();
	if (!comb_ready)
		setup_comb();
}

/* bit i (0 = least significant) of a big-endian 32-byte scalar */
static unsigned scalar_bit(const unsigned char k[32], int i)
{
	return (k[31 - (i >> 3)] >> (i & 7)) & 1;
}

static void point_mulgen(point *r, const unsigned char k[32])
{
	point t;
	point_infinity(r);
	for (int j = 63; j >= 0; j--) {
		unsigned idx = scalar_bit(k, j) | scalar_bit(k, j + 64) << 1 | scalar_bit(k, j + 128) << 2 |
			       scalar_bit(k, j + 192) << 3;
		point_double(r, r);
		point_select(&t, COMB, idx);
		point_add(r, r, &t);
	}
	memset(&t, 0, sizeof(t));
}

/* ---- the interface ---------------------------------------------------------------- */

const unsigned char *p256_generator(size_t *len)
{
	*len = sizeof(GENERATOR);
	return GENERATOR;
}

int p256_mul(unsigned char *point_bytes, size_t len, const unsigned char *x, size_t xlen)
{
	unsigned char k[32];
	point p, r;
	ready();
	if (!scalar_load(k, x, xlen) || !point_decode(&p, point_bytes, len))
		return 0;
	point_mul(&r, &p, k);
	memset(k, 0, sizeof(k));
	return point_encode(point_bytes, &r);
}

size_t p256_mulgen(unsigned char out[65], const unsigned char *x, size_t xlen)
{
	unsigned char k[32];
	point r;
	ready();
	if (!scalar_load(k, x, xlen))
		return 0;
	point_mulgen(&r, k);
	memset(k, 0, sizeof(k));
	point_encode(out, &r);
	return 65;
}

int p256_muladd(unsigned char *a, const unsigned char *b, size_t len, const unsigned char *x, size_t xlen,
		const unsigned char *y, size_t ylen)
{
	unsigned char kx[32], ky[32];
	point pa, pb, ra, rb;
	ready();
	if (!scalar_load(kx, x, xlen) || !scalar_load(ky, y, ylen) || !point_decode(&pa, a, len))
		return 0;
	point_mul(&ra, &pa, kx);
	if (b) {
		if (!point_decode(&pb, b, len))
			return 0;
		point_mul(&rb, &pb, ky);
	} else {
		point_mulgen(&rb, ky);
	}
	point_add(&ra, &ra, &rb);
	return point_encode(a, &ra);
}

#endif
