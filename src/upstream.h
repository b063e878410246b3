/* upstream.h - the servers behind a proxy service: load balancing (smooth weighted
 * round robin, least_conn, ip_hash, sticky cookies, backups), passive health, and
 * a keep-alive pool of idle connections per server. */
#ifndef EDGEPROXY_UPSTREAM_H
#define EDGEPROXY_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "ev.h"
#include "slice.h"

struct upstream_server;

/* A TCP connection to one server: idle in its pool, or lent to one exchange. */
struct upstream_conn {
	int fd;
	ev_io io; /* while idle: notices the server closing it */
	struct upstream_server *server;
	struct upstream_conn *next; /* in the idle list */
};

struct upstream_server {
	const struct conf_server *conf; /* url, authority, resolved address */
	int64_t weight;
	bool backup;
	int64_t current;     /* smooth weighted round robin state */
	unsigned active;     /* requests in flight */
	ev_tstamp down_until; /* passive health: skipped until then */
	bool check_down;      /* active health: the last health_fall checks failed */
	unsigned check_streak; /* consecutive results opposite to the current state */
	int last_check_status; /* HTTP status of the last active check, 0 = no answer */
	char cookie[17];     /* sticky cookie value: hex of a hash of the URL */
	struct upstream_conn *idle; /* owner: this server */
	unsigned n_idle;
	unsigned max_idle;
};

struct upstream_group {
	struct upstream_server *servers; /* owner: the group */
	size_t n;
	int balance;
	ev_tstamp down_for; /* health_interval */
};

/* Builds the group for a proxy service. NULL on allocation failure. */
struct upstream_group *upstream_group_new(const struct conf_service *svc);
/* Frees the group and closes its idle connections. */
void upstream_group_free(struct upstream_group *g);

/* Chooses a server that is up: the sticky one when sticky names an up server,
 * else by the balance policy; primaries first, backups when no primary is up;
 * avoid (may be NULL) is skipped when another choice exists. NULL: none up. */
struct upstream_server *upstream_pick(struct upstream_group *g, const struct sockaddr *client,
				      struct slice sticky, const struct upstream_server *avoid);

/* Lends a connection to s: a pooled one (*reused = true) unless fresh, or a new
 * non-blocking connect in progress. NULL (errno set) if the socket cannot even be
 * created or the connect fails at once. */
struct upstream_conn *upstream_acquire(struct upstream_server *s, bool fresh, bool *reused);
/* Returns a lent connection: to the pool when reusable and there is room,
 * otherwise closed. */
void upstream_release(struct upstream_conn *uc, bool reusable);

/* Passive health: a connection error takes s out of rotation for health_interval. */
void upstream_mark_down(struct upstream_group *g, struct upstream_server *s);
bool upstream_is_up(const struct upstream_server *s);

#endif
