/* test_ec.c - edgeproxy's own elliptic-curve code (p256.c, x25519.c, ec_impl.c):
 * RFC 7748's X25519 vectors, and every operation checked against BearSSL's 31-bit
 * implementations (ec_p256_m31, ec_c25519_m31) on thousands of random inputs, plus
 * the inputs that must be refused, and ECDSA signatures made with one verified by
 * the other. */
#include <bearssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec_impl.h"
#include "ecdsa.h"
#include "p256.h"
#include "test.h"
#include "x25519.h"

#if P256_AVAILABLE && X25519_AVAILABLE

/* xorshift: reproducible inputs */
static uint64_t seed = 0x9E3779B97F4A7C15u;

static void random_bytes(unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		b[i] = (unsigned char)(seed >> 32);
	}
}

static void from_hex(unsigned char *out, const char *hex)
{
	for (size_t i = 0; hex[2 * i]; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (unsigned char)v;
	}
}

static void test_x25519_rfc7748(void)
{
	unsigned char k[32], u[32], want[32], out[32];
	/* section 5.2, the two single-operation vectors */
	from_hex(k, "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
	from_hex(u, "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
	from_hex(want, "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
	x25519(out, k, u);
	CHECK(memcmp(out, want, 32) == 0);
	from_hex(k, "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d");
	from_hex(u, "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493");
	from_hex(want, "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
	x25519(out, k, u);
	CHECK(memcmp(out, want, 32) == 0);
	/* the iterated vector: k = u = 9, then k, u = X25519(k, u), k */
	unsigned char kk[32] = { 9 }, uu[32] = { 9 }, t[32];
	for (int i = 1; i <= 1000; i++) {
		x25519(t, kk, uu);
		memcpy(uu, kk, 32);
		memcpy(kk, t, 32);
		if (i == 1) {
			from_hex(want, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079");
			CHECK(memcmp(kk, want, 32) == 0);
		}
	}
	from_hex(want, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51");
	CHECK(memcmp(kk, want, 32) == 0);
	/* section 6.1: both sides of a Diffie-Hellman agree */
	unsigned char a[32], b[32], apub[32], bpub[32], s1[32], s2[32], nine[32] = { 9 };
	from_hex(a, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
	from_hex(b, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
	x25519(apub, a, nine);
	x25519(bpub, b, nine);
	from_hex(want, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
	CHECK(memcmp(apub, want, 32) == 0);
	x25519(s1, a, bpub);
	x25519(s2, b, apub);
	from_hex(want, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
	CHECK(memcmp(s1, want, 32) == 0 && memcmp(s2, want, 32) == 0);
}

static void test_x25519_against_bearssl(void)
{
	const br_ec_impl *ours = ec_impl(), *ref = &br_ec_c25519_m31;
	int same = 0, n = 3000;
	for (int i = 0; i < n; i++) {
		unsigned char k[32], p[32], r1[32], r2[32];
		random_bytes(k, sizeof(k));
		random_bytes(p, sizeof(p));
		if (i % 5 == 0) /* u at and above p = 2^255 - 19: non-canonical inputs */
			memset(p, 0xFF, 32), p[0] = (unsigned char)(0xEC + i % 20), p[31] = (i & 1) ? 0x7F : 0xFF;
		size_t klen = i % 7 == 0 ? (size_t)(i % 32) : 32;
		memcpy(r1, p, 32);
		memcpy(r2, p, 32);
		uint32_t o1 = ours->mul(r1, 32, k, klen, BR_EC_curve25519);
		uint32_t o2 = ref->mul(r2, 32, k, klen, BR_EC_curve25519);
		same += o1 == o2 && memcmp(r1, r2, 32) == 0;
	}
	CHECKF(same == n, "%d of %d agree", same, n);
	unsigned char k[32] = { 1 }, g1[32], g2[32];
	CHECK(ours->mulgen(g1, k, 32, BR_EC_curve25519) == 32 && ref->mulgen(g2, k, 32, BR_EC_curve25519) == 32 &&
	      memcmp(g1, g2, 32) == 0);
	size_t l1, l2;
	CHECK(memcmp(ours->order(BR_EC_curve25519, &l1), ref->order(BR_EC_curve25519, &l2), 32) == 0 && l1 == l2);
	CHECK(ours->mul(g1, 31, k, 32, BR_EC_curve25519) == 0);
	CHECK(ours->mul(g1, 32, k, 33, BR_EC_curve25519) == 0);
}

static void test_p256_against_bearssl(void)
{
	const br_ec_impl *ours = ec_impl(), *ref = &br_ec_p256_m31;
	size_t glen, nlen;
	const unsigned char *g = ref->generator(BR_EC_secp256r1, &glen);
	const unsigned char *order = ref->order(BR_EC_secp256r1, &nlen);
	size_t l;
	CHECK(memcmp(ours->generator(BR_EC_secp256r1, &l), g, 65) == 0 && l == 65);
	int n = 1000, mul_ok = 0, gen_ok = 0, add_ok = 0;
	for (int i = 0; i < n; i++) {
		unsigned char k[32], k2[32], a[65], b[65], r1[65], r2[65];
		random_bytes(k, 32);
		random_bytes(k2, 32);
		k[0] &= 0x7F; /* below the order */
		k2[0] &= 0x7F;
		k2[31] |= 1;  /* not zero */
		size_t klen = i % 9 == 0 ? (size_t)(1 + i % 32) : 32;
		if (i % 31 == 0)
			memset(k, 0, 31), k[31] |= 1; /* tiny scalars */
		ref->mulgen(a, k2, 32, BR_EC_secp256r1);
		memcpy(r1, a, 65);
		memcpy(r2, a, 65);
		uint32_t o1 = ours->mul(r1, 65, k, klen, BR_EC_secp256r1);
		uint32_t o2 = ref->mul(r2, 65, k, klen, BR_EC_secp256r1);
		bool zero = true; /* then ours refuses (the point at infinity), BearSSL's does not */
		for (size_t j = 0; j < klen; j++)
			zero &= k[j] == 0;
		mul_ok += zero ? o1 == 0 : o1 == 1 && o2 == 1 && memcmp(r1, r2, 65) == 0;
		gen_ok += ours->mulgen(r1, k, klen, BR_EC_secp256r1) == 65 &&
			  ref->mulgen(r2, k, klen, BR_EC_secp256r1) == 65 && memcmp(r1, r2, 65) == 0;
		ref->mulgen(b, k, 32, BR_EC_secp256r1);
		memcpy(r1, a, 65);
		memcpy(r2, a, 65);
		const unsigned char *bp = (i & 1) ? b : NULL;
		o1 = ours->muladd(r1, bp, 65, k, 32, k2, 32, BR_EC_secp256r1);
		o2 = ref->muladd(r2, bp, 65, k, 32, k2, 32, BR_EC_secp256r1);
		add_ok += o1 == o2 && (!o1 || memcmp(r1, r2, 65) == 0);
	}
	CHECKF(mul_ok == n, "mul: %d of %d agree", mul_ok, n);
	CHECKF(gen_ok == n, "mulgen: %d of %d agree", gen_ok, n);
	CHECKF(add_ok == n, "muladd: %d of %d agree", add_ok, n);

	/* (n - 1) G = -G; n G is the point at infinity, refused */
	unsigned char k[32], p[65], q[65];
	memcpy(k, order, 32);
	memcpy(p, g, 65);
	CHECK(ours->mul(p, 65, k, 32, BR_EC_secp256r1) == 0);
	k[31] -= 1;
	memcpy(p, g, 65);
	memcpy(q, g, 65);
	CHECK(ours->mul(p, 65, k, 32, BR_EC_secp256r1) == 1 && ref->mul(q, 65, k, 32, BR_EC_secp256r1) == 1 &&
	      memcmp(p, q, 65) == 0);
	/* x G + (n - x) G is the point at infinity: muladd refuses it */
	unsigned char one[32] = { 0 };
	one[31] = 1;
	memcpy(p, g, 65);
	CHECK(ours->muladd(p, NULL, 65, one, 32, k, 32, BR_EC_secp256r1) == 0);
	/* refused points: off the curve, a coordinate not below p, bad encodings */
	unsigned char s[32] = { 0 };
	s[31] = 5;
	memcpy(p, g, 65);
	p[64] ^= 1;
	CHECK(ours->mul(p, 65, s, 32, BR_EC_secp256r1) == 0);
	memcpy(p, g, 65);
	memset(p + 1, 0xFF, 32); /* x = 2^256 - 1 */
	CHECK(ours->mul(p, 65, s, 32, BR_EC_secp256r1) == 0);
	memcpy(p, g, 65);
	p[0] = 0x02;
	CHECK(ours->mul(p, 65, s, 32, BR_EC_secp256r1) == 0);
	memcpy(p, g, 65);
	CHECK(ours->mul(p, 64, s, 32, BR_EC_secp256r1) == 0);
	CHECK(ours->mul(p, 65, s, 33, BR_EC_secp256r1) == 0);
	unsigned char zero[65] = { 0x04 };
	CHECK(ours->mul(zero, 65, s, 32, BR_EC_secp256r1) == 0);
}

/* P-384 goes through to BearSSL, and ECDSA signatures made with ec_impl() verify
 * with BearSSL's own code (and the other way round). */
static void test_ecdsa(void)
{
	static const int curves[] = { BR_EC_secp256r1, BR_EC_secp384r1 };
	for (size_t c = 0; c < sizeof(curves) / sizeof(curves[0]); c++) {
		const br_ec_impl *ours = ec_impl(), *ref = &br_ec_prime_i31;
		br_hmac_drbg_context rng;
		br_hmac_drbg_init(&rng, &br_sha256_vtable, "test_ec", 7);
		unsigned char skbuf[BR_EC_KBUF_PRIV_MAX_SIZE], pkbuf[BR_EC_KBUF_PUB_MAX_SIZE];
		br_ec_private_key sk;
		br_ec_public_key pk;
		CHECK(br_ec_keygen(&rng.vtable, ours, &sk, skbuf, curves[c]) > 0);
		CHECK(br_ec_compute_pub(ours, &pk, pkbuf, &sk) > 0);
		unsigned char pk_ref[BR_EC_KBUF_PUB_MAX_SIZE];
		br_ec_public_key pkr;
		CHECK(br_ec_compute_pub(ref, &pkr, pk_ref, &sk) == pk.qlen && memcmp(pk.q, pkr.q, pk.qlen) == 0);
		int good = 0, n = 20;
		for (int i = 0; i < n; i++) {
			unsigned char hash[32], sig[160];
			random_bytes(hash, sizeof(hash));
			size_t len = ecdsa_sign_asn1(ours, &br_sha256_vtable, hash, &sk, sig);
			size_t len2;
			unsigned char sig2[160];
			len2 = br_ecdsa_i31_sign_asn1(ref, &br_sha256_vtable, hash, &sk, sig2);
			good += len > 0 && br_ecdsa_i31_vrfy_asn1(ref, hash, 32, &pk, sig, len) == 1 &&
				br_ecdsa_i31_vrfy_asn1(ours, hash, 32, &pk, sig2, len2) == 1 &&
				br_ecdsa_i31_vrfy_asn1(ours, hash, 32, &pk, sig, len) == 1;
			hash[0] ^= 1;
			good -= br_ecdsa_i31_vrfy_asn1(ours, hash, 32, &pk, sig, len) != 0;
		}
		CHECKF(good == n, "curve %d: %d of %d", curves[c], good, n);
	}
}

/* ecdsa.c signs P-256 exactly as BearSSL's i31 code does (both derive the nonce
 * by RFC 6979), so the signatures must be the same bytes; RFC 6979's own example
 * too; keys out of range are refused. */
static void test_ecdsa_p256_signatures(void)
{
	static const br_hash_class *const hashes[] = { &br_sha256_vtable, &br_sha384_vtable, &br_sha1_vtable,
						       &br_sha512_vtable };
	int same = 0, n = 200;
	for (int i = 0; i < n; i++) {
		unsigned char x[32], hash[64], sig1[80], sig2[80], pub[65];
		random_bytes(x, sizeof(x));
		x[0] &= 0x7F;
		random_bytes(hash, sizeof(hash));
		const br_hash_class *hf = hashes[i % 4];
		size_t hlen = (hf->desc >> BR_HASHDESC_OUT_OFF) & BR_HASHDESC_OUT_MASK;
		br_ec_private_key sk = { BR_EC_secp256r1, x, 32 };
		size_t l1 = ecdsa_sign_raw(ec_impl(), hf, hash, &sk, sig1);
		size_t l2 = br_ecdsa_i31_sign_raw(&br_ec_p256_m31, hf, hash, &sk, sig2);
		br_ec_public_key pk = { BR_EC_secp256r1, pub, 65 };
		br_ec_p256_m31.mulgen(pub, x, 32, BR_EC_secp256r1);
		bool ok = l1 == 64 && l2 == 64 && memcmp(sig1, sig2, 64) == 0 &&
			  br_ecdsa_i31_vrfy_raw(&br_ec_p256_m31, hash, hlen, &pk, sig1, 64) == 1;
		l1 = ecdsa_sign_asn1(ec_impl(), hf, hash, &sk, sig1);
		l2 = br_ecdsa_i31_sign_asn1(&br_ec_p256_m31, hf, hash, &sk, sig2);
		same += ok && l1 > 0 && l1 == l2 && memcmp(sig1, sig2, l1) == 0;
	}
	CHECKF(same == n, "%d of %d the same", same, n);

	/* RFC 6979 A.2.5: P-256, SHA-256, message "sample" */
	unsigned char x[32], want[64], sig[80], h[32];
	from_hex(x, "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");
	from_hex(want, "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
		       "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8");
	br_sha256_context ctx;
	br_sha256_init(&ctx);
	br_sha256_update(&ctx, "sample", 6);
	br_sha256_out(&ctx, h);
	br_ec_private_key sk = { BR_EC_secp256r1, x, 32 };
	CHECK(ecdsa_sign_raw(ec_impl(), &br_sha256_vtable, h, &sk, sig) == 64 && memcmp(sig, want, 64) == 0);

	/* refused keys: zero, the order itself, longer than 32 bytes */
	size_t nlen;
	const unsigned char *order = br_ec_p256_m31.order(BR_EC_secp256r1, &nlen);
	unsigned char bad[33] = { 0 };
	br_ec_private_key zero = { BR_EC_secp256r1, bad, 32 };
	CHECK(ecdsa_sign_raw(ec_impl(), &br_sha256_vtable, h, &zero, sig) == 0);
	memcpy(bad, order, 32);
	br_ec_private_key is_n = { BR_EC_secp256r1, bad, 32 };
	CHECK(ecdsa_sign_raw(ec_impl(), &br_sha256_vtable, h, &is_n, sig) == 0);
	br_ec_private_key longer = { BR_EC_secp256r1, bad, 33 };
	CHECK(ecdsa_sign_raw(ec_impl(), &br_sha256_vtable, h, &longer, sig) == 0);
}

TEST_MAIN("ec", TEST(test_x25519_rfc7748), TEST(test_x25519_against_bearssl), TEST(test_p256_against_bearssl),
	  TEST(test_ecdsa), TEST(test_ecdsa_p256_signatures))

#else

static void test_not_built(void)
{
	CHECK(ec_impl() == br_ec_get_default());
}

TEST_MAIN("ec", TEST(test_not_built))

#endif
