/* ec_impl.c - a br_ec_impl that routes each curve to the fastest code this target
 * has: on 64-bit targets (128-bit products) P-256 and X25519 go to p256.c and
 * x25519.c, 2 to 3 times faster than BearSSL 0.6's 31-bit code on x86_64 (its 64-bit
 * m62/m64 implementations came after the pinned release); P-384 and P-521 stay on
 * BearSSL's i31 code. Generators, orders and coordinate offsets are those BearSSL
 * reports for the same curves, so its ECDHE and ECDSA code behaves unchanged. */
#include "ec_impl.h"

#include <string.h>

#include "p256.h"
#include "x25519.h"

#if P256_AVAILABLE && X25519_AVAILABLE

/* X25519's conventional generator u = 9 and the "order" BearSSL reports for it
 * (2^255 - 1: the ladder accepts any clamped scalar), both as BearSSL encodes them. */
static const unsigned char X25519_GEN[32] = { 9 };
static const unsigned char X25519_ORDER[32] = {
	0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
};

static const unsigned char *ec_generator(int curve, size_t *len)
{
	switch (curve) {
	case BR_EC_secp256r1: return p256_generator(len);
	case BR_EC_curve25519: *len = sizeof(X25519_GEN); return X25519_GEN;
	default: return br_ec_prime_i31.generator(curve, len);
	}
}

static const unsigned char *ec_order(int curve, size_t *len)
{
	if (curve == BR_EC_curve25519) {
		*len = sizeof(X25519_ORDER);
		return X25519_ORDER;
	}
	return br_ec_prime_i31.order(curve, len);
}

static size_t ec_xoff(int curve, size_t *len)
{
	if (curve == BR_EC_curve25519) {
		*len = 32;
		return 0;
	}
	return br_ec_prime_i31.xoff(curve, len);
}

static uint32_t ec_mul(unsigned char *g, size_t glen, const unsigned char *x, size_t xlen, int curve)
{
	switch (curve) {
	case BR_EC_secp256r1: return (uint32_t)p256_mul(g, glen, x, xlen);
	case BR_EC_curve25519: {
		/* the scalar is little-endian and at most 32 bytes (RFC 7748) */
		unsigned char k[32] = { 0 };
		if (glen != 32 || xlen > 32)
			return 0;
		memcpy(k, x, xlen);
		x25519(g, k, g);
		memset(k, 0, sizeof(k));
		return 1;
	}
	default: return br_ec_prime_i31.mul(g, glen, x, xlen, curve);
	}
}

static size_t ec_mulgen(unsigned char *r, const unsigned char *x, size_t xlen, int curve)
{
	switch (curve) {
	case BR_EC_secp256r1: return p256_mulgen(r, x, xlen);
	case BR_EC_curve25519:
		memcpy(r, X25519_GEN, sizeof(X25519_GEN));
		return ec_mul(r, sizeof(X25519_GEN), x, xlen, curve) ? sizeof(X25519_GEN) : 0;
	default: return br_ec_prime_i31.mulgen(r, x, xlen, curve);
	}
}

static uint32_t ec_muladd(unsigned char *a, const unsigned char *b, size_t len, const unsigned char *x,
			  size_t xlen, const unsigned char *y, size_t ylen, int curve)
{
	switch (curve) {
	case BR_EC_secp256r1: return (uint32_t)p256_muladd(a, b, len, x, xlen, y, ylen);
	case BR_EC_curve25519: return 0; /* no point addition on a Montgomery u-line */
	default: return br_ec_prime_i31.muladd(a, b, len, x, xlen, y, ylen, curve);
	}
}

static const br_ec_impl EC_FAST = {
	(uint32_t)((1u << BR_EC_secp256r1) | (1u << BR_EC_secp384r1) | (1u << BR_EC_secp521r1) |
		   (1u << BR_EC_curve25519)),
	ec_generator, ec_order, ec_xoff, ec_mul, ec_mulgen, ec_muladd,
};

const br_ec_impl *ec_impl(void)
{
	return &EC_FAST;
}

#else

const br_ec_impl *ec_impl(void)
{
	return br_ec_get_default();
}

#endif
