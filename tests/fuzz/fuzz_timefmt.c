/* libFuzzer harness for the HTTP-date parser (If-Modified-Since, Retry-After). The
 * input is handed over as a slice that is not NUL-terminated, so any read past it
 * is caught; an accepted date must be one the formatter writes back, byte for byte
 * apart from the day name (not checked against the date), the case of the month
 * and a leap second (:60, the next minute). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "timefmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	int64_t t;
	if (timefmt_parse_imf(slice_make(copy, size), &t) == 0) {
		char out[TIMEFMT_IMF_LEN + 1];
		int64_t back;
		if (timefmt_imf(t, out) != size || timefmt_parse_imf(slice_make(out, size), &back) != 0 ||
		    back != t)
			abort();
		bool leap = copy[23] == '6';
		if (!leap && !slice_case_eq(slice_make(out + 3, size - 3), slice_make(copy + 3, size - 3)))
			abort();
	}
	free(copy);
	return 0;
}
