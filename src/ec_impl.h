/* ec_impl.h - the elliptic-curve code every BearSSL user in edgeproxy gets (TLS
 * server and client, certificate checks, ECDSA signatures of the ACME client and
 * of generated certificates). */
#ifndef EDGEPROXY_EC_IMPL_H
#define EDGEPROXY_EC_IMPL_H

#include <bearssl.h>

/* On targets with 64-bit limbs and 128-bit products: P-256 (p256.c) and X25519
 * (x25519.c) on edgeproxy's own code, P-384 and P-521 on BearSSL's i31 code.
 * Elsewhere BearSSL's default (ec_all_m31 / m15). */
const br_ec_impl *ec_impl(void);

#endif
