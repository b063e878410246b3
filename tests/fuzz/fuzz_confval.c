/* libFuzzer harness for the INI value parsers: durations, sizes, booleans,
 * integers, listen addresses, status lists and CIDR lists. Each must reject or
 * accept without touching memory it should not, and accepted values must be sane. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "confval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[512];
	if (size >= sizeof(text))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	int64_t ms, iv;
	uint64_t bytes;
	bool b;
	struct sockaddr_storage ss;
	socklen_t len;
	if (confval_duration(text, &ms) == 0 && ms < 0)
		abort();
	(void)confval_size(text, &bytes);
	(void)confval_bool(text, &b);
	if (confval_int(text, -100, 100, &iv) == 0 && (iv < -100 || iv > 100))
		abort();
	if (confval_listen(text, &ss, &len) == 0 && len > sizeof(ss))
		abort();
	if (confval_status_list(text) == 0)
		(void)confval_status_in(text, 200);
	struct cidr_list l;
	if (cidr_list_parse(slice_make((const char *)data, size), &l) == 0)
		cidr_list_free(&l);
	return 0;
}
