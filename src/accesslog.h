/* accesslog.h - one line per request in Traefik's common (CLF-like) or JSON
 * format, to stdout, stderr or a file; buffered and written once per loop turn. */
#ifndef EDGEPROXY_ACCESSLOG_H
#define EDGEPROXY_ACCESSLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "ev.h"
#include "slice.h"

struct access_record {
	const char *client;
	struct slice user; /* authenticated user (basic_auth), or empty */
	struct slice method, target;
	int minor;
	int status;
	uint64_t size;
	struct slice referer, user_agent;
	uint64_t count;
	const char *router;      /* NULL: no router matched */
	const char *service_url; /* NULL: none */
	const char *entrypoint;
	double duration_ms;
};

/* Opens the destination named by [global] access_log. -1 if a file cannot be opened. */
int accesslog_open(struct ev_loop *loop, const struct conf_global *g);
/* SIGUSR1: reopen the file (logrotate moved it). */
void accesslog_reopen(void);
bool accesslog_enabled(void);
void accesslog_write(const struct access_record *r);
void accesslog_flush(void);
void accesslog_close(void);
/* In a worker just forked, before the supervisor's loop is destroyed and after the
 * worker's is made: the open log carries on, flushed from the new loop. */
void accesslog_detach_loop(void);
void accesslog_attach_loop(struct ev_loop *loop);
/* The descriptor a worker keeps open (-1: none). */
int accesslog_fd(void);

#endif
