/* csr.c - PKCS#10 requests and the TLS-ALPN-01 certificate, written with der.h and
 * signed through BearSSL. Both carry the same SubjectPublicKeyInfo and
 * subjectAltName encodings, which is why they live together. */
#include "csr.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "der.h"
#include "ec_impl.h"
#include "ecdsa.h"
#include "rand.h"

static const unsigned char oid_common_name[] = { 0x55, 0x04, 0x03 };                 /* 2.5.4.3 */
static const unsigned char oid_subject_alt_name[] = { 0x55, 0x1d, 0x11 };            /* 2.5.29.17 */
static const unsigned char oid_ec_public_key[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01 };
static const unsigned char oid_p256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const unsigned char oid_p384[] = { 0x2b, 0x81, 0x04, 0x00, 0x22 };           /* 1.3.132.0.34 */
static const unsigned char oid_rsa_encryption[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
static const unsigned char oid_ecdsa_sha256[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 };
static const unsigned char oid_ecdsa_sha384[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03 };
static const unsigned char oid_sha256_rsa[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b };
/* PKCS#9 extensionRequest, 1.2.840.113549.1.9.14 (RFC 2985 §5.4.2) */
static const unsigned char oid_extension_request[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e };
/* id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31 (RFC 8737 §6.1) */
static const unsigned char oid_acme_identifier[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f };

/* SubjectPublicKeyInfo: RFC 5480 §2 for EC, RFC 3279 §2.3.1 for RSA. */
static void w_spki(struct der_w *w, const struct jws_key *k)
{
	size_t spki = der_open(w, DER_SEQUENCE), alg = der_open(w, DER_SEQUENCE), bits;

	if (k->key_type == BR_KEYTYPE_EC) {
		der_tlv(w, DER_OID, oid_ec_public_key, sizeof(oid_ec_public_key));
		if (k->ec.curve == BR_EC_secp384r1)
			der_tlv(w, DER_OID, oid_p384, sizeof(oid_p384));
		else
			der_tlv(w, DER_OID, oid_p256, sizeof(oid_p256));
		der_close(w, alg);
		bits = der_open(w, DER_BIT_STRING);
		der_raw(w, "", 1);
		der_raw(w, k->ec_pub.q, k->ec_pub.qlen);
	} else {
		der_tlv(w, DER_OID, oid_rsa_encryption, sizeof(oid_rsa_encryption));
		der_tlv(w, DER_NULL, NULL, 0);
		der_close(w, alg);
		bits = der_open(w, DER_BIT_STRING);
		der_raw(w, "", 1);
		size_t seq = der_open(w, DER_SEQUENCE); /* RSAPublicKey */
		der_uint(w, k->rsa_pub.n, k->rsa_pub.nlen);
		der_uint(w, k->rsa_pub.e, k->rsa_pub.elen);
		der_close(w, seq);
	}
	der_close(w, bits);
	der_close(w, spki);
}

/* AlgorithmIdentifier of the signature this key makes (RFC 5758 §3.2: no parameters
 * for ECDSA; RFC 4055 §5: NULL parameters for RSA). */
static void w_sig_alg(struct der_w *w, const struct jws_key *k)
{
	size_t s = der_open(w, DER_SEQUENCE);
	if (k->key_type == BR_KEYTYPE_RSA) {
		der_tlv(w, DER_OID, oid_sha256_rsa, sizeof(oid_sha256_rsa));
		der_tlv(w, DER_NULL, NULL, 0);
	} else if (k->ec.curve == BR_EC_secp384r1) {
		der_tlv(w, DER_OID, oid_ecdsa_sha384, sizeof(oid_ecdsa_sha384));
	} else {
		der_tlv(w, DER_OID, oid_ecdsa_sha256, sizeof(oid_ecdsa_sha256));
	}
	der_close(w, s);
}

/* Name: one CN in UTF8String, or the empty sequence when cn is NULL. */
static void w_name(struct der_w *w, const char *cn)
{
	size_t name = der_open(w, DER_SEQUENCE);
	if (cn) {
		size_t rdn = der_open(w, DER_SET), atv = der_open(w, DER_SEQUENCE);
		der_tlv(w, DER_OID, oid_common_name, sizeof(oid_common_name));
		der_tlv(w, DER_UTF8STRING, cn, strlen(cn));
		der_close(w, atv);
		der_close(w, rdn);
	}
	der_close(w, name);
}

/* Extension { extnID, critical?, extnValue OCTET STRING } around a subjectAltName
 * of dNSNames (RFC 5280 §4.2.1.6). */
static void w_san_ext(struct der_w *w, const char *const *names, size_t n)
{
	size_t ext = der_open(w, DER_SEQUENCE);
	der_tlv(w, DER_OID, oid_subject_alt_name, sizeof(oid_subject_alt_name));
	size_t val = der_open(w, DER_OCTET_STRING), gns = der_open(w, DER_SEQUENCE);
	for (size_t i = 0; i < n; i++)
		der_tlv(w, DER_DNSNAME, names[i], strlen(names[i]));
	der_close(w, gns);
	der_close(w, val);
	der_close(w, ext);
}

/* The X.509 signature value over tbs (ECDSA in its ASN.1 form here, unlike JWS). */
static size_t x509_sign(const struct jws_key *k, const unsigned char *tbs, size_t len,
			unsigned char *sig)
{
	unsigned char h[64];

	if (k->key_type == BR_KEYTYPE_RSA) {
		br_sha256_context sha;
		br_sha256_init(&sha);
		br_sha256_update(&sha, tbs, len);
		br_sha256_out(&sha, h);
		if (k->rsa_pub.nlen > 512 ||
		    !br_rsa_pkcs1_sign_get_default()(BR_HASH_OID_SHA256, h, 32, &k->rsa, sig))
			return 0;
		return k->rsa_pub.nlen;
	}
	const br_hash_class *hc = k->ec.curve == BR_EC_secp384r1 ? &br_sha384_vtable
								 : &br_sha256_vtable;
	br_hash_compat_context hctx;
	hc->init(&hctx.vtable);
	hc->update(&hctx.vtable, tbs, len);
	hc->out(&hctx.vtable, h);
	return ecdsa_sign_asn1(ec_impl(), hc, h, &k->ec, sig);
}

/* Wraps a to-be-signed structure: SEQUENCE { tbs, signatureAlgorithm, BIT STRING }. */
static unsigned char *sign_wrap(const struct jws_key *k, const struct der_w *tbs, size_t *len)
{
	unsigned char sig[512];
	size_t siglen, cap = tbs->len + 600;
	unsigned char *out;
	struct der_w w;

	if (tbs->overflow || (siglen = x509_sign(k, tbs->buf, tbs->len, sig)) == 0)
		return NULL;
	if (!(out = malloc(cap)))
		return NULL;
	der_w_init(&w, out, cap);
	size_t s = der_open(&w, DER_SEQUENCE);
	der_raw(&w, tbs->buf, tbs->len);
	w_sig_alg(&w, k);
	size_t b = der_open(&w, DER_BIT_STRING);
	der_raw(&w, "", 1);
	der_raw(&w, sig, siglen);
	der_close(&w, b);
	der_close(&w, s);
	if (w.overflow) {
		free(out);
		return NULL;
	}
	*len = w.len;
	return out;
}

unsigned char *csr_build(const struct jws_key *key, const char *const *names, size_t n,
			 size_t *len)
{
	size_t cap = 2048;
	unsigned char *buf, *out;
	struct der_w w;

	if (n == 0 || n > CSR_MAX_NAMES)
		return NULL;
	for (size_t i = 0; i < n; i++)
		cap += strlen(names[i]) + 8;
	if (!(buf = malloc(cap)))
		return NULL;
	der_w_init(&w, buf, cap);
	/* CertificationRequestInfo (RFC 2986 §4.1) */
	size_t info = der_open(&w, DER_SEQUENCE);
	der_small_uint(&w, 0); /* version v1 */
	w_name(&w, strlen(names[0]) <= 64 ? names[0] : NULL);
	w_spki(&w, key);
	size_t attrs = der_open(&w, DER_CTX0); /* [0] IMPLICIT SET OF Attribute */
	size_t attr = der_open(&w, DER_SEQUENCE);
	der_tlv(&w, DER_OID, oid_extension_request, sizeof(oid_extension_request));
	size_t vals = der_open(&w, DER_SET), exts = der_open(&w, DER_SEQUENCE);
	w_san_ext(&w, names, n);
	der_close(&w, exts);
	der_close(&w, vals);
	der_close(&w, attr);
	der_close(&w, attrs);
	der_close(&w, info);
	out = sign_wrap(key, &w, len);
	free(buf);
	return out;
}

unsigned char *csr_alpn_cert(const struct jws_key *key, const char *name,
			     const unsigned char digest[32], time_t now, size_t *len)
{
	static const unsigned char v3[] = { 0x02, 0x01, 0x02 }; /* INTEGER 2 */
	static const unsigned char true_[] = { 0xff };
	unsigned char serial[16], buf[2048], *out;
	struct der_w w;

	if (strlen(name) > 253 || rand_bytes(serial, sizeof(serial)) < 0)
		return NULL;
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40); /* positive, minimal */
	der_w_init(&w, buf, sizeof(buf));
	/* TBSCertificate (RFC 5280 §4.1) */
	size_t tbs = der_open(&w, DER_SEQUENCE), s = der_open(&w, DER_CTX0);
	der_raw(&w, v3, sizeof(v3));
	der_close(&w, s);
	der_tlv(&w, DER_INTEGER, serial, sizeof(serial));
	w_sig_alg(&w, key);
	w_name(&w, name);
	s = der_open(&w, DER_SEQUENCE);
	der_time(&w, (long long)now - 86400);
	der_time(&w, (long long)now + 7 * 86400);
	der_close(&w, s);
	w_name(&w, name);
	w_spki(&w, key);
	size_t ctx3 = der_open(&w, DER_CTX3), exts = der_open(&w, DER_SEQUENCE);
	w_san_ext(&w, &name, 1);
	/* RFC 8737 §3: the critical acmeIdentifier extension, whose extnValue is the DER
	 * of Authorization ::= OCTET STRING (SIZE (32)) */
	size_t ext = der_open(&w, DER_SEQUENCE);
	der_tlv(&w, DER_OID, oid_acme_identifier, sizeof(oid_acme_identifier));
	der_tlv(&w, DER_BOOLEAN, true_, 1);
	size_t val = der_open(&w, DER_OCTET_STRING);
	der_tlv(&w, DER_OCTET_STRING, digest, 32);
	der_close(&w, val);
	der_close(&w, ext);
	der_close(&w, exts);
	der_close(&w, ctx3);
	der_close(&w, tbs);
	out = sign_wrap(key, &w, len);
	return out;
}
