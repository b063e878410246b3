/* workers.h - `workers = N|auto` (SPEC §3 [global]): the supervisor process.
 *
 * The supervisor loads the configuration, binds every entry point (one socket each,
 * inherited by the workers: the kernel hands each connection to one of them), drops
 * privileges, then forks N workers that serve. It never accepts a connection
 * itself: it runs the ACME orders (once, not per worker; the answers to challenges
 * reach the workers through acme_board.h), watches the file, restarts a worker
 * that dies, and passes signals on:
 *   SIGHUP   it reloads first (errors are logged once, FILE:LINE); when the file is
 *            good it sends SIGHUP to every worker, which reloads in place keeping
 *            its connections, pools and health state; when entry points were added,
 *            removed or moved it starts new workers on the new set of sockets
 *            instead and lets the old ones finish their requests.
 *   SIGUSR1  reopens its log and passes it on.
 *   SIGUSR2  upgrades the supervisor (upgrade.h); the new one starts its own workers.
 *   SIGTERM, SIGINT  graceful stop of every worker, then exit 0.
 * /metrics in any worker shows the sum over all of them (metrics_share). */
#ifndef EDGEPROXY_WORKERS_H
#define EDGEPROXY_WORKERS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* How many workers `workers` asks for: the number, or one per online CPU for
 * auto (0). 1 means no supervisor: the process serves alone. */
unsigned workers_wanted(const struct conf_global *g);

/* The supervisor (server.role already ROLE_SUPERVISOR, the listeners bound but not
 * watched) forks n workers. 0, or -1 (nothing forked). */
int workers_start(unsigned n);

/* After a successful reload in the supervisor. */
void workers_reloaded(bool listeners_changed);

/* Sends sig to every worker still running. */
void workers_signal(int sig);

/* Graceful stop: SIGTERM to every worker; those still running after grace_seconds
 * (plus a margin) are killed. server_supervisor_done() once the last has exited. */
void workers_stop(double grace_seconds);

/* In a worker just forked: stops the supervisor's child watchers (on the
 * supervisor's loop, which the worker is about to destroy). */
void workers_forget(void);

#endif
