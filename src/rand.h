/* rand.h - the one source of randomness: getrandom(2). BearSSL is built without a
 * system seeder (BR_USE_URANDOM=0, BR_RDRAND=0; TOOLCHAIN.md §6), so every DRBG and
 * every SSL engine is seeded from here. */
#ifndef EDGEPROXY_RAND_H
#define EDGEPROXY_RAND_H

#include <stddef.h>

#include <bearssl.h>

/* Fills buf with len bytes from the kernel CSPRNG (getrandom, flags 0: blocks only
 * until the pool is initialised at boot). Retries on EINTR and short reads.
 * Returns 0, or -1 with errno set (ENOSYS on kernels older than 3.17). */
int rand_bytes(void *buf, size_t len);

/* Initialises ctx as an HMAC-DRBG over SHA-256, seeded with 48 fresh bytes
 * (256 bits of entropy plus a nonce, as SP 800-90A asks). Returns 0, or -1 when
 * rand_bytes fails (ctx is then unusable). */
int rand_seed_hmac_drbg(br_hmac_drbg_context *ctx);

/* Injects 32 fresh bytes into an SSL engine; call before every br_ssl_*_reset()
 * (BearSSL fails the reset with BR_ERR_NO_RANDOM otherwise). Returns 0 or -1. */
int rand_seed_ssl_engine(br_ssl_engine_context *eng);

#endif
