/* fuzz_pem.c - libFuzzer harness for certificate and key parsing (tls_cert_parse_pem):
 * PEM framing, BearSSL's X.509 and key decoders, the DER walk for validity and names,
 * and the key/certificate match. The first input byte picks what the rest is:
 *   0: PEM text; up to the first NUL the certificate file, after it the key file
 *      (no NUL: the same text is both, like a combined PEM file)
 *   1: the DER of a certificate, wrapped as PEM, with the key of tests/unit/fixtures/ec.crt
 *   2: the DER of a private key, wrapped as PEM "PRIVATE KEY", with ec.crt
 * Modes 1 and 2 let mutations reach the DER parsers without breaking the base64.
 * Checked: no crash; on success, a usable result whose names each match themselves;
 * on failure, a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls_cert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* tests/unit/fixtures/ec.crt and ec.pk8.key */
static const char fixture_crt[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIICnjCCAYagAwIBAgIUcqSSJGfJKS8l3IMe6XFjxutWlTMwDQYJKoZIhvcNAQEL\n"
	"BQAwJjEkMCIGA1UEAwwbZWRnZXByb3h5IHRlc3QgaW50ZXJtZWRpYXRlMCAXDTI2\n"
	"MTEyNzE5MDI1NFoYDzIxMjYxMTAzMTkwMjU0WjAaMRgwFgYDVQQDDA9lYy5leGFt\n"
	"cGxlLnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQlrqXlAfHvjIGMap0k\n"
	"Z7Lhp0QOR9gg8TsrW0NagCGTXicIa40LEpV7bZcsJgTSzGmiCWiiVntLQ6uuTg1l\n"
	"DLBco4GYMIGVMC4GA1UdEQQnMCWCDWEuZXhhbXBsZS5jb22CDioud2lsZC5leGFt\n"
	"cGxlhwTAAAIBMA4GA1UdDwEB/wQEAwIHgDATBgNVHSUEDDAKBggrBgEFBQcDATAd\n"
	"BgNVHQ4EFgQUsnu/vg3DKVwT8+ZBs2fQcXRPdP4wHwYDVR0jBBgwFoAUrk5Izm/K\n"
	"zyzMWb4lCZ5+ueKdOr8wDQYJKoZIhvcNAQELBQADggEBAIJMyGgWnyvGshYuU0R2\n"
	"OqYiTH7B6nEAX9rUbfx571yNLIL6+RLTwFV59AYSWqbXbcjL2KR/du4Dfa/qKndk\n"
	"HOGMBFprPBwhI906SHTHDMimVGAiFqEhXIwljU433ZJ/UTXY/9F/TjlTZdTnfbPY\n"
	"rf8T/m0Wubr/uPlHvoQiO2idnxkm3PygU6rgsLER497k6UrOXlifh6mNOW6+msfx\n"
	"BUPkmTo/Op9habyia1c7sNE3b0G8tX6sE2ECmrvV697uwUbeHbt+69lggDk8OALu\n"
	"vKjpLnBwqHfbexQj0TQVRlOdfSXXur+YaBmN/efsA2einqk76XLF+RPCt4TB3p/I\n"
	"4nI=\n"
	"-----END CERTIFICATE-----\n";
static const char fixture_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNaNI6bh+5x8ST/i6\n"
	"uc6ol8fH13Sma17OdrCdTNXWWcmhRANCAAQlrqXlAfHvjIGMap0kZ7Lhp0QOR9gg\n"
	"8TsrW0NagCGTXicIa40LEpV7bZcsJgTSzGmiCWiiVntLQ6uuTg1lDLBc\n"
	"-----END PRIVATE KEY-----\n";

static void check(int rc, const struct tls_cert *c, const char *err)
{
	if (rc < 0) {
		if (err[0] == '\0' || c->chain || c->names || c->key_buf)
			abort();
		return;
	}
	if (c->chain_len < 1 || c->chain_len > TLS_CERT_MAX_CHAIN || !c->key_buf ||
	    (c->key_type != BR_KEYTYPE_EC && c->key_type != BR_KEYTYPE_RSA) ||
	    (c->issuer_key_type != BR_KEYTYPE_EC && c->issuer_key_type != BR_KEYTYPE_RSA))
		abort();
	for (size_t i = 0; i < c->n_names; i++) {
		for (const char *p = c->names[i]; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				abort();
		if (!tls_cert_matches(c, c->names[i]))
			abort();
	}
	struct tls_cert *const list[] = { (struct tls_cert *)c };
	if (c->n_names > 0 && tls_cert_pick(list, 1, c->names[0], 0) != c)
		abort();
}

/* Wraps der in PEM with the given banner (owner: the caller). */
static char *wrap(const uint8_t *der, size_t len, const char *banner, size_t *out_len)
{
	size_t n = br_pem_encode(NULL, der, len, banner, 0);
	char *pem = malloc(n + 1);
	if (pem)
		*out_len = br_pem_encode(pem, der, len, banner, 0);
	return pem;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_cert c;
	char err[256] = "";
	char *pem = NULL;
	size_t pem_len = 0;
	int rc;

	if (size < 1 || size > 65536)
		return 0;
	uint8_t mode = data[0] % 3;
	data++;
	size--;
	if (mode == 0) {
		const uint8_t *nul = memchr(data, 0, size);
		size_t cl = nul ? (size_t)(nul - data) : size;
		const char *key = nul ? (const char *)nul + 1 : (const char *)data;
		size_t kl = nul ? size - cl - 1 : size;
		/* exact-size copies so ASan sees any read past the end */
		char *cert_copy = malloc(cl ? cl : 1), *key_copy = malloc(kl ? kl : 1);
		if (!cert_copy || !key_copy) {
			free(cert_copy);
			free(key_copy);
			return 0;
		}
		memcpy(cert_copy, data, cl);
		memcpy(key_copy, key, kl);
		rc = tls_cert_parse_pem(cert_copy, cl, "cert", key_copy, kl, "key", &c, err,
					sizeof(err));
		free(cert_copy);
		free(key_copy);
	} else if (mode == 1) {
		if (!(pem = wrap(data, size, "CERTIFICATE", &pem_len)))
			return 0;
		rc = tls_cert_parse_pem(pem, pem_len, "cert", fixture_key, sizeof(fixture_key) - 1,
					"key", &c, err, sizeof(err));
	} else {
		if (!(pem = wrap(data, size, "PRIVATE KEY", &pem_len)))
			return 0;
		rc = tls_cert_parse_pem(fixture_crt, sizeof(fixture_crt) - 1, "cert", pem, pem_len,
					"key", &c, err, sizeof(err));
	}
	check(rc, &c, err);
	if (rc == 0)
		tls_cert_free(&c);
	free(pem);
	return 0;
}
