/* fuzz_htpasswd.c - libFuzzer harness for the htpasswd parsers and verifiers: the
 * first line of the input is an htpasswd line ("user:hash"), the rest a password.
 * Checked: no crash; a parsed line has a non-empty user inside the input and an
 * expected digest of its kind's length; a rejected one says why; verification
 * runs (bcrypt only up to cost 5, to keep executions fast). The whole input also
 * goes through the strict base64 decoder, which must accept only the canonical
 * encoding (decode then encode gives the input back), and the bcrypt radix-64. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "bcrypt.h"
#include "htpasswd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private heap copy: ASan sees any read past the end */
	char *in = malloc(size ? size : 1);
	if (!in)
		return 0;
	memcpy(in, data, size);
	const char *nl = memchr(in, '\n', size);
	struct slice line = { in, nl ? (size_t)(nl - in) : size };
	struct slice password = nl ? (struct slice){ nl + 1, size - line.len - 1 } : (struct slice){ "", 0 };

	struct slice user;
	struct htpasswd_hash h;
	const char *why = NULL;
	if (htpasswd_parse_line(line, &user, &h, &why) == 0) {
		if (user.len == 0 || user.p < line.p || user.p + user.len > line.p + line.len)
			abort();
		size_t want = h.kind == HTPASSWD_BCRYPT ? BCRYPT_HASH_CHARS : h.kind == HTPASSWD_APR1 ? 22 : 28;
		if (h.expect_len != want || (h.kind == HTPASSWD_APR1 && (h.salt_len == 0 || h.salt_len > 8)))
			abort();
		if (h.kind != HTPASSWD_BCRYPT || h.cost <= 5)
			(void)htpasswd_verify(&h, password);
	} else if (!why || !why[0]) {
		abort();
	}

	unsigned char out[4096];
	int n = base64_decode(slice_make(in, size), out, sizeof(out));
	if (n >= 0) {
		char *back = malloc(size + 1);
		if (back && (base64_encode(out, (size_t)n, back, size + 1) != (int)size || memcmp(back, in, size) != 0))
			abort();
		free(back);
	}
	unsigned char salt[BCRYPT_SALT_BYTES];
	if (size >= BCRYPT_SALT_CHARS)
		(void)bcrypt_b64_decode(in, salt, sizeof(salt));
	free(in);
	return 0;
}
