/* child.h - work kept off the event loop in a child process: a function that may
 * block (name resolution, RSA key generation) or an external program (the ACME
 * dns_hook). The parent collects the child's output from a pipe and its exit
 * status through libev's child watcher, never blocking. */
#ifndef EDGEPROXY_CHILD_H
#define EDGEPROXY_CHILD_H

#include <stddef.h>

#include "ev.h"

enum {
	CHILD_SIGNALED = -1, /* killed by a signal */
	CHILD_TIMEOUT = -2,  /* killed after the time limit */
	CHILD_FAILED = -3,   /* could not be started */
};

struct child;

/* Called once when the child has exited and its output is read: code is the exit
 * status (0..255) or one of the negative values above; out[0..len) is what it
 * wrote (cut at the limit given at start), NUL-terminated. */
typedef void (*child_done_fn)(void *ctx, int code, const char *out, size_t len);

/* Forks; the child runs fn(arg, fd) writing its result to fd, then exits with fn's
 * return value. loop must be the default loop (libev watches children only there).
 * Returns NULL when fn is NULL or fork fails (done is not called then). */
struct child *child_run_fn(struct ev_loop *loop, int (*fn)(void *arg, int fd), void *arg,
			   double timeout, size_t max_out, child_done_fn done, void *ctx);

/* Forks and executes argv[0] (searched in PATH when it has no '/') with argv; its
 * stdout and stderr are collected, stdin is /dev/null. NULL without argv[0]. */
struct child *child_run_exec(struct ev_loop *loop, char *const argv[], double timeout,
			     size_t max_out, child_done_fn done, void *ctx);

/* Gives up on a child: kills it (by its pid), reaps it later, never calls done. */
void child_cancel(struct child *c);

#endif
