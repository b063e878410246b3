/* csr.h - the two X.509 structures the ACME client writes: the PKCS#10 certificate
 * request sent to finalize an order (RFC 2986, RFC 8555 §7.4) and the self-signed
 * certificate that answers a TLS-ALPN-01 challenge (RFC 8737 §3). */
#ifndef EDGEPROXY_CSR_H
#define EDGEPROXY_CSR_H

#include <stddef.h>
#include <time.h>

#include "jws.h"

#define CSR_MAX_NAMES 100 /* Let's Encrypt's limit of names per certificate */

/* DER of a CertificationRequest for names[0..n) (DNS names, "*." wildcards allowed)
 * carried in a subjectAltName extension request; the subject is CN=names[0] when it
 * fits (64 characters), else empty. Signed with key: ECDSA with SHA-256 (P-256) or
 * SHA-384 (P-384), or RSA PKCS#1 v1.5 with SHA-256. Returns the malloc'd DER (owner:
 * the caller) and its length, or NULL. */
unsigned char *csr_build(const struct jws_key *key, const char *const *names, size_t n,
			 size_t *len);

/* DER of a self-signed certificate for name with the critical id-pe-acmeIdentifier
 * extension holding digest (SHA-256 of the key authorization), valid from a day
 * before now for a week. Returns the malloc'd DER and its length, or NULL. */
unsigned char *csr_alpn_cert(const struct jws_key *key, const char *name,
			     const unsigned char digest[32], time_t now, size_t *len);

#endif
