/* bcrypt.h - the bcrypt password hash (Provos and Mazières, "A Future-Adaptable
 * Password Scheme", USENIX 1999) and its radix-64 encoding, for htpasswd's
 * $2y$/$2b$/$2a$ lines. */
#ifndef EDGEPROXY_BCRYPT_H
#define EDGEPROXY_BCRYPT_H

#include <stddef.h>

#define BCRYPT_SALT_BYTES 16
#define BCRYPT_SALT_CHARS 22 /* radix-64 of the 16 salt bytes */
#define BCRYPT_HASH_BYTES 23 /* the 24-byte ciphertext less its last byte, as OpenBSD encodes it */
#define BCRYPT_HASH_CHARS 31
#define BCRYPT_MIN_COST 4
#define BCRYPT_MAX_COST 31

/* The raw hash: EksBlowfishSetup(cost, salt, key) then "OrpheanBeholderScryDoubt"
 * encrypted 64 times. key is the password with its terminating NUL (the caller
 * adds it); only its first 72 bytes count. cost is within [4, 31]. */
void bcrypt_raw(unsigned cost, const unsigned char salt[BCRYPT_SALT_BYTES], const unsigned char *key,
		size_t key_len, unsigned char out[BCRYPT_HASH_BYTES]);

/* bcrypt's radix-64: alphabet "./A-Za-z0-9", bits taken most significant first,
 * no padding. Encoding writes (len * 8 + 5) / 6 characters, no NUL. */
void bcrypt_b64_encode(const unsigned char *in, size_t len, char *out);
/* Decodes len bytes from the first (len * 8 + 5) / 6 characters of in; bits past
 * the last byte are ignored. Returns 0, or -1 on a character outside the alphabet. */
int bcrypt_b64_decode(const char *in, unsigned char *out, size_t len);

#endif
