/* ecdsa.h - ECDSA signing for every signer in edgeproxy (the TLS server's
 * ServerKeyExchange, ACME's JWS and CSR): P-256 on ecdsa.c's 64-bit code where the
 * compiler has 128-bit products, everything else on BearSSL's. Both functions have
 * BearSSL's br_ecdsa_sign type and contract: the signature length, 0 on failure. */
#ifndef EDGEPROXY_ECDSA_H
#define EDGEPROXY_ECDSA_H

#include <bearssl.h>

#if defined(__SIZEOF_INT128__)
#define ECDSA_P256_AVAILABLE 1
#else
#define ECDSA_P256_AVAILABLE 0
#endif

/* r || s, each as long as the curve's order */
size_t ecdsa_sign_raw(const br_ec_impl *impl, const br_hash_class *hf, const void *hash_value,
		      const br_ec_private_key *sk, void *sig);
/* DER (the form TLS 1.2 and X.509 carry); sig must hold the longest DER form */
size_t ecdsa_sign_asn1(const br_ec_impl *impl, const br_hash_class *hf, const void *hash_value,
		       const br_ec_private_key *sk, void *sig);

#endif
