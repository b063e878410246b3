/* rand.c - getrandom(2) wrappers that seed BearSSL: no /dev/urandom, so they work in
 * an empty chroot or a FROM-scratch container (TOOLCHAIN.md §6). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getrandom in <sys/random.h> */
#endif
#include "rand.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

/* getrandom returns at most 33554431 bytes per call and may return less when a
 * signal arrives during a large request; asking for 256 at a time keeps every call
 * in the range the kernel serves whole once the pool is initialised. */
#define RAND_CHUNK 256

int rand_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		size_t want = len < RAND_CHUNK ? len : RAND_CHUNK;
		ssize_t n = getrandom(p, want, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) { /* never seen, but would otherwise loop forever */
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Overwrites secrets so the compiler cannot drop the stores as dead. */
static void wipe(void *p, size_t len)
{
	volatile unsigned char *v = p;
	while (len--)
		*v++ = 0;
}

int rand_seed_hmac_drbg(br_hmac_drbg_context *ctx)
{
	unsigned char seed[48];

	if (rand_bytes(seed, sizeof(seed)) < 0)
		return -1;
	br_hmac_drbg_init(ctx, &br_sha256_vtable, seed, sizeof(seed));
	wipe(seed, sizeof(seed));
	return 0;
}

int rand_seed_ssl_engine(br_ssl_engine_context *eng)
{
	unsigned char seed[32];

	if (rand_bytes(seed, sizeof(seed)) < 0)
		return -1;
	br_ssl_engine_inject_entropy(eng, seed, sizeof(seed));
	wipe(seed, sizeof(seed));
	return 0;
}
