/* health.c - active health checks of upstream servers (SPEC §3 [service]
 * health_*): a GET of health_path every health_interval (with jitter), judged
 * by status, with rise/fall hysteresis. Probes run on the event loop like any
 * other connection, so a slow server never blocks traffic. */
#include "health.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "confval.h"
#include "http_parse.h"
#include "log.h"
#include "rand.h"
#include "server.h"
#include "upstream.h"

#define PROBE_BUF 2048

struct health_probe {
	struct upstream_server *server;
	const struct conf_service *svc;
	int fd;
	ev_io io;
	ev_timer interval; /* next check */
	ev_timer timeout;  /* this check's deadline */
	char request[512];
	size_t req_len, req_sent;
	char buf[PROBE_BUF];
	size_t buf_len;
	struct health_probe *next;
};

static void probe_close(struct health_probe *pr)
{
	if (pr->fd < 0)
		return;
	ev_io_stop(server.loop, &pr->io);
	ev_timer_stop(server.loop, &pr->timeout);
	close(pr->fd);
	pr->fd = -1;
}

/* Records one result and applies the rise/fall hysteresis. */
static void probe_result(struct health_probe *pr, bool ok, int status, const char *why)
{
	struct upstream_server *s = pr->server;
	probe_close(pr);
	s->last_check_status = status;
	if (ok) {
		s->down_until = 0; /* an active success also ends a passive mark */
		if (s->check_down && ++s->check_streak >= (unsigned)pr->svc->health_rise) {
			s->check_down = false;
			s->check_streak = 0;
			log_info("server %s of service %s is up (health check)", s->conf->url, pr->svc->name);
		} else if (!s->check_down) {
			s->check_streak = 0;
		}
	} else {
		if (!s->check_down && ++s->check_streak >= (unsigned)pr->svc->health_fall) {
			s->check_down = true;
			s->check_streak = 0;
			log_warn("server %s of service %s is down (health check: %s)", s->conf->url, pr->svc->name, why);
		} else if (s->check_down) {
			s->check_streak = 0;
		}
	}
}

static void on_probe_io(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	struct health_probe *pr = w->data;
	if (revents & EV_WRITE) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (pr->req_sent == 0 && (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)) {
			probe_result(pr, false, 0, strerror(err ? err : errno));
			return;
		}
		ssize_t n = send(pr->fd, pr->request + pr->req_sent, pr->req_len - pr->req_sent, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN) {
			probe_result(pr, false, 0, strerror(errno));
			return;
		}
		if (n > 0)
			pr->req_sent += (size_t)n;
		if (pr->req_sent == pr->req_len) {
			ev_io_stop(server.loop, &pr->io);
			io_watch(&pr->io, EV_READ);
			ev_io_start(server.loop, &pr->io);
		}
		return;
	}
	ssize_t n = read(pr->fd, pr->buf + pr->buf_len, sizeof(pr->buf) - pr->buf_len);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n > 0)
		pr->buf_len += (size_t)n;
	struct http_response resp;
	int rc = http_parse_response(pr->buf, pr->buf_len, sizeof(pr->buf), SLICE_LIT("GET"), &resp);
	if (rc > 0) {
		bool ok = confval_status_in(pr->svc->health_status, resp.status);
		char why[32];
		snprintf(why, sizeof(why), "status %d", resp.status);
		probe_result(pr, ok, resp.status, why);
		return;
	}
	if (rc < 0 || n <= 0 || pr->buf_len == sizeof(pr->buf))
		probe_result(pr, false, 0, rc < 0 ? "malformed response" : "no response");
}

static void on_probe_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	probe_result(w->data, false, 0, "timeout");
}

static void on_probe_interval(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct health_probe *pr = w->data;
	const struct conf_server *cs = pr->server->conf;
	if (pr->fd >= 0)
		return; /* the previous check still runs (its timeout ends it) */
	/* A little jitter keeps many servers' checks from firing in lockstep. */
	unsigned char r;
	rand_bytes(&r, 1);
	double interval = (double)pr->svc->health_interval_ms / 1000.0;
	ev_timer_set(&pr->interval, interval * (0.9 + 0.2 * r / 255.0), 0.);
	ev_timer_start(server.loop, &pr->interval);

	pr->fd = socket(cs->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pr->fd < 0) {
		probe_result(pr, false, 0, strerror(errno));
		return;
	}
	int one = 1;
	setsockopt(pr->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(pr->fd, (const struct sockaddr *)&cs->addr, cs->addrlen) < 0 && errno != EINPROGRESS) {
		probe_result(pr, false, 0, strerror(errno));
		return;
	}
	pr->req_sent = 0;
	pr->buf_len = 0;
	ev_io_init(&pr->io, on_probe_io, pr->fd, EV_WRITE);
	pr->io.data = pr;
	ev_io_start(server.loop, &pr->io);
	ev_timer_set(&pr->timeout, (double)pr->svc->health_timeout_ms / 1000.0, 0.);
	ev_timer_start(server.loop, &pr->timeout);
}

struct health_probe *health_start(struct snapshot *snap)
{
	struct health_probe *list = NULL;
	for (size_t i = 0; i < snap->n_services; i++) {
		const struct service_rt *svc = &snap->services[i];
		if (!svc->group || !svc->conf->health_path)
			continue;
		for (size_t j = 0; j < svc->group->n; j++) {
			struct health_probe *pr = calloc(1, sizeof(*pr));
			if (!pr)
				break;
			pr->server = &svc->group->servers[j];
			pr->svc = svc->conf;
			pr->fd = -1;
			const char *host = svc->conf->health_host ? svc->conf->health_host : pr->server->conf->authority;
			int n = snprintf(pr->request, sizeof(pr->request),
					 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: edgeproxy-health\r\n"
					 "Connection: close\r\n\r\n",
					 svc->conf->health_path, host);
			pr->req_len = n > 0 && (size_t)n < sizeof(pr->request) ? (size_t)n : 0;
			ev_init(&pr->interval, on_probe_interval);
			pr->interval.data = pr;
			ev_init(&pr->timeout, on_probe_timeout);
			pr->timeout.data = pr;
			/* first check right away: a dead server is found before traffic is */
			ev_timer_set(&pr->interval, 0., 0.);
			ev_timer_start(server.loop, &pr->interval);
			pr->next = list;
			list = pr;
		}
	}
	return list;
}

void health_stop(struct health_probe *list)
{
	while (list) {
		struct health_probe *pr = list;
		list = pr->next;
		probe_close(pr);
		ev_timer_stop(server.loop, &pr->interval);
		free(pr);
	}
}
