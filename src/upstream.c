/* upstream.c - server selection and connection pools for proxy services. */
#include "upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

/* FNV-1a: a stable, cheap hash for ip_hash and sticky cookie values. */
static uint64_t fnv1a(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

#define FNV_OFFSET 14695981039346656037ULL

/* FNV's low bits depend only on the inputs' low bits; a final avalanche (the
 * MurmurHash3 finaliser) makes "hash % n" use every input bit. */
static uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

struct upstream_group *upstream_group_new(const struct conf_service *svc)
{
	struct upstream_group *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->servers = calloc(svc->n_servers, sizeof(*g->servers));
	if (!g->servers) {
		free(g);
		return NULL;
	}
	g->n = svc->n_servers;
	g->balance = svc->balance;
	g->down_for = (ev_tstamp)svc->health_interval_ms / 1000.0;
	for (size_t i = 0; i < g->n; i++) {
		struct upstream_server *s = &g->servers[i];
		s->conf = &svc->servers[i];
		s->weight = s->conf->weight;
		s->backup = s->conf->backup;
		s->max_idle = (unsigned)svc->max_idle_per_server;
		uint64_t h = fnv1a(s->conf->url, strlen(s->conf->url), FNV_OFFSET);
		snprintf(s->cookie, sizeof(s->cookie), "%016llx", (unsigned long long)h);
	}
	return g;
}

static void close_idle(struct upstream_conn *uc)
{
	ev_io_stop(server.loop, &uc->io);
	close(uc->fd);
	free(uc);
}

void upstream_group_free(struct upstream_group *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++) {
		while (g->servers[i].idle) {
			struct upstream_conn *uc = g->servers[i].idle;
			g->servers[i].idle = uc->next;
			close_idle(uc);
		}
	}
	free(g->servers);
	free(g);
}

bool upstream_is_up(const struct upstream_server *s)
{
	return s->weight > 0 && !s->check_down && s->down_until <= ev_now(server.loop);
}

void upstream_mark_down(struct upstream_group *g, struct upstream_server *s)
{
	if (s->down_until <= ev_now(server.loop))
		log_warn("server %s marked down for %.0fs (connection failed)", s->conf->url, g->down_for);
	s->down_until = ev_now(server.loop) + g->down_for;
}

static bool eligible(const struct upstream_server *s, bool backup, const struct upstream_server *avoid)
{
	return s->backup == backup && s != avoid && upstream_is_up(s);
}

/* Smooth weighted round robin (as in nginx): every eligible server gains its
 * weight, the richest is chosen and pays the total. Exact proportions, spread out. */
static struct upstream_server *pick_round_robin(struct upstream_group *g, bool backup,
						const struct upstream_server *avoid)
{
	struct upstream_server *best = NULL;
	int64_t total = 0;
	for (size_t i = 0; i < g->n; i++) {
		struct upstream_server *s = &g->servers[i];
		if (!eligible(s, backup, avoid))
			continue;
		s->current += s->weight;
		total += s->weight;
		if (!best || s->current > best->current)
			best = s;
	}
	if (best)
		best->current -= total;
	return best;
}

/* Fewest requests in flight per unit of weight; ties go round the list. */
static struct upstream_server *pick_least_conn(struct upstream_group *g, bool backup,
					       const struct upstream_server *avoid)
{
	struct upstream_server *best = NULL;
	for (size_t i = 0; i < g->n; i++) {
		struct upstream_server *s = &g->servers[i];
		if (!eligible(s, backup, avoid))
			continue;
		if (!best || (uint64_t)s->active * (uint64_t)best->weight < (uint64_t)best->active * (uint64_t)s->weight)
			best = s;
	}
	return best;
}

/* The client address picks a start position; the first eligible server from there
 * wins, so a client keeps its server while that server is up. */
static struct upstream_server *pick_ip_hash(struct upstream_group *g, bool backup,
					    const struct upstream_server *avoid, const struct sockaddr *client)
{
	uint64_t h = FNV_OFFSET;
	if (client && client->sa_family == AF_INET)
		h = fnv1a(&((const struct sockaddr_in *)client)->sin_addr, 4, h);
	else if (client && client->sa_family == AF_INET6)
		h = fnv1a(&((const struct sockaddr_in6 *)client)->sin6_addr, 16, h);
	h = mix64(h);
	for (size_t k = 0; k < g->n; k++) {
		struct upstream_server *s = &g->servers[(h + k) % g->n];
		if (eligible(s, backup, avoid))
			return s;
	}
	return NULL;
}

static struct upstream_server *pick_policy(struct upstream_group *g, bool backup,
					   const struct upstream_server *avoid, const struct sockaddr *client)
{
	switch (g->balance) {
	case BALANCE_LEAST_CONN: return pick_least_conn(g, backup, avoid);
	case BALANCE_IP_HASH: return pick_ip_hash(g, backup, avoid, client);
	default: return pick_round_robin(g, backup, avoid);
	}
}

struct upstream_server *upstream_pick(struct upstream_group *g, const struct sockaddr *client,
				      struct slice sticky, const struct upstream_server *avoid)
{
	if (sticky.len == 16) {
		for (size_t i = 0; i < g->n; i++) {
			struct upstream_server *s = &g->servers[i];
			if (memcmp(s->cookie, sticky.p, 16) == 0 && s != avoid && upstream_is_up(s))
				return s;
		}
	}
	struct upstream_server *s = pick_policy(g, false, avoid, client);
	if (!s)
		s = pick_policy(g, true, avoid, client);
	if (!s && avoid && upstream_is_up(avoid))
		s = (struct upstream_server *)avoid; /* the only one left */
	return s;
}

/* An idle pooled connection became readable: the server closed it (or sent bytes
 * nobody asked for). Either way it can never carry a request again. */
static void on_idle_event(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct upstream_conn *uc = w->data;
	struct upstream_server *s = uc->server;
	for (struct upstream_conn **pp = &s->idle; *pp; pp = &(*pp)->next) {
		if (*pp == uc) {
			*pp = uc->next;
			s->n_idle--;
			break;
		}
	}
	close_idle(uc);
}

struct upstream_conn *upstream_acquire(struct upstream_server *s, bool fresh, bool *reused)
{
	if (s->idle && !fresh) {
		struct upstream_conn *uc = s->idle;
		s->idle = uc->next;
		s->n_idle--;
		ev_io_stop(server.loop, &uc->io);
		*reused = true;
		return uc;
	}
	*reused = false;
	const struct conf_server *cs = s->conf;
	int fd = socket(cs->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&cs->addr, cs->addrlen) < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	struct upstream_conn *uc = calloc(1, sizeof(*uc));
	if (!uc) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	uc->fd = fd;
	uc->server = s;
	ev_io_init(&uc->io, on_idle_event, fd, 0); /* the one watcher of this fd, for its life */
	return uc;
}

void upstream_release(struct upstream_conn *uc, bool reusable)
{
	struct upstream_server *s = uc->server;
	ev_io_stop(server.loop, &uc->io);
	if (!reusable || s->n_idle >= s->max_idle || server.stopping) {
		close(uc->fd);
		free(uc);
		return;
	}
	ev_set_cb(&uc->io, on_idle_event);
	uc->io.data = uc;
	io_watch(&uc->io, EV_READ);
	ev_io_start(server.loop, &uc->io);
	uc->next = s->idle;
	s->idle = uc;
	s->n_idle++;
}
