/* tls_cert.h - server certificates for TLS termination: loading a PEM chain and key
 * ([cert NAME], SPEC §3), the self-signed default kept in state_dir, and choosing a
 * certificate by SNI. */
#ifndef EDGEPROXY_TLS_CERT_H
#define EDGEPROXY_TLS_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <bearssl.h>

/* Limits on what a certificate or key file may hold; larger input is refused. */
#define TLS_CERT_MAX_FILE (1024 * 1024)   /* bytes of one PEM file */
#define TLS_CERT_MAX_DER (64 * 1024)      /* bytes of one decoded PEM object */
#define TLS_CERT_MAX_CHAIN 16             /* CERTIFICATE blocks in one file */

/* A loaded certificate, ready for br_ssl_server_init_full_ec/_rsa or a server policy.
 * Everything a pointer in here points to is owned by the struct and released by
 * tls_cert_free(). */
struct tls_cert {
	char *name;                   /* [cert NAME] or "default"; may be NULL */
	br_x509_certificate *chain;   /* DER certificates, leaf first; each .data malloc'd */
	size_t chain_len;
	int key_type;                 /* BR_KEYTYPE_EC or BR_KEYTYPE_RSA */
	br_ec_private_key ec;         /* key_type EC: .x points into key_buf */
	br_rsa_private_key rsa;       /* key_type RSA: .p .q .dp .dq .iq point into key_buf */
	unsigned char *key_buf;       /* the private key bytes; zeroed before free */
	size_t key_buf_len;
	/* Key type of the signature on the leaf (its signatureAlgorithm), which BearSSL's
	 * static ECDH suites need (cert_issuer_key_type of br_ssl_server_init_full_ec).
	 * When BearSSL does not know the algorithm (e.g. RSA-PSS) this is key_type. */
	int issuer_key_type;
	/* DNS names the leaf is valid for, lowercased: subjectAltName dNSName entries, or
	 * the subject CN when there is no dNSName (RFC 6125 §6.4.4). Only names made of
	 * letters, digits, '-', '_' and '.', optionally with a leading "*." wildcard label,
	 * are kept. */
	char **names;
	size_t n_names;
	time_t not_before, not_after; /* the leaf's validity */
};

/* Loads cert_file (PEM, one or more "CERTIFICATE" blocks, leaf first) and key_file
 * (PEM "EC PRIVATE KEY" (SEC1), "RSA PRIVATE KEY" (PKCS#1) or "PRIVATE KEY" (PKCS#8,
 * EC or RSA); other blocks such as "EC PARAMETERS" are skipped, so both may be the
 * same file). Checks that the key belongs to the leaf. name (may be NULL) is copied
 * into out->name. Returns 0, or -1 with a message in err such as
 * "cert.pem: no CERTIFICATE block" or "key.pem: key does not match certificate
 * cert.pem"; out then owns nothing. */
int tls_cert_load(const char *name, const char *cert_file, const char *key_file,
		  struct tls_cert *out, char *err, size_t errlen);

/* tls_cert_load on PEM text in memory; cert_label and key_label name the sources in
 * messages. Never reads past data + len (no NUL needed). Exposed for the fuzzer. */
int tls_cert_parse_pem(const char *cert_pem, size_t cert_len, const char *cert_label,
		       const char *key_pem, size_t key_len, const char *key_label,
		       struct tls_cert *out, char *err, size_t errlen);

/* The certificate used when no [cert] fits and [tls] default_cert is unset: ECDSA
 * P-256, CN "edgeproxy default", SAN dNSName "localhost", valid from a day ago for
 * ten years. Generated once into state_dir/default.crt (0644) and default.key (0600),
 * each written atomically (temp file, fsync, rename, fsync of the directory), under
 * an flock on state_dir so that concurrent workers agree on one key. Later calls load
 * those files; they are regenerated only when one of them is missing or the
 * certificate has expired. state_dir (and missing parents) are created 0700.
 * Existing files that do not load are an error, not silently replaced.
 * out->name is "default". Returns 0, or -1 with a message in err. */
int tls_cert_self_signed(const char *state_dir, struct tls_cert *out, char *err,
			 size_t errlen);

/* True when sni is one of c's names, compared case-insensitively, ignoring one
 * trailing dot. A wildcard "*.example.com" stands for exactly one non-empty leftmost
 * label: it matches "a.example.com", not "example.com" nor "a.b.example.com".
 * NULL or empty sni never matches. */
bool tls_cert_matches(const struct tls_cert *c, const char *sni);

/* Chooses the certificate for a ClientHello: among certs[0..n) that match sni, those
 * with a key type in client_key_types (bit 1 << BR_KEYTYPE_EC, 1 << BR_KEYTYPE_RSA:
 * what the client's suites and signature algorithms allow; 0 means "both") beat
 * those without; then an exact name beats a wildcard; then EC beats RSA; then the
 * earlier entry wins. NULL entries are skipped. Returns NULL when no name matches
 * (the caller then uses the default certificate). */
const struct tls_cert *tls_cert_pick(struct tls_cert *const *certs, size_t n, const char *sni,
				     unsigned client_key_types);

/* Releases everything c owns, zeroing the private key first; c is left empty.
 * Safe on an empty (zeroed) struct. */
void tls_cert_free(struct tls_cert *c);

#endif
