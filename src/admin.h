/* admin.h - the admin listener's endpoints ([admin], SPEC §3): /ping, /healthz,
 * /readyz, /.well-known/health, /metrics, /api/routers, /api/services,
 * /api/certs and the dashboard at /. */
#ifndef EDGEPROXY_ADMIN_H
#define EDGEPROXY_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "slice.h"

struct snapshot;

struct admin_response {
	int status;
	const char *content_type;
	const char *allow; /* 405: the Allow header's value; NULL otherwise */
	char *body; /* owner: the caller after admin_handle returns (free()); may be NULL when body_len is 0 */
	size_t body_len;
};

/* Answers one admin request. ready: the server finished starting (listeners open).
 * snap may be NULL (no configuration yet). For HEAD the body is made as for GET:
 * body_len is the Content-Length to send, the caller sends no body. path may carry
 * a query string, which is ignored. */
void admin_handle(const struct snapshot *snap, struct slice method, struct slice path, bool ready,
		  struct admin_response *out);

#endif
