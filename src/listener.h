/* listener.h - binding entry points and accepting connections, with accept paused
 * (not failing) at max_connections or when the process runs out of descriptors. */
#ifndef EDGEPROXY_LISTENER_H
#define EDGEPROXY_LISTENER_H

#include "server.h"

/* Opens listeners for every entry point of snap that has none; closes listeners
 * whose entry point is gone or moved. Returns how many listeners it opened or
 * closed, or -1 (old listeners untouched) if a new address cannot be bound (in a
 * worker: if snap needs any listener it did not inherit). The supervisor of
 * workers binds and holds listeners but never accepts. */
int listener_sync(struct snapshot *snap);
/* In a worker just forked: watch the inherited listeners from the worker's loop. */
void listener_attach_loop(void);
void listener_pause_all(void);
void listener_resume_all(void);
void listener_close_all(void);
/* Accepts what waits in the listen queues (before they close: closing a
 * listener resets the connections still queued in it). */
void listener_accept_pending(void);

#endif
