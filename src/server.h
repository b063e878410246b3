/* server.h - the process-wide runtime: the event loop, the current configuration
 * snapshot, the listeners, and the lifecycle (reload, graceful stop). */
#ifndef EDGEPROXY_SERVER_H
#define EDGEPROXY_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ev.h"
#include "snapshot.h"

/* A listening socket. It outlives snapshots: a reload that keeps the entry point
 * (same name and address) keeps the socket. */
struct listener {
	char *name; /* entry point name; owner: the listener */
	int fd;
	ev_io io;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct listener *next;
};

/* One process serves (workers = 1); or a supervisor holds the listeners, the
 * configuration and the ACME orders while forked workers serve (workers.h). */
enum server_role { ROLE_SINGLE, ROLE_SUPERVISOR, ROLE_WORKER };

struct server {
	enum server_role role;
	unsigned worker; /* a worker's number, from 0 */
	struct ev_loop *loop;
	struct snapshot *snap; /* current configuration; the server holds one reference */
	const char *config_path;
	uint64_t generation;
	struct listener *listeners;
	size_t n_conns;
	size_t max_conns;
	bool accept_paused;
	bool stopping;
	uint64_t requests_total; /* the "count" field of the access log */
	struct health_probe *probes; /* active checks of the current snapshot */
	ev_timer accept_retry;   /* accept resumes after EMFILE/ENFILE */
	ev_timer grace;          /* graceful-stop deadline */
	ev_signal sig_hup, sig_term, sig_int, sig_usr1, sig_usr2;
};

extern struct server server;

/* Changes what a stopped io watcher waits for, keeping its fd registration
 * (ev_io_set would make libev re-add the fd to epoll: a failing syscall). This is
 * ev.h's ev_io_modify, written without its operator-precedence warning. */
static inline void io_watch(ev_io *w, int events)
{
	w->events = (w->events & EV__IOFDSET) | events;
}

/* Loads the configuration, binds every entry point and serves until stopped.
 * Returns the process exit code. */
int server_run(const char *config_path);

/* A connection closed: accept may resume, a graceful stop may finish. */
void server_conn_closed(void);

/* The life of a worker, in the child right after the supervisor forked it: drops
 * the supervisor's watchers and descriptors, makes its own event loop, counts its
 * metrics in shared store `store`, serves until stopped, and exits. */
void server_worker_main(unsigned worker, size_t store) __attribute__((noreturn));

/* The supervisor's graceful stop is over (every worker has exited). */
void server_supervisor_done(void);

#endif
