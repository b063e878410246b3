/* x25519.h - X25519 (RFC 7748) with 64-bit limbs and 128-bit products, for the
 * targets whose compiler has them (x86_64, aarch64); ec_impl.c puts it in front of
 * BearSSL's 31-bit code there. */
#ifndef EDGEPROXY_X25519_H
#define EDGEPROXY_X25519_H

#if defined(__SIZEOF_INT128__)
#define X25519_AVAILABLE 1
#else
#define X25519_AVAILABLE 0
#endif

/* out = X25519(scalar, point): the scalar clamped as RFC 7748 says, the point's top
 * bit ignored, both little-endian; out is the canonical u-coordinate. Constant
 * time in the scalar and the point. out may alias point. */
void x25519(unsigned char out[32], const unsigned char scalar[32], const unsigned char point[32]);

#endif
