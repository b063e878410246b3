/* health.h - active health checks of the upstream servers of a snapshot. */
#ifndef EDGEPROXY_HEALTH_H
#define EDGEPROXY_HEALTH_H

#include "snapshot.h"

struct health_probe;

/* Starts checking every server of every proxy service with health_path; the
 * first check runs at once. Returns the probes (owner: the caller). */
struct health_probe *health_start(struct snapshot *snap);
/* Stops and frees probes (before their snapshot goes away). */
void health_stop(struct health_probe *probes);

#endif
