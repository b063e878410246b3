/* ecdsa.c - ECDSA signatures over P-256 (FIPS 186-4) with RFC 6979 deterministic
 * nonces, computed modulo the group order n on four 64-bit limbs (Montgomery form,
 * 128-bit products). A TLS server signs its ECDHE parameters on every full
 * handshake; BearSSL 0.6's 31-bit modular code for that step cost more than the
 * curve arithmetic itself once p256.c took that over. Same nonce derivation as
 * BearSSL's br_ecdsa_i31_sign_raw (HMAC_DRBG over the private key and the reduced
 * hash), so both produce the same signature for the same input; other curves go
 * to BearSSL's code. */
#include "ecdsa.h"

#if ECDSA_P256_AVAILABLE

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "limb64.h"

typedef uint64_t sc[4]; /* little-endian limbs */

/* n, the order of P-256's generator */
static const sc N = { 0xF3B9CAC2FC632551u, 0xBCE6FAADA7179E84u, 0xFFFFFFFFFFFFFFFFu, 0xFFFFFFFF00000000u };

/* r = x - n when x (with its fifth word hi) is at least n, else x; for x < 2n */
static void reduce_once(sc r, const uint64_t x[4], uint64_t hi)
{
	uint64_t b = 0, d[4];
	for (int i = 0; i < 4; i++)
		d[i] = subb(x[i], N[i], &b);
	(void)subb(hi, 0, &b);
	uint64_t keep = 0 - b;
	for (int i = 0; i < 4; i++)
		r[i] = (x[i] & keep) | (d[i] & ~keep);
}

static void sc_add(sc r, const sc a, const sc b)
{
	uint64_t c = 0, s[4];
	for (int i = 0; i < 4; i++)
		s[i] = addc(a[i], b[i], &c);
	reduce_once(r, s, c);
}

/* -n^-1 mod 2^64 */
static uint64_t n0inv;
/* 2^512 mod n, to enter Montgomery form */
static sc R2;
static bool ready;

/* r = a b / 2^256 mod n (CIOS Montgomery multiplication) */
static void sc_mul(sc r, const sc a, const sc b)
{
	uint64_t t[6] = { 0 };
	for (int i = 0; i < 4; i++) {
		limb64_u128 c = 0;
		for (int j = 0; j < 4; j++) {
			c += (limb64_u128)a[j] * b[i] + t[j];
			t[j] = (uint64_t)c;
			c >>= 64;
		}
		c += t[4];
		t[4] = (uint64_t)c;
		t[5] = (uint64_t)(c >> 64);
		uint64_t m = t[0] * n0inv;
		c = ((limb64_u128)m * N[0] + t[0]) >> 64;
		for (int j = 1; j < 4; j++) {
			c += (limb64_u128)m * N[j] + t[j];
			t[j - 1] = (uint64_t)c;
			c >>= 64;
		}
		c += t[4];
		t[3] = (uint64_t)c;
		t[4] = t[5] + (uint64_t)(c >> 64);
	}
	reduce_once(r, t, t[4]);
}

static void setup(void)
{
	/* n^-1 mod 2^64 by Newton's iteration (each step doubles the correct bits) */
	uint64_t inv = 1;
	for (int i = 0; i < 6; i++)
		inv *= 2 - N[0] * inv;
	n0inv = 0 - inv;
	sc x = { 1, 0, 0, 0 };
	for (int i = 0; i < 512; i++)
		sc_add(x, x, x);
	memcpy(R2, x, sizeof(sc));
	ready = true;
}

/* a mod n for a < 2^256 (one conditional subtraction: 2^256 < 2n) */
static void sc_reduce(sc r, const sc a)
{
	reduce_once(r, a, 0);
}

static bool sc_is_zero(const sc a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

/* 1 when a < n */
static bool sc_below_n(const sc a)
{
	uint64_t b = 0;
	for (int i = 0; i < 4; i++)
		(void)subb(a[i], N[i], &b);
	return b;
}

/* RFC 6979 bits2int for a 256-bit order: the leftmost 256 bits of h, or all of
 * a shorter h as a number */
static void bits2int(sc r, const unsigned char *h, size_t len)
{
	unsigned char b[32] = { 0 };
	if (len >= 32)
		memcpy(b, h, 32);
	else
		memcpy(b + 32 - len, h, len);
	limb64_from_be(r, b);
}

/* r = a^(n - 2) = 1/a, in Montgomery form; the exponent is public. */
static void sc_invert(sc r, const sc a, const sc one)
{
	sc e, acc;
	memcpy(e, N, sizeof(sc));
	e[0] -= 2; /* n's low word ends in 0x51: no borrow */
	memcpy(acc, one, sizeof(sc));
	for (int i = 255; i >= 0; i--) {
		sc_mul(acc, acc, acc);
		if ((e[i >> 6] >> (i & 63)) & 1)
			sc_mul(acc, acc, a);
	}
	memcpy(r, acc, sizeof(sc));
}

/* r || s, 64 bytes; 0 when the key is not a P-256 key below n and above 0 */
static size_t sign_p256(const br_ec_impl *impl, const br_hash_class *hf, const void *hash_value,
			const br_ec_private_key *sk, unsigned char *sig)
{
	unsigned char seed[64], point[65];
	sc x, m, k, r, s, t;
	br_hmac_drbg_context drbg;

	if (!ready)
		setup();
	if (sk->xlen > 32)
		return 0;
	unsigned char xb[32] = { 0 };
	memcpy(xb + 32 - sk->xlen, sk->x, sk->xlen);
	limb64_from_be(x, xb);
	if (sc_is_zero(x) || !sc_below_n(x))
		return 0;
	size_t hash_len = (hf->desc >> BR_HASHDESC_OUT_OFF) & BR_HASHDESC_OUT_MASK;
	bits2int(m, hash_value, hash_len);
	sc_reduce(m, m);

	/* k: HMAC_DRBG seeded with int2octets(x) || bits2octets(h) (RFC 6979 3.2) */
	limb64_to_be(seed, x);
	limb64_to_be(seed + 32, m);
	br_hmac_drbg_init(&drbg, hf, seed, sizeof(seed));
	do {
		br_hmac_drbg_generate(&drbg, seed, 32);
		bits2int(k, seed, 32);
	} while (sc_is_zero(k) || !sc_below_n(k));

	/* r = x(kG) mod n */
	limb64_to_be(seed, k);
	if (impl->mulgen(point, seed, 32, BR_EC_secp256r1) != 65)
		return 0;
	limb64_from_be(r, point + 1);
	sc_reduce(r, r);

	/* s = (m + x r) / k mod n, in Montgomery form: each value times R2 enters it,
	 * a product of two leaves one factor of R, and a product with 1 leaves it */
	sc one_m, xm, rm, mm, km, kinv, plain_one = { 1, 0, 0, 0 };
	sc_mul(one_m, plain_one, R2);
	sc_mul(xm, x, R2);
	sc_mul(rm, r, R2);
	sc_mul(mm, m, R2);
	sc_mul(km, k, R2);
	sc_invert(kinv, km, one_m);
	sc_mul(t, xm, rm);
	sc_add(t, t, mm);
	sc_mul(s, t, kinv);
	sc_mul(s, s, plain_one);

	bool bad = sc_is_zero(r) || sc_is_zero(s);
	limb64_to_be(sig, r);
	limb64_to_be(sig + 32, s);
	memset(seed, 0, sizeof(seed));
	memset(xb, 0, sizeof(xb));
	memset(&drbg, 0, sizeof(drbg));
	memset(x, 0, sizeof(x));
	memset(k, 0, sizeof(k));
	memset(km, 0, sizeof(km));
	memset(kinv, 0, sizeof(kinv));
	memset(xm, 0, sizeof(xm));
	return bad ? 0 : 64;
}

size_t ecdsa_sign_raw(const br_ec_impl *impl, const br_hash_class *hf, const void *hash_value,
		      const br_ec_private_key *sk, void *sig)
{
	if (sk->curve != BR_EC_secp256r1 || !((impl->supported_curves >> BR_EC_secp256r1) & 1))
		return br_ecdsa_i31_sign_raw(impl, hf, hash_value, sk, sig);
	return sign_p256(impl, hf, hash_value, sk, sig);
}

size_t ecdsa_sign_asn1(const br_ec_impl *impl, const br_hash_class *hf, const void *hash_value,
		       const br_ec_private_key *sk, void *sig)
{
	/* the raw form first, then its DER in place (BearSSL's encoder: the output
	 * never exceeds 72 bytes for P-256, the buffer size callers give) */
	if (sk->curve != BR_EC_secp256r1 || !((impl->supported_curves >> BR_EC_secp256r1) & 1))
		return br_ecdsa_i31_sign_asn1(impl, hf, hash_value, sk, sig);
	size_t len = sign_p256(impl, hf, hash_value, sk, sig);
	return len ? br_ecdsa_raw_to_asn1(sig, len) : 0;
}

#else

size_t ecdsa_sign_raw(const br_ec_impl *impl, const br_hash_class *hf, const void *hash_value,
		      const br_ec_private_key *sk, void *sig)
{
	return br_ecdsa_sign_raw_get_default()(impl, hf, hash_value, sk, sig);
}

size_t ecdsa_sign_asn1(const br_ec_impl *impl, const br_hash_class *hf, const void *hash_value,
		       const br_ec_private_key *sk, void *sig)
{
	return br_ecdsa_sign_asn1_get_default()(impl, hf, hash_value, sk, sig);
}

#endif
