/* htpasswd.h - Apache htpasswd lines ("user:hash") and password checks against
 * bcrypt ($2y$, $2b$, $2a$), $apr1$ MD5-crypt and {SHA}, for basic_auth. */
#ifndef EDGEPROXY_HTPASSWD_H
#define EDGEPROXY_HTPASSWD_H

#include <stdbool.h>
#include <stddef.h>

#include "slice.h"

/* Highest bcrypt cost accepted, as htpasswd -C: each check runs on the event loop,
 * and 2^17 rounds already take seconds. */
#define HTPASSWD_BCRYPT_MAX_COST 17

enum htpasswd_kind { HTPASSWD_BCRYPT, HTPASSWD_APR1, HTPASSWD_SHA1 };

/* A parsed hash: what a password must hash to. Plain data, no ownership. */
struct htpasswd_hash {
	enum htpasswd_kind kind;
	unsigned cost;              /* bcrypt: log2 of the key schedule rounds */
	unsigned char salt[16];     /* bcrypt: the decoded salt */
	char salt_text[8];          /* apr1: the salt characters */
	size_t salt_len;
	char expect[32];            /* the encoded digest a matching password produces */
	size_t expect_len;
};

/* Parses a hash as htpasswd writes it. Returns 0, or -1 with *why saying what is wrong. */
int htpasswd_parse_hash(struct slice text, struct htpasswd_hash *h, const char **why);

/* Parses one line "user:hash" (a trailing CR or blanks are ignored). *user points
 * into line. Returns 0, or -1 with *why. */
int htpasswd_parse_line(struct slice line, struct slice *user, struct htpasswd_hash *h, const char **why);

/* Whether password hashes to h. Passwords with a NUL byte never match (crypt(3)
 * would silently cut them there). The final comparison is constant-time. */
bool htpasswd_verify(const struct htpasswd_hash *h, struct slice password);

/* Compares n bytes in time that depends only on n. */
bool htpasswd_equal(const void *a, const void *b, size_t n);

#endif
