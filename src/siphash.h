/* siphash.h - SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash for
 * tables whose keys an attacker chooses (client addresses, header values). */
#ifndef EDGEPROXY_SIPHASH_H
#define EDGEPROXY_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* The hash of data[0..len) under the 128-bit key. */
uint64_t siphash24(const unsigned char key[16], const void *data, size_t len);

#endif
