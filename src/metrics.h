/* metrics.h - request counters and histograms for the Prometheus exposition at the
 * admin listener's /metrics (names and labels of SPEC §3 [admin]). Updated on the
 * request path without locks (one process per worker); label values are bounded. */
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

/* Forgets every series and counter (unit tests, leak checks). */
void metrics_reset(void);

#endif
