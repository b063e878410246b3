/* fuzz_middleware.c - libFuzzer harness for a chain of every middleware type on
 * arbitrary requests: the input is a request head (what the parser accepts goes
 * through the chain), its first 16 bytes also the client's IPv6 address. Reaches
 * the Authorization decoding, regex replacement expansion, path edits, header
 * views and the per-source tables. Checked: no crash or undefined behaviour; the
 * state stays within its bounds; an early answer has a body; every slice written
 * into the state is readable. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "middleware.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The chain compiles from fixed sections, so an error here is a bug. */
void conf_error(struct conf_errors *errs, const char *file, int line, const char *fmt, ...)
{
	(void)errs;
	(void)file;
	(void)line;
	(void)fmt;
	abort();
}

#define KV(k, v) { (char *)(k), (char *)(v), 0 }

static struct middleware *compile(struct conf_kv *kv, size_t n)
{
	struct conf_errors errs = { 0 };
	struct conf_middleware c = { (char *)"fuzz", 1, kv, n, NULL };
	return middleware_compile(&c, "fuzz.ini", &errs);
}

static struct middleware *chain[10];

static void setup(void)
{
	struct conf_kv request_id[] = { KV("type", "request_id") };
	struct conf_kv headers[] = { KV("type", "headers"), KV("request_header", "X-A: 1"), KV("request_header", "X-Gone:"),
				     KV("response_header", "Server:"), KV("sts_seconds", "10") };
	struct conf_kv strip[] = { KV("type", "strip_prefix"), KV("prefix", "/api"), KV("prefix", "/v1/") };
	struct conf_kv add[] = { KV("type", "add_prefix"), KV("prefix", "/x") };
	struct conf_kv regex[] = { KV("type", "redirect_regex"), KV("regex", "^http://([^/]*)/x/r(.*)$|q=(a*)"),
				   KV("replacement", "https://$1/$2${3}$$x$4$") };
	struct conf_kv breaker[] = { KV("type", "circuit_breaker"),
				     KV("expression", "ResponseCodeRatio(500, 600, 0, 600) > 0.5 || NetworkErrorRatio() > 0.5") };
	struct conf_kv ratelimit[] = { KV("type", "ratelimit"), KV("average", "5"), KV("source", "header:X-Key") };
	struct conf_kv inflight[] = { KV("type", "inflight"), KV("max", "3") };
	/* only the fast hashes: a bcrypt per input would starve the fuzzer */
	struct conf_kv auth[] = { KV("type", "basic_auth"), KV("user", "alice:$apr1$tytD1ZJT$uY60Wgdn03DrVZV3aSyce1"),
				  KV("user", "bob:{SHA}JauGvtFJymypwcDV23yakTiN3qs="), KV("remove_header", "on") };
	struct conf_kv scheme[] = { KV("type", "redirect_scheme"), KV("port", "8443") };
#define N(a) (sizeof(a) / sizeof(a[0]))
	chain[0] = compile(request_id, N(request_id));
	chain[1] = compile(headers, N(headers));
	chain[2] = compile(strip, N(strip));
	chain[3] = compile(add, N(add));
	chain[4] = compile(regex, N(regex));
	chain[5] = compile(breaker, N(breaker));
	chain[6] = compile(ratelimit, N(ratelimit));
	chain[7] = compile(inflight, N(inflight));
	chain[8] = compile(auth, N(auth));
	chain[9] = compile(scheme, N(scheme));
}

static void touch(struct slice s)
{
	if (s.len) {
		volatile char first = s.p[0], last = s.p[s.len - 1];
		(void)first;
		(void)last;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_request req;
	static struct mw_state st;

	if (!chain[0])
		setup();
	char *head = malloc(size ? size : 1);
	if (!head)
		return 0;
	memcpy(head, data, size);
	if (http_parse_request(head, size, 65536, &req) > 0) {
		struct sockaddr_in6 peer = { .sin6_family = AF_INET6 };
		if (size >= 16)
			memcpy(&peer.sin6_addr, data, 16);
		struct mw_request r = { &req, (struct sockaddr *)&peer, "fuzz", size & 1, (int64_t)size * 7 };
		memset(&st, 0, sizeof(st));
		int status = middleware_run(chain, sizeof(chain) / sizeof(chain[0]), &r, &st);
		if ((status && !st.body.len) || st.scratch_len > MW_SCRATCH || st.n_req_set > MW_MAX_EDITS ||
		    st.n_req_remove > MW_MAX_EDITS || st.n_resp_set > MW_MAX_EDITS || st.n_resp_remove > MW_MAX_EDITS)
			abort();
		for (size_t i = 0; i < st.n_req_set; i++)
			touch(st.req_set[i].value);
		for (size_t i = 0; i < st.n_resp_set; i++)
			touch(st.resp_set[i].value);
		touch(st.path);
		middleware_observe_request(&st, (int)(size % 600), size & 2, (int64_t)size * 7);
		middleware_done(&st);
	}
	free(head);
	return 0;
}
