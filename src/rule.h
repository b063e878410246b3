/* rule.h - Traefik v3 router rules ("Host(`a`) && PathPrefix(`/api`)"): compiled once
 * per config snapshot, matched against each request without allocating. */
#ifndef EDGEPROXY_RULE_H
#define EDGEPROXY_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "slice.h"

/* What a rule looks at; every slice points into the connection's request buffer. */
struct rule_subject {
	struct slice method;
	struct slice host;   /* Host header value as received, may have :port, any case */
	struct slice path;   /* request path, no query */
	struct slice query;  /* raw query without '?', may be empty */
	const struct http_field *fields; /* request header fields */
	size_t nfields;
	const struct sockaddr *client;  /* peer address (after PROXY protocol/trusted proxies,
					 * decided by caller); NULL never matches ClientIP() */
};

struct rule; /* opaque compiled tree; owner: the config snapshot that compiled it */

/* Compiles text (NUL-terminated). On error returns NULL, writes a message such as
 * "unknown matcher 'Hots'" to err (if errlen > 0) and the 1-based byte column of the
 * offending token to *err_col (if err_col is not NULL). */
struct rule *rule_compile(const char *text, char *err, size_t errlen, int *err_col);

/* True when the request described by s matches r. Never allocates. */
bool rule_match(const struct rule *r, const struct rule_subject *s);

/* Frees r and everything it owns (compiled regexps included); NULL is fine. */
void rule_free(struct rule *r);

/* Calls fn with each literal name of a Host() matcher reachable in r without passing
 * through '!' (lowercase, trailing dot and IPv6 brackets removed), for ACME; names may
 * repeat. Returns how many calls were made; fn may be NULL to count only. */
size_t rule_hosts(const struct rule *r, void (*fn)(void *ctx, const char *host), void *ctx);

#endif
