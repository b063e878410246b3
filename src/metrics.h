/* metrics.h - request counters and histograms for the Prometheus exposition at the
 * admin listener's /metrics (names and labels of SPEC §3 [admin]). Updated on the
 * request path without locks (one writer per store); label values are bounded. With
 * workers, each process counts in its own store of a shared mapping and /metrics
 * shows their sum. */
#ifndef EDGEPROXY_METRICS_H
#define EDGEPROXY_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "slice.h"
#include "strbuf.h"

struct snapshot;

/* Label sets kept per metric family; past it, new label sets are all counted in one
 * series whose labels read "overflow". Names (entry points, routers, services) are
 * remembered up to METRICS_MAX_NAMES; later new names count as "overflow" too. */
#define METRICS_MAX_SERIES 2048
#define METRICS_MAX_NAMES 4096
/* Bytes reserved per process store in the shared mapping (touched as used): the
 * limits above fit in it with room for the tables' growth. */
#define METRICS_ARENA_SIZE ((size_t)4 << 20)
/* Processes process_* adds up (the supervisor and its workers). */
#define METRICS_MAX_PROCESSES 1024

/* One finished request. router and service are NULL when no router matched. */
void metrics_request(const char *entrypoint, const char *router, const char *service, struct slice method,
		     int code, double seconds, bool tls);
void metrics_connection_open(const char *entrypoint);
void metrics_connection_close(const char *entrypoint);
void metrics_config_reload(bool success);

/* Appends the whole exposition: request metrics, edgeproxy_service_server_up for
 * snap's servers, edgeproxy_tls_certs_not_after for its certificates, config
 * reload metrics, and process_* from /proc/self. */
void metrics_render(const struct snapshot *snap, struct strbuf *out);

/* Requests counted for service so far (in this process) and how many of them were
 * answered 5xx; both 0 for a service never seen. For /api/services. */
void metrics_service_totals(const char *service, uint64_t *requests, uint64_t *errors);

/* Workers (SPEC §3 [global] workers). The supervisor, before forking, maps
 * n_stores stores that every process then sees at the same address (-1 when the
 * mapping fails: each process then counts alone); from then on its own reload
 * counts are the ones shown. A worker counts in store i after metrics_attach(i),
 * carrying on from its previous writer's counters; the supervisor calls
 * metrics_release(i) once that worker has exited (its connection gauges drop to 0)
 * and may then give store i to a new worker. */
int metrics_share(size_t n_stores);
void metrics_attach(size_t i);
void metrics_release(size_t i);

/* Forgets every series and counter (unit tests, leak checks). */
void metrics_reset(void);

#endif
