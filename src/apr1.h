/* apr1.h - Apache's $apr1$ password hash: Poul-Henning Kamp's FreeBSD MD5-crypt
 * with the magic string "$apr1$" (htpasswd -m). */
#ifndef EDGEPROXY_APR1_H
#define EDGEPROXY_APR1_H

#include "slice.h"

#define APR1_SALT_MAX 8   /* characters of salt that count */
#define APR1_HASH_CHARS 22 /* the encoded 128-bit digest */

/* Computes the 22-character hash part (no NUL) of "$apr1$SALT$HASH" for password
 * and salt (only its first 8 characters are used, as Apache does). */
void apr1_hash(struct slice password, struct slice salt, char out[APR1_HASH_CHARS]);

#endif
