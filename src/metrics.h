/* metrics.h - request counters and histograms for the Prometheus exposition at the
 * admin listener's /metrics (names and labels of SPEC §3 [admin]). Updated on the
 * request path without locks (one process per worker); label values are bounded. */
#ifndef EDGEPROXY_METRICS_H
#define EDGEPROXY_METRICS_H

#include <stdbool.h>

#include "slice.h"
#include "strbuf.h"

struct snapshot;

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

#endif
