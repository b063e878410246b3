/* middleware.h - router middlewares ([middleware NAME], SPEC §3): compiled once per
 * configuration, run in order on the request (any may answer early) and in reverse
 * on the response (headers added or removed). */
#ifndef EDGEPROXY_MIDDLEWARE_H
#define EDGEPROXY_MIDDLEWARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "http_parse.h"
#include "slice.h"

struct middleware; /* compiled; owner: the config that compiled it */

/* Validates one [middleware NAME] section (its type and type-specific keys, each
 * error as FILE:LINE into errs) and compiles it. NULL when invalid. */
struct middleware *middleware_compile(const struct conf_middleware *m, const char *file,
				      struct conf_errors *errs);
void middleware_free(struct middleware *m);

#define MW_MAX_EDITS 16
#define MW_SCRATCH 2048

struct mw_header {
	struct slice name, value;
};

/* What the chain decided for one request. Lives with the request (from the
 * connection's buffer pool), so the hot path does not allocate. */
struct mw_state {
	/* request edits, applied when the request goes upstream */
	struct mw_header req_set[MW_MAX_EDITS]; /* replace (or add) these fields */
	size_t n_req_set;
	struct slice req_remove[MW_MAX_EDITS]; /* drop these fields */
	size_t n_req_remove;
	struct slice path; /* rewritten path (strip_prefix, add_prefix); .p NULL = unchanged */
	/* response edits, applied to whatever answers (upstream or built-in) */
	struct mw_header resp_set[MW_MAX_EDITS];
	size_t n_resp_set;
	struct slice resp_remove[MW_MAX_EDITS];
	size_t n_resp_remove;
	/* an early answer (redirect, 401, 403, 429, ...) */
	int status; /* 0 = none: the request goes on to its service */
	struct slice body;
	/* releases that must happen when the request ends (inflight counters) */
	struct middleware *inflight[4];
	uint32_t inflight_key[4];
	size_t n_inflight;
	/* retry policy for the proxy (retry middleware) */
	int retry_attempts;
	int64_t retry_initial_ms;
	/* circuit breakers that let the request through: they are told its outcome
	 * (middleware_observe_request) */
	struct middleware *breakers[4];
	size_t n_breakers;
	/* basic_auth: the authenticated user name, for the access log; .p NULL = none
	 * (owner: the compiled middleware) */
	struct slice user;
	/* storage for generated values (request id, rewritten path, Location) */
	char scratch[MW_SCRATCH];
	size_t scratch_len;
};

/* What a middleware may look at. */
struct mw_request {
	const struct http_request *req;
	const struct sockaddr *client; /* the peer (trusted_proxies already applied) */
	const char *client_text;
	bool tls;           /* arrived on a TLS entry point */
	int64_t now_ms;     /* monotonic, for rate limits */
};

/* Runs chain[0..n) on the request. Fills st (zeroed by the caller). Returns
 * st->status: 0 to go on, or the status of an early answer. */
int middleware_run(struct middleware *const *chain, size_t n, const struct mw_request *r, struct mw_state *st);

/* The request is over (answered, failed or aborted): release what the chain holds. */
void middleware_done(struct mw_state *st);

/* Outcome of a request (for circuit_breaker): the final status, and whether it
 * failed at the network level (no response). Only the breakers that let this
 * request through learn it (Traefik: a breaker sees what happens after its place
 * in the chain), so their own 503s and earlier middlewares' answers never count. */
void middleware_observe_request(const struct mw_state *st, int status, bool network_error, int64_t now_ms);

/* Older form: tells every circuit_breaker in chain. Call it only when the chain let
 * the request through (middleware_run returned 0); prefer the form above. */
void middleware_observe(struct middleware *const *chain, size_t n, int status, bool network_error,
			int64_t now_ms);

/* True when a response field must not reach the client (an empty-valued
 * response_header names it, or a resp_set field replaces it). */
bool middleware_drops_response_field(const struct mw_state *st, struct slice name);

#endif
