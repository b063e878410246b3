/* jws.h - the ACME client's keys and signatures: key generation and PEM storage
 * (EC P-256/P-384, RSA 2048/4096), JWK and its thumbprint (RFC 7517, RFC 7638),
 * flattened JWS with ES256/ES384/RS256 (RFC 7515, RFC 7518, RFC 8555 §6.2), the
 * HS256 external account binding (RFC 8555 §7.3.4) and base64url. */
#ifndef EDGEPROXY_JWS_H
#define EDGEPROXY_JWS_H

#include <stdbool.h>
#include <stddef.h>

#include <bearssl.h>

#include "strbuf.h"

enum jws_key_type { JWS_KEY_EC256, JWS_KEY_EC384, JWS_KEY_RSA2048, JWS_KEY_RSA4096 };

/* A private key with its public half. Every pointer in the BearSSL structs points
 * into buf; buf is wiped and freed by jws_key_free. */
struct jws_key {
	enum jws_key_type type;
	int key_type;                /* BR_KEYTYPE_EC or BR_KEYTYPE_RSA */
	br_ec_private_key ec;
	br_ec_public_key ec_pub;
	br_rsa_private_key rsa;
	br_rsa_public_key rsa_pub;
	unsigned char *buf;          /* owner: the key */
	size_t buf_len;
};

/* "ec256", "ec384", "rsa2048", "rsa4096" -> type; -1 if unknown. */
int jws_key_type_parse(const char *name);
const char *jws_key_type_name(enum jws_key_type type);

/* Generates a fresh key (RSA takes from a fraction of a second for 2048 bits to
 * seconds for 4096: callers on the event loop run it in a child process). Returns 0
 * or -1 (entropy or parameter failure). */
int jws_key_generate(struct jws_key *k, enum jws_key_type type);
/* Loads the first private key of PEM text ("EC PRIVATE KEY", "RSA PRIVATE KEY" or
 * "PRIVATE KEY"). EC keys must be on P-256 or P-384, RSA keys 2048 or 4096 bits.
 * Returns 0, or -1 with a reason in err. */
int jws_key_from_pem(struct jws_key *k, const char *pem, size_t len, char *err, size_t errlen);
/* The key as PEM (SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY"), malloc'd and
 * NUL-terminated; the caller wipes and frees it. NULL on failure. */
char *jws_key_to_pem(const struct jws_key *k, size_t *len);
void jws_key_free(struct jws_key *k);

/* "ES256", "ES384" or "RS256". */
const char *jws_alg(const struct jws_key *k);
/* Appends the public JWK with exactly the required members in lexicographic order,
 * no whitespace (RFC 7638 §3.2), so its SHA-256 is the thumbprint. */
void jws_jwk(const struct jws_key *k, struct strbuf *out);
/* base64url(SHA-256(JWK)): 43 characters and a NUL in out. Returns 0 or -1. */
int jws_thumbprint(const struct jws_key *k, char out[44]);

/* Signs one ACME request (RFC 8555 §6.2): protected header {alg, jwk|kid, nonce,
 * url}, with jwk when kid is NULL (newAccount, revocation by certificate key), the
 * payload as given (NULL or "" for POST-as-GET), and appends the flattened JSON
 * serialization to out. Returns 0 or -1. */
int jws_sign(const struct jws_key *k, const char *kid, const char *nonce, const char *url,
	     const char *payload, size_t payload_len, struct strbuf *out);

/* Appends the externalAccountBinding object: a JWS over the account's JWK with
 * protected {alg HS256, kid eab_kid, url}, MAC'd with the CA-given key. */
int jws_eab(const struct jws_key *account, const char *eab_kid, const unsigned char *mac_key,
	    size_t mac_key_len, const char *url, struct strbuf *out);

/* A signature over data in the form JWS uses: ECDSA as fixed-size r||s (RFC 7518
 * §3.4), RSA PKCS#1 v1.5 with SHA-256. sig must hold 512 bytes. Returns the length
 * or 0. */
size_t jws_sign_raw(const struct jws_key *k, const void *data, size_t len, unsigned char *sig);

/* base64url without padding (RFC 4648 §5, RFC 7515 §2). out needs
 * b64url_len(len) + 1 bytes; returns the length written (NUL added). */
#define B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
size_t b64url_encode(const void *in, size_t len, char *out);
void b64url_strbuf(struct strbuf *out, const void *in, size_t len);
/* Decodes in[0..len): the base64url alphabet, trailing '=' padding tolerated,
 * whitespace and '+' '/' refused, as are non-zero leftover bits. Returns the length
 * or -1 (bad input or more than cap bytes). */
long b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap);

#endif
