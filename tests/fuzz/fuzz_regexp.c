/* fuzz_regexp.c - libFuzzer harness for the regular expression engine. The input is
 * a pattern and a subject (split at the first NUL, else halfway); whatever compiles
 * is searched, and the answers must agree with each other: with and without
 * groups, from offset 0 and from the match's own start, and folded against a
 * lowercased copy. Neither string is NUL-terminated, so a read past either shows. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "regexp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t plen = nul ? (size_t)(nul - data) : size / 2;
	size_t slen = size - plen - (nul != NULL);
	char *pat = malloc(plen ? plen : 1), *subj = malloc(slen ? slen : 1),
	     *lower = malloc(slen ? slen : 1);
	char err[128];

	if (!pat || !subj || !lower)
		abort();
	memcpy(pat, data, plen);
	memcpy(subj, data + size - slen, slen);
	for (size_t i = 0; i < slen; i++)
		lower[i] = subj[i] >= 'A' && subj[i] <= 'Z' ? (char)(subj[i] + 32) : subj[i];
	struct regexp *re = regexp_compile(pat, plen, 4, err, sizeof(err));
	struct regexp *bare = regexp_compile(pat, plen, 0, err, sizeof(err));
	if ((re == NULL) != (bare == NULL))
		abort();
	if (re) {
		struct slice s = slice_make(subj, slen);
		struct regexp_span g[4], h[4];
		bool yes = regexp_search(re, s, 0, false, g);
		if (yes != regexp_search(bare, s, 0, false, NULL))
			abort();
		if (yes) {
			for (int i = 0; i < 4; i++)
				if ((g[i].so < 0) != (g[i].eo < 0) || g[i].so > g[i].eo ||
				    g[i].eo > (long)slen || (i == 0 && g[i].so < 0))
					abort();
			/* searching again from where the match starts finds it again */
			if (!regexp_search(re, s, (size_t)g[0].so, false, h) || h[0].so != g[0].so ||
			    h[0].eo != g[0].eo)
				abort();
		}
		bool folded = regexp_search(re, s, 0, true, g);
		if (folded != regexp_search(re, slice_make(lower, slen), 0, false, h) ||
		    (folded && (g[0].so != h[0].so || g[0].eo != h[0].eo)))
			abort();
	}
	regexp_free(re);
	regexp_free(bare);
	free(pat);
	free(subj);
	free(lower);
	return 0;
}
