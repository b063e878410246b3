/* test_middleware.c - the middleware types: configuration errors with their lines,
 * each type's decision on parsed requests, chain order and early stops, rate limits
 * over simulated time and under an address sweep, circuit breaker transitions, and
 * the htpasswd hashes against lines made by Apache's htpasswd. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base64.h"
#include "bcrypt.h"
#include "breaker.h"
#include "htpasswd.h"
#include "middleware.h"
#include "siphash.h"
#include "source_table.h"
#include "test.h"

/* conf_error as config.c has it ("FILE:LINE: message"); config.c itself is not
 * linked, so this test depends only on what middleware.c uses. */
void conf_error(struct conf_errors *errs, const char *file, int line, const char *fmt, ...)
{
	char msg[512], *full;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (asprintf(&full, "%s:%d: %s", file, line, msg) < 0)
		return;
	char **grown = realloc(errs->msgs, (errs->n + 1) * sizeof(*grown));
	if (!grown) {
		free(full);
		return;
	}
	errs->msgs = grown;
	errs->msgs[errs->n++] = full;
}

void conf_errors_free(struct conf_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->n = 0;
}

/* ---- helpers ------------------------------------------------------------------ */

/* Compiles [middleware mw] (line 1) whose lines "key = value" are lines 2, 3, ... */
static struct middleware *compile_lines(const char *const *lines, struct conf_errors *errs)
{
	struct conf_kv kv[40];
	size_t n = 0;
	for (; lines[n]; n++) {
		const char *eq = strchr(lines[n], '=');
		size_t klen = eq ? (size_t)(eq - lines[n]) : strlen(lines[n]);
		while (klen && lines[n][klen - 1] == ' ')
			klen--;
		const char *v = eq ? eq + 1 : "";
		while (*v == ' ')
			v++;
		kv[n] = (struct conf_kv){ strndup(lines[n], klen), strdup(v), (int)n + 2 };
	}
	struct conf_middleware c = { "mw", 1, kv, n, NULL };
	struct middleware *m = middleware_compile(&c, "t.ini", errs);
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	return m;
}

#define LINES(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* A middleware that must compile. */
static struct middleware *mw_ok(const char *const *lines)
{
	struct conf_errors errs = { 0 };
	struct middleware *m = compile_lines(lines, &errs);
	CHECKF(m && errs.n == 0, "%s", errs.n ? errs.msgs[0] : "no middleware");
	conf_errors_free(&errs);
	return m;
}

/* A middleware that must not compile, with an error at line containing needle. */
static void mw_bad(const char *const *lines, int line, const char *needle)
{
	struct conf_errors errs = { 0 };
	struct middleware *m = compile_lines(lines, &errs);
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "t.ini:%d: ", line);
	bool found = false;
	for (size_t i = 0; i < errs.n; i++)
		found |= strncmp(errs.msgs[i], prefix, strlen(prefix)) == 0 && strstr(errs.msgs[i], needle) != NULL;
	CHECKF(m == NULL && found, "want '%s%s', got %zu errors, first '%s'", prefix, needle, errs.n,
	       errs.n ? errs.msgs[0] : "");
	middleware_free(m);
	conf_errors_free(&errs);
}

/* One request: its head, client, arrival and the chain's state. */
struct req {
	char head[8192];
	struct http_request http;
	struct sockaddr_storage addr;
	struct mw_request mr;
	struct mw_state st;
};

static struct req *mkreq(const char *head, const char *client, bool tls, int64_t now_ms)
{
	struct req *r = calloc(1, sizeof(*r));
	snprintf(r->head, sizeof(r->head), "%s", head);
	int rc = http_parse_request(r->head, strlen(r->head), sizeof(r->head), &r->http);
	CHECKF(rc > 0, "request did not parse (%d): %s", rc, head);
	r->mr.req = &r->http;
	r->mr.tls = tls;
	r->mr.now_ms = now_ms;
	r->mr.client_text = client;
	if (client && strchr(client, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->addr;
		s6->sin6_family = AF_INET6;
		CHECK(inet_pton(AF_INET6, client, &s6->sin6_addr) == 1);
		r->mr.client = (struct sockaddr *)&r->addr;
	} else if (client) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&r->addr;
		s4->sin_family = AF_INET;
		CHECK(inet_pton(AF_INET, client, &s4->sin_addr) == 1);
		r->mr.client = (struct sockaddr *)&r->addr;
	}
	return r;
}

#define GET(path, host) "GET " path " HTTP/1.1\r\nHost: " host "\r\n\r\n"

static int run_chain(struct middleware **chain, size_t n, struct req *r)
{
	memset(&r->st, 0, sizeof(r->st));
	return middleware_run(chain, n, &r->mr, &r->st);
}

static int run1(struct middleware *m, struct req *r)
{
	return run_chain(&m, 1, r);
}

/* One-shot: runs m on a fresh request and frees it; returns the status. */
static int status_of(struct middleware *m, const char *head, const char *client, bool tls, int64_t now)
{
	struct req *r = mkreq(head, client, tls, now);
	int s = run1(m, r);
	middleware_done(&r->st);
	free(r);
	return s;
}

static bool eqs(struct slice s, const char *want)
{
	return slice_eq(s, slice_cstr(want));
}

/* The value the response gets for name (resp_set), NULL when none. */
static const struct mw_header *resp_field(const struct mw_state *st, const char *name)
{
	for (size_t i = 0; i < st->n_resp_set; i++)
		if (slice_case_eq(st->resp_set[i].name, slice_cstr(name)))
			return &st->resp_set[i];
	return NULL;
}

static bool resp_is(const struct mw_state *st, const char *name, const char *value)
{
	const struct mw_header *h = resp_field(st, name);
	return h && eqs(h->value, value);
}

static const struct mw_header *req_field(const struct mw_state *st, const char *name)
{
	for (size_t i = 0; i < st->n_req_set; i++)
		if (slice_case_eq(st->req_set[i].name, slice_cstr(name)))
			return &st->req_set[i];
	return NULL;
}

static bool req_is(const struct mw_state *st, const char *name, const char *value)
{
	const struct mw_header *h = req_field(st, name);
	return h && eqs(h->value, value);
}

static bool req_removed(const struct mw_state *st, const char *name)
{
	const struct mw_header *h = req_field(st, name);
	if (h)
		return h->value.len == 0;
	for (size_t i = 0; i < st->n_req_remove; i++)
		if (slice_case_eq(st->req_remove[i], slice_cstr(name)))
			return true;
	return false;
}

/* ---- configuration errors ----------------------------------------------------- */

static void test_config_errors(void)
{
	struct conf_errors errs = { 0 };
	struct conf_middleware empty = { "mw", 7, NULL, 0, NULL };
	CHECK(middleware_compile(&empty, "t.ini", &errs) == NULL);
	CHECK(errs.n == 1 && strncmp(errs.msgs[0], "t.ini:7: [middleware mw] needs type = ", 38) == 0);
	conf_errors_free(&errs);

	mw_bad(LINES("type = bogus"), 2, "unknown middleware type 'bogus'");
	mw_bad(LINES("type = compress"), 2, "compress is not implemented in this build");
	mw_bad(LINES("type = headers", "type = headers"), 3, "duplicate key 'type' (first at line 2)");
	mw_bad(LINES("type = headers", "frame_deny = on", "average = 5"), 4, "unknown key 'average' for type=headers");
	mw_bad(LINES("type = headers", "frame_deny = on", "frame_deny = off"), 4, "duplicate key 'frame_deny' (first at line 3)");
	mw_bad(LINES("type = headers", "frame_deny = maybe"), 3, "frame_deny: expected on/off");
	mw_bad(LINES("type = headers", "sts_seconds = -1"), 3, "sts_seconds: expected a whole number");
	mw_bad(LINES("type = headers", "sts_preload = on"), 3, "needs sts_seconds above 0");
	mw_bad(LINES("type = headers", "request_header = NoColon"), 3, "expected 'Name: value'");
	mw_bad(LINES("type = headers", "response_header = Bad Name: x"), 3, "bad field name 'Bad Name'");
	mw_bad(LINES("type = headers", "frame_deny = on", "response_header = x-frame-options: SAMEORIGIN"), 3,
	       "is already set in this middleware");
	mw_bad(LINES("type = headers", "referrer_policy ="), 3, "referrer_policy: needs a value");
	mw_bad(LINES("type = headers", "request_header = Content-Length: 5"), 3, "Content-Length is managed by the proxy");
	mw_bad(LINES("type = headers", "response_header = transfer-encoding:"), 3, "transfer-encoding is managed by");
	mw_bad(LINES("type = headers", "request_header = Host: other"), 3, "Host is managed by the proxy");

	mw_bad(LINES("type = ratelimit"), 1, "type=ratelimit needs average = ");
	/* every problem in one pass: an unknown key and a bad value */
	mw_bad(LINES("type = ratelimit", "bogus = 1", "average = x"), 3, "unknown key 'bogus'");
	mw_bad(LINES("type = ratelimit", "bogus = 1", "average = x"), 4, "average: expected a whole number");
	mw_bad(LINES("type = ratelimit", "average = ten"), 3, "average: expected a whole number from 0 to");
	mw_bad(LINES("type = ratelimit", "average = 10", "period = soon"), 4, "period: expected a duration");
	mw_bad(LINES("type = ratelimit", "average = 10", "period = 0s"), 4, "period: must be from 1ms");
	mw_bad(LINES("type = ratelimit", "average = 10", "burst = 0"), 4, "burst: expected a whole number from 1");
	mw_bad(LINES("type = ratelimit", "average = 10", "source = cookie:x"), 4, "source: expected client_ip or header:NAME");
	mw_bad(LINES("type = ratelimit", "average = 10", "source = header:"), 4, "source: expected client_ip or header:NAME");

	mw_bad(LINES("type = inflight"), 1, "type=inflight needs max = ");
	mw_bad(LINES("type = inflight", "max = 0"), 3, "max: expected a whole number from 1");

	mw_bad(LINES("type = redirect_scheme", "scheme = ht tp"), 3, "scheme: expected a URL scheme");
	mw_bad(LINES("type = redirect_scheme", "port = 70000"), 3, "port: expected a whole number from 1 to 65535");
	mw_bad(LINES("type = redirect_scheme", "regex = x"), 3, "unknown key 'regex' for type=redirect_scheme");

	mw_bad(LINES("type = redirect_regex", "replacement = x"), 1, "type=redirect_regex needs regex = ");
	mw_bad(LINES("type = redirect_regex", "regex = ^x"), 1, "needs replacement = ");
	mw_bad(LINES("type = redirect_regex", "regex = ^(x", "replacement = y"), 3, "regex: ");
	mw_bad(LINES("type = redirect_regex", "regex = x", "replacement = y", "permanent = sometimes"), 5,
	       "permanent: expected on/off");

	mw_bad(LINES("type = strip_prefix"), 1, "needs prefix = ");
	mw_bad(LINES("type = strip_prefix", "prefix = /ok", "prefix = api"), 4, "prefix: expected a path starting with '/'");
	mw_bad(LINES("type = add_prefix", "prefix = /a", "prefix = /b"), 4, "duplicate key 'prefix' (first at line 3)");
	mw_bad(LINES("type = add_prefix", "prefix = /"), 3, "prefix: expected a path like /api");

	mw_bad(LINES("type = basic_auth"), 1, "needs user = NAME:HASH or users_file = FILE");
	mw_bad(LINES("type = basic_auth", "user = alice"), 3, "expected user:hash");
	mw_bad(LINES("type = basic_auth", "user = alice:plaintext"), 3, "unsupported hash");
	mw_bad(LINES("type = basic_auth", "user = a:$2y$18$rVOcCPH6AKVL6urwcYY/nuXz2l4yoH8gQJtr3IJ9gtXwk1LbVAZOC"), 3,
	       "bcrypt cost outside 04..17");
	mw_bad(LINES("type = basic_auth", "user = a:{SHA}JauGvtFJymypwcDV23yakTiN3qs=",
		     "user = a:{SHA}JauGvtFJymypwcDV23yakTiN3qs="),
	       4, "user 'a' is defined twice");
	mw_bad(LINES("type = basic_auth", "user = a:{SHA}JauGvtFJymypwcDV23yakTiN3qs=", "realm = say \"hi\""), 4,
	       "realm: no quotes");
	mw_bad(LINES("type = basic_auth", "users_file = /nonexistent/htpasswd"), 3, "users_file: cannot open");

	mw_bad(LINES("type = ip_allowlist"), 1, "needs source_range = ");
	mw_bad(LINES("type = ip_allowlist", "source_range = 10.0.0.0/33"), 3, "source_range: expected addresses");
	mw_bad(LINES("type = ip_allowlist", "source_range = ,"), 3, "source_range: empty");

	mw_bad(LINES("type = request_id", "header = X-Id"), 3, "unknown key 'header' for type=request_id");

	mw_bad(LINES("type = retry"), 1, "needs attempts = ");
	mw_bad(LINES("type = retry", "attempts = 0"), 3, "attempts: expected a whole number from 1 to 100");
	mw_bad(LINES("type = retry", "attempts = 2", "initial_interval = fast"), 4, "initial_interval: expected a duration");

	mw_bad(LINES("type = circuit_breaker"), 1, "needs expression = ");
	mw_bad(LINES("type = circuit_breaker", "expression = LatencyAtQuantileMS(50.0) > 100"), 3,
	       "LatencyAtQuantileMS() is not supported");
	mw_bad(LINES("type = circuit_breaker", "expression = NetworkErrorRatio() >"), 3,
	       "expression: expected a number (up to 15 digits) at column 22");
	mw_bad(LINES("type = circuit_breaker", "expression = NetworkErrorRatio() > 0.5 & ResponseCodeRatio(500, 600, 0, 600) > 0.1"),
	       3, "unexpected text");
	mw_bad(LINES("type = circuit_breaker", "expression = ResponseCodeRatio(600, 500, 0, 600) > 0.1"), 3,
	       "start below its end");
	mw_bad(LINES("type = circuit_breaker", "expression = NetworkErrorRatio() > 0.5", "check_period = 0ms"), 4,
	       "check_period: must be from 1ms");

	/* and every type compiles with sensible keys */
	const char *const *good[] = {
		LINES("type = headers", "sts_seconds = 31536000", "sts_include_subdomains = yes", "sts_preload = true",
		      "frame_deny = on", "content_type_nosniff = 1", "referrer_policy = no-referrer",
		      "content_security_policy = default-src 'self'", "request_header = X-A: 1",
		      "request_header = X-B:", "response_header = Server:", "response_header = Host: fine"),
		LINES("type = ratelimit", "average = 100", "burst = 200", "period = 1s", "source = header:X-Api-Key"),
		LINES("type = inflight", "max = 10", "source = client_ip"),
		LINES("type = redirect_scheme", "scheme = https", "port = 443", "permanent = on"),
		LINES("type = redirect_regex", "regex = ^http://(.*)$", "replacement = https://$1"),
		LINES("type = strip_prefix", "prefix = /api", "prefix = /v1/"),
		LINES("type = add_prefix", "prefix = /v2/"),
		LINES("type = basic_auth", "user = a:{SHA}JauGvtFJymypwcDV23yakTiN3qs=", "realm = Staff",
		      "remove_header = on"),
		LINES("type = ip_allowlist", "source_range = 10.0.0.0/8, ::1"),
		LINES("type = request_id"),
		LINES("type = retry", "attempts = 3", "initial_interval = 250ms"),
		LINES("type = circuit_breaker",
		      "expression = (NetworkErrorRatio() > 0.30 || ResponseCodeRatio(500, 600, 0, 600) >= 0.25) && NetworkErrorRatio() != 1",
		      "check_period = 1s", "fallback_duration = 30s", "recovery_duration = 1m"),
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		middleware_free(mw_ok(good[i]));
}

/* ---- headers and chain order -------------------------------------------------- */

static void test_headers(void)
{
	struct middleware *m = mw_ok(LINES("type = headers", "sts_seconds = 63072000", "sts_include_subdomains = on",
					   "sts_preload = on", "frame_deny = on", "content_type_nosniff = on",
					   "referrer_policy = same-origin", "content_security_policy = default-src 'self'",
					   "request_header = X-Env: prod", "request_header = Cookie:",
					   "response_header = Server:", "response_header = X-Served-By: edge"));
	struct req *r = mkreq("GET / HTTP/1.1\r\nHost: a\r\nCookie: s=1\r\n\r\n", "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 0);
	CHECK(resp_field(&r->st, "Strict-Transport-Security") == NULL); /* not over plain HTTP */
	CHECK(resp_is(&r->st, "X-Frame-Options", "DENY"));
	CHECK(resp_is(&r->st, "X-Content-Type-Options", "nosniff"));
	CHECK(resp_is(&r->st, "Referrer-Policy", "same-origin"));
	CHECK(resp_is(&r->st, "Content-Security-Policy", "default-src 'self'"));
	CHECK(resp_is(&r->st, "X-Served-By", "edge"));
	CHECK(middleware_drops_response_field(&r->st, SLICE_LIT("server")));
	CHECK(middleware_drops_response_field(&r->st, SLICE_LIT("x-frame-options")));
	CHECK(!middleware_drops_response_field(&r->st, SLICE_LIT("Content-Type")));
	CHECK(req_is(&r->st, "X-Env", "prod"));
	CHECK(req_removed(&r->st, "cookie"));
	free(r);

	r = mkreq(GET("/", "a"), "10.0.0.1", true, 0);
	CHECK(run1(m, r) == 0);
	CHECK(resp_is(&r->st, "Strict-Transport-Security", "max-age=63072000; includeSubDomains; preload"));
	free(r);
	middleware_free(m);

	m = mw_ok(LINES("type = headers", "sts_seconds = 300"));
	r = mkreq(GET("/", "a"), NULL, true, 0);
	CHECK(run1(m, r) == 0 && resp_is(&r->st, "Strict-Transport-Security", "max-age=300"));
	free(r);
	middleware_free(m);
}

static void test_chain_order_and_early_stop(void)
{
	struct middleware *a = mw_ok(LINES("type = headers", "response_header = X-Order: a", "request_header = X-Req: a"));
	struct middleware *b = mw_ok(LINES("type = headers", "response_header = X-Order: b",
					   "response_header = X-Only-B: b", "request_header = X-Req: b"));
	struct middleware *deny = mw_ok(LINES("type = ip_allowlist", "source_range = 192.0.2.0/24"));
	struct middleware *drop = mw_ok(LINES("type = headers", "response_header = X-Order:"));
	struct req *r = mkreq(GET("/", "h"), "10.0.0.1", false, 0);

	/* response edits apply in reverse: the earlier middleware has the last word;
	 * request edits in order: the later one, closer to the service, wins */
	struct middleware *ab[] = { a, b };
	CHECK(run_chain(ab, 2, r) == 0);
	CHECK(resp_is(&r->st, "X-Order", "a") && resp_is(&r->st, "X-Only-B", "b"));
	CHECK(req_is(&r->st, "X-Req", "b"));
	struct middleware *ba[] = { b, a };
	CHECK(run_chain(ba, 2, r) == 0);
	CHECK(resp_is(&r->st, "X-Order", "b") && req_is(&r->st, "X-Req", "a"));

	/* an early answer stops the chain; edits of those before it still apply to it */
	struct middleware *a_deny_b[] = { a, deny, b };
	CHECK(run_chain(a_deny_b, 3, r) == 403);
	CHECK(eqs(r->st.body, "403 Forbidden\n"));
	CHECK(resp_is(&r->st, "X-Order", "a"));
	CHECK(resp_field(&r->st, "X-Only-B") == NULL);

	/* removal by an earlier middleware beats a later set, and the reverse */
	struct middleware *drop_a[] = { drop, a };
	CHECK(run_chain(drop_a, 2, r) == 0);
	CHECK(resp_field(&r->st, "X-Order") == NULL && middleware_drops_response_field(&r->st, SLICE_LIT("X-Order")));
	struct middleware *a_drop[] = { a, drop };
	CHECK(run_chain(a_drop, 2, r) == 0 && resp_is(&r->st, "X-Order", "a"));

	/* the next middleware sees request edits: a header-keyed limit keys on X-Req */
	struct middleware *rl = mw_ok(LINES("type = ratelimit", "average = 1", "period = 1h", "source = header:X-Req"));
	struct middleware *a_rl[] = { a, rl }, *b_rl[] = { b, rl };
	CHECK(run_chain(a_rl, 2, r) == 0);
	CHECK(run_chain(a_rl, 2, r) == 429);
	CHECK(run_chain(b_rl, 2, r) == 0); /* X-Req: b is another source */
	free(r);
	middleware_free(rl);
	middleware_free(a);
	middleware_free(b);
	middleware_free(deny);
	middleware_free(drop);
}

static void test_state_capacity_fails_safe(void)
{
	/* 2 x 16 distinct response fields: the 33rd has no room: 500, nothing written past */
	char lines_a[MW_MAX_EDITS][40], lines_b[MW_MAX_EDITS][40];
	const char *la[MW_MAX_EDITS + 2] = { "type = headers" }, *lb[MW_MAX_EDITS + 2] = { "type = headers" };
	for (int i = 0; i < MW_MAX_EDITS; i++) {
		snprintf(lines_a[i], sizeof(lines_a[i]), "response_header = X-A%d: 1", i);
		snprintf(lines_b[i], sizeof(lines_b[i]), "response_header = X-B%d: 1", i);
		la[i + 1] = lines_a[i];
		lb[i + 1] = lines_b[i];
	}
	struct middleware *a = mw_ok(la), *b = mw_ok(lb);
	struct middleware *ab[] = { a, b };
	struct req *r = mkreq(GET("/", "h"), "10.0.0.1", false, 0);
	CHECK(run_chain(ab, 2, r) == 500 && eqs(r->st.body, "500 Internal Server Error\n"));
	CHECK(r->st.n_resp_set == MW_MAX_EDITS);
	free(r);

	/* a 17th field in one middleware is a configuration error */
	char extra[40] = "response_header = X-C: 1";
	const char *lc[MW_MAX_EDITS + 3];
	memcpy(lc, la, sizeof(la));
	lc[MW_MAX_EDITS + 1] = extra;
	lc[MW_MAX_EDITS + 2] = NULL;
	mw_bad(lc, MW_MAX_EDITS + 3, "more than 16 fields in one middleware");
	middleware_free(a);
	middleware_free(b);

	/* the scratch space: a path too long to prefix */
	struct middleware *add = mw_ok(LINES("type = add_prefix", "prefix = /prefix"));
	char head[4096], path[MW_SCRATCH];
	memset(path, 'p', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", path);
	CHECK(status_of(add, head, "10.0.0.1", false, 0) == 500);
	/* and more inflight middlewares than the state records */
	struct middleware *inf = mw_ok(LINES("type = inflight", "max = 1"));
	struct middleware *five[] = { inf, inf, inf, inf, inf };
	r = mkreq(GET("/", "h"), "10.0.0.1", false, 0);
	CHECK(run_chain(five, 5, r) == 429); /* the same limit twice: the second sees the first */
	middleware_done(&r->st);
	struct middleware *infs[5];
	for (int i = 0; i < 5; i++)
		infs[i] = mw_ok(LINES("type = inflight", "max = 1"));
	CHECK(run_chain(infs, 5, r) == 500 && r->st.n_inflight == 4);
	middleware_done(&r->st);
	CHECK(run_chain(infs, 4, r) == 0); /* the four counted were given back */
	middleware_done(&r->st);
	free(r);
	for (int i = 0; i < 5; i++)
		middleware_free(infs[i]);
	middleware_free(inf);
	middleware_free(add);
}

/* ---- ratelimit and inflight ----------------------------------------------------- */

static void test_ratelimit(void)
{
	struct middleware *m = mw_ok(LINES("type = ratelimit", "average = 5")); /* burst 5, per 1s */
	int64_t t = 1000000;
	for (int i = 0; i < 5; i++)
		CHECK(status_of(m, GET("/", "h"), "10.0.0.1", false, t) == 0);
	struct req *r = mkreq(GET("/", "h"), "10.0.0.1", false, t);
	CHECK(run1(m, r) == 429);
	CHECK(eqs(r->st.body, "429 Too Many Requests\n"));
	CHECK(resp_is(&r->st, "Retry-After", "1"));
	free(r);
	/* another client has its own bucket; v4 and v4-mapped v6 are one client */
	CHECK(status_of(m, GET("/", "h"), "10.0.0.2", false, t) == 0);
	CHECK(status_of(m, GET("/", "h"), "::ffff:10.0.0.1", false, t) == 429);
	/* 200ms adds one token */
	CHECK(status_of(m, GET("/", "h"), "10.0.0.1", false, t + 199) == 429);
	CHECK(status_of(m, GET("/", "h"), "10.0.0.1", false, t + 200) == 0);
	CHECK(status_of(m, GET("/", "h"), "10.0.0.1", false, t + 200) == 429);
	/* a long pause refills to the burst, not beyond */
	t += 3600 * 1000;
	for (int i = 0; i < 5; i++)
		CHECK(status_of(m, GET("/", "h"), "10.0.0.1", false, t) == 0);
	CHECK(status_of(m, GET("/", "h"), "10.0.0.1", false, t) == 429);
	middleware_free(m);

	/* 6 per minute, burst 2: one token per 10s; Retry-After is whole seconds, rounded up */
	m = mw_ok(LINES("type = ratelimit", "average = 6", "period = 1m", "burst = 2"));
	CHECK(status_of(m, GET("/", "h"), "2001:db8::1", false, 0) == 0);
	CHECK(status_of(m, GET("/", "h"), "2001:db8::1", false, 0) == 0);
	r = mkreq(GET("/", "h"), "2001:db8::1", false, 2500);
	CHECK(run1(m, r) == 429 && resp_is(&r->st, "Retry-After", "8")); /* 7.5s left */
	free(r);
	CHECK(status_of(m, GET("/", "h"), "2001:db8::1", false, 10000) == 0);
	middleware_free(m);

	/* average 0: no limit, as in Traefik */
	m = mw_ok(LINES("type = ratelimit", "average = 0"));
	for (int i = 0; i < 100; i++)
		CHECK(status_of(m, GET("/", "h"), "10.0.0.1", false, 0) == 0);
	middleware_free(m);

	/* header source: each key its own bucket; requests without the header share one */
	m = mw_ok(LINES("type = ratelimit", "average = 1", "period = 1h", "source = header:X-Api-Key"));
	CHECK(status_of(m, "GET / HTTP/1.1\r\nHost: h\r\nX-Api-Key: one\r\n\r\n", "10.0.0.1", false, 0) == 0);
	CHECK(status_of(m, "GET / HTTP/1.1\r\nHost: h\r\nx-api-key: one\r\n\r\n", "10.0.0.2", false, 0) == 429);
	CHECK(status_of(m, "GET / HTTP/1.1\r\nHost: h\r\nX-Api-Key: two\r\n\r\n", "10.0.0.1", false, 0) == 0);
	CHECK(status_of(m, GET("/", "h"), "10.0.0.3", false, 0) == 0);
	CHECK(status_of(m, GET("/", "h"), "10.0.0.4", false, 0) == 429);
	middleware_free(m);
}

static void test_ratelimit_address_sweep(void)
{
	/* the table never grows: 100k sources pass through 4096 entries */
	struct source_table *t = source_table_new(4096);
	CHECK(t && source_table_capacity(t) == 4096);
	unsigned char key[SOURCE_KEY_BYTES] = { 0 };
	bool fresh;
	for (uint32_t i = 0; i < 100000; i++) {
		memcpy(key, &i, sizeof(i));
		struct source_entry *e = source_table_get(t, key, i, false, &fresh);
		CHECK(e && fresh);
		CHECK(source_table_at(t, source_table_index(t, e)) == e);
	}
	CHECK(source_table_used(t) == 4096);
	CHECK(source_table_at(t, 4096) == NULL);
	/* with keep_busy, busy entries stay: a set full of them refuses newcomers */
	size_t refused = 0;
	for (uint32_t i = 0; i < 100000; i++) {
		memcpy(key, &i, sizeof(i));
		key[15] = 1;
		struct source_entry *e = source_table_get(t, key, i, true, &fresh);
		if (!e)
			refused++;
		else
			e->value = 1;
	}
	CHECK(refused == 100000 - 4096);
	source_table_free(t);

	/* busy sources spread over two candidate sets each: a table refuses its first
	 * newcomer only when it is nearly full (measured: never below 84% in 300 tables;
	 * one set per key refused at 29%) */
	size_t least = SIZE_MAX;
	for (int round = 0; round < 50; round++) {
		t = source_table_new(8192);
		size_t held = 0;
		for (uint32_t i = 0;; i++) {
			memcpy(key, &i, sizeof(i));
			struct source_entry *e = source_table_get(t, key, 0, true, &fresh);
			if (!e)
				break;
			e->value = 1;
			held++;
		}
		least = held < least ? held : least;
		source_table_free(t);
	}
	CHECKF(least >= 8192 * 3 / 4, "first refusal at %zu of 8192", least);

	/* A client over its limit stays over it while a sweep of 100k other addresses
	 * goes by, each of which gets its own fresh burst. */
	struct middleware *m = mw_ok(LINES("type = ratelimit", "average = 1", "period = 1h"));
	int64_t now = 0;
	CHECK(status_of(m, GET("/", "h"), "198.51.100.7", false, now) == 0);
	CHECK(status_of(m, GET("/", "h"), "198.51.100.7", false, now) == 429);
	int swept_ok = 0, limited = 0, checks = 0;
	struct req *r = mkreq(GET("/", "h"), "10.0.0.0", false, 0);
	struct sockaddr_in *s4 = (struct sockaddr_in *)&r->addr;
	for (uint32_t i = 0; i < 100000; i++) {
		s4->sin_addr.s_addr = htonl(0x0b000000u + i);
		r->mr.now_ms = ++now;
		swept_ok += run1(m, r) == 0;
		if (i % 8 == 0) {
			checks++;
			limited += status_of(m, GET("/", "h"), "198.51.100.7", false, now) == 429;
		}
	}
	CHECK(swept_ok == 100000);
	CHECKF(limited == checks, "%d of %d", limited, checks);
	free(r);
	middleware_free(m);
}

static void test_inflight(void)
{
	struct middleware *m = mw_ok(LINES("type = inflight", "max = 2"));
	struct req *a = mkreq(GET("/", "h"), "10.0.0.1", false, 0), *b = mkreq(GET("/", "h"), "10.0.0.1", false, 0);
	struct req *c = mkreq(GET("/", "h"), "10.0.0.1", false, 0), *d = mkreq(GET("/", "h"), "10.0.0.2", false, 0);
	CHECK(run1(m, a) == 0 && a->st.n_inflight == 1);
	CHECK(run1(m, b) == 0);
	CHECK(run1(m, c) == 429 && c->st.n_inflight == 0 && eqs(c->st.body, "429 Too Many Requests\n"));
	CHECK(run1(m, d) == 0); /* another source */
	middleware_done(&a->st);
	middleware_done(&a->st); /* a second release changes nothing */
	CHECK(a->st.n_inflight == 0);
	CHECK(run1(m, c) == 0);
	CHECK(run1(m, a) == 429);
	middleware_done(&b->st);
	middleware_done(&c->st);
	middleware_done(&d->st);
	CHECK(run1(m, a) == 0 && run1(m, b) == 0);
	middleware_done(&a->st);
	middleware_done(&b->st);
	free(a);
	free(b);
	free(c);
	free(d);
	middleware_free(m);

	/* thousands of sources in flight at once fit (the table holds 8192) */
	m = mw_ok(LINES("type = inflight", "max = 1"));
	static uint32_t held[3000];
	struct req *r = mkreq(GET("/", "h"), "10.0.0.0", false, 0);
	struct sockaddr_in *s4 = (struct sockaddr_in *)&r->addr;
	int ok = 0;
	for (uint32_t i = 0; i < 3000; i++) {
		s4->sin_addr.s_addr = htonl(0x0a000000u + i);
		ok += run1(m, r) == 0 && r->st.n_inflight == 1 && r->st.inflight[0] == m;
		held[i] = r->st.inflight_key[0];
	}
	CHECK(ok == 3000);
	s4->sin_addr.s_addr = htonl(0x0a000000u + 17);
	CHECK(run1(m, r) == 429);
	for (int i = 0; i < 3000; i++) {
		/* what a request's state records is all middleware_done needs */
		struct mw_state *one = calloc(1, sizeof(*one));
		one->inflight[0] = m;
		one->inflight_key[0] = held[i];
		one->n_inflight = 1;
		middleware_done(one);
		free(one);
	}
	CHECK(run1(m, r) == 0);
	middleware_done(&r->st);
	free(r);
	middleware_free(m);
}

/* ---- redirects and paths ------------------------------------------------------- */

static void test_redirect_scheme(void)
{
	struct middleware *m = mw_ok(LINES("type = redirect_scheme"));
	struct req *r = mkreq(GET("/a/b?x=1", "example.com:8080"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 307 && eqs(r->st.body, "307 Temporary Redirect\n"));
	CHECK(resp_is(&r->st, "Location", "https://example.com/a/b?x=1"));
	free(r);
	CHECK(status_of(m, GET("/a", "example.com"), "10.0.0.1", true, 0) == 0); /* already https */
	r = mkreq(GET("/", "[2001:db8::1]:8080"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 307 && resp_is(&r->st, "Location", "https://[2001:db8::1]/"));
	free(r);
	CHECK(status_of(m, "GET / HTTP/1.0\r\n\r\n", "10.0.0.1", false, 0) == 400); /* no Host to send it to */
	middleware_free(m);

	m = mw_ok(LINES("type = redirect_scheme", "scheme = HTTPS", "port = 8443", "permanent = yes"));
	r = mkreq(GET("/p", "example.com"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 308 && resp_is(&r->st, "Location", "https://example.com:8443/p"));
	CHECK(eqs(r->st.body, "308 Permanent Redirect\n"));
	free(r);
	middleware_free(m);

	m = mw_ok(LINES("type = redirect_scheme", "scheme = http"));
	CHECK(status_of(m, GET("/p", "example.com"), "10.0.0.1", false, 0) == 0);
	r = mkreq(GET("/p", "example.com:443"), "10.0.0.1", true, 0);
	CHECK(run1(m, r) == 307 && resp_is(&r->st, "Location", "http://example.com/p"));
	free(r);
	middleware_free(m);
}

static void test_redirect_regex(void)
{
	struct middleware *m = mw_ok(LINES("type = redirect_regex", "regex = ^http://([^/:]+)(:[0-9]+)?/old/(.*)$",
					   "replacement = https://$1/new/${3}"));
	struct req *r = mkreq(GET("/old/x/y?q=1", "example.com:8080"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 307);
	CHECK(resp_is(&r->st, "Location", "https://example.com/new/x/y?q=1"));
	free(r);
	CHECK(status_of(m, GET("/other", "example.com"), "10.0.0.1", false, 0) == 0); /* no match: go on */
	CHECK(status_of(m, GET("/old/x", "example.com"), "10.0.0.1", true, 0) == 0);  /* https:// does not match */
	CHECK(status_of(m, "GET /old/x HTTP/1.0\r\n\r\n", "10.0.0.1", false, 0) == 0); /* no Host: http:///old/x */
	middleware_free(m);

	/* the replacement giving the same URL: go on */
	m = mw_ok(LINES("type = redirect_regex", "regex = ^(http://.*)$", "replacement = $1", "permanent = on"));
	CHECK(status_of(m, GET("/x", "h"), "10.0.0.1", false, 0) == 0);
	middleware_free(m);

	/* Go's expansion: $$ is '$', $1x names no group (empty), a lone '$' stays */
	m = mw_ok(LINES("type = redirect_regex", "regex = ^http://h/(a)(b)$", "replacement = http://h/$2$$$1x-${1}x$",
			"permanent = on"));
	r = mkreq(GET("/ab", "h"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 308);
	CHECK(resp_is(&r->st, "Location", "http://h/b$-ax$"));
	free(r);
	middleware_free(m);

	/* every match is replaced (ReplaceAllString), not only the first */
	m = mw_ok(LINES("type = redirect_regex", "regex = old", "replacement = new"));
	r = mkreq(GET("/old/old?v=old", "h"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 307 && resp_is(&r->st, "Location", "http://h/new/new?v=new"));
	free(r);
	middleware_free(m);
	/* empty matches: one per position, none right after a match (x* on "hx" -> "-h-") */
	m = mw_ok(LINES("type = redirect_regex", "regex = x*", "replacement = -"));
	r = mkreq(GET("/x", "h"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 307 && resp_is(&r->st, "Location", "-h-t-t-p-:-/-/-h-/-"));
	free(r);
	middleware_free(m);
}

static void test_prefixes(void)
{
	struct middleware *strip = mw_ok(LINES("type = strip_prefix", "prefix = /api", "prefix = /v1/"));
	struct middleware *add = mw_ok(LINES("type = add_prefix", "prefix = /v2/"));
	static const struct {
		const char *path, *want, *prefix;
	} cases[] = {
		{ "/api/users", "/users", "/api" },
		{ "/api", "/", "/api" },
		{ "/api/", "/", "/api" },
		{ "/apix", NULL, NULL }, /* not at a segment boundary */
		{ "/v1/x", "/x", "/v1/" },
		{ "/v1/", "/", "/v1/" },
		{ "/other", NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char head[256];
		snprintf(head, sizeof(head), "GET %s?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].path);
		struct req *r = mkreq(head, "10.0.0.1", false, 0);
		CHECK(run1(strip, r) == 0);
		if (cases[i].want) {
			CHECKF(r->st.path.p && eqs(r->st.path, cases[i].want), "%s", cases[i].path);
			CHECK(req_is(&r->st, "X-Forwarded-Prefix", cases[i].prefix));
		} else {
			CHECKF(r->st.path.p == NULL && req_field(&r->st, "X-Forwarded-Prefix") == NULL, "%s", cases[i].path);
		}
		free(r);
	}
	/* the chain's path: add_prefix sees what strip_prefix left; a redirect after sees it too */
	struct middleware *rx = mw_ok(LINES("type = redirect_regex", "regex = ^http://h/v2/(.*)$", "replacement = http://h/$1"));
	struct middleware *chain[] = { strip, add, rx };
	struct req *r = mkreq(GET("/api/users?id=7", "h"), "10.0.0.1", false, 0);
	CHECK(run_chain(chain, 2, r) == 0 && eqs(r->st.path, "/v2/users"));
	CHECK(run_chain(chain, 3, r) == 307 && resp_is(&r->st, "Location", "http://h/users?id=7"));
	free(r);
	r = mkreq(GET("/", "h"), "10.0.0.1", false, 0);
	CHECK(run1(add, r) == 0 && eqs(r->st.path, "/v2/"));
	free(r);
	r = mkreq("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "10.0.0.1", false, 0);
	CHECK(run1(add, r) == 0 && r->st.path.p == NULL);
	CHECK(run1(strip, r) == 0 && r->st.path.p == NULL);
	free(r);
	middleware_free(rx);
	middleware_free(strip);
	middleware_free(add);
}

/* ---- basic_auth and the htpasswd hashes ---------------------------------------- */

/* Made by htpasswd 2.4 (apache2-utils): -nbB -C 4/5/10, -nbm, -nbs. */
static const struct {
	const char *line, *password;
} vectors[] = {
	{ "alice:$2y$04$rVOcCPH6AKVL6urwcYY/nuXz2l4yoH8gQJtr3IJ9gtXwk1LbVAZOC", "s3cr3t" },
	{ "bob:$2y$05$K4NmcizucA8zk0YAX2BlVOuNTC06JuJ37j4zRi.rfGTMdHqdiz6kO", "pa:ss:wd" },
	{ "carol:$2y$04$Z0/5WcGOWkFWggh2DNb5ped/19JNPD2nejMmh3Rm8v9iNGaykgYxK", "" },
	{ "dave:$2y$04$b4S5tdCHutEV0UfTgBKx/eK0zSVdTpTzz6B0fPmWEOW57EcJMdQbi", "p\xc3\xa4ssw\xc3\xb6rd" },
	{ "erin:$2y$04$K3bwnaBYPS9clUZs2Uj6.OVLwonMvSNzq3/MEH2SrYZBaYn/.JmXa",
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" },
	{ "frank:$2y$10$b.kQXpYxpjF1VKqwevFAluFKM/EWSRB44FNh9XG5JAn/SUdqSwxQO", "correct-horse-battery-staple" },
	{ "alice:$apr1$tytD1ZJT$uY60Wgdn03DrVZV3aSyce1", "s3cr3t" },
	{ "bob:$apr1$2E00m5Ae$9.P3dBxIObZRP5yEFHF3L0", "pa:ss:wd" },
	{ "carol:$apr1$rWME.HOe$32l1Dw4etPQxUK1.zw4XB1", "" },
	{ "dave:$apr1$CC36lvrr$fbOV2W.C1etyssVb/BXy0.", "p\xc3\xa4ssw\xc3\xb6rd" },
	{ "erin:$apr1$frKmpPwc$aE74ZUY4IQFl/QxG8s1t0.",
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" },
	{ "alice:{SHA}JauGvtFJymypwcDV23yakTiN3qs=", "s3cr3t" },
	{ "carol:{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "" },
	{ "dave:{SHA}9Rfd8dMqES/xrVXGbRsSyzjn6Pc=", "p\xc3\xa4ssw\xc3\xb6rd" },
	/* $2a$ and $2b$ compute as $2y$ for these; the first is the classic crypt_blowfish vector */
	{ "u:$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U" },
	{ "u:$2b$04$rVOcCPH6AKVL6urwcYY/nuXz2l4yoH8gQJtr3IJ9gtXwk1LbVAZOC", "s3cr3t" },
};

static void test_htpasswd_vectors(void)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		struct slice user;
		struct htpasswd_hash h;
		const char *why = NULL;
		CHECKF(htpasswd_parse_line(slice_cstr(vectors[i].line), &user, &h, &why) == 0, "%s: %s", vectors[i].line,
		       why);
		struct slice pw = slice_cstr(vectors[i].password);
		CHECKF(htpasswd_verify(&h, pw), "%s", vectors[i].line);
		/* a different last byte, one byte more, one less: all refused */
		char other[128];
		snprintf(other, sizeof(other), "%s", vectors[i].password);
		if (pw.len) {
			other[pw.len - 1] ^= 1;
			CHECKF(!htpasswd_verify(&h, pw.len < 72 ? slice_make(other, pw.len) : SLICE_LIT("short")), "%s",
			       vectors[i].line);
			CHECK(!htpasswd_verify(&h, slice_make(vectors[i].password, pw.len - 1)) || pw.len > 72);
		}
		CHECK(!htpasswd_verify(&h, pw.len ? SLICE_LIT("") : SLICE_LIT("x")));
	}
	/* bcrypt reads 72 bytes of the password; apr1 and SHA read all of it */
	struct slice user;
	struct htpasswd_hash bc, md;
	const char *why;
	const char *p72y = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxy";
	CHECK(htpasswd_parse_line(slice_cstr(vectors[4].line), &user, &bc, &why) == 0 && eqs(user, "erin"));
	CHECK(htpasswd_verify(&bc, slice_cstr(p72y)));
	CHECK(htpasswd_parse_line(slice_cstr(vectors[10].line), &user, &md, &why) == 0);
	CHECK(!htpasswd_verify(&md, slice_cstr(p72y)));
	/* a NUL in the password never matches (crypt would cut it there) */
	CHECK(!htpasswd_verify(&md, slice_make("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\0", 81)));

	/* lines: CRLF and blanks tolerated; everything else exact */
	CHECK(htpasswd_parse_line(SLICE_LIT("alice:{SHA}JauGvtFJymypwcDV23yakTiN3qs=\r"), &user, &md, &why) == 0);
	static const char *const bad[] = {
		":{SHA}JauGvtFJymypwcDV23yakTiN3qs=",
		"alice",
		"al ice:{SHA}JauGvtFJymypwcDV23yakTiN3qs=",
		"alice:{SHA}JauGvtFJymypwcDV23yakTiN3qs",
		"alice:{SHA}JauGvtFJymypwcDV23yakTiN3qs==",
		"alice:{SHA}JauGvtFJymypwcDV23yakTiN3qt=", /* stray bits */
		"alice:$2y$04$rVOcCPH6AKVL6urwcYY/nuXz2l4yoH8gQJtr3IJ9gtXwk1LbVAZO",
		"alice:$2y$04$rVOcCPH6AKVL6urwcYY/nuXz2l4yoH8gQJtr3IJ9gtXwk1LbVAZOCC",
		"alice:$2x$04$rVOcCPH6AKVL6urwcYY/nuXz2l4yoH8gQJtr3IJ9gtXwk1LbVAZOC",
		"alice:$2y$03$rVOcCPH6AKVL6urwcYY/nuXz2l4yoH8gQJtr3IJ9gtXwk1LbVAZOC",
		"alice:$2y$4x$rVOcCPH6AKVL6urwcYY/nuXz2l4yoH8gQJtr3IJ9gtXwk1LbVAZOC",
		"alice:$2y$04$rVOcCPH6AKVL6urwcYY*nuXz2l4yoH8gQJtr3IJ9gtXwk1LbVAZOC",
		"alice:$2y$04$rVOcCPH6AKVL6urwcYY/nuXz2l4yoH8gQJtr3IJ9gtXwk1LbVAZO!",
		"alice:$apr1$$uY60Wgdn03DrVZV3aSyce1",
		"alice:$apr1$tytD1ZJTx$uY60Wgdn03DrVZV3aSyce1",
		"alice:$apr1$tytD1ZJT$uY60Wgdn03DrVZV3aSyce",
		"alice:$apr1$tytD1ZJT$uY60Wgdn03DrVZV3aSyce1$",
		"alice:$apr1$tytD1ZJTuY60Wgdn03DrVZV3aSyce1",
		"alice:$1$tytD1ZJT$uY60Wgdn03DrVZV3aSyce1",
		"alice:s3cr3t",
		"alice:",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		CHECKF(htpasswd_parse_line(slice_cstr(bad[i]), &user, &md, &why) < 0 && why && why[0], "%s", bad[i]);
	}
}

static void test_constant_time_compare(void)
{
	unsigned char a[32], b[32];
	for (int i = 0; i < 32; i++)
		a[i] = b[i] = (unsigned char)(i * 7);
	CHECK(htpasswd_equal(a, b, 32));
	CHECK(htpasswd_equal(a, b, 0));
	for (int i = 0; i < 32; i++)
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (unsigned char)(1 << bit);
			CHECK(!htpasswd_equal(a, b, 32));
			b[i] ^= (unsigned char)(1 << bit);
		}
	/* a stored hash that differs from the computed one in its first or its last
	 * character is refused just the same */
	struct slice user;
	struct htpasswd_hash h;
	const char *why;
	CHECK(htpasswd_parse_line(SLICE_LIT("a:$apr1$tytD1ZJT$vY60Wgdn03DrVZV3aSyce1"), &user, &h, &why) == 0);
	CHECK(!htpasswd_verify(&h, SLICE_LIT("s3cr3t")));
	CHECK(htpasswd_parse_line(SLICE_LIT("a:$apr1$tytD1ZJT$uY60Wgdn03DrVZV3aSyce2"), &user, &h, &why) == 0);
	CHECK(!htpasswd_verify(&h, SLICE_LIT("s3cr3t")));
}

static void test_bcrypt_encoding(void)
{
	unsigned char salt[16], back[16];
	char enc[22];
	for (int i = 0; i < 16; i++)
		salt[i] = (unsigned char)(0xf1 * i);
	bcrypt_b64_encode(salt, 16, enc);
	CHECK(bcrypt_b64_decode(enc, back, 16) == 0 && memcmp(salt, back, 16) == 0);
	/* "$2a$05$CCCCCCCCCCCCCCCCCCCCC." is the salt 0x10 0x41 0x04 ... */
	CHECK(bcrypt_b64_decode("CCCCCCCCCCCCCCCCCCCCC.", back, 16) == 0 && back[0] == 0x10 && back[1] == 0x41 &&
	      back[2] == 0x04);
	CHECK(bcrypt_b64_decode("CCCCCCCCCC=CCCCCCCCCC.", back, 16) < 0);
}

static char *basic(const char *user_pass)
{
	static char header[512];
	char enc[400];
	CHECK(base64_encode(user_pass, strlen(user_pass), enc, sizeof(enc)) > 0);
	snprintf(header, sizeof(header), "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic %s\r\n\r\n", enc);
	return header;
}

static void test_basic_auth(void)
{
	struct middleware *m = mw_ok(LINES("type = basic_auth", "user = alice:$2y$04$rVOcCPH6AKVL6urwcYY/nuXz2l4yoH8gQJtr3IJ9gtXwk1LbVAZOC",
					   "user = bob:$apr1$2E00m5Ae$9.P3dBxIObZRP5yEFHF3L0",
					   "user = carol:{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk="));
	struct req *r = mkreq(basic("alice:s3cr3t"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 0 && eqs(r->st.user, "alice"));
	CHECK(!req_removed(&r->st, "Authorization") && r->st.n_resp_set == 0);
	CHECK(run1(m, r) == 0); /* again (from the cache of verified credentials) */
	free(r);
	CHECK(status_of(m, basic("bob:pa:ss:wd"), "10.0.0.1", false, 0) == 0);
	CHECK(status_of(m, basic("carol:"), "10.0.0.1", false, 0) == 0);

	r = mkreq(basic("alice:s3cr3T"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 401 && eqs(r->st.body, "401 Unauthorized\n"));
	CHECK(resp_is(&r->st, "WWW-Authenticate", "Basic realm=\"edgeproxy\""));
	CHECK(r->st.user.p == NULL);
	free(r);
	static const char *const refused[] = {
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer abc\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic !!!!\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic YWxpY2U=\r\n\r\n",         /* no colon */
		"GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic YWxpY2U6czNjcjN0=\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		CHECKF(status_of(m, refused[i], "10.0.0.1", false, 0) == 401, "%s", refused[i]);
	CHECK(status_of(m, basic("mallory:s3cr3t"), "10.0.0.1", false, 0) == 401);
	CHECK(status_of(m, basic("alice:s3cr3t:"), "10.0.0.1", false, 0) == 401);
	CHECK(status_of(m, basic("Alice:s3cr3t"), "10.0.0.1", false, 0) == 401);
	/* a long credential is refused without reading past the bound */
	char longpw[1200] = "alice:";
	memset(longpw + 6, 'x', sizeof(longpw) - 7);
	longpw[sizeof(longpw) - 1] = '\0';
	char *big = malloc(4096), enc[2048];
	CHECK(base64_encode(longpw, strlen(longpw), enc, sizeof(enc)) > 0);
	snprintf(big, 4096, "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Basic %s\r\n\r\n", enc);
	CHECK(status_of(m, big, "10.0.0.1", false, 0) == 401);
	free(big);
	middleware_free(m);

	/* remove_header, realm, users_file with comments and CRLF */
	char path[] = "/tmp/test_middleware_htpasswd_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	const char *file = "# staff\r\n\r\nalice:$apr1$tytD1ZJT$uY60Wgdn03DrVZV3aSyce1\r\n  \n"
			   "dave:{SHA}9Rfd8dMqES/xrVXGbRsSyzjn6Pc=\n";
	CHECK(write(fd, file, strlen(file)) == (ssize_t)strlen(file));
	close(fd);
	char users_file[128];
	snprintf(users_file, sizeof(users_file), "users_file = %s", path);
	m = mw_ok(LINES("type = basic_auth", users_file, "realm = Staff Only", "remove_header = on"));
	r = mkreq(basic("alice:s3cr3t"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 0 && req_removed(&r->st, "authorization") && eqs(r->st.user, "alice"));
	free(r);
	r = mkreq(basic("dave:s3cr3t"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 401 && resp_is(&r->st, "WWW-Authenticate", "Basic realm=\"Staff Only\""));
	free(r);
	/* a later basic_auth does not see the removed header: the chain answers 401 */
	struct middleware *again = mw_ok(LINES("type = basic_auth", "user = alice:$apr1$tytD1ZJT$uY60Wgdn03DrVZV3aSyce1"));
	struct middleware *chain[] = { m, again };
	r = mkreq(basic("alice:s3cr3t"), "10.0.0.1", false, 0);
	CHECK(run_chain(chain, 2, r) == 401);
	free(r);
	middleware_free(again);
	middleware_free(m);

	/* errors inside the users file name the file and its line */
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0);
	file = "alice:$apr1$tytD1ZJT$uY60Wgdn03DrVZV3aSyce1\n# ok\nbob:plain\n";
	CHECK(write(fd, file, strlen(file)) == (ssize_t)strlen(file));
	close(fd);
	struct conf_errors errs = { 0 };
	CHECK(compile_lines(LINES("type = basic_auth", users_file), &errs) == NULL);
	char want[128];
	snprintf(want, sizeof(want), "%s:3: unsupported hash", path);
	CHECKF(errs.n == 1 && strncmp(errs.msgs[0], want, strlen(want)) == 0, "%s", errs.n ? errs.msgs[0] : "");
	conf_errors_free(&errs);
	fd = open(path, O_WRONLY | O_TRUNC);
	close(fd);
	mw_bad(LINES("type = basic_auth", users_file), 1, "no users");
	unlink(path);
}

/* ---- the rest ------------------------------------------------------------------ */

static void test_ip_allowlist(void)
{
	struct middleware *m = mw_ok(LINES("type = ip_allowlist", "source_range = 10.0.0.0/8, 2001:db8::/32 192.0.2.7"));
	CHECK(status_of(m, GET("/", "h"), "10.1.2.3", false, 0) == 0);
	CHECK(status_of(m, GET("/", "h"), "192.0.2.7", false, 0) == 0);
	CHECK(status_of(m, GET("/", "h"), "::ffff:10.9.9.9", false, 0) == 0);
	CHECK(status_of(m, GET("/", "h"), "2001:db8:1::1", false, 0) == 0);
	CHECK(status_of(m, GET("/", "h"), "192.0.2.8", false, 0) == 403);
	CHECK(status_of(m, GET("/", "h"), "2001:db9::1", false, 0) == 403);
	CHECK(status_of(m, GET("/", "h"), NULL, false, 0) == 403);
	middleware_free(m);
}

static bool is_hex32(struct slice s)
{
	if (s.len != 32)
		return false;
	for (size_t i = 0; i < 32; i++)
		if (!((s.p[i] >= '0' && s.p[i] <= '9') || (s.p[i] >= 'a' && s.p[i] <= 'f')))
			return false;
	return true;
}

static void test_request_id(void)
{
	struct middleware *m = mw_ok(LINES("type = request_id"));
	struct req *r = mkreq(GET("/", "h"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 0);
	const struct mw_header *up = req_field(&r->st, "X-Request-Id"), *back = resp_field(&r->st, "X-Request-Id");
	CHECK(up && back && is_hex32(up->value) && slice_eq(up->value, back->value));
	char first[33] = "";
	if (up)
		memcpy(first, up->value.p, 32);
	CHECK(run1(m, r) == 0);
	up = req_field(&r->st, "X-Request-Id");
	CHECK(up && is_hex32(up->value) && !eqs(up->value, first));
	free(r);

	r = mkreq("GET / HTTP/1.1\r\nHost: h\r\nx-request-id: abc-123\r\n\r\n", "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 0);
	CHECK(req_field(&r->st, "X-Request-Id") == NULL); /* passed on as it came */
	back = resp_field(&r->st, "X-Request-Id");
	CHECK(back && eqs(back->value, "abc-123"));
	CHECK(back && (back->value.p >= r->st.scratch && back->value.p < r->st.scratch + MW_SCRATCH));
	free(r);
	/* an overlong one is replaced, upstream too */
	char head[1024], longid[400];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: %s\r\n\r\n", longid);
	r = mkreq(head, "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 0);
	up = req_field(&r->st, "X-Request-Id");
	back = resp_field(&r->st, "X-Request-Id");
	CHECK(up && back && is_hex32(up->value) && slice_eq(up->value, back->value));
	free(r);
	middleware_free(m);
}

static void test_retry(void)
{
	struct middleware *m = mw_ok(LINES("type = retry", "attempts = 3", "initial_interval = 250ms"));
	struct req *r = mkreq(GET("/", "h"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 0 && r->st.retry_attempts == 3 && r->st.retry_initial_ms == 250);
	free(r);
	middleware_free(m);
	m = mw_ok(LINES("type = retry", "attempts = 2"));
	r = mkreq(GET("/", "h"), "10.0.0.1", false, 0);
	CHECK(run1(m, r) == 0 && r->st.retry_attempts == 2 && r->st.retry_initial_ms == 100);
	free(r);
	middleware_free(m);
}

/* Sends one request at `now` through chain and, when it went on, reports status. */
static int cb_request(struct middleware **chain, size_t n, int64_t now, int status, bool net_error)
{
	struct req *r = mkreq(GET("/", "h"), "10.0.0.1", false, now);
	int s = run_chain(chain, n, r);
	middleware_observe_request(&r->st, s ? s : status, s ? false : net_error, now);
	middleware_done(&r->st);
	free(r);
	return s;
}

static void test_circuit_breaker(void)
{
	struct middleware *m = mw_ok(LINES("type = circuit_breaker", "expression = ResponseCodeRatio(500, 600, 0, 600) > 0.25",
					   "check_period = 100ms", "fallback_duration = 10s", "recovery_duration = 10s"));
	int64_t t = 50000;
	for (int i = 0; i < 20; i++, t += 50)
		CHECK(cb_request(&m, 1, t, 200, false) == 0);
	/* failures: the ratio passes 0.25 after the 7th of 27 */
	int sent = 0;
	while (sent < 20 && cb_request(&m, 1, t, 502, true) == 0) {
		sent++;
		t += 100;
	}
	CHECKF(sent == 7, "opened after %d failures", sent);
	struct req *r = mkreq(GET("/", "h"), "10.0.0.1", false, t);
	CHECK(run1(m, r) == 503 && eqs(r->st.body, "503 Service Unavailable\n") && r->st.n_breakers == 0);
	free(r);
	int64_t tripped = t - 100;
	/* open for fallback_duration: everything gets 503, and those 503s are not counted */
	for (t = tripped; t < tripped + 10000; t += 500)
		CHECK(cb_request(&m, 1, t, 200, false) == 503);
	/* recovering: a share growing to a half over recovery_duration */
	int passed[2] = { 0, 0 }, total[2] = { 0, 0 };
	for (t = tripped + 10000; t < tripped + 20000; t += 10) {
		int half = t >= tripped + 15000;
		total[half]++;
		passed[half] += cb_request(&m, 1, t, 200, false) == 0;
	}
	/* the share let through so far follows 0.5 * elapsed / recovery_duration:
	 * a quarter by the middle (all in the first half), a half by the end */
	CHECKF(passed[0] > total[0] * 20 / 100 && passed[0] < total[0] * 30 / 100, "%d of %d", passed[0], total[0]);
	CHECKF(passed[0] + passed[1] > (total[0] + total[1]) * 45 / 100 &&
		       passed[0] + passed[1] < (total[0] + total[1]) * 55 / 100,
	       "%d of %d", passed[0] + passed[1], total[0] + total[1]);
	/* then closed */
	for (int i = 0; i < 50; i++, t += 10)
		CHECK(cb_request(&m, 1, t, 200, false) == 0);
	middleware_free(m);

	/* recovering and failing again: open again */
	m = mw_ok(LINES("type = circuit_breaker", "expression = NetworkErrorRatio() > 0.5", "fallback_duration = 1s",
			"recovery_duration = 1s"));
	t = 0;
	CHECK(cb_request(&m, 1, t, 502, true) == 0);
	CHECK(cb_request(&m, 1, t + 1, 200, false) == 503);
	t = 1000;
	int s;
	do
		s = cb_request(&m, 1, t += 10, 502, true);
	while (s != 0 && t < 3000);
	CHECK(s == 0 && t < 2000); /* one let through during recovery, failed... */
	CHECK(cb_request(&m, 1, t + 150, 200, false) == 503); /* ...and it is open again */
	CHECK(cb_request(&m, 1, t + 950, 200, false) == 503);
	middleware_free(m);

	/* only what happens after the breaker counts: a 429 from a limit before it is not seen */
	struct middleware *rl = mw_ok(LINES("type = ratelimit", "average = 1", "period = 1h"));
	struct middleware *cb = mw_ok(LINES("type = circuit_breaker", "expression = ResponseCodeRatio(400, 500, 0, 600) > 0.5"));
	struct middleware *chain[] = { rl, cb };
	CHECK(cb_request(chain, 2, 0, 200, false) == 0);
	for (int i = 1; i < 10; i++)
		CHECK(cb_request(chain, 2, i * 200, 200, false) == 429);
	CHECK(cb_request(&cb, 1, 5000, 200, false) == 0); /* still closed */
	middleware_free(rl);
	middleware_free(cb);

	/* the state machine alone, including the older chain-wide observe */
	char err[160];
	int col = 0;
	struct breaker *b = breaker_new("NetworkErrorRatio() >= 0.5 && ResponseCodeRatio(500, 600, 0, 600) > 0.4", 100, 1000,
					0, err, sizeof(err), &col);
	CHECKF(b != NULL, "%s at %d", err, col);
	breaker_observe(b, 200, false, 10);
	breaker_observe(b, 502, true, 20); /* checked at 10 only: the next check is at 110 */
	CHECK(breaker_state(b) == BREAKER_CLOSED);
	breaker_observe(b, 200, false, 110); /* 1/3 network errors: below */
	CHECK(breaker_state(b) == BREAKER_CLOSED);
	breaker_observe(b, 504, true, 250); /* 2/4 and 2/4 */
	CHECK(breaker_state(b) == BREAKER_OPEN);
	CHECK(!breaker_allow(b, 1249));
	CHECK(breaker_allow(b, 1250) && breaker_state(b) == BREAKER_CLOSED); /* recovery 0: straight back */
	breaker_observe(b, 502, true, 2000);
	CHECK(breaker_state(b) == BREAKER_OPEN); /* 1/1: the trip emptied the window */
	CHECK(breaker_allow(b, 3000));
	breaker_free(b);
	/* outcomes older than the 10 s window are forgotten */
	for (int late = 0; late < 2; late++) {
		b = breaker_new("NetworkErrorRatio() > 0.5", 100, 1000, 1000, err, sizeof(err), &col);
		breaker_observe(b, 200, false, 0); /* checked: 0/1; the next check at 100 */
		breaker_observe(b, 502, true, 50);
		breaker_observe(b, 502, true, 60);
		breaker_observe(b, 502, true, 70);
		CHECK(breaker_state(b) == BREAKER_CLOSED);
		breaker_observe(b, 200, false, late ? 10999 + 1 : 5000); /* 3/5, or 0/1 at 11 s */
		CHECK(breaker_state(b) == (late ? BREAKER_CLOSED : BREAKER_OPEN));
		breaker_free(b);
	}
	struct middleware *old = mw_ok(LINES("type = circuit_breaker", "expression = NetworkErrorRatio() > 0.5"));
	middleware_observe(&old, 1, 502, true, 0);
	CHECK(status_of(old, GET("/", "h"), "10.0.0.1", false, 1) == 503);
	middleware_free(old);
}

static void test_base64_and_siphash(void)
{
	unsigned char out[16];
	CHECK(base64_decode(SLICE_LIT("YWJj"), out, sizeof(out)) == 3 && memcmp(out, "abc", 3) == 0);
	CHECK(base64_decode(SLICE_LIT("YWI="), out, sizeof(out)) == 2 && memcmp(out, "ab", 2) == 0);
	CHECK(base64_decode(SLICE_LIT("YQ=="), out, sizeof(out)) == 1 && out[0] == 'a');
	CHECK(base64_decode(SLICE_LIT(""), out, sizeof(out)) == 0);
	static const char *const bad[] = { "YQ", "YQ=", "YR==", "YWJ=", "Y===", "====", "YQ==YQ==", "YW J", "YW\nJ",
					   "YWJ-", "YWJ_" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECKF(base64_decode(slice_cstr(bad[i]), out, sizeof(out)) < 0, "%s", bad[i]);
	CHECK(base64_decode(SLICE_LIT("YWJjZGVm"), out, 5) < 0); /* does not fit */
	char enc[8];
	CHECK(base64_encode("abcd", 4, enc, sizeof(enc)) == -1);
	char enc9[9];
	CHECK(base64_encode("abcd", 4, enc9, sizeof(enc9)) == 8 && strcmp(enc9, "YWJjZA==") == 0);

	/* SipHash-2-4 reference vectors (key 00..0f, message 00..len-1) */
	unsigned char key[16], msg[64];
	for (int i = 0; i < 16; i++)
		key[i] = (unsigned char)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (unsigned char)i;
	CHECK(siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
	CHECK(siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL);
	CHECK(siphash24(key, msg, 63) == 0x958a324ceb064572ULL);
}

TEST_MAIN("middleware", TEST(test_config_errors), TEST(test_headers), TEST(test_chain_order_and_early_stop),
	  TEST(test_state_capacity_fails_safe), TEST(test_ratelimit), TEST(test_ratelimit_address_sweep),
	  TEST(test_inflight), TEST(test_redirect_scheme), TEST(test_redirect_regex), TEST(test_prefixes),
	  TEST(test_htpasswd_vectors), TEST(test_constant_time_compare), TEST(test_bcrypt_encoding),
	  TEST(test_basic_auth), TEST(test_ip_allowlist), TEST(test_request_id), TEST(test_retry),
	  TEST(test_circuit_breaker), TEST(test_base64_and_siphash))
