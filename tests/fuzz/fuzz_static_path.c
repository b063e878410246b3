/* libFuzzer harness for request path cleaning (static files): whatever the
 * input, an accepted result has no "." or ".." segment, no NUL, and fits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "static_path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[256];
	if (static_path_clean(slice_make((const char *)data, size), out, sizeof(out)) < 0)
		return 0;
	size_t n = strlen(out);
	if (n >= sizeof(out) || (n && (out[0] == '/' || out[n - 1] == '/')))
		abort();
	for (const char *seg = out; *seg;) {
		size_t l = strcspn(seg, "/");
		if ((l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.') || l == 0)
			abort();
		seg += l;
		if (*seg == '/')
			seg++;
	}
	return 0;
}
