/* htpasswd.c - parsing of htpasswd lines and hashes, and password verification:
 * bcrypt (bcrypt.c), $apr1$ (apr1.c), and {SHA}, the base64 of the password's
 * SHA-1 (BearSSL). */
#include "htpasswd.h"

#include <string.h>

#include <bearssl_hash.h>

#include "apr1.h"
#include "base64.h"
#include "bcrypt.h"

static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}

bool htpasswd_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned)(x[i] ^ y[i]);
	return diff == 0;
}

static bool is_crypt64(char c)
{
	return c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* "$2y$05$" + 22 salt + 31 hash characters. */
static int parse_bcrypt(struct slice t, struct htpasswd_hash *h, const char **why)
{
	const char *p = t.p;
	if (t.len != 7 + BCRYPT_SALT_CHARS + BCRYPT_HASH_CHARS || p[3] != '$' || p[6] != '$' ||
	    (p[2] != 'y' && p[2] != 'b' && p[2] != 'a')) {
		*why = "bad bcrypt hash (expected $2y$NN$ and 53 characters)";
		return -1;
	}
	if (p[4] < '0' || p[4] > '9' || p[5] < '0' || p[5] > '9') {
		*why = "bad bcrypt cost";
		return -1;
	}
	unsigned cost = (unsigned)(p[4] - '0') * 10 + (unsigned)(p[5] - '0');
	if (cost < BCRYPT_MIN_COST || cost > HTPASSWD_BCRYPT_MAX_COST) {
		*why = "bcrypt cost outside 04..17";
		return -1;
	}
	if (bcrypt_b64_decode(p + 7, h->salt, BCRYPT_SALT_BYTES) < 0) {
		*why = "bad character in the bcrypt salt";
		return -1;
	}
	for (size_t i = 0; i < BCRYPT_HASH_CHARS; i++)
		if (!is_crypt64(p[7 + BCRYPT_SALT_CHARS + i])) {
			*why = "bad character in the bcrypt hash";
			return -1;
		}
	h->kind = HTPASSWD_BCRYPT;
	h->cost = cost;
	memcpy(h->expect, p + 7 + BCRYPT_SALT_CHARS, BCRYPT_HASH_CHARS);
	h->expect_len = BCRYPT_HASH_CHARS;
	return 0;
}

/* "$apr1$" + 1..8 salt characters + "$" + 22 hash characters. */
static int parse_apr1(struct slice t, struct htpasswd_hash *h, const char **why)
{
	size_t i = 6, salt_len = 0;
	while (i < t.len && t.p[i] != '$' && salt_len <= APR1_SALT_MAX) {
		if (!is_crypt64(t.p[i]))
			break;
		i++;
		salt_len++;
	}
	if (salt_len == 0 || salt_len > APR1_SALT_MAX || i >= t.len || t.p[i] != '$' ||
	    t.len - i - 1 != APR1_HASH_CHARS) {
		*why = "bad $apr1$ hash (expected $apr1$SALT$ and 22 characters)";
		return -1;
	}
	for (size_t j = i + 1; j < t.len; j++)
		if (!is_crypt64(t.p[j])) {
			*why = "bad character in the $apr1$ hash";
			return -1;
		}
	h->kind = HTPASSWD_APR1;
	memcpy(h->salt_text, t.p + 6, salt_len);
	h->salt_len = salt_len;
	memcpy(h->expect, t.p + i + 1, APR1_HASH_CHARS);
	h->expect_len = APR1_HASH_CHARS;
	return 0;
}

/* "{SHA}" + base64 of a 20-byte digest. */
static int parse_sha1(struct slice t, struct htpasswd_hash *h, const char **why)
{
	unsigned char digest[br_sha1_SIZE];
	struct slice b64 = slice_make(t.p + 5, t.len - 5);
	if (b64.len != BASE64_LEN(br_sha1_SIZE) || base64_decode(b64, digest, sizeof(digest)) != br_sha1_SIZE) {
		*why = "bad {SHA} hash (expected the base64 of 20 bytes)";
		return -1;
	}
	h->kind = HTPASSWD_SHA1;
	memcpy(h->expect, b64.p, b64.len);
	h->expect_len = b64.len;
	return 0;
}

int htpasswd_parse_hash(struct slice text, struct htpasswd_hash *h, const char **why)
{
	memset(h, 0, sizeof(*h));
	if (slice_has_prefix(text, SLICE_LIT("$2")))
		return parse_bcrypt(text, h, why);
	if (slice_has_prefix(text, SLICE_LIT("$apr1$")))
		return parse_apr1(text, h, why);
	if (slice_has_prefix(text, SLICE_LIT("{SHA}")))
		return parse_sha1(text, h, why);
	*why = "unsupported hash (use bcrypt $2y$, $apr1$ or {SHA}: htpasswd -B, -m or -s)";
	return -1;
}

static bool is_trailing_blank(char c)
{
	return c == '\r' || c == ' ' || c == '\t';
}

int htpasswd_parse_line(struct slice line, struct slice *user, struct htpasswd_hash *h, const char **why)
{
	while (line.len && is_trailing_blank(line.p[line.len - 1]))
		line.len--;
	const char *colon = line.len ? memchr(line.p, ':', line.len) : NULL;
	if (!colon || colon == line.p) {
		*why = "expected user:hash";
		return -1;
	}
	*user = slice_make(line.p, (size_t)(colon - line.p));
	for (size_t i = 0; i < user->len; i++) {
		unsigned char c = (unsigned char)user->p[i];
		if (c <= ' ' || c == 0x7f) {
			*why = "the user name has a blank or control character";
			return -1;
		}
	}
	return htpasswd_parse_hash(slice_make(colon + 1, line.len - user->len - 1), h, why);
}

static bool verify_bcrypt(const struct htpasswd_hash *h, struct slice password)
{
	unsigned char key[73], raw[BCRYPT_HASH_BYTES];
	char enc[BCRYPT_HASH_CHARS];
	size_t n = password.len > 72 ? 72 : password.len;

	memcpy(key, password.p, n);
	key[n] = '\0'; /* the key includes its NUL */
	bcrypt_raw(h->cost, h->salt, key, n + 1, raw);
	bcrypt_b64_encode(raw, sizeof(raw), enc);
	bool ok = htpasswd_equal(enc, h->expect, BCRYPT_HASH_CHARS);
	wipe(key, sizeof(key));
	wipe(raw, sizeof(raw));
	wipe(enc, sizeof(enc));
	return ok;
}

static bool verify_apr1(const struct htpasswd_hash *h, struct slice password)
{
	char enc[APR1_HASH_CHARS];
	apr1_hash(password, slice_make(h->salt_text, h->salt_len), enc);
	bool ok = htpasswd_equal(enc, h->expect, APR1_HASH_CHARS);
	wipe(enc, sizeof(enc));
	return ok;
}

static bool verify_sha1(const struct htpasswd_hash *h, struct slice password)
{
	br_sha1_context ctx;
	unsigned char digest[br_sha1_SIZE];
	char enc[BASE64_LEN(br_sha1_SIZE) + 1];

	br_sha1_init(&ctx);
	br_sha1_update(&ctx, password.p, password.len);
	br_sha1_out(&ctx, digest);
	bool ok = base64_encode(digest, sizeof(digest), enc, sizeof(enc)) == (int)h->expect_len &&
		  htpasswd_equal(enc, h->expect, h->expect_len);
	wipe(&ctx, sizeof(ctx));
	wipe(digest, sizeof(digest));
	wipe(enc, sizeof(enc));
	return ok;
}

bool htpasswd_verify(const struct htpasswd_hash *h, struct slice password)
{
	if (!password.p)
		password = SLICE_LIT("");
	if (memchr(password.p, '\0', password.len))
		return false;
	switch (h->kind) {
	case HTPASSWD_BCRYPT:
		return verify_bcrypt(h, password);
	case HTPASSWD_APR1:
		return verify_apr1(h, password);
	case HTPASSWD_SHA1:
		return verify_sha1(h, password);
	}
	return false;
}
