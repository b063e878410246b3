/* fuzz_rule.c - libFuzzer harness for the rule compiler and matcher: any byte string is
 * compiled; what compiles is matched against a fixed request and freed. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rule.h"

static const struct http_field fields[] = {
	{ { "Host", 4 }, { "Example.com:8080", 16 } },
	{ { "User-Agent", 10 }, { "curl/8.5.0", 10 } },
	{ { "X-Env", 5 }, { "prod", 4 } },
	{ { "x-env", 5 }, { "", 0 } },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[128];
	int col;
	char *text = malloc(size + 1);
	struct sockaddr_in6 peer = { .sin6_family = AF_INET6 };
	struct rule_subject s = {
		.method = SLICE_LIT("GET"),
		.host = SLICE_LIT("Example.com:8080"),
		.path = SLICE_LIT("/api/v1/users"),
		.query = SLICE_LIT("id=42&q=a+b%20c&debug&x=%zz;y&=v"),
		.fields = fields,
		.nfields = sizeof(fields) / sizeof(fields[0]),
		.client = (const struct sockaddr *)&peer,
	};

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	inet_pton(AF_INET6, "::ffff:192.0.2.10", &peer.sin6_addr);

	struct rule *r = rule_compile(text, err, sizeof(err), &col);
	if (r) {
		(void)rule_match(r, &s);
		(void)rule_hosts(r, NULL, NULL);
		s.host = SLICE_LIT("[::1]:443");
		s.query = SLICE_LIT("");
		s.client = NULL;
		(void)rule_match(r, &s);
		rule_free(r);
	} else if (col < 1 || (size_t)col > strlen(text) + 1 || err[0] == '\0') {
		abort(); /* every error carries a message and a column inside the text (or just past it) */
	}
	free(text);
	return 0;
}
