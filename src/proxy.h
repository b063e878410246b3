/* proxy.h - the reverse-proxy handler: one exchange per request, streaming the
 * request to an upstream server and the response back, both ways with
 * backpressure; Upgrade tunnels; retries before any response byte. */
#ifndef EDGEPROXY_PROXY_H
#define EDGEPROXY_PROXY_H

#include <stdbool.h>

#include "conn.h"

struct proxy_exchange;

/* Starts proxying c's current request (head parsed, c->in_off still at the head)
 * to svc. Sets c->phase to CONN_PROXY, or answers at once (503, 431...). */
void proxy_start(struct conn *c, const struct service_rt *svc);

/* Does all the work that is possible now. Returns true when the exchange has
 * ended (c->phase is then CONN_HEAD or CONN_DONE and c->exchange is NULL). */
bool proxy_progress(struct proxy_exchange *x);

/* The client connection is closing: drop the exchange and its upstream connection. */
void proxy_abort(struct proxy_exchange *x);

#endif
