/* listener.c - entry point sockets: bind, listen, accept. Accept pauses instead of
 * failing when the connection limit or the descriptor limit is reached. */
#include "listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "upgrade.h"

#define ACCEPT_BATCH 64 /* accepts per wakeup, so one busy listener cannot starve others */

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct listener *l = w->data;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_warn("accept on %s: %s; pausing accept for 100ms", l->name, strerror(errno));
				listener_pause_all();
				ev_timer_set(&server.accept_retry, 0.1, 0.);
				ev_timer_start(server.loop, &server.accept_retry);
			}
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conn_accept(l, fd, &peer);
		if (server.n_conns >= server.max_conns) {
			listener_pause_all();
			return;
		}
	}
}

static int bind_socket(const struct sockaddr_storage *addr, socklen_t len, const char *name)
{
	struct sockaddr_storage a = *addr;
	int fd = socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && a.ss_family == AF_INET6 && errno == EAFNOSUPPORT) {
		/* ":80" on a kernel without IPv6: listen on every IPv4 address instead. */
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)addr;
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a;
		in_port_t port = s6->sin6_port;
		memset(&a, 0, sizeof(a));
		s4->sin_family = AF_INET;
		s4->sin_port = port;
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
		len = sizeof(*s4);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0) {
		log_error("entrypoint %s: socket: %s", name, strerror(errno));
		return -1;
	}
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a;
		/* An unspecified IPv6 address serves IPv4 too, as ":80" promises. */
		if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (bind(fd, (struct sockaddr *)&a, len) < 0 || listen(fd, 511) < 0) {
		log_error("entrypoint %s: cannot listen: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static struct listener *find_listener(const char *name)
{
	for (struct listener *l = server.listeners; l; l = l->next)
		if (strcmp(l->name, name) == 0)
			return l;
	return NULL;
}

static bool same_addr(const struct listener *l, const struct conf_entrypoint *ep)
{
	return l->addrlen == ep->addrlen && memcmp(&l->addr, &ep->addr, ep->addrlen) == 0;
}

static void listener_free(struct listener *l)
{
	ev_io_stop(server.loop, &l->io);
	close(l->fd);
	free(l->name);
	free(l);
}

/* A worker serves the sockets it inherited: it cannot bind (privileges are gone,
 * and the supervisor's socket is the one to share), so a configuration asking for
 * another entry point or address is refused; the supervisor starts new workers for
 * it. */
static bool worker_can_serve(const struct snapshot *snap)
{
	for (size_t i = 0; i < snap->n_entrypoints; i++) {
		const struct conf_entrypoint *ep = snap->entrypoints[i].conf;
		const struct listener *l = find_listener(ep->name);
		if (!l || !same_addr(l, ep)) {
			log_error("entrypoint %s: not open in this worker; the supervisor starts new workers for it",
				  ep->name);
			return false;
		}
	}
	return true;
}

int listener_sync(struct snapshot *snap)
{
	struct listener *fresh = NULL;
	int changes = 0;
	if (server.role == ROLE_WORKER && !worker_can_serve(snap))
		return -1;
	/* Phase 1: bind what is new, touching nothing that exists. */
	for (size_t i = 0; i < snap->n_entrypoints; i++) {
		const struct conf_entrypoint *ep = snap->entrypoints[i].conf;
		/* An existing listener, moved or not, is dealt with in phase 2: a moved
		 * one may hold the very address it moves to. */
		if (find_listener(ep->name))
			continue;
		int fd = upgrade_take_listener(ep->name, &ep->addr, ep->addrlen);
		if (fd < 0)
			fd = bind_socket(&ep->addr, ep->addrlen, ep->name);
		if (fd < 0)
			goto fail;
		struct listener *l = calloc(1, sizeof(*l));
		if (!l) {
			close(fd);
			goto fail;
		}
		l->name = strdup(ep->name);
		l->fd = fd;
		l->addr = ep->addr;
		l->addrlen = ep->addrlen;
		l->next = fresh;
		fresh = l;
	}
	/* Phase 2: close listeners whose entry point is gone or moved, then rebind moved ones. */
	for (struct listener **pp = &server.listeners; *pp;) {
		struct listener *l = *pp;
		const struct entrypoint_rt *ep = snapshot_entrypoint(snap, l->name);
		if (ep && same_addr(l, ep->conf)) {
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		log_info("entrypoint %s: closing listener", l->name);
		listener_free(l);
		changes++;
		if (ep) {
			int fd = bind_socket(&ep->conf->addr, ep->conf->addrlen, ep->conf->name);
			if (fd < 0)
				continue; /* logged; the entry point stays closed until the next reload */
			struct listener *nl = calloc(1, sizeof(*nl));
			if (!nl) {
				close(fd);
				continue;
			}
			nl->name = strdup(ep->conf->name);
			nl->fd = fd;
			nl->addr = ep->conf->addr;
			nl->addrlen = ep->conf->addrlen;
			nl->next = fresh;
			fresh = nl;
		}
	}
	while (fresh) {
		struct listener *l = fresh;
		fresh = l->next;
		ev_io_init(&l->io, on_accept, l->fd, EV_READ);
		l->io.data = l;
		l->next = server.listeners;
		server.listeners = l;
		changes++;
		if (!server.accept_paused && !server.stopping && server.role != ROLE_SUPERVISOR)
			ev_io_start(server.loop, &l->io);
		log_info("entrypoint %s: listening on %s", l->name, snapshot_entrypoint(snap, l->name)->conf->listen);
	}
	return changes;
fail:
	while (fresh) {
		struct listener *l = fresh;
		fresh = l->next;
		close(l->fd);
		free(l->name);
		free(l);
	}
	return -1;
}

void listener_attach_loop(void)
{
	for (struct listener *l = server.listeners; l; l = l->next) {
		ev_io_init(&l->io, on_accept, l->fd, EV_READ);
		l->io.data = l;
		if (!server.accept_paused)
			ev_io_start(server.loop, &l->io);
	}
}

void listener_pause_all(void)
{
	server.accept_paused = true;
	for (struct listener *l = server.listeners; l; l = l->next)
		ev_io_stop(server.loop, &l->io);
}

void listener_resume_all(void)
{
	server.accept_paused = false;
	if (server.stopping || server.role == ROLE_SUPERVISOR)
		return;
	for (struct listener *l = server.listeners; l; l = l->next)
		ev_io_start(server.loop, &l->io);
}

void listener_close_all(void)
{
	while (server.listeners) {
		struct listener *l = server.listeners;
		server.listeners = l->next;
		listener_free(l);
	}
}

void listener_accept_pending(void)
{
	for (struct listener *l = server.listeners; l; l = l->next)
		on_accept(server.loop, &l->io, EV_READ);
}
