/* test_jws.c - keys, JWK, JWS and base64url for ACME: RFC 4648 and RFC 7638 known
 * answers, ES256/ES384 signatures verified with BearSSL and with openssl (raw r||s
 * turned back into ASN.1), RS256 compared byte for byte with openssl's signature
 * over the same input, the protected header's exact shape, HS256 EAB, and PEM
 * storage that openssl reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "der.h"
#include "jws.h"
#include "json.h"
#include "test.h"

static char tmpdir[] = "/tmp/test_jws.XXXXXX";

static void write_file(const char *name, const void *data, size_t len)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return;
	fwrite(data, 1, len, f);
	fclose(f);
}

static size_t read_file(const char *name, unsigned char *buf, size_t cap)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static int sh(const char *fmt, const char *arg)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cd %s && ", tmpdir);
	size_t n = strlen(cmd);
	snprintf(cmd + n, sizeof(cmd) - n, fmt, arg);
	return system(cmd);
}

static void test_b64url_vectors(void)
{
	/* RFC 4648 §10 with the URL alphabet and no padding */
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const out[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
	char buf[32];
	unsigned char dec[32];
	for (size_t i = 0; i < 7; i++) {
		size_t n = b64url_encode(in[i], strlen(in[i]), buf);
		CHECKF(n == strlen(out[i]) && strcmp(buf, out[i]) == 0, "%s -> %s", in[i], buf);
		CHECK(n == B64URL_LEN(strlen(in[i])));
		long m = b64url_decode(out[i], strlen(out[i]), dec, sizeof(dec));
		CHECK(m == (long)strlen(in[i]) && memcmp(dec, in[i], (size_t)m) == 0);
	}
	/* the two characters that differ from standard base64 */
	static const unsigned char bin[] = { 0xfb, 0xff, 0xbf };
	CHECK(b64url_encode(bin, 3, buf) == 4 && strcmp(buf, "-_-_") == 0);
	/* padding is tolerated; anything else outside the alphabet is not */
	CHECK(b64url_decode("Zg==", 4, dec, sizeof(dec)) == 1 && dec[0] == 'f');
	CHECK(b64url_decode("Zm9v+", 5, dec, sizeof(dec)) == -1);
	CHECK(b64url_decode("Zm/v", 4, dec, sizeof(dec)) == -1);
	CHECK(b64url_decode("Zm9 v", 5, dec, sizeof(dec)) == -1);
	CHECK(b64url_decode("Z", 1, dec, sizeof(dec)) == -1);
	CHECK(b64url_decode("Zh", 2, dec, sizeof(dec)) == -1); /* non-zero leftover bits */
	CHECK(b64url_decode("Zm9vYmFy", 8, dec, 5) == -1);     /* does not fit */
	CHECK(b64url_decode("Zm9vYmFy", 8, dec, 6) == 6);
	/* strbuf variant across its internal chunking */
	unsigned char big[1000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 7 + 3);
	struct strbuf sb = { 0 };
	b64url_strbuf(&sb, big, sizeof(big));
	char *direct = malloc(B64URL_LEN(sizeof(big)) + 1);
	b64url_encode(big, sizeof(big), direct);
	CHECK(sb.len == B64URL_LEN(sizeof(big)) && strcmp(sb.p, direct) == 0);
	unsigned char back[1000];
	CHECK(b64url_decode(sb.p, sb.len, back, sizeof(back)) == 1000 && memcmp(back, big, 1000) == 0);
	free(direct);
	strbuf_free(&sb);
}

/* RFC 7638 §3.1: the thumbprint of the RFC 7517 Appendix A.1 RSA key. */
static void test_thumbprint_rfc7638(void)
{
	static const char n_b64[] =
		"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
		"BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
		"FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
		"vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
	unsigned char n[256], e[] = { 1, 0, 1 };
	struct jws_key k;
	char tp[44];

	memset(&k, 0, sizeof(k));
	CHECK(b64url_decode(n_b64, strlen(n_b64), n, sizeof(n)) == 256);
	k.key_type = BR_KEYTYPE_RSA;
	k.rsa_pub.n = n;
	k.rsa_pub.nlen = sizeof(n);
	k.rsa_pub.e = e;
	k.rsa_pub.elen = sizeof(e);
	CHECK(jws_thumbprint(&k, tp) == 0);
	CHECKF(strcmp(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs") == 0, "%s", tp);
	struct strbuf jwk = { 0 };
	jws_jwk(&k, &jwk);
	CHECK(strncmp(jwk.p, "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"0vx7", 32) == 0);
	strbuf_free(&jwk);
	CHECK(strcmp(jws_alg(&k), "RS256") == 0);
}

/* Pulls a member of the flattened JWS and base64url-decodes it. */
static long jws_part(const char *jws, const char *member, unsigned char *out, size_t cap,
		     char *raw, size_t rawcap)
{
	struct json_doc d;
	char err[64];
	long n = -1;
	if (json_parse(&d, jws, strlen(jws), err, sizeof(err)) < 0)
		return -1;
	long rl = json_string(&d, json_get(&d, 0, member), raw, rawcap);
	if (rl >= 0)
		n = b64url_decode(raw, (size_t)rl, out, cap);
	json_free(&d);
	return n;
}

/* The signing input of a flattened JWS: protected "." payload, as sent. */
static void signing_input(const char *jws, char *out, size_t cap)
{
	unsigned char dummy[4096];
	char p[2048], q[2048];
	jws_part(jws, "protected", dummy, sizeof(dummy), p, sizeof(p));
	jws_part(jws, "payload", dummy, sizeof(dummy), q, sizeof(q));
	snprintf(out, cap, "%s.%s", p, q);
}

/* DER ECDSA-Sig-Value from raw r||s, for openssl. */
static size_t raw_to_asn1(const unsigned char *sig, size_t len, unsigned char *out)
{
	size_t half = len / 2, o = 2;
	for (int part = 0; part < 2; part++) {
		const unsigned char *v = sig + part * half;
		size_t n = half;
		while (n > 1 && v[0] == 0) {
			v++;
			n--;
		}
		bool pad = v[0] & 0x80;
		out[o++] = 0x02;
		out[o++] = (unsigned char)(n + pad);
		if (pad)
			out[o++] = 0;
		memcpy(out + o, v, n);
		o += n;
	}
	out[0] = 0x30;
	out[1] = (unsigned char)(o - 2); /* < 128 for P-256 and P-384 */
	return o;
}

static void check_ec_jws(enum jws_key_type type, const char *alg, size_t siglen, const char *dgst)
{
	struct jws_key k;
	CHECK(jws_key_generate(&k, type) == 0);
	CHECK(strcmp(jws_alg(&k), alg) == 0);

	struct strbuf out = { 0 };
	static const char payload[] = "{\"termsOfServiceAgreed\":true}";
	CHECK(jws_sign(&k, NULL, "nonce-1", "https://ca.test/new-acct", payload,
		       strlen(payload), &out) == 0);

	/* the protected header has exactly alg, jwk, nonce, url, in that order */
	unsigned char hdr[1024], sig[200], pl[200];
	char raw[2048];
	long hl = jws_part(out.p, "protected", hdr, sizeof(hdr) - 1, raw, sizeof(raw));
	CHECK(hl > 0);
	hdr[hl > 0 ? hl : 0] = '\0';
	struct strbuf want = { 0 };
	strbuf_printf(&want, "{\"alg\":\"%s\",\"jwk\":", alg);
	jws_jwk(&k, &want);
	strbuf_str(&want, ",\"nonce\":\"nonce-1\",\"url\":\"https://ca.test/new-acct\"}");
	CHECKF(strcmp((char *)hdr, want.p) == 0, "%s", hdr);
	strbuf_free(&want);
	long pll = jws_part(out.p, "payload", pl, sizeof(pl), raw, sizeof(raw));
	CHECK(pll == (long)strlen(payload) && memcmp(pl, payload, (size_t)pll) == 0);

	/* a raw r||s signature of the curve's size, valid under the public key */
	long sl = jws_part(out.p, "signature", sig, sizeof(sig), raw, sizeof(raw));
	CHECKF(sl == (long)siglen, "signature length %ld", sl);
	char input[4096];
	signing_input(out.p, input, sizeof(input));
	const br_hash_class *hc = siglen == 64 ? &br_sha256_vtable : &br_sha384_vtable;
	unsigned char h[48];
	br_hash_compat_context hctx;
	hc->init(&hctx.vtable);
	hc->update(&hctx.vtable, input, strlen(input));
	hc->out(&hctx.vtable, h);
	CHECK(br_ecdsa_vrfy_raw_get_default()(br_ec_get_default(), h, siglen == 64 ? 32 : 48,
					       &k.ec_pub, sig, (size_t)sl) == 1);
	/* a flipped bit fails */
	sig[5] ^= 1;
	CHECK(br_ecdsa_vrfy_raw_get_default()(br_ec_get_default(), h, siglen == 64 ? 32 : 48,
					       &k.ec_pub, sig, (size_t)sl) == 0);
	sig[5] ^= 1;

	/* openssl agrees: the stored key, the signature in ASN.1 form, the input */
	size_t pem_len = 0;
	char *pem = jws_key_to_pem(&k, &pem_len);
	CHECK(pem && strstr(pem, "BEGIN EC PRIVATE KEY"));
	write_file("ec.key", pem, pem_len);
	unsigned char der[128];
	size_t dl = raw_to_asn1(sig, (size_t)sl, der);
	write_file("ec.sig", der, dl);
	write_file("ec.in", input, strlen(input));
	CHECK(sh("openssl ec -in ec.key -pubout -out ec.pub 2>/dev/null", "") == 0);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "openssl dgst -%s -verify ec.pub -signature ec.sig ec.in >/dev/null", dgst);
	CHECK(sh("%s", cmd) == 0);

	/* with a kid instead of a jwk, and POST-as-GET's empty payload */
	strbuf_free(&out);
	CHECK(jws_sign(&k, "https://ca.test/acct/1", "n2", "https://ca.test/order/9", NULL, 0, &out) == 0);
	hl = jws_part(out.p, "protected", hdr, sizeof(hdr) - 1, raw, sizeof(raw));
	hdr[hl > 0 ? hl : 0] = '\0';
	char expect[256];
	snprintf(expect, sizeof(expect),
		 "{\"alg\":\"%s\",\"kid\":\"https://ca.test/acct/1\",\"nonce\":\"n2\",\"url\":\"https://ca.test/order/9\"}",
		 alg);
	CHECKF(strcmp((char *)hdr, expect) == 0, "%s", hdr);
	CHECK(strstr(out.p, "\"payload\":\"\"") != NULL);
	signing_input(out.p, input, sizeof(input));
	sl = jws_part(out.p, "signature", sig, sizeof(sig), raw, sizeof(raw));
	hc->init(&hctx.vtable);
	hc->update(&hctx.vtable, input, strlen(input));
	hc->out(&hctx.vtable, h);
	CHECK(br_ecdsa_vrfy_raw_get_default()(br_ec_get_default(), h, siglen == 64 ? 32 : 48,
					       &k.ec_pub, sig, (size_t)sl) == 1);

	/* the PEM loads back into the same key */
	struct jws_key back;
	char err[128];
	CHECK(jws_key_from_pem(&back, pem, pem_len, err, sizeof(err)) == 0);
	char t1[44], t2[44];
	CHECK(jws_thumbprint(&k, t1) == 0 && jws_thumbprint(&back, t2) == 0);
	CHECK(strcmp(t1, t2) == 0 && strlen(t1) == 43);
	CHECK(back.type == type);
	jws_key_free(&back);
	free(pem);
	strbuf_free(&out);
	jws_key_free(&k);
}

static void test_es256(void)
{
	check_ec_jws(JWS_KEY_EC256, "ES256", 64, "sha256");
}

static void test_es384(void)
{
	check_ec_jws(JWS_KEY_EC384, "ES384", 96, "sha384");
}

/* The JWK of an EC key is its public point, coordinates at full size. */
static void test_ec_jwk(void)
{
	struct jws_key k;
	CHECK(jws_key_generate(&k, JWS_KEY_EC256) == 0);
	struct strbuf jwk = { 0 };
	jws_jwk(&k, &jwk);
	struct json_doc d;
	char err[64], x[64], y[64];
	CHECK(json_parse(&d, jwk.p, jwk.len, err, sizeof(err)) == 0);
	CHECK(json_count(&d, 0) == 4);
	CHECK(json_str_eq(&d, json_member_key(&d, 0, 0), "crv"));
	CHECK(json_str_eq(&d, json_get(&d, 0, "crv"), "P-256"));
	CHECK(json_str_eq(&d, json_get(&d, 0, "kty"), "EC"));
	CHECK(json_string(&d, json_get(&d, 0, "x"), x, sizeof(x)) == 43);
	CHECK(json_string(&d, json_get(&d, 0, "y"), y, sizeof(y)) == 43);
	unsigned char q[65];
	q[0] = 4;
	CHECK(b64url_decode(x, 43, q + 1, 32) == 32 && b64url_decode(y, 43, q + 33, 32) == 32);
	CHECK(k.ec_pub.qlen == 65 && memcmp(q, k.ec_pub.q, 65) == 0);
	json_free(&d);
	/* the thumbprint is the SHA-256 of exactly these bytes */
	unsigned char h[32];
	char want[44], tp[44];
	br_sha256_context sha;
	br_sha256_init(&sha);
	br_sha256_update(&sha, jwk.p, jwk.len);
	br_sha256_out(&sha, h);
	b64url_encode(h, 32, want);
	CHECK(jws_thumbprint(&k, tp) == 0 && strcmp(tp, want) == 0);
	strbuf_free(&jwk);
	jws_key_free(&k);
}

/* RS256 is deterministic (PKCS#1 v1.5): openssl must produce the same bytes. */
static void test_rs256_matches_openssl(void)
{
	struct jws_key k;
	CHECK(jws_key_generate(&k, JWS_KEY_RSA2048) == 0);
	CHECK(strcmp(jws_alg(&k), "RS256") == 0);
	size_t pem_len = 0;
	char *pem = jws_key_to_pem(&k, &pem_len);
	CHECK(pem && strstr(pem, "BEGIN RSA PRIVATE KEY"));
	write_file("rsa.key", pem, pem_len);
	CHECK(sh("openssl rsa -in rsa.key -check -noout >/dev/null 2>&1", "") == 0);

	struct strbuf out = { 0 };
	CHECK(jws_sign(&k, "https://ca.test/acct/7", "abc", "https://ca.test/finalize/1",
		       "{\"csr\":\"MII\"}", 13, &out) == 0);
	char input[4096], raw[2048];
	signing_input(out.p, input, sizeof(input));
	write_file("rsa.in", input, strlen(input));
	CHECK(sh("openssl dgst -sha256 -sign rsa.key -out rsa.sig rsa.in", "") == 0);
	unsigned char ours[512], theirs[512];
	long ol = jws_part(out.p, "signature", ours, sizeof(ours), raw, sizeof(raw));
	size_t tl = read_file("rsa.sig", theirs, sizeof(theirs));
	CHECK(ol == 256 && tl == 256 && memcmp(ours, theirs, 256) == 0);

	/* the JWK carries the modulus and exponent openssl sees */
	struct strbuf jwk = { 0 };
	jws_jwk(&k, &jwk);
	CHECK(strncmp(jwk.p, "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"", 29) == 0);
	strbuf_free(&jwk);

	/* PEM round trip (public exponent and modulus recomputed) */
	struct jws_key back;
	char err[128], t1[44], t2[44];
	CHECK(jws_key_from_pem(&back, pem, pem_len, err, sizeof(err)) == 0);
	CHECK(back.type == JWS_KEY_RSA2048 && back.rsa_pub.elen == 3);
	CHECK(jws_thumbprint(&k, t1) == 0 && jws_thumbprint(&back, t2) == 0 && strcmp(t1, t2) == 0);
	jws_key_free(&back);
	/* a key openssl made (primes not 3 mod 4 in general) loads too */
	CHECK(sh("openssl genrsa -out ossl.key 2048 2>/dev/null", "") == 0);
	char okey[4096];
	size_t olen = read_file("ossl.key", (unsigned char *)okey, sizeof(okey));
	CHECK(jws_key_from_pem(&back, okey, olen, err, sizeof(err)) == 0);
	CHECK(back.rsa_pub.elen == 3 && back.rsa_pub.e[0] == 1 && back.rsa_pub.nlen == 256);
	jws_key_free(&back);
	free(pem);
	strbuf_free(&out);
	jws_key_free(&k);
}

/* RFC 8555 §7.3.4: the binding is an HS256 JWS over the account JWK. */
static void test_eab(void)
{
	struct jws_key k;
	CHECK(jws_key_generate(&k, JWS_KEY_EC256) == 0);
	static const char mac_b64[] = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
	unsigned char mac[64];
	long ml = b64url_decode(mac_b64, strlen(mac_b64), mac, sizeof(mac));
	CHECK(ml == 48);
	struct strbuf out = { 0 };
	CHECK(jws_eab(&k, "kid-1", mac, (size_t)ml, "https://ca.test/new-acct", &out) == 0);
	unsigned char hdr[256], pl[512], sig[64];
	char raw[2048];
	long hl = jws_part(out.p, "protected", hdr, sizeof(hdr) - 1, raw, sizeof(raw));
	hdr[hl > 0 ? hl : 0] = '\0';
	CHECKF(strcmp((char *)hdr, "{\"alg\":\"HS256\",\"kid\":\"kid-1\",\"url\":\"https://ca.test/new-acct\"}") == 0,
	       "%s", hdr);
	long pll = jws_part(out.p, "payload", pl, sizeof(pl), raw, sizeof(raw));
	struct strbuf jwk = { 0 };
	jws_jwk(&k, &jwk);
	CHECK(pll == (long)jwk.len && memcmp(pl, jwk.p, jwk.len) == 0);
	strbuf_free(&jwk);
	long sl = jws_part(out.p, "signature", sig, sizeof(sig), raw, sizeof(raw));
	CHECK(sl == 32);
	/* recompute the MAC independently */
	char input[2048];
	signing_input(out.p, input, sizeof(input));
	br_hmac_key_context kc;
	br_hmac_context hc;
	unsigned char want[32];
	br_hmac_key_init(&kc, &br_sha256_vtable, mac, (size_t)ml);
	br_hmac_init(&hc, &kc, 0);
	br_hmac_update(&hc, input, strlen(input));
	br_hmac_out(&hc, want);
	CHECK(memcmp(sig, want, 32) == 0);
	strbuf_free(&out);
	jws_key_free(&k);
}

/* 4096-bit keys: BearSSL cannot recompute such a modulus from p and q, so loading
 * takes n and e from the file; the public half must match the private one. */
static void test_rsa4096_round_trip(void)
{
	struct jws_key k, back;
	char err[128], t1[44], t2[44];
	size_t len = 0;

	CHECK(jws_key_generate(&k, JWS_KEY_RSA4096) == 0);
	char *pem = jws_key_to_pem(&k, &len);
	CHECK(pem != NULL);
	if (!pem) {
		jws_key_free(&k);
		return;
	}
	write_file("r4096.key", pem, len);
	CHECK(sh("openssl rsa -in r4096.key -check -noout >/dev/null 2>&1", "") == 0);
	CHECK(jws_key_from_pem(&back, pem, len, err, sizeof(err)) == 0);
	CHECK(back.type == JWS_KEY_RSA4096 && back.rsa_pub.nlen == 512);
	CHECK(jws_thumbprint(&k, t1) == 0 && jws_thumbprint(&back, t2) == 0 && strcmp(t1, t2) == 0);
	unsigned char sig[512];
	CHECK(jws_sign_raw(&back, "x", 1, sig) == 512);
	jws_key_free(&back);
	/* a file whose modulus is not the private key's is refused */
	struct jws_key other;
	CHECK(jws_key_generate(&other, JWS_KEY_RSA2048) == 0);
	struct jws_key small;
	CHECK(jws_key_generate(&small, JWS_KEY_RSA2048) == 0);
	unsigned char d[256], der[2048];
	size_t dlen = br_rsa_compute_privexp_get_default()(d, &small.rsa, 65537);
	size_t dl = br_encode_rsa_raw_der(der, &small.rsa, &other.rsa_pub, d, dlen);
	CHECK(dlen > 0 && dl > 0);
	size_t mlen = 0;
	char *mixed = der_to_pem(der, dl, "RSA PRIVATE KEY", &mlen);
	CHECK(jws_key_from_pem(&back, mixed, mlen, err, sizeof(err)) == -1);
	CHECKF(strstr(err, "do not match") != NULL, "%s", err);
	free(mixed);
	jws_key_free(&other);
	jws_key_free(&small);
	free(pem);
	jws_key_free(&k);
}

static void test_key_types_and_bad_pem(void)
{
	CHECK(jws_key_type_parse("ec256") == JWS_KEY_EC256);
	CHECK(jws_key_type_parse("ec384") == JWS_KEY_EC384);
	CHECK(jws_key_type_parse("rsa2048") == JWS_KEY_RSA2048);
	CHECK(jws_key_type_parse("rsa4096") == JWS_KEY_RSA4096);
	CHECK(jws_key_type_parse("ec521") == -1);
	CHECK(jws_key_type_parse("") == -1);
	CHECK(strcmp(jws_key_type_name(JWS_KEY_RSA4096), "rsa4096") == 0);

	struct jws_key k;
	char err[128];
	CHECK(jws_key_from_pem(&k, "garbage", 7, err, sizeof(err)) == -1);
	CHECKF(strcmp(err, "no private key") == 0, "%s", err);
	static const char bad_b64[] = "-----BEGIN EC PRIVATE KEY-----\n!!!!\n-----END EC PRIVATE KEY-----\n";
	CHECK(jws_key_from_pem(&k, bad_b64, strlen(bad_b64), err, sizeof(err)) == -1);
	static const char junk[] = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
	CHECK(jws_key_from_pem(&k, junk, strlen(junk), err, sizeof(err)) == -1);
	CHECKF(strcmp(err, "cannot decode the private key") == 0, "%s", err);
	/* curves and sizes outside the four types are refused */
	CHECK(sh("openssl ecparam -name secp521r1 -genkey -noout -out p521.key 2>/dev/null", "") == 0);
	char pem[4096];
	size_t n = read_file("p521.key", (unsigned char *)pem, sizeof(pem));
	CHECK(jws_key_from_pem(&k, pem, n, err, sizeof(err)) == -1);
	CHECKF(strstr(err, "P-256 or P-384") != NULL, "%s", err);
	CHECK(sh("openssl genrsa -out r1024.key 1024 2>/dev/null", "") == 0);
	n = read_file("r1024.key", (unsigned char *)pem, sizeof(pem));
	CHECK(jws_key_from_pem(&k, pem, n, err, sizeof(err)) == -1);
	CHECKF(strstr(err, "2048 or 4096") != NULL, "%s", err);
	/* PKCS#8 from openssl */
	CHECK(sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.key 2>/dev/null", "") == 0);
	n = read_file("p384.key", (unsigned char *)pem, sizeof(pem));
	CHECK(strstr(pem, "BEGIN PRIVATE KEY") != NULL);
	CHECK(jws_key_from_pem(&k, pem, n, err, sizeof(err)) == 0);
	CHECK(k.type == JWS_KEY_EC384 && strcmp(jws_alg(&k), "ES384") == 0);
	jws_key_free(&k);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	static const struct test_case cases[] = {
		TEST(test_b64url_vectors), TEST(test_thumbprint_rfc7638), TEST(test_es256),
		TEST(test_es384), TEST(test_ec_jwk), TEST(test_rs256_matches_openssl),
		TEST(test_eab), TEST(test_rsa4096_round_trip), TEST(test_key_types_and_bad_pem),
	};
	int rc = test_run_all("jws", cases, (int)(sizeof(cases) / sizeof(cases[0])));
	char rm[300];
	snprintf(rm, sizeof(rm), "rm -rf %s", tmpdir);
	if (system(rm) != 0)
		return 1;
	return rc;
}
