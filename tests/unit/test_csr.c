/* test_csr.c - PKCS#10 requests and the TLS-ALPN-01 certificate, judged by openssl:
 * `openssl req -verify` accepts every key type's signature, the subject and SANs are
 * the ones asked for; the challenge certificate carries the critical acmeIdentifier
 * with the digest, verifies as self-signed, and loads as a server certificate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csr.h"
#include "der.h"
#include "test.h"
#include "tls_cert.h"

static char tmpdir[] = "/tmp/test_csr.XXXXXX";

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

/* Runs cmd in tmpdir; returns its exit status and its output (stdout+stderr). */
static int run(const char *cmd, char *out, size_t cap)
{
	char full[1024];
	snprintf(full, sizeof(full), "cd %s && %s 2>&1", tmpdir, cmd);
	FILE *p = popen(full, "r");
	if (!p)
		return -1;
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	return pclose(p);
}

static void check_csr(enum jws_key_type type, const char *sig_alg, const char *pub_text)
{
	static const char *const names[] = { "test.example", "www.test.example", "*.wild.example" };
	struct jws_key k;
	size_t len = 0;
	char out[16384];

	CHECK(jws_key_generate(&k, type) == 0);
	unsigned char *der = csr_build(&k, names, 3, &len);
	CHECK(der != NULL && len > 100);
	if (!der) {
		jws_key_free(&k);
		return;
	}
	write_file("x.csr", der, len);
	int rc = run("openssl req -inform DER -in x.csr -verify -noout -text", out, sizeof(out));
	CHECKF(rc == 0, "openssl req failed: %s", out);
	CHECKF(strstr(out, "verify OK") || strstr(out, "Certificate request self-signature verify OK"),
	       "%s", out);
	CHECKF(strstr(out, "Subject: CN = test.example") != NULL, "%s", out);
	CHECKF(strstr(out, "DNS:test.example, DNS:www.test.example, DNS:*.wild.example") != NULL,
	       "%s", out);
	CHECKF(strstr(out, sig_alg) != NULL, "%s", out);
	CHECKF(strstr(out, pub_text) != NULL, "%s", out);
	CHECK(strstr(out, "Version: 1 (0x0)") != NULL);
	/* the DER is canonical: openssl re-encodes it to the same bytes */
	rc = run("openssl req -inform DER -in x.csr -outform DER -out y.csr && cmp x.csr y.csr", out,
		 sizeof(out));
	CHECKF(rc == 0, "%s", out);
	free(der);
	jws_key_free(&k);
}

static void test_csr_ec256(void)
{
	check_csr(JWS_KEY_EC256, "ecdsa-with-SHA256", "NIST CURVE: P-256");
}

static void test_csr_ec384(void)
{
	check_csr(JWS_KEY_EC384, "ecdsa-with-SHA384", "NIST CURVE: P-384");
}

static void test_csr_rsa2048(void)
{
	check_csr(JWS_KEY_RSA2048, "sha256WithRSAEncryption", "Public-Key: (2048 bit)");
}

/* A first name longer than a CN may be (64) leaves the subject empty; the SAN has
 * it; a hundred names fit, a hundred and one do not. */
static void test_csr_long_and_many_names(void)
{
	struct jws_key k;
	char out[65536];
	size_t len = 0;
	static char longname[80];
	memset(longname, 'a', 70);
	memcpy(longname + 70, ".example", 9);
	const char *names[CSR_MAX_NAMES + 1];
	static char many[CSR_MAX_NAMES + 1][32];
	names[0] = longname;
	for (int i = 1; i <= CSR_MAX_NAMES; i++) {
		snprintf(many[i], sizeof(many[i]), "host%d.example", i);
		names[i] = many[i];
	}

	CHECK(jws_key_generate(&k, JWS_KEY_EC256) == 0);
	unsigned char *der = csr_build(&k, names, CSR_MAX_NAMES, &len);
	CHECK(der != NULL);
	if (der) {
		write_file("long.csr", der, len);
		int rc = run("openssl req -inform DER -in long.csr -verify -noout -text", out, sizeof(out));
		CHECKF(rc == 0, "%s", out);
		CHECK(strstr(out, "CN = aaaa") == NULL);
		CHECK(strstr(out, longname) != NULL);
		CHECK(strstr(out, "DNS:host99.example") != NULL);
		free(der);
	}
	CHECK(csr_build(&k, names, CSR_MAX_NAMES + 1, &len) == NULL);
	CHECK(csr_build(&k, names, 0, &len) == NULL);
	jws_key_free(&k);
}

static void test_alpn_cert(void)
{
	struct jws_key k;
	unsigned char digest[32];
	char out[16384];
	size_t len = 0;

	for (int i = 0; i < 32; i++)
		digest[i] = (unsigned char)(0xa0 + i);
	CHECK(jws_key_generate(&k, JWS_KEY_EC256) == 0);
	time_t now = time(NULL);
	unsigned char *der = csr_alpn_cert(&k, "alpn.example", digest, now, &len);
	CHECK(der != NULL);
	if (!der) {
		jws_key_free(&k);
		return;
	}
	size_t pem_len = 0;
	char *pem = der_to_pem(der, len, "CERTIFICATE", &pem_len);
	write_file("alpn.crt", pem, pem_len);
	int rc = run("openssl x509 -in alpn.crt -noout -text", out, sizeof(out));
	CHECKF(rc == 0, "%s", out);
	CHECKF(strstr(out, "1.3.6.1.5.5.7.1.31: critical") != NULL, "%s", out);
	CHECKF(strstr(out, "DNS:alpn.example") != NULL, "%s", out);
	/* the extension's value is the DER OCTET STRING (04 20) of the digest */
	rc = run("openssl asn1parse -in alpn.crt | grep -A2 '1.3.6.1.5.5.7.1.31' | tail -1", out, sizeof(out));
	CHECKF(strstr(out, "[HEX DUMP]:0420A0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF") != NULL,
	       "%s", out);
	/* self-signed signature checks out (the extension is unknown to openssl) */
	rc = run("openssl verify -ignore_critical -check_ss_sig -CAfile alpn.crt alpn.crt", out, sizeof(out));
	CHECKF(rc == 0, "%s", out);

	/* it loads as a server certificate with its key, for the name */
	size_t key_len = 0;
	char *key_pem = jws_key_to_pem(&k, &key_len);
	struct tls_cert c;
	char err[256];
	CHECK(tls_cert_parse_pem(pem, pem_len, "alpn", key_pem, key_len, "key", &c, err, sizeof(err)) == 0);
	CHECK(tls_cert_matches(&c, "alpn.example"));
	CHECK(c.not_before <= now && c.not_after > now + 6 * 86400);
	tls_cert_free(&c);
	free(key_pem);
	free(pem);
	free(der);
	jws_key_free(&k);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	static const struct test_case cases[] = {
		TEST(test_csr_ec256), TEST(test_csr_ec384), TEST(test_csr_rsa2048),
		TEST(test_csr_long_and_many_names), TEST(test_alpn_cert),
	};
	int rc = test_run_all("csr", cases, (int)(sizeof(cases) / sizeof(cases[0])));
	char rm[300];
	snprintf(rm, sizeof(rm), "rm -rf %s", tmpdir);
	if (system(rm) != 0)
		return 1;
	return rc;
}
