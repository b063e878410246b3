/* jws.c - keys, JWK, JWS and base64url for the ACME client, on BearSSL. ECDSA
 * signatures in a JWS are the raw r||s concatenation (RFC 7518 §3.4), not the ASN.1
 * form X.509 uses. */
#include "jws.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "der.h"
#include "ec_impl.h"
#include "ecdsa.h"
#include "rand.h"

#define RSA_PRIV_MAX BR_RSA_KBUF_PRIV_SIZE(4096)
#define RSA_PUB_MAX BR_RSA_KBUF_PUB_SIZE(4096)
#define KEY_BUF_MAX (RSA_PRIV_MAX + RSA_PUB_MAX)

static void wipe(void *p, size_t len)
{
	volatile unsigned char *v = p;
	while (len--)
		*v++ = 0;
}

/* ---- base64url ------------------------------------------------------------------ */

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64url_encode(const void *in, size_t len, char *out)
{
	const unsigned char *p = in;
	size_t o = 0, i = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[v >> 12 & 63];
		out[o++] = b64url_alphabet[v >> 6 & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = b64url_alphabet[v >> 18];
		out[o++] = b64url_alphabet[v >> 12 & 63];
		out[o++] = b64url_alphabet[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

void b64url_strbuf(struct strbuf *out, const void *in, size_t len)
{
	char chunk[4 * 64 + 1];
	const unsigned char *p = in;

	/* whole 3-byte groups per chunk so the pieces concatenate */
	while (len > 0) {
		size_t n = len > 192 ? 192 : len;
		size_t m = b64url_encode(p, n, chunk);
		strbuf_put(out, chunk, m);
		p += n;
		len -= n;
	}
}

static int b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

long b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	while (len > 0 && in[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -1; /* one character cannot hold a whole byte */
	for (size_t i = 0; i < len; i++) {
		int v = b64url_val((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1; /* leftover bits must be zero (RFC 4648 §3.5, canonical form) */
	return (long)o;
}

/* ---- keys ------------------------------------------------------------------------ */

static const char *const type_names[] = { "ec256", "ec384", "rsa2048", "rsa4096" };

int jws_key_type_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, type_names[i]) == 0)
			return i;
	return -1;
}

const char *jws_key_type_name(enum jws_key_type type)
{
	return (unsigned)type < 4 ? type_names[type] : "?";
}

void jws_key_free(struct jws_key *k)
{
	if (k->buf) {
		wipe(k->buf, k->buf_len);
		free(k->buf);
	}
	wipe(k, sizeof(*k));
}

static int key_alloc(struct jws_key *k)
{
	memset(k, 0, sizeof(*k));
	if (!(k->buf = calloc(1, KEY_BUF_MAX)))
		return -1;
	k->buf_len = KEY_BUF_MAX;
	return 0;
}

int jws_key_generate(struct jws_key *k, enum jws_key_type type)
{
	br_hmac_drbg_context rng;
	int rc = -1;

	if (key_alloc(k) < 0)
		return -1;
	k->type = type;
	if (rand_seed_hmac_drbg(&rng) < 0)
		goto done;
	if (type == JWS_KEY_EC256 || type == JWS_KEY_EC384) {
		const br_ec_impl *ec = ec_impl();
		int curve = type == JWS_KEY_EC256 ? BR_EC_secp256r1 : BR_EC_secp384r1;
		k->key_type = BR_KEYTYPE_EC;
		if (br_ec_keygen(&rng.vtable, ec, &k->ec, k->buf, curve) == 0 ||
		    br_ec_compute_pub(ec, &k->ec_pub, k->buf + BR_EC_KBUF_PRIV_MAX_SIZE, &k->ec) == 0)
			goto done;
	} else if (type == JWS_KEY_RSA2048 || type == JWS_KEY_RSA4096) {
		unsigned bits = type == JWS_KEY_RSA2048 ? 2048 : 4096;
		k->key_type = BR_KEYTYPE_RSA;
		if (!br_rsa_keygen_get_default()(&rng.vtable, &k->rsa, k->buf, &k->rsa_pub,
						  k->buf + RSA_PRIV_MAX, bits, 65537))
			goto done;
	} else {
		goto done;
	}
	rc = 0;
done:
	wipe(&rng, sizeof(rng));
	if (rc < 0)
		jws_key_free(k);
	return rc;
}

struct pem_key {
	br_skey_decoder_context dc; /* holds a copy of the key: wiped after use */
	bool found;
	/* RSA: n and e as the file has them (BearSSL's decoder drops them, and its
	 * compute_modulus cannot rebuild a 4096-bit modulus) */
	unsigned char n[RSA_PUB_MAX], e[4];
	size_t nlen, elen;
};

/* The modulus and public exponent of a PKCS#1 RSAPrivateKey (RFC 8017 §A.1.2), or
 * of one inside a PKCS#8 PrivateKeyInfo (RFC 5208 §5). */
static void rsa_public_from_der(struct pem_key *pk, const unsigned char *der, size_t len)
{
	struct der_r in = { der, len }, seq, v, n, e;
	unsigned tag;

	if (der_get(&in, &tag, &seq) < 0 || tag != DER_SEQUENCE || der_get(&seq, &tag, &v) < 0 ||
	    tag != DER_INTEGER)
		return;
	if (seq.len > 0 && seq.p[0] == DER_SEQUENCE) { /* PKCS#8: algorithm, then the key */
		struct der_r inner;
		if (der_get(&seq, &tag, &v) < 0 || der_get(&seq, &tag, &inner) < 0 ||
		    tag != DER_OCTET_STRING)
			return;
		rsa_public_from_der(pk, inner.p, inner.len);
		return;
	}
	if (der_get(&seq, &tag, &n) < 0 || tag != DER_INTEGER || der_get(&seq, &tag, &e) < 0 ||
	    tag != DER_INTEGER)
		return;
	while (n.len > 1 && n.p[0] == 0) {
		n.p++;
		n.len--;
	}
	while (e.len > 1 && e.p[0] == 0) {
		e.p++;
		e.len--;
	}
	if (n.len > sizeof(pk->n) || e.len > sizeof(pk->e))
		return;
	memcpy(pk->n, n.p, n.len);
	pk->nlen = n.len;
	memcpy(pk->e, e.p, e.len);
	pk->elen = e.len;
}

static int pem_key_object(void *ctx, const char *label, const unsigned char *der, size_t len)
{
	struct pem_key *pk = ctx;

	if (pk->found || (strcmp(label, "EC PRIVATE KEY") != 0 &&
			  strcmp(label, "RSA PRIVATE KEY") != 0 && strcmp(label, "PRIVATE KEY") != 0))
		return 0;
	pk->found = true;
	br_skey_decoder_push(&pk->dc, der, len);
	if (br_skey_decoder_key_type(&pk->dc) == BR_KEYTYPE_RSA)
		rsa_public_from_der(pk, der, len);
	return 0;
}

static unsigned char *put(unsigned char *dst, unsigned char **field, size_t *flen,
			  const unsigned char *src, size_t n)
{
	memcpy(dst, src, n);
	*field = dst;
	*flen = n;
	return dst + n;
}

/* The file's public half must be the private key's: a signature made with the
 * private key verifies with it. */
static bool rsa_pair_ok(const br_rsa_private_key *sk, const br_rsa_public_key *pk)
{
	static const unsigned char probe[32] = "edgeproxy rsa key pair check";
	unsigned char sig[512], back[32];
	if (pk->nlen != (sk->n_bitlen + 7) / 8 || pk->nlen > sizeof(sig))
		return false;
	return br_rsa_pkcs1_sign_get_default()(BR_HASH_OID_SHA256, probe, sizeof(probe), sk, sig) &&
	       br_rsa_pkcs1_vrfy_get_default()(sig, pk->nlen, BR_HASH_OID_SHA256, sizeof(back), pk,
					       back) &&
	       memcmp(back, probe, sizeof(back)) == 0;
}

int jws_key_from_pem(struct jws_key *k, const char *pem, size_t len, char *err, size_t errlen)
{
	struct pem_key *pk = calloc(1, sizeof(*pk));
	const char *why = "out of memory";
	int rc = -1;

	memset(k, 0, sizeof(*k));
	if (!pk || key_alloc(k) < 0)
		goto done;
	br_skey_decoder_init(&pk->dc);
	why = "bad PEM";
	if (der_pem_each(pem, len, pem_key_object, pk) < 0)
		goto done;
	why = "no private key";
	if (!pk->found)
		goto done;
	why = "cannot decode the private key";
	if (br_skey_decoder_last_error(&pk->dc) != 0)
		goto done;
	const br_ec_private_key *ec = br_skey_decoder_get_ec(&pk->dc);
	const br_rsa_private_key *rsa = br_skey_decoder_get_rsa(&pk->dc);
	if (ec) {
		why = "EC key is not on P-256 or P-384";
		if (ec->curve != BR_EC_secp256r1 && ec->curve != BR_EC_secp384r1)
			goto done;
		if (ec->xlen > BR_EC_KBUF_PRIV_MAX_SIZE)
			goto done;
		k->type = ec->curve == BR_EC_secp256r1 ? JWS_KEY_EC256 : JWS_KEY_EC384;
		k->key_type = BR_KEYTYPE_EC;
		memcpy(k->buf, ec->x, ec->xlen);
		k->ec.curve = ec->curve;
		k->ec.x = k->buf;
		k->ec.xlen = ec->xlen;
		why = "bad EC key";
		if (br_ec_compute_pub(ec_impl(), &k->ec_pub,
				      k->buf + BR_EC_KBUF_PRIV_MAX_SIZE, &k->ec) == 0)
			goto done;
	} else if (rsa) {
		why = "RSA key is not 2048 or 4096 bits";
		if (rsa->n_bitlen != 2048 && rsa->n_bitlen != 4096)
			goto done;
		k->type = rsa->n_bitlen == 2048 ? JWS_KEY_RSA2048 : JWS_KEY_RSA4096;
		k->key_type = BR_KEYTYPE_RSA;
		if (rsa->plen + rsa->qlen + rsa->dplen + rsa->dqlen + rsa->iqlen > RSA_PRIV_MAX)
			goto done;
		unsigned char *p = k->buf;
		k->rsa.n_bitlen = rsa->n_bitlen;
		p = put(p, &k->rsa.p, &k->rsa.plen, rsa->p, rsa->plen);
		p = put(p, &k->rsa.q, &k->rsa.qlen, rsa->q, rsa->qlen);
		p = put(p, &k->rsa.dp, &k->rsa.dplen, rsa->dp, rsa->dplen);
		p = put(p, &k->rsa.dq, &k->rsa.dqlen, rsa->dq, rsa->dqlen);
		p = put(p, &k->rsa.iq, &k->rsa.iqlen, rsa->iq, rsa->iqlen);
		why = "RSA key without its modulus";
		if (pk->nlen == 0 || pk->elen == 0)
			goto done;
		if ((size_t)(p - k->buf) + pk->nlen + pk->elen > k->buf_len)
			goto done;
		p = put(p, &k->rsa_pub.n, &k->rsa_pub.nlen, pk->n, pk->nlen);
		put(p, &k->rsa_pub.e, &k->rsa_pub.elen, pk->e, pk->elen);
		why = "RSA public and private parts do not match";
		if (!rsa_pair_ok(&k->rsa, &k->rsa_pub))
			goto done;
	} else {
		why = "unsupported key type";
		goto done;
	}
	rc = 0;
done:
	if (pk) {
		wipe(pk, sizeof(*pk));
		free(pk);
	}
	if (rc < 0) {
		if (err && errlen)
			snprintf(err, errlen, "%s", why);
		jws_key_free(k);
	}
	return rc;
}

char *jws_key_to_pem(const struct jws_key *k, size_t *len)
{
	unsigned char *der = NULL, *d = NULL;
	size_t dlen = 0, n;
	char *pem = NULL;

	if (k->key_type == BR_KEYTYPE_EC) {
		n = br_encode_ec_raw_der(NULL, &k->ec, &k->ec_pub);
		if (n == 0 || !(der = malloc(n)) || br_encode_ec_raw_der(der, &k->ec, &k->ec_pub) != n)
			goto done;
		pem = der_to_pem(der, n, BR_ENCODE_PEM_EC_RAW, len);
	} else {
		/* PKCS#1 needs the full private exponent, which BearSSL does not keep */
		uint32_t e = 0;
		for (size_t i = 0; i < k->rsa_pub.elen; i++)
			e = e << 8 | k->rsa_pub.e[i];
		br_rsa_compute_privexp privexp = br_rsa_compute_privexp_get_default();
		dlen = privexp(NULL, &k->rsa, e);
		if (dlen == 0 || !(d = malloc(dlen)) || privexp(d, &k->rsa, e) != dlen)
			goto done;
		n = br_encode_rsa_raw_der(NULL, &k->rsa, &k->rsa_pub, d, dlen);
		if (n == 0 || !(der = malloc(n)) ||
		    br_encode_rsa_raw_der(der, &k->rsa, &k->rsa_pub, d, dlen) != n)
			goto done;
		pem = der_to_pem(der, n, BR_ENCODE_PEM_RSA_RAW, len);
	}
done:
	if (d) {
		wipe(d, dlen);
		free(d);
	}
	if (der) {
		wipe(der, n);
		free(der);
	}
	return pem;
}

/* ---- JWK and JWS ------------------------------------------------------------------- */

const char *jws_alg(const struct jws_key *k)
{
	if (k->key_type == BR_KEYTYPE_RSA)
		return "RS256";
	return k->ec.curve == BR_EC_secp384r1 ? "ES384" : "ES256";
}

/* An unsigned big-endian integer without its leading zero bytes (RFC 7518 §6.3.1). */
static void b64url_uint(struct strbuf *out, const unsigned char *p, size_t n)
{
	while (n > 1 && p[0] == 0) {
		p++;
		n--;
	}
	b64url_strbuf(out, p, n);
}

void jws_jwk(const struct jws_key *k, struct strbuf *out)
{
	if (k->key_type == BR_KEYTYPE_RSA) {
		strbuf_str(out, "{\"e\":\"");
		b64url_uint(out, k->rsa_pub.e, k->rsa_pub.elen);
		strbuf_str(out, "\",\"kty\":\"RSA\",\"n\":\"");
		b64url_uint(out, k->rsa_pub.n, k->rsa_pub.nlen);
		strbuf_str(out, "\"}");
		return;
	}
	/* RFC 7518 §6.2.1: x and y are the full-size coordinates of the point
	 * 0x04 || X || Y, leading zeros kept. */
	size_t clen = (k->ec_pub.qlen - 1) / 2;
	strbuf_str(out, k->ec.curve == BR_EC_secp384r1 ? "{\"crv\":\"P-384\"" : "{\"crv\":\"P-256\"");
	strbuf_str(out, ",\"kty\":\"EC\",\"x\":\"");
	b64url_strbuf(out, k->ec_pub.q + 1, clen);
	strbuf_str(out, "\",\"y\":\"");
	b64url_strbuf(out, k->ec_pub.q + 1 + clen, clen);
	strbuf_str(out, "\"}");
}

int jws_thumbprint(const struct jws_key *k, char out[44])
{
	struct strbuf jwk = { 0 };
	br_sha256_context sha;
	unsigned char h[32];

	jws_jwk(k, &jwk);
	if (jwk.failed) {
		strbuf_free(&jwk);
		return -1;
	}
	br_sha256_init(&sha);
	br_sha256_update(&sha, jwk.p, jwk.len);
	br_sha256_out(&sha, h);
	strbuf_free(&jwk);
	b64url_encode(h, sizeof(h), out);
	return 0;
}

size_t jws_sign_raw(const struct jws_key *k, const void *data, size_t len, unsigned char *sig)
{
	unsigned char h[64];

	if (k->key_type == BR_KEYTYPE_RSA) {
		br_sha256_context sha;
		br_sha256_init(&sha);
		br_sha256_update(&sha, data, len);
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
	hc->update(&hctx.vtable, data, len);
	hc->out(&hctx.vtable, h);
	return ecdsa_sign_raw(ec_impl(), hc, h, &k->ec, sig);
}

/* Appends the three members of a flattened JWS for an already encoded protected
 * header: "protected", "payload", "signature" (RFC 7515 §7.2.2). The signing input is
 * ASCII(BASE64URL(protected) || '.' || BASE64URL(payload)). */
static int jws_finish(struct strbuf *out, const char *prot, size_t prot_len, const char *payload,
		      size_t payload_len, const struct jws_key *k, const unsigned char *mac_key,
		      size_t mac_key_len)
{
	struct strbuf in = { 0 };
	unsigned char sig[512];
	size_t siglen = 0;

	b64url_strbuf(&in, prot, prot_len);
	strbuf_put(&in, ".", 1);
	b64url_strbuf(&in, payload, payload_len);
	if (in.failed) {
		strbuf_free(&in);
		return -1;
	}
	if (k) {
		siglen = jws_sign_raw(k, in.p, in.len, sig);
	} else {
		br_hmac_key_context kc;
		br_hmac_context hc;
		br_hmac_key_init(&kc, &br_sha256_vtable, mac_key, mac_key_len);
		br_hmac_init(&hc, &kc, 0);
		br_hmac_update(&hc, in.p, in.len);
		siglen = br_hmac_out(&hc, sig);
		wipe(&kc, sizeof(kc));
		wipe(&hc, sizeof(hc));
	}
	if (siglen == 0) {
		strbuf_free(&in);
		return -1;
	}
	const char *dot = memchr(in.p, '.', in.len);
	size_t plen = (size_t)(dot - in.p);
	strbuf_str(out, "{\"protected\":\"");
	strbuf_put(out, in.p, plen);
	strbuf_str(out, "\",\"payload\":\"");
	strbuf_put(out, dot + 1, in.len - plen - 1);
	strbuf_str(out, "\",\"signature\":\"");
	b64url_strbuf(out, sig, siglen);
	strbuf_str(out, "\"}");
	strbuf_free(&in);
	return out->failed ? -1 : 0;
}

int jws_sign(const struct jws_key *k, const char *kid, const char *nonce, const char *url,
	     const char *payload, size_t payload_len, struct strbuf *out)
{
	struct strbuf prot = { 0 };
	int rc;

	strbuf_str(&prot, "{\"alg\":\"");
	strbuf_str(&prot, jws_alg(k));
	if (kid) {
		strbuf_str(&prot, "\",\"kid\":\"");
		strbuf_json(&prot, kid);
		strbuf_str(&prot, "\"");
	} else {
		strbuf_str(&prot, "\",\"jwk\":");
		jws_jwk(k, &prot);
	}
	strbuf_str(&prot, ",\"nonce\":\"");
	strbuf_json(&prot, nonce);
	strbuf_str(&prot, "\",\"url\":\"");
	strbuf_json(&prot, url);
	strbuf_str(&prot, "\"}");
	rc = prot.failed ? -1
			 : jws_finish(out, prot.p, prot.len, payload ? payload : "",
				      payload ? payload_len : 0, k, NULL, 0);
	strbuf_free(&prot);
	return rc;
}

int jws_eab(const struct jws_key *account, const char *eab_kid, const unsigned char *mac_key,
	    size_t mac_key_len, const char *url, struct strbuf *out)
{
	struct strbuf prot = { 0 }, jwk = { 0 };
	int rc = -1;

	strbuf_str(&prot, "{\"alg\":\"HS256\",\"kid\":\"");
	strbuf_json(&prot, eab_kid);
	strbuf_str(&prot, "\",\"url\":\"");
	strbuf_json(&prot, url);
	strbuf_str(&prot, "\"}");
	jws_jwk(account, &jwk);
	if (!prot.failed && !jwk.failed)
		rc = jws_finish(out, prot.p, prot.len, jwk.p, jwk.len, NULL, mac_key, mac_key_len);
	strbuf_free(&prot);
	strbuf_free(&jwk);
	return rc;
}
