/* test_tls_cert.c - certificate loading (EC/RSA, SEC1/PKCS#1/PKCS#8, chains), rejection
 * of bad input, SNI matching and picking, the self-signed default in state_dir, and
 * real BearSSL handshakes in memory against the loaded certificates.
 * Fixtures: tests/unit/fixtures (made by make-fixtures.sh; run from the repo root). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rand.h"
#include "test.h"
#include "tls_cert.h"

#define FIX "tests/unit/fixtures/"

/* `openssl x509 -noout -startdate/-enddate` of the fixtures, as seconds since the
 * epoch (date -u -d '...' +%s). notBefore is a UTCTime, notAfter a GeneralizedTime. */
#define EC_NOT_BEFORE 1795806174  /* Nov 27 19:02:54 2026 GMT */
#define EC_NOT_AFTER 4949406174   /* Nov  3 19:02:54 2126 GMT */
#define RSA_NOT_BEFORE 1795806175 /* Nov 27 19:02:55 2026 GMT */
#define RSA_NOT_AFTER 4949406175  /* Nov  3 19:02:55 2126 GMT */

static char errbuf[512];

static bool contains(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

static bool has_name(const struct tls_cert *c, const char *name)
{
	for (size_t i = 0; i < c->n_names; i++)
		if (strcmp(c->names[i], name) == 0)
			return true;
	return false;
}

/* Whole file into a malloc'd buffer (NUL-terminated); NULL on error. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL) {
		*len = fread(buf, 1, (size_t)n, f);
		buf[*len] = '\0';
	}
	fclose(f);
	return buf;
}

static int spew(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t n = fwrite(data, 1, len, f);
	return fclose(f) == 0 && n == len ? 0 : -1;
}

/* DER of the first PEM object in a file (test-side decoding, for comparisons). */
struct der_out {
	unsigned char *p;
	size_t cap, len;
	bool overflow;
};

static void der_out_append(void *ctx, const void *buf, size_t len)
{
	struct der_out *d = ctx;
	if (len > d->cap - d->len) {
		d->overflow = true;
		return;
	}
	memcpy(d->p + d->len, buf, len);
	d->len += len;
}

static size_t pem_to_der(const char *path, unsigned char *der, size_t cap)
{
	struct der_out d = { der, cap, 0, false };
	br_pem_decoder_context pc;
	size_t len = 0, off = 0;
	char *pem = slurp(path, &len);

	if (!pem)
		return 0;
	br_pem_decoder_init(&pc);
	while (off < len) {
		off += br_pem_decoder_push(&pc, pem + off, len - off);
		int ev = br_pem_decoder_event(&pc);
		if (ev == BR_PEM_BEGIN_OBJ)
			br_pem_decoder_setdest(&pc, der_out_append, &d);
		else if (ev == BR_PEM_END_OBJ)
			break;
		else if (ev == BR_PEM_ERROR)
			d.overflow = true;
	}
	free(pem);
	return d.overflow ? 0 : d.len;
}

static char tmpdir[64];

static void remove_tmpdir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

static const char *tmp_path(const char *name)
{
	static char p[4][256];
	static int i;
	if (tmpdir[0] == '\0') {
		strcpy(tmpdir, "/tmp/edgeproxy-test-XXXXXX");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			exit(2);
		}
		atexit(remove_tmpdir);
	}
	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", tmpdir, name);
	return p[i];
}

static bool have_openssl(void)
{
	return system("command -v openssl >/dev/null 2>&1") == 0;
}

/* ---- loading ------------------------------------------------------------------ */

static void test_load_ec_sec1(void)
{
	struct tls_cert c;
	int rc = tls_cert_load("web", FIX "ec.crt", FIX "ec.key", &c, errbuf, sizeof(errbuf));
	CHECKF(rc == 0, "%s", errbuf);
	if (rc != 0)
		return;
	CHECK(strcmp(c.name, "web") == 0);
	CHECK(c.key_type == BR_KEYTYPE_EC);
	CHECK(c.ec.curve == BR_EC_secp256r1 && c.ec.xlen == 32);
	CHECK(c.issuer_key_type == BR_KEYTYPE_RSA); /* signed by the RSA intermediate */
	CHECK(c.chain_len == 1);
	CHECKF(c.n_names == 2, "%zu names", c.n_names); /* CN and the IP SAN are not names */
	CHECK(has_name(&c, "a.example.com"));
	CHECK(has_name(&c, "*.wild.example"));
	CHECK(!has_name(&c, "ec.example.test"));
	CHECKF(c.not_before == EC_NOT_BEFORE, "%lld", (long long)c.not_before);
	CHECKF(c.not_after == EC_NOT_AFTER, "%lld", (long long)c.not_after);
	tls_cert_free(&c);
	CHECK(c.key_buf == NULL && c.names == NULL && c.chain == NULL && c.ec.x == NULL);
	tls_cert_free(&c); /* a freed struct is empty: freeing again is harmless */
}

static void test_load_ec_pkcs8_same_key(void)
{
	struct tls_cert a, b;
	int ra = tls_cert_load(NULL, FIX "ec.crt", FIX "ec.key", &a, errbuf, sizeof(errbuf));
	int rb = tls_cert_load(NULL, FIX "ec.crt", FIX "ec.pk8.key", &b, errbuf, sizeof(errbuf));
	CHECKF(ra == 0 && rb == 0, "%s", errbuf);
	if (ra == 0 && rb == 0) {
		CHECK(a.name == NULL);
		CHECK(b.key_type == BR_KEYTYPE_EC);
		CHECK(a.ec.xlen == b.ec.xlen && memcmp(a.ec.x, b.ec.x, a.ec.xlen) == 0);
	}
	if (ra == 0)
		tls_cert_free(&a);
	if (rb == 0)
		tls_cert_free(&b);
}

static void test_load_rsa(void)
{
	struct tls_cert a, b;
	int ra = tls_cert_load("r", FIX "rsa.crt", FIX "rsa.key", &a, errbuf, sizeof(errbuf));
	CHECKF(ra == 0, "PKCS#1: %s", errbuf);
	int rb = tls_cert_load("r", FIX "rsa.crt", FIX "rsa.pk8.key", &b, errbuf, sizeof(errbuf));
	CHECKF(rb == 0, "PKCS#8: %s", errbuf);
	if (ra == 0) {
		CHECK(a.key_type == BR_KEYTYPE_RSA);
		CHECK(a.rsa.n_bitlen == 2048);
		CHECK(a.issuer_key_type == BR_KEYTYPE_RSA);
		/* no subjectAltName: the CN, lowercased */
		CHECKF(a.n_names == 1 && strcmp(a.names[0], "rsa.example.com") == 0, "%zu %s",
		       a.n_names, a.n_names ? a.names[0] : "");
		CHECKF(a.not_before == RSA_NOT_BEFORE, "%lld", (long long)a.not_before);
		CHECKF(a.not_after == RSA_NOT_AFTER, "%lld", (long long)a.not_after);
	}
	if (ra == 0 && rb == 0) {
		CHECK(a.rsa.plen == b.rsa.plen && memcmp(a.rsa.p, b.rsa.p, a.rsa.plen) == 0);
		CHECK(a.rsa.iqlen == b.rsa.iqlen && memcmp(a.rsa.iq, b.rsa.iq, a.rsa.iqlen) == 0);
	}
	if (ra == 0)
		tls_cert_free(&a);
	if (rb == 0)
		tls_cert_free(&b);
}

static void test_load_chain(void)
{
	unsigned char leaf[2048], inter[2048];
	size_t leaf_len = pem_to_der(FIX "ec.crt", leaf, sizeof(leaf));
	size_t inter_len = pem_to_der(FIX "inter.crt", inter, sizeof(inter));
	struct tls_cert c;

	CHECK(leaf_len > 0 && inter_len > 0);
	int rc = tls_cert_load("chain", FIX "chain.pem", FIX "ec.key", &c, errbuf, sizeof(errbuf));
	CHECKF(rc == 0, "%s", errbuf);
	if (rc != 0)
		return;
	CHECK(c.chain_len == 2);
	/* leaf first, then the intermediate, byte for byte */
	CHECK(c.chain[0].data_len == leaf_len && memcmp(c.chain[0].data, leaf, leaf_len) == 0);
	CHECK(c.chain[1].data_len == inter_len && memcmp(c.chain[1].data, inter, inter_len) == 0);
	CHECK(c.issuer_key_type == BR_KEYTYPE_RSA);
	CHECK(has_name(&c, "a.example.com") && c.n_names == 2);
	tls_cert_free(&c);
}

/* A single file holding the key and the chain, given as both cert_file and key_file. */
static void test_load_combined_file(void)
{
	size_t kl = 0, cl = 0;
	char *k = slurp(FIX "ec.key", &kl), *c = slurp(FIX "chain.pem", &cl);
	struct tls_cert t;

	CHECK(k && c);
	if (!k || !c)
		goto out;
	char *both = malloc(kl + cl);
	memcpy(both, k, kl);
	memcpy(both + kl, c, cl);
	CHECK(spew(tmp_path("combined.pem"), both, kl + cl) == 0);
	free(both);
	int rc = tls_cert_load(NULL, tmp_path("combined.pem"), tmp_path("combined.pem"), &t, errbuf,
			       sizeof(errbuf));
	CHECKF(rc == 0, "%s", errbuf);
	if (rc == 0) {
		CHECK(t.chain_len == 2 && t.key_type == BR_KEYTYPE_EC);
		tls_cert_free(&t);
	}
out:
	free(k);
	free(c);
}

/* Fails with a message containing each of the fragments; out owns nothing after. */
static void expect_fail(const char *cert, const char *key, const char *frag1, const char *frag2)
{
	struct tls_cert c;

	memset(&c, 0x5a, sizeof(c));
	errbuf[0] = '\0';
	int rc = tls_cert_load("x", cert, key, &c, errbuf, sizeof(errbuf));
	CHECKF(rc == -1, "%s + %s loaded", cert, key);
	if (rc == 0) {
		tls_cert_free(&c);
		return;
	}
	CHECKF(contains(errbuf, frag1), "%s + %s: \"%s\" lacks \"%s\"", cert, key, errbuf, frag1);
	CHECKF(!frag2 || contains(errbuf, frag2), "%s + %s: \"%s\" lacks \"%s\"", cert, key, errbuf,
	       frag2);
	CHECK(c.name == NULL && c.chain == NULL && c.names == NULL && c.key_buf == NULL);
}

static void test_reject_mismatch(void)
{
	expect_fail(FIX "ec.crt", FIX "other-ec.key", "other-ec.key: key does not match certificate",
		    "ec.crt");
	expect_fail(FIX "rsa.crt", FIX "other-rsa.key", "other-rsa.key: key does not match", NULL);
	expect_fail(FIX "ec.crt", FIX "rsa.key", "an RSA key for an EC certificate", NULL);
	expect_fail(FIX "rsa.crt", FIX "ec.pk8.key", "an EC key for an RSA certificate", NULL);
	expect_fail(FIX "inter.crt", FIX "ec.key", "key does not match", NULL);

	/* intermediate first: the hint names the likely cause */
	size_t a = 0, b = 0;
	char *leaf = slurp(FIX "ec.crt", &a), *inter = slurp(FIX "inter.crt", &b);
	if (leaf && inter) {
		char *rev = malloc(a + b);
		memcpy(rev, inter, b);
		memcpy(rev + b, leaf, a);
		CHECK(spew(tmp_path("reversed.pem"), rev, a + b) == 0);
		free(rev);
		expect_fail(tmp_path("reversed.pem"), FIX "ec.key", "key does not match",
			    "the leaf must come first");
	}
	free(leaf);
	free(inter);
}

static void test_reject_garbage(void)
{
	expect_fail(FIX "garbage.pem", FIX "ec.key", "garbage.pem: bad PEM encoding in CERTIFICATE",
		    NULL);
	expect_fail(FIX "ec.crt", FIX "garbage.pem", "garbage.pem: bad PEM", NULL);
	expect_fail(FIX "ec.key", FIX "ec.key", "ec.key: no CERTIFICATE block", NULL);
	expect_fail(FIX "ec.crt", FIX "ec.crt", "ec.crt: no private key", NULL);
	expect_fail(FIX "ec.crt", FIX "encrypted.key", "encrypted private keys are not supported",
		    NULL);
	expect_fail(FIX "missing.crt", FIX "ec.key", "missing.crt: No such file", NULL);
	expect_fail(FIX "ec.crt", FIX "missing.key", "missing.key: No such file", NULL);
	expect_fail(FIX, FIX "ec.key", "not a regular file", NULL);
	expect_fail("/dev/null", FIX "ec.key", "/dev/null: not a regular file", NULL);
}

static void parse_fails(const char *cert, const char *key, const char *frag)
{
	struct tls_cert c;
	int rc = tls_cert_parse_pem(cert, strlen(cert), "c", key, strlen(key), "k", &c, errbuf,
				    sizeof(errbuf));
	CHECKF(rc == -1, "parsed: %.40s", cert);
	if (rc == 0)
		tls_cert_free(&c);
	else
		CHECKF(contains(errbuf, frag), "\"%s\" lacks \"%s\"", errbuf, frag);
}

static void test_parse_pem_edges(void)
{
	size_t cl = 0, kl = 0;
	char *cert = slurp(FIX "ec.crt", &cl), *key = slurp(FIX "ec.key", &kl);
	struct tls_cert c;

	CHECK(cert && key && cl > 100 && kl > 100);
	if (!cert || !key)
		goto out;
	/* no final newline after END, and not NUL-terminated (the length rules) */
	int rc = tls_cert_parse_pem(cert, cl - 1, "c", key, kl - 1, "k", &c, errbuf, sizeof(errbuf));
	CHECKF(rc == 0, "%s", errbuf);
	if (rc == 0)
		tls_cert_free(&c);

	/* CRLF line endings */
	char *crlf = malloc(cl * 2);
	size_t n = 0;
	for (size_t i = 0; i < cl; i++) {
		if (cert[i] == '\n')
			crlf[n++] = '\r';
		crlf[n++] = cert[i];
	}
	rc = tls_cert_parse_pem(crlf, n, "c", key, kl, "k", &c, errbuf, sizeof(errbuf));
	CHECKF(rc == 0, "CRLF: %s", errbuf);
	if (rc == 0)
		tls_cert_free(&c);
	free(crlf);

	/* truncated: the END line is missing */
	char *cut = strndup(cert, (size_t)(strstr(cert, "-----END") - cert));
	parse_fails(cut, key, "c: CERTIFICATE block has no END line");
	free(cut);
	/* one base64 quartet less: the DER is truncated */
	char *end = strstr(cert, "\n-----END");
	char *trunc = malloc(cl + 1);
	size_t head = (size_t)(end - cert) - 4;
	memcpy(trunc, cert, head);
	strcpy(trunc + head, end);
	parse_fails(trunc, key, "c: cannot decode the first certificate");
	free(trunc);
	parse_fails("", key, "c: no CERTIFICATE block");
	parse_fails("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", key,
		    "c: certificate 1 is empty");
	parse_fails("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n", key,
		    "c: cannot decode the first certificate");
	parse_fails(cert, "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
		    "k: cannot decode the private key");
	/* two keys is ambiguous */
	char *two = malloc(2 * kl + 1);
	memcpy(two, key, kl);
	memcpy(two + kl, key, kl + 1);
	parse_fails(cert, two, "k: more than one private key");
	free(two);
out:
	free(cert);
	free(key);
}

/* ---- matching ----------------------------------------------------------------- */

static void test_matches(void)
{
	static const struct {
		const char *sni;
		bool match;
	} cases[] = {
		{ "a.example.com", true },
		{ "A.Example.COM", true },
		{ "a.example.com.", true }, /* one trailing dot: the same name */
		{ "a.example.com..", false },
		{ "b.example.com", false },
		{ "example.com", false },
		{ "aa.example.com", false },
		{ "x.a.example.com", false },
		{ "x.wild.example", true },
		{ "X-1.WILD.example", true },
		{ "wild.example", false },     /* the wildcard needs a label */
		{ ".wild.example", false },    /* ... a non-empty one */
		{ "a.b.wild.example", false }, /* ... and only one */
		{ "*.wild.example", true },    /* literally the name; harmless */
		{ "x.wild.example.com", false },
		{ "xwild.example", false },
		{ "", false },
		{ ".", false },
		{ NULL, false },
	};
	struct tls_cert c;
	int rc = tls_cert_load(NULL, FIX "ec.crt", FIX "ec.key", &c, errbuf, sizeof(errbuf));
	CHECKF(rc == 0, "%s", errbuf);
	if (rc != 0)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECKF(tls_cert_matches(&c, cases[i].sni) == cases[i].match, "%s",
		       cases[i].sni ? cases[i].sni : "(null)");
	char long_sni[300];
	memset(long_sni, 'a', sizeof(long_sni) - 1);
	long_sni[sizeof(long_sni) - 1] = '\0';
	CHECK(!tls_cert_matches(&c, long_sni));
	tls_cert_free(&c);
}

static void test_pick(void)
{
	char n_exact[] = "www.example.com", n_wild[] = "*.example.com", n_other[] = "other.test";
	char *exact[] = { n_exact }, *wild[] = { n_wild }, *other[] = { n_other };
	struct tls_cert ec_exact = { .key_type = BR_KEYTYPE_EC, .names = exact, .n_names = 1 };
	struct tls_cert rsa_exact = { .key_type = BR_KEYTYPE_RSA, .names = exact, .n_names = 1 };
	struct tls_cert ec_wild = { .key_type = BR_KEYTYPE_EC, .names = wild, .n_names = 1 };
	struct tls_cert rsa_wild = { .key_type = BR_KEYTYPE_RSA, .names = wild, .n_names = 1 };
	struct tls_cert rsa_other = { .key_type = BR_KEYTYPE_RSA, .names = other, .n_names = 1 };
	const unsigned EC = 1u << BR_KEYTYPE_EC, RSA = 1u << BR_KEYTYPE_RSA;

	struct tls_cert *all[] = { &rsa_wild, &ec_wild, &rsa_exact, &ec_exact, &rsa_other };
	size_t n = sizeof(all) / sizeof(all[0]);
	CHECK(tls_cert_pick(all, n, "www.example.com", EC | RSA) == &ec_exact);
	CHECK(tls_cert_pick(all, n, "WWW.example.com", RSA) == &rsa_exact);
	CHECK(tls_cert_pick(all, n, "www.example.com", EC) == &ec_exact);
	CHECK(tls_cert_pick(all, n, "www.example.com", 0) == &ec_exact); /* 0: both */
	CHECK(tls_cert_pick(all, n, "api.example.com", EC | RSA) == &ec_wild);
	CHECK(tls_cert_pick(all, n, "api.example.com", RSA) == &rsa_wild);
	CHECK(tls_cert_pick(all, n, "other.test", EC | RSA) == &rsa_other);
	CHECK(tls_cert_pick(all, n, "example.com", EC | RSA) == NULL);
	CHECK(tls_cert_pick(all, n, NULL, EC | RSA) == NULL);
	CHECK(tls_cert_pick(all, 0, "www.example.com", EC | RSA) == NULL);

	/* exact beats wildcard even when the wildcard has the preferred key type */
	struct tls_cert *mix[] = { &ec_wild, &rsa_exact };
	CHECK(tls_cert_pick(mix, 2, "www.example.com", EC | RSA) == &rsa_exact);
	/* ... unless the client cannot use the exact one's key */
	CHECK(tls_cert_pick(mix, 2, "www.example.com", EC) == &ec_wild);
	/* nothing usable: still the best name match (the handshake will say why) */
	struct tls_cert *rsa_only[] = { &rsa_wild, NULL, &rsa_exact };
	CHECK(tls_cert_pick(rsa_only, 3, "www.example.com", EC) == &rsa_exact);
	/* ties: the earlier entry */
	struct tls_cert ec_exact2 = ec_exact;
	struct tls_cert *tie[] = { &ec_exact2, &ec_exact };
	CHECK(tls_cert_pick(tie, 2, "www.example.com", EC | RSA) == &ec_exact2);
}

/* ---- BearSSL handshake in memory ------------------------------------------------ */

/* Trust anchor from a certificate: its subject DN and public key. */
struct anchor {
	br_x509_decoder_context dc; /* the key points in here */
	unsigned char dn[1024];
	size_t dn_len;
	bool dn_overflow;
	br_x509_trust_anchor ta;
};

static void anchor_dn(void *ctx, const void *buf, size_t len)
{
	struct anchor *a = ctx;
	if (len > sizeof(a->dn) - a->dn_len) {
		a->dn_overflow = true;
		return;
	}
	memcpy(a->dn + a->dn_len, buf, len);
	a->dn_len += len;
}

static int anchor_init(struct anchor *a, const br_x509_certificate *cert)
{
	memset(a, 0, sizeof(*a));
	br_x509_decoder_init(&a->dc, anchor_dn, a);
	br_x509_decoder_push(&a->dc, cert->data, cert->data_len);
	br_x509_pkey *pk = br_x509_decoder_get_pkey(&a->dc);
	if (!pk || a->dn_overflow)
		return -1;
	a->ta.dn.data = a->dn;
	a->ta.dn.len = a->dn_len;
	a->ta.flags = br_x509_decoder_isCA(&a->dc) ? BR_X509_TA_CA : 0;
	a->ta.pkey = *pk;
	return 0;
}

/* Moves one record (or part) from one engine's output to the other's input. */
static bool pump(br_ssl_engine_context *from, br_ssl_engine_context *to)
{
	size_t slen, rlen;
	unsigned char *s = br_ssl_engine_sendrec_buf(from, &slen);
	unsigned char *r = s ? br_ssl_engine_recvrec_buf(to, &rlen) : NULL;

	if (!s || !r)
		return false;
	size_t n = slen < rlen ? slen : rlen;
	memcpy(r, s, n);
	br_ssl_engine_sendrec_ack(from, n);
	br_ssl_engine_recvrec_ack(to, n);
	return true;
}

struct tls_pair {
	br_ssl_server_context sc;
	br_ssl_client_context cc;
	br_x509_minimal_context xc;
	unsigned char sbuf[BR_SSL_BUFSIZE_BIDI], cbuf[BR_SSL_BUFSIZE_BIDI];
};

/* Server with cert (the engine the proxy will run), client trusting trust's
 * certificate and asking for sni; handshake, then "ping" from client to server.
 * Returns 0, or -1 with a reason in errbuf. On success *suite is the cipher suite. */
static int handshake(const struct tls_cert *cert, const br_x509_certificate *trust,
		     const char *sni, unsigned *suite)
{
	struct tls_pair *p = calloc(1, sizeof(*p));
	struct anchor *a = calloc(1, sizeof(*a));
	br_ssl_engine_context *s = &p->sc.eng, *c = &p->cc.eng;
	int rc = -1;

	if (!p || !a || anchor_init(a, trust) < 0) {
		snprintf(errbuf, sizeof(errbuf), "trust anchor");
		goto out;
	}
	if (cert->key_type == BR_KEYTYPE_EC)
		br_ssl_server_init_full_ec(&p->sc, cert->chain, cert->chain_len,
					   (unsigned)cert->issuer_key_type, &cert->ec);
	else
		br_ssl_server_init_full_rsa(&p->sc, cert->chain, cert->chain_len, &cert->rsa);
	br_ssl_engine_set_buffer(s, p->sbuf, sizeof(p->sbuf), 1);
	br_ssl_client_init_full(&p->cc, &p->xc, &a->ta, 1);
	br_ssl_engine_set_buffer(c, p->cbuf, sizeof(p->cbuf), 1);
	/* The init_full lists are longer than the 16 suites this build's BearSSL holds
	 * (vendor/versions.sh): both sides get edgeproxy's modern set instead. */
	static const uint16_t suites[] = {
		BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		BR_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		BR_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	};
	br_ssl_engine_set_suites(s, suites, sizeof(suites) / sizeof(suites[0]));
	br_ssl_engine_set_suites(c, suites, sizeof(suites) / sizeof(suites[0]));
	/* BR_USE_URANDOM=0 and BR_RDRAND=0: without injected entropy reset fails. */
	if (rand_seed_ssl_engine(s) < 0 || rand_seed_ssl_engine(c) < 0 ||
	    !br_ssl_server_reset(&p->sc) || !br_ssl_client_reset(&p->cc, sni, 0)) {
		snprintf(errbuf, sizeof(errbuf), "reset: server %d client %d",
			 br_ssl_engine_last_error(s), br_ssl_engine_last_error(c));
		goto out;
	}
	for (int i = 0; i < 200; i++) {
		bool moved = pump(c, s);
		moved = pump(s, c) || moved;
		if ((br_ssl_engine_current_state(s) & BR_SSL_CLOSED) ||
		    (br_ssl_engine_current_state(c) & BR_SSL_CLOSED))
			break;
		if (!moved)
			break;
	}
	if (!(br_ssl_engine_current_state(c) & BR_SSL_SENDAPP)) {
		snprintf(errbuf, sizeof(errbuf), "handshake: server error %d, client error %d",
			 br_ssl_engine_last_error(s), br_ssl_engine_last_error(c));
		goto out;
	}
	size_t len;
	unsigned char *out = br_ssl_engine_sendapp_buf(c, &len);
	if (!out || len < 4)
		goto out;
	memcpy(out, "ping", 4);
	br_ssl_engine_sendapp_ack(c, 4);
	br_ssl_engine_flush(c, 0);
	while (pump(c, s))
		;
	unsigned char *in = br_ssl_engine_recvapp_buf(s, &len);
	if (!in || len != 4 || memcmp(in, "ping", 4) != 0) {
		snprintf(errbuf, sizeof(errbuf), "application data did not arrive");
		goto out;
	}
	br_ssl_engine_recvapp_ack(s, len);
	*suite = s->session.cipher_suite;
	rc = 0;
out:
	free(p);
	free(a);
	return rc;
}

static void test_handshake_fixtures(void)
{
	unsigned char root[2048], rsa_der[2048];
	br_x509_certificate root_cert = { root, pem_to_der(FIX "root.crt", root, sizeof(root)) };
	br_x509_certificate rsa_cert = { rsa_der, pem_to_der(FIX "rsa.crt", rsa_der, sizeof(rsa_der)) };
	struct tls_cert ec, rsa;
	unsigned suite = 0;

	CHECK(root_cert.data_len > 0 && rsa_cert.data_len > 0);
	/* EC leaf signed by an RSA intermediate, chain sent, client trusts only the root */
	int r = tls_cert_load(NULL, FIX "chain.pem", FIX "ec.pk8.key", &ec, errbuf, sizeof(errbuf));
	CHECKF(r == 0, "%s", errbuf);
	if (r == 0) {
		CHECKF(handshake(&ec, &root_cert, "a.example.com", &suite) == 0, "%s", errbuf);
		CHECKF(handshake(&ec, &root_cert, "x.wild.example", &suite) == 0, "%s", errbuf);
		/* the client's own name check fails for a name the certificate lacks */
		CHECK(handshake(&ec, &root_cert, "b.example.com", &suite) == -1);
		tls_cert_free(&ec);
	}
	/* without the intermediate the client cannot reach the root */
	r = tls_cert_load(NULL, FIX "ec.crt", FIX "ec.key", &ec, errbuf, sizeof(errbuf));
	if (r == 0) {
		CHECK(handshake(&ec, &root_cert, "a.example.com", &suite) == -1);
		tls_cert_free(&ec);
	}
	/* RSA, self-signed, matched by CN */
	r = tls_cert_load(NULL, FIX "rsa.crt", FIX "rsa.key", &rsa, errbuf, sizeof(errbuf));
	CHECKF(r == 0, "%s", errbuf);
	if (r == 0) {
		CHECKF(handshake(&rsa, &rsa_cert, "rsa.example.com", &suite) == 0, "%s", errbuf);
		CHECKF(suite == BR_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 ||
		       suite == BR_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 ||
		       suite == BR_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "suite %04x", suite);
		tls_cert_free(&rsa);
	}
}

/* ---- the self-signed default ----------------------------------------------------- */

static mode_t mode_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (st.st_mode & 07777) : (mode_t)-1;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void test_self_signed(void)
{
	char dir[256], crt[300], key[300], cmd[2048];
	struct tls_cert a, b;
	time_t now = time(NULL);
	size_t crt1_len = 0, key1_len = 0, crt2_len = 0, key2_len = 0;
	unsigned suite = 0;

	snprintf(dir, sizeof(dir), "%s", tmp_path("state/nested")); /* parents created too */
	snprintf(crt, sizeof(crt), "%s/default.crt", dir);
	snprintf(key, sizeof(key), "%s/default.key", dir);
	int rc = tls_cert_self_signed(dir, &a, errbuf, sizeof(errbuf));
	CHECKF(rc == 0, "%s", errbuf);
	if (rc != 0)
		return;
	CHECKF(mode_of(dir) == 0700, "dir mode %o", (unsigned)mode_of(dir));
	CHECKF(mode_of(tmp_path("state")) == 0700, "parent mode %o",
	       (unsigned)mode_of(tmp_path("state")));
	CHECKF(mode_of(key) == 0600, "key mode %o", (unsigned)mode_of(key));
	CHECK(count_entries(dir) == 2); /* no temp files left behind */
	CHECK(strcmp(a.name, "default") == 0);
	CHECK(a.key_type == BR_KEYTYPE_EC && a.ec.curve == BR_EC_secp256r1);
	CHECK(a.issuer_key_type == BR_KEYTYPE_EC);
	CHECK(a.chain_len == 1);
	CHECK(a.n_names == 1 && strcmp(a.names[0], "localhost") == 0);
	CHECKF(a.not_before >= now - 86400 - 5 && a.not_before <= now - 86400 + 5, "%lld vs %lld",
	       (long long)a.not_before, (long long)now);
	CHECKF(a.not_after >= now + 3651LL * 86400 - 5 && a.not_after <= now + 3653LL * 86400 + 5,
	       "not_after %lld, now %lld", (long long)a.not_after, (long long)now);
	CHECK(tls_cert_matches(&a, "LOCALHOST"));

	char *crt1 = slurp(crt, &crt1_len), *key1 = slurp(key, &key1_len);
	CHECK(crt1 && key1 && contains(crt1, "-----BEGIN CERTIFICATE-----\n") &&
	      contains(key1, "-----BEGIN EC PRIVATE KEY-----\n"));

	/* second start: the same files, not a new pair */
	rc = tls_cert_self_signed(dir, &b, errbuf, sizeof(errbuf));
	CHECKF(rc == 0, "%s", errbuf);
	char *crt2 = slurp(crt, &crt2_len), *key2 = slurp(key, &key2_len);
	CHECK(crt1 && crt2 && crt1_len == crt2_len && memcmp(crt1, crt2, crt1_len) == 0);
	CHECK(key1 && key2 && key1_len == key2_len && memcmp(key1, key2, key1_len) == 0);
	if (rc == 0) {
		CHECK(a.chain[0].data_len == b.chain[0].data_len &&
		      memcmp(a.chain[0].data, b.chain[0].data, a.chain[0].data_len) == 0);
		tls_cert_free(&b);
	}

	/* OpenSSL reads it, finds the SAN, the signature verifies, the key is the cert's */
	if (have_openssl()) {
		snprintf(cmd, sizeof(cmd),
			 "openssl x509 -in '%s' -noout -text 2>&1 | grep -q 'DNS:localhost' && "
			 "openssl x509 -in '%s' -noout -text | grep -q 'Signature Algorithm: ecdsa-with-SHA256' && "
			 "openssl verify -check_ss_sig -CAfile '%s' '%s' >/dev/null 2>&1",
			 crt, crt, crt, crt);
		CHECKF(system(cmd) == 0, "%s", cmd);
		snprintf(cmd, sizeof(cmd),
			 "test \"$(openssl x509 -in '%s' -noout -pubkey)\" = \"$(openssl pkey -in '%s' -pubout)\"",
			 crt, key);
		CHECKF(system(cmd) == 0, "%s", cmd);
	} else {
		fprintf(stderr, "test_self_signed: no openssl, skipping its checks\n");
	}

	/* a client that trusts it completes a handshake with a server using it */
	CHECKF(handshake(&a, &a.chain[0], "localhost", &suite) == 0, "%s", errbuf);
	CHECKF((suite >> 8) == 0xc0 || (suite >> 8) == 0xcc, "suite %04x", suite);

	/* a different state_dir gets a different key */
	rc = tls_cert_self_signed(tmp_path("state2"), &b, errbuf, sizeof(errbuf));
	CHECKF(rc == 0, "%s", errbuf);
	if (rc == 0) {
		CHECK(memcmp(a.ec.x, b.ec.x, a.ec.xlen) != 0);
		tls_cert_free(&b);
	}
	tls_cert_free(&a);
	free(crt1);
	free(key1);
	free(crt2);
	free(key2);
}

static int copy_file(const char *from, const char *to)
{
	size_t len = 0;
	char *data = slurp(from, &len);
	int rc = data ? spew(to, data, len) : -1;
	free(data);
	return rc;
}

static void test_self_signed_replaced_or_kept(void)
{
	char dir[256], crt[300], key[300];
	struct tls_cert c;
	size_t len = 0;

	snprintf(dir, sizeof(dir), "%s", tmp_path("state3"));
	snprintf(crt, sizeof(crt), "%s/default.crt", dir);
	snprintf(key, sizeof(key), "%s/default.key", dir);
	CHECK(mkdir(dir, 0700) == 0);

	/* expired: replaced by a new certificate */
	CHECK(copy_file(FIX "expired.crt", crt) == 0 && copy_file(FIX "expired.key", key) == 0);
	int rc = tls_cert_self_signed(dir, &c, errbuf, sizeof(errbuf));
	CHECKF(rc == 0, "%s", errbuf);
	if (rc == 0) {
		CHECK(c.not_after > time(NULL));
		tls_cert_free(&c);
	}
	char *now_crt = slurp(crt, &len);
	char *old_crt = slurp(FIX "expired.crt", &len);
	CHECK(now_crt && old_crt && strcmp(now_crt, old_crt) != 0);
	free(now_crt);
	free(old_crt);

	/* a key without its certificate (a crash between the two writes): a new pair */
	CHECK(unlink(crt) == 0);
	rc = tls_cert_self_signed(dir, &c, errbuf, sizeof(errbuf));
	CHECKF(rc == 0, "%s", errbuf);
	if (rc == 0)
		tls_cert_free(&c);

	/* files that do not load are reported, not overwritten */
	CHECK(copy_file(FIX "garbage.pem", crt) == 0);
	rc = tls_cert_self_signed(dir, &c, errbuf, sizeof(errbuf));
	CHECK(rc == -1);
	CHECKF(contains(errbuf, "default.crt: bad PEM") && contains(errbuf, "delete both"), "%s",
	       errbuf);
	now_crt = slurp(crt, &len);
	CHECK(now_crt && contains(now_crt, "not base64"));
	free(now_crt);

	/* state_dir that cannot be created */
	rc = tls_cert_self_signed(FIX "garbage.pem/sub", &c, errbuf, sizeof(errbuf));
	CHECKF(rc == -1 && contains(errbuf, "mkdir"), "%s", errbuf);
}

static void test_rand(void)
{
	unsigned char a[64], b[64], zero[64] = { 0 };
	static unsigned char big[100000];
	br_hmac_drbg_context d1, d2;

	CHECK(rand_bytes(a, sizeof(a)) == 0 && rand_bytes(b, sizeof(b)) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0 && memcmp(a, zero, sizeof(a)) != 0);
	CHECK(rand_bytes(big, sizeof(big)) == 0);
	CHECK(memcmp(big + sizeof(big) - 64, zero, 64) != 0); /* the tail was filled too */
	CHECK(rand_bytes(a, 0) == 0);
	CHECK(rand_seed_hmac_drbg(&d1) == 0 && rand_seed_hmac_drbg(&d2) == 0);
	br_hmac_drbg_generate(&d1, a, sizeof(a));
	br_hmac_drbg_generate(&d2, b, sizeof(b));
	CHECK(memcmp(a, b, sizeof(a)) != 0); /* two seeds, two streams */
}

TEST_MAIN("tls_cert", TEST(test_load_ec_sec1), TEST(test_load_ec_pkcs8_same_key),
	  TEST(test_load_rsa), TEST(test_load_chain), TEST(test_load_combined_file),
	  TEST(test_reject_mismatch), TEST(test_reject_garbage), TEST(test_parse_pem_edges),
	  TEST(test_matches), TEST(test_pick), TEST(test_handshake_fixtures),
	  TEST(test_self_signed), TEST(test_self_signed_replaced_or_kept), TEST(test_rand))
